/*
 * Settings (see options.h). The config file is read first wherever
 * --config appears, so flags always win; list flags (--proxy, --window,
 * --rollback-on) given on the command line replace the file's list. The
 * file's values are checked with jsonval.h, in the proxy config's wording.
 */
#include "options.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm.h"
#include "pgvalve/jsonval.h"
#include "xalloc.h"

/* The ranges of the numeric settings, the same in the file and on the command line. */
#define MAX_STALL_MIN 1
#define MAX_STALL_MAX 60000
#define LOCK_TIMEOUT_MIN 1
#define LOCK_TIMEOUT_MAX 600000
#define ATTEMPTS_MIN 1
#define ATTEMPTS_MAX 10000
#define WATCH_MIN 0
#define WATCH_MAX 86400
#define BASELINE_MIN 0
#define BASELINE_MAX 300 /* the longest window_s a proxy's GET /latency answers */
#define CONFIG_FILE_MAX (1 << 20)
/* the key type change's backfill */
#define BACKFILL_BATCH_MIN 1
#define BACKFILL_BATCH_MAX 1000000
#define BACKFILL_RATE_MAX 100000000
/* the backfill's replication-lag throttle */
#define MAX_LAG_MIN_MS 1
#define MAX_LAG_MAX_MS 86400000

static const struct {
	const char *name;
	unsigned flag;
	int has_arg;
} flags[] = {
	{ "db", OPT_DB, required_argument },
	{ "proxy", OPT_PROXY, required_argument },
	{ "format", OPT_FORMAT, required_argument },
	{ "config", OPT_CONFIG, required_argument },
	{ "window", OPT_WINDOW, required_argument },
	{ "max-stall", OPT_MAX_STALL, required_argument },
	{ "lock-timeout", OPT_LOCK_TIMEOUT, required_argument },
	{ "attempts", OPT_ATTEMPTS, required_argument },
	{ "watch", OPT_WATCH, required_argument },
	{ "baseline", OPT_WATCH, required_argument }, /* the latency baseline before the watch's cutover */
	{ "rollback-on", OPT_ROLLBACK_ON, required_argument },
	{ "terminate-blockers-after", OPT_TERMINATE, required_argument },
	{ "postpone-cutover", OPT_POSTPONE, no_argument },
	{ "yes", OPT_YES, no_argument },
	{ "allow-unsafe", OPT_ALLOW_UNSAFE, no_argument },
	{ "resume", OPT_RESUME, no_argument },
	{ "rollback", OPT_ROLLBACK, no_argument },
	{ "schema", OPT_SCHEMA, required_argument },
	{ "table", OPT_TABLE, required_argument },
	{ "orphans", OPT_ORPHANS, no_argument },
	{ "suggest", OPT_SUGGEST, no_argument },
	{ "fail-on", OPT_FAIL_ON, required_argument },
	{ "orm", OPT_ORM, required_argument },
	{ "orm-name", OPT_ORM, required_argument },
	/* the key type change's backfill */
	{ "backfill-batch", OPT_BACKFILL_BATCH, required_argument },
	{ "backfill-rate", OPT_BACKFILL_RATE, required_argument },
	{ "finalize", OPT_FINALIZE, no_argument },
	{ "self-test", OPT_SELF_TEST, no_argument },
	/* the backfill's replication-lag throttle */
	{ "max-lag", OPT_MAX_LAG, required_argument },
};
#define N_FLAGS (int)(sizeof(flags) / sizeof(flags[0]))

int64_t options_parse_duration_ms(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
		return (int64_t)v;
	if (strcmp(end, "s") == 0)
		return (int64_t)(v * 1000);
	if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		return (int64_t)(v * 60000);
	if (strcmp(end, "h") == 0)
		return (int64_t)(v * 3600000);
	return -1;
}

static bool parse_int(const char *flag, const char *s, int min, int max, int *out, char *err, size_t errlen)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		snprintf(err, errlen, "--%s: expected an integer from %d to %d, got \"%s\"", flag, min, max,
			 s);
		return false;
	}
	*out = (int)v;
	return true;
}

static bool add_proxy(struct options *o, const char *url, const char *token_file, char *err, size_t errlen)
{
	struct proxy *p;

	if (o->n_proxies == OPTIONS_MAX_PROXIES) {
		snprintf(err, errlen, "at most %d proxies", OPTIONS_MAX_PROXIES);
		return false;
	}
	p = xcalloc(1, sizeof(*p));
	if (!proxy_parse_url(url, p, err, errlen) ||
	    (token_file && !proxy_load_token(p, token_file, err, errlen))) {
		free(p->token);
		free(p);
		return false;
	}
	o->proxies[o->n_proxies++] = p;
	return true;
}

static bool add_string(char **list, int *n, const char *s, const char *what, char *err, size_t errlen)
{
	if (*n == OPTIONS_MAX_LIST) {
		snprintf(err, errlen, "at most %d %s", OPTIONS_MAX_LIST, what);
		return false;
	}
	list[(*n)++] = xstrdup(s);
	return true;
}

static void clear_list(char **list, int *n)
{
	for (int i = 0; i < *n; i++)
		free(list[i]);
	*n = 0;
}

static void clear_proxies(struct options *o)
{
	for (int i = 0; i < o->n_proxies; i++) {
		free(o->proxies[i]->token);
		free(o->proxies[i]);
	}
	o->n_proxies = 0;
	for (int i = 0; i < o->n_proxy_given; i++) {
		free(o->proxy_given[i]->token);
		free(o->proxy_given[i]);
	}
	o->n_proxy_given = 0;
}

/* One entry of "proxies": {"url": ..., "token_file": ...}. */
static bool config_proxy(struct options *o, const cJSON *px, int index, char *err, size_t errlen)
{
	static const char *const keys[] = { "url", "token_file", NULL };
	char path[32];
	char *url = NULL, *token_file = NULL;
	bool ok;

	snprintf(path, sizeof(path), "proxies[%d]", index);
	ok = jsonval_known_keys(px, path, keys, err, errlen) &&
		jsonval_string(px, path, "url", 0, &url, err, errlen) &&
		jsonval_string(px, path, "token_file", JSONVAL_NULLABLE, &token_file, err, errlen);
	if (ok && !url)
		ok = jsonval_fail(err, errlen, path,
				  "expected an object with \"url\" (http://HOST:PORT or dns://NAME:PORT)");
	if (ok)
		ok = add_proxy(o, url, token_file, err, errlen);
	free(url);
	free(token_file);
	return ok;
}

/*
 * The settings in config file 'text' (changed in place: comments stripped)
 * over what 'o' holds; false with 'err' filled (without the file's name).
 */
static bool config_apply(struct options *o, char *text, char *err, size_t errlen)
{
	static const char *const keys[] = { "db",       "proxies",    "max_stall_ms", "lock_timeout_ms",
					    "attempts", "watch_s",    "windows",      "rollback_on",
					    "orm",      "max_lag_ms", "baseline_s",   NULL };
	cJSON *root, *proxies, *px;
	bool ok = false;
	int i = 0;

	jsonval_strip_comments(text); /* comments allowed, as in the proxy's config */
	root = cJSON_ParseWithOpts(text, NULL, 1);
	if (!root) {
		const char *at = cJSON_GetErrorPtr();

		snprintf(err, errlen, "not valid JSON near: %.40s", at && *at ? at : "(the end)");
		return false;
	}
	if (!jsonval_object(root, "(top level)", err, errlen) ||
	    !jsonval_known_keys(root, "", keys, err, errlen) ||
	    !jsonval_string(root, "", "db", 0, &o->db, err, errlen))
		goto done;
	proxies = cJSON_GetObjectItemCaseSensitive(root, "proxies");
	if (proxies) {
		if (!cJSON_IsArray(proxies)) {
			char got[80];

			jsonval_fail(err, errlen, "proxies",
				     "expected an array of {\"url\": ..., \"token_file\": ...}, got %s",
				     jsonval_describe(proxies, got, sizeof(got)));
			goto done;
		}
		clear_proxies(o);
		cJSON_ArrayForEach(px, proxies)
		{
			if (!config_proxy(o, px, i++, err, errlen))
				goto done;
		}
	}
	if (!jsonval_int32(root, "", "max_stall_ms", MAX_STALL_MIN, MAX_STALL_MAX, &o->max_stall_ms, err,
			   errlen) ||
	    !jsonval_int32(root, "", "lock_timeout_ms", LOCK_TIMEOUT_MIN, LOCK_TIMEOUT_MAX,
			   &o->lock_timeout_ms, err, errlen) ||
	    !jsonval_int32(root, "", "attempts", ATTEMPTS_MIN, ATTEMPTS_MAX, &o->attempts, err, errlen) ||
	    !jsonval_int32(root, "", "watch_s", WATCH_MIN, WATCH_MAX, &o->watch_s, err, errlen) ||
	    !jsonval_int32(root, "", "baseline_s", BASELINE_MIN, BASELINE_MAX, &o->baseline_s, err, errlen) ||
	    !jsonval_strings(root, "", "windows", o->windows, &o->n_windows, OPTIONS_MAX_LIST, err, errlen) ||
	    !jsonval_strings(root, "", "rollback_on", o->rollback_on, &o->n_rollback_on, OPTIONS_MAX_LIST,
			     err, errlen) ||
	    !jsonval_string(root, "", "orm", JSONVAL_NULLABLE, &o->orm, err, errlen))
		goto done;
	/* the backfill's replication-lag throttle */
	{
		int max_lag = (int)o->max_lag_ms;

		if (!jsonval_int32(root, "", "max_lag_ms", MAX_LAG_MIN_MS, MAX_LAG_MAX_MS, &max_lag, err,
				   errlen))
			goto done;
		o->max_lag_ms = max_lag;
	}
	if (o->orm && !orm_tool_parse(o->orm, &(enum orm_tool){ ORM_NONE })) {
		jsonval_fail(err, errlen, "orm", "expected " ORM_TOOLS ", not \"%s\"", o->orm);
		goto done;
	}
	ok = true;
done:
	cJSON_Delete(root);
	return ok;
}

static bool load_config(struct options *o, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text, msg[512];
	long len;
	bool ok;

	if (!f) {
		snprintf(err, errlen, "--config: cannot read \"%s\": %s", path, strerror(errno));
		return false;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len >= CONFIG_FILE_MAX ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		snprintf(err, errlen, "--config: \"%s\": unreadable or larger than 1 MiB", path);
		return false;
	}
	text = xcalloc(1, (size_t)len + 1);
	ok = fread(text, 1, (size_t)len, f) == (size_t)len;
	fclose(f);
	if (!ok)
		snprintf(msg, sizeof(msg), "cannot read it");
	else
		ok = config_apply(o, text, msg, sizeof(msg));
	free(text);
	if (!ok)
		snprintf(err, errlen, "%s: %s", path, msg);
	return ok;
}

bool options_parse(int argc, char **argv, unsigned allowed, struct options *o, char *err, size_t errlen)
{
	struct option longopts[N_FLAGS + 1];
	bool cli_proxies = false, cli_windows = false, cli_rules = false;
	int n = 0, c, idx;

	memset(o, 0, sizeof(*o));
	o->max_stall_ms = 200;
	o->lock_timeout_ms = 200;
	o->attempts = 30;
	o->watch_s = 60;
	o->baseline_s = -1;
	o->backfill_batch = 1000;
	o->terminate_blockers_after_ms = -1;
	for (int i = 0; i < N_FLAGS; i++)
		if (allowed & flags[i].flag)
			longopts[n++] = (struct option){ flags[i].name, flags[i].has_arg, NULL, i };
	longopts[n] = (struct option){ 0 };

	/* --config first, so every other flag overrides the file. */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;

		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		if (path && (allowed & OPT_CONFIG) && !load_config(o, path, err, errlen))
			return false;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, &idx)) != -1) {
		const char *name, *arg = optarg;
		int i;

		if (c == '?') {
			if (optopt)
				snprintf(err, errlen, "unknown flag");
			else
				snprintf(err, errlen, "unknown or misplaced flag \"%s\"", argv[optind - 1]);
			return false;
		}
		if (c == ':') {
			snprintf(err, errlen, "\"%s\" needs a value", argv[optind - 1]);
			return false;
		}
		i = c;
		name = flags[i].name;
		switch (flags[i].flag) {
		case OPT_DB:
			free(o->db);
			o->db = xstrdup(arg);
			break;
		case OPT_PROXY:
			if (!cli_proxies)
				clear_proxies(o);
			cli_proxies = true;
			if (!add_proxy(o, arg, NULL, err, errlen))
				return false;
			break;
		case OPT_FORMAT:
			if (strcmp(arg, "text") == 0) {
				o->format = FORMAT_TEXT;
			} else if (strcmp(arg, "json") == 0) {
				o->format = FORMAT_JSON;
			} else if ((allowed & OPT_FORMAT_AUDIT) && strcmp(arg, "dot") == 0) {
				o->format = FORMAT_DOT;
			} else if ((allowed & OPT_FORMAT_AUDIT) && strcmp(arg, "mermaid") == 0) {
				o->format = FORMAT_MERMAID;
			} else if ((allowed & OPT_FORMAT_AUDIT) && strcmp(arg, "sql") == 0) {
				o->format = FORMAT_SQL;
			} else {
				snprintf(err, errlen, "--format: expected %s, not \"%s\"",
					 (allowed & OPT_FORMAT_AUDIT) ? "text, json, dot, mermaid or sql"
								      : "text or json",
					 arg);
				return false;
			}
			break;
		case OPT_CONFIG:
			free(o->config_file);
			o->config_file = xstrdup(arg);
			break;
		case OPT_WINDOW:
			if (!cli_windows)
				clear_list(o->windows, &o->n_windows);
			cli_windows = true;
			if (!add_string(o->windows, &o->n_windows, arg, "windows", err, errlen))
				return false;
			break;
		case OPT_MAX_STALL:
			if (!parse_int(name, arg, MAX_STALL_MIN, MAX_STALL_MAX, &o->max_stall_ms, err,
				       errlen))
				return false;
			break;
		case OPT_LOCK_TIMEOUT:
			if (!parse_int(name, arg, LOCK_TIMEOUT_MIN, LOCK_TIMEOUT_MAX, &o->lock_timeout_ms,
				       err, errlen))
				return false;
			break;
		case OPT_ATTEMPTS:
			if (!parse_int(name, arg, ATTEMPTS_MIN, ATTEMPTS_MAX, &o->attempts, err, errlen))
				return false;
			break;
		case OPT_WATCH:
			if (strcmp(name, "baseline") == 0) {
				if (!parse_int(name, arg, BASELINE_MIN, BASELINE_MAX, &o->baseline_s, err,
					       errlen))
					return false;
				break;
			}
			if (!parse_int(name, arg, WATCH_MIN, WATCH_MAX, &o->watch_s, err, errlen))
				return false;
			break;
		case OPT_ROLLBACK_ON:
			if (!cli_rules)
				clear_list(o->rollback_on, &o->n_rollback_on);
			cli_rules = true;
			if (!add_string(o->rollback_on, &o->n_rollback_on, arg, "rollback rules", err,
					errlen))
				return false;
			break;
		case OPT_TERMINATE:
			o->terminate_blockers_after_ms = options_parse_duration_ms(arg);
			if (o->terminate_blockers_after_ms < 0) {
				snprintf(err, errlen,
					 "--terminate-blockers-after: expected a duration like 500ms, 30s, "
					 "2m, not \"%s\"",
					 arg);
				return false;
			}
			break;
		case OPT_POSTPONE:
			o->postpone_cutover = true;
			break;
		case OPT_SELF_TEST:
			o->self_test = true;
			break;
		case OPT_YES:
			o->yes = true;
			break;
		case OPT_ALLOW_UNSAFE:
			o->allow_unsafe = true;
			break;
		case OPT_RESUME:
			o->resume = true;
			break;
		case OPT_ROLLBACK:
			o->rollback = true;
			break;
		case OPT_SCHEMA:
			if (!add_string(o->schemas, &o->n_schemas, arg, "schemas", err, errlen))
				return false;
			break;
		case OPT_TABLE:
			if (!add_string(o->tables, &o->n_tables, arg, "tables", err, errlen))
				return false;
			break;
		case OPT_ORPHANS:
			o->orphans = true;
			break;
		case OPT_SUGGEST:
			o->suggest = true;
			break;
		/* the key type change's backfill */
		case OPT_BACKFILL_BATCH:
			if (!parse_int(name, arg, BACKFILL_BATCH_MIN, BACKFILL_BATCH_MAX, &o->backfill_batch,
				       err, errlen))
				return false;
			break;
		case OPT_BACKFILL_RATE:
			if (!parse_int(name, arg, 0, BACKFILL_RATE_MAX, &o->backfill_rate, err, errlen))
				return false;
			break;
		case OPT_FINALIZE:
			o->finalize = true;
			break;
		/* the backfill's replication-lag throttle */
		case OPT_MAX_LAG:
			o->max_lag_ms = options_parse_duration_ms(arg);
			if (o->max_lag_ms < MAX_LAG_MIN_MS || o->max_lag_ms > MAX_LAG_MAX_MS) {
				snprintf(err, errlen,
					 "--max-lag: expected a duration from 1ms to 24h like 500ms, 5s, 1m, "
					 "not \"%s\"",
					 arg);
				return false;
			}
			break;
		case OPT_FAIL_ON:
			if (strcmp(arg, "error") == 0) {
				o->fail_on = FAIL_ON_ERROR;
			} else if (strcmp(arg, "warning") == 0) {
				o->fail_on = FAIL_ON_WARNING;
			} else {
				snprintf(err, errlen, "--fail-on: expected error or warning, not \"%s\"",
					 arg);
				return false;
			}
			break;
		case OPT_ORM:
			if (strcmp(name, "orm-name") == 0) {
				free(o->orm_name);
				o->orm_name = xstrdup(arg);
				break;
			}
			if (!orm_tool_parse(arg, &(enum orm_tool){ ORM_NONE })) {
				snprintf(err, errlen, "--orm: expected " ORM_TOOLS ", not \"%s\"", arg);
				return false;
			}
			free(o->orm);
			o->orm = xstrdup(arg);
			break;
		}
	}
	if (!o->db && getenv("PGVALVE_DB"))
		o->db = xstrdup(getenv("PGVALVE_DB"));
	o->args = argv + optind;
	o->n_args = argc - optind;
	return true;
}

void options_free(struct options *o)
{
	clear_proxies(o);
	clear_list(o->windows, &o->n_windows);
	clear_list(o->rollback_on, &o->n_rollback_on);
	clear_list(o->schemas, &o->n_schemas);
	clear_list(o->tables, &o->n_tables);
	free(o->db);
	free(o->config_file);
	free(o->orm);
	free(o->orm_name);
	memset(o, 0, sizeof(*o));
}
