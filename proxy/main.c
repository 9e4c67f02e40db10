/*
 * pgvalve-proxy: command line, configuration (load, overrides, reload), the
 * main thread's event loop (signals and the admin API), and starting and
 * stopping the workers.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "hold_registry.h"
#include "observe_registry.h"
#include "switchover.h"
#include "pgvalve/auth_sql.h"
#include "pgvalve/config.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "session.h"
#include "worker.h"

#define EXIT_USAGE 2
/*
 * "workers": 0 means one per core, up to this many. Each worker costs a
 * parse cache of up to WORKER_PARSE_CACHE_BYTES and a turn in every fan-out
 * (hold changes, /status), so a 256-core host would get 4 GiB of caches by
 * default; a larger number can still be asked for explicitly.
 */
#define DEFAULT_MAX_WORKERS 64

/* Command-line values that override the config file, kept for reloads. */
struct overrides {
	const char *config_path;
	const char *listen;
	const char *upstream;
	const char *admin;
	const char *log_level;
	int workers; /* -1: not given */
};

static struct overrides opts = { .workers = -1 };
static bool print_auth_sql; /* --print-auth-sql */
static struct event_base *main_base;
static struct event *shutdown_timer;
static struct timeval drain_started;
static long cores; /* set when "workers" was 0: the cores the default was derived from */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: pgvalve-proxy [-c FILE] [--listen HOST:PORT] [--upstream HOST:PORT]\n"
		"                     [--admin HOST:PORT] [--workers N] [--log-level LEVEL] [--check]\n"
		"       pgvalve-proxy [-c FILE] --print-auth-sql\n"
		"\n"
		"A PostgreSQL wire-protocol proxy that sits in front of your applications.\n"
		"\n"
		"  -c, --config FILE      JSON config (see config/pgvalve-proxy.json)\n"
		"      --listen HOST:PORT where clients connect (default 0.0.0.0:6432)\n"
		"      --upstream HOST:PORT the PostgreSQL server\n"
		"      --admin HOST:PORT  admin HTTP API (default 127.0.0.1:6480)\n"
		"      --workers N        event loops (default: number of cores, at most 64)\n"
		"      --log-level LEVEL  debug, info, warn or error\n"
		"      --check            validate the configuration and exit\n"
		"      --print-auth-sql   print the SQL that creates the verifier lookup for\n"
		"                         auth.mode terminate (for auth.user, else pgvalve_auth)\n"
		"  -h, --help             this text\n"
		"  -V, --version          print the version\n");
}

/* Loads the file and applies the command line. Returns false with 'err' filled. */
static bool load_config(struct config *cfg, struct config_error *err)
{
	config_init_defaults(cfg);
	if (opts.config_path && !config_load_file(cfg, opts.config_path, err))
		return false;
	if (opts.listen) {
		free(cfg->listen_host);
		if (!config_parse_hostport(opts.listen, &cfg->listen_host, &cfg->listen_port)) {
			cfg->listen_host = NULL;
			snprintf(err->msg, sizeof(err->msg), "--listen: expected HOST:PORT, got \"%s\"",
				 opts.listen);
			return false;
		}
	}
	if (opts.upstream) {
		struct config_upstream *up = &cfg->upstreams[0];
		char *host;
		int port;

		if (!config_parse_hostport(opts.upstream, &host, &port)) {
			snprintf(err->msg, sizeof(err->msg), "--upstream: expected HOST:PORT, got \"%s\"",
				 opts.upstream);
			return false;
		}
		if (cfg->n_upstreams == 0) {
			cfg->n_upstreams = 1;
			up->name = strdup("default");
			up->sslmode = SSLMODE_PREFER;
		} else {
			up = &cfg->upstreams[cfg->active];
			free(up->host);
		}
		up->host = host;
		up->port = port;
	}
	if (opts.admin) {
		free(cfg->admin_host);
		if (!config_parse_hostport(opts.admin, &cfg->admin_host, &cfg->admin_port)) {
			cfg->admin_host = NULL;
			snprintf(err->msg, sizeof(err->msg), "--admin: expected HOST:PORT, got \"%s\"",
				 opts.admin);
			return false;
		}
	}
	if (opts.workers >= 0)
		cfg->workers = opts.workers;
	if (opts.log_level && !log_level_parse(opts.log_level, &cfg->log_level)) {
		snprintf(err->msg, sizeof(err->msg),
			 "--log-level: expected debug, info, warn or error, got \"%s\"", opts.log_level);
		return false;
	}
	if (cfg->workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		cores = n > 0 ? n : 1;
		cfg->workers = cores > DEFAULT_MAX_WORKERS ? DEFAULT_MAX_WORKERS : (int)cores;
	}
	if (!config_validate(cfg, err))
		return false;
	return true;
}

static void apply_snapshot_job(struct worker *w, void *arg)
{
	worker_apply_snapshot(w, arg);
}

/*
 * The active upstream after a reload: the file's "active" when it changed
 * since the last load, else the one a switchover may have chosen, if the
 * new file still names it.
 */
static int reload_active(const struct snapshot *old, const struct config *cfg)
{
	const char *running = old->cfg.upstreams[old->active].name;

	if (strcmp(cfg->upstreams[cfg->active].name, old->cfg.upstreams[old->cfg.active].name) != 0)
		return cfg->active;
	for (int i = 0; i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, running) == 0)
			return i;
	return cfg->active;
}

static void reload(void)
{
	struct config cfg;
	struct config_error err;
	char why[512];
	struct snapshot *snap, *old = rt.snap;
	char *token;

	if (!load_config(&cfg, &err)) {
		log_error("reload failed, keeping the running configuration: %s", err.msg);
		config_free(&cfg);
		return;
	}
	if (strcmp(cfg.listen_host, old->cfg.listen_host) != 0 || cfg.listen_port != old->cfg.listen_port ||
	    cfg.workers != old->cfg.workers || strcmp(cfg.admin_host, old->cfg.admin_host) != 0 ||
	    cfg.admin_port != old->cfg.admin_port)
		log_warn("reload: listen, admin and workers changes take effect only after a restart");
	if (!runtime_load_token(cfg.admin_token_file, &token, why, sizeof(why))) {
		log_error("reload failed, keeping the running configuration: %s", why);
		config_free(&cfg);
		return;
	}
	snap = snapshot_build(&cfg, why, sizeof(why));
	if (!snap) {
		log_error("reload failed, keeping the running configuration: %s", why);
		config_free(&cfg);
		free(token);
		return;
	}
	snap->active = reload_active(old, &snap->cfg);
	if (snap->active != snap->cfg.active)
		log_info("reload: upstream \"%s\" stays active (a switchover chose it; the file's "
			 "\"active\" did not change)",
			 snap->cfg.upstreams[snap->active].name);
	/* The admin API runs on this thread: swapping the token needs no lock. */
	free(rt.admin_token);
	rt.admin_token = token;
	/* Keep what cannot change live, so /status tells the truth. */
	free(snap->cfg.listen_host);
	snap->cfg.listen_host = strdup(old->cfg.listen_host);
	snap->cfg.listen_port = old->cfg.listen_port;
	snap->cfg.workers = old->cfg.workers;
	worker_fanout(apply_snapshot_job, snap, 0);
	rt.snap = snap;
	log_configure(snap->cfg.log_level, snap->cfg.log_format);
	/* No worker points at the old snapshot any more; sessions' SSL objects hold their own refs. */
	snapshot_free(old);
	log_info("configuration reloaded (log level %s, max_message_bytes %lld, client tls %s)",
		 opts.log_level ? opts.log_level : "from config", (long long)rt.snap->cfg.max_message_bytes,
		 rt.snap->client_tls ? "on" : "off");
}

static void stop_job(struct worker *w, void *arg)
{
	const char *why = arg;

	while (w->sessions)
		session_stop(w->sessions, why);
	event_base_loopbreak(w->base);
}

static void stop_everything(const char *why)
{
	switchover_abort("pgvalve-proxy is stopping");
	hold_registry_release_all();
	observe_registry_stop_all();
	worker_fanout(stop_job, (void *)why, 0);
	admin_stop();
	event_base_loopbreak(main_base);
}

static void drain_job(struct worker *w, void *arg)
{
	struct session *s, *next;

	w->draining = true;
	/* Close, not just disable: a bound socket would queue new clients until the drain ends. */
	if (w->listener) {
		evconnlistener_free(w->listener);
		w->listener = NULL;
	}
	for (s = w->sessions; s; s = next) {
		next = s->next;
		session_drain(s);
	}
}

static void count_job(struct worker *w, void *arg)
{
	int *count = arg;

	*count = w->n_sessions;
}

static void on_shutdown_tick(evutil_socket_t fd, short what, void *arg)
{
	int *counts = worker_slots(sizeof(*counts));
	struct timeval now, elapsed;
	int total = 0;

	WORKER_FANOUT(count_job, counts);
	for (int i = 0; i < rt.n_workers; i++)
		total += counts[i];
	free(counts);
	gettimeofday(&now, NULL);
	timersub(&now, &drain_started, &elapsed);
	if (total == 0) {
		log_info("drained: all sessions closed");
		stop_everything("pgvalve-proxy is shutting down");
	} else if (elapsed.tv_sec * 1000 + elapsed.tv_usec / 1000 >= rt.snap->cfg.shutdown_timeout_ms) {
		log_warn("shutdown_timeout_ms reached: closing %d remaining sessions", total);
		stop_everything("terminating connection because pgvalve-proxy is shutting down");
	}
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	static const struct timeval tick = { 0, 50 * 1000 };

	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading configuration");
		reload();
		break;
	case SIGTERM:
		if (atomic_exchange(&rt.draining, true))
			return;
		log_info("SIGTERM: no new connections; closing sessions at their next idle point (up to %d "
			 "ms)",
			 rt.snap->cfg.shutdown_timeout_ms);
		gettimeofday(&drain_started, NULL);
		/* Parked work resumes first: a stopping proxy must not hold anything. */
		switchover_abort("pgvalve-proxy is shutting down");
		hold_registry_release_all();
		worker_fanout(drain_job, NULL, 0);
		shutdown_timer = event_new(main_base, -1, EV_PERSIST, on_shutdown_tick, NULL);
		event_add(shutdown_timer, &tick);
		break;
	case SIGINT:
		log_info("SIGINT: closing every session now");
		atomic_store(&rt.draining, true);
		stop_everything("terminating connection because pgvalve-proxy is stopping");
		break;
	}
}

static int parse_args(int argc, char **argv, bool *check)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "upstream", required_argument, NULL, 'u' },
		{ "admin", required_argument, NULL, 'a' },
		{ "workers", required_argument, NULL, 'w' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "print-auth-sql", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:hV", long_opts, NULL)) != -1) {
		char *end;

		switch (ch) {
		case 'c':
			opts.config_path = optarg;
			break;
		case 'l':
			opts.listen = optarg;
			break;
		case 'u':
			opts.upstream = optarg;
			break;
		case 'a':
			opts.admin = optarg;
			break;
		case 'L':
			opts.log_level = optarg;
			break;
		case 'C':
			*check = true;
			break;
		case 'P':
			print_auth_sql = true;
			break;
		case 'w':
			opts.workers = (int)strtol(optarg, &end, 10);
			if (*end || opts.workers < 0 || opts.workers > 256) {
				fprintf(stderr, "pgvalve-proxy: --workers: expected 0 to 256, got \"%s\"\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("pgvalve-proxy %s\n", PGVALVE_VERSION);
			exit(0);
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pgvalve-proxy: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

/* --print-auth-sql: the lookup's SQL for auth.user of the config file, if one is given. */
static int do_print_auth_sql(void)
{
	struct config cfg;
	struct config_error err;
	bool ok;

	config_init_defaults(&cfg);
	if (opts.config_path && !config_load_file(&cfg, opts.config_path, &err)) {
		fprintf(stderr, "pgvalve-proxy: configuration error: %s\n", err.msg);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	ok = auth_sql_write(stdout, cfg.auth.user ? cfg.auth.user : AUTH_SQL_DEFAULT_ROLE);
	if (!ok)
		fprintf(stderr,
			"pgvalve-proxy: cannot write the SQL (auth.user \"%s\" holds a control character "
			"or \"$pgvalve$\"?)\n",
			cfg.auth.user ? cfg.auth.user : AUTH_SQL_DEFAULT_ROLE);
	config_free(&cfg);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct config_error err;
	struct event *signals[3];
	static const int signos[3] = { SIGHUP, SIGTERM, SIGINT };
	char why[512];
	bool check = false;
	int rc;

	if ((rc = parse_args(argc, argv, &check)) != 0)
		return rc;
	if (print_auth_sql)
		return do_print_auth_sql();
	if (!load_config(&cfg, &err)) {
		fprintf(stderr, "pgvalve-proxy: configuration error: %s\n", err.msg);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	log_configure(cfg.log_level, cfg.log_format);
	if (cores > DEFAULT_MAX_WORKERS)
		log_info("workers: %ld cores, using %d workers (the default's cap; set \"workers\" to use "
			 "more)",
			 cores, DEFAULT_MAX_WORKERS);
	rt.snap = snapshot_build(&cfg, why, sizeof(why));
	if (!rt.snap) {
		fprintf(stderr, "pgvalve-proxy: configuration error: %s\n", why);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (!runtime_load_token(rt.snap->cfg.admin_token_file, &rt.admin_token, why, sizeof(why))) {
		fprintf(stderr, "pgvalve-proxy: configuration error: %s\n", why);
		snapshot_free(rt.snap);
		return EXIT_USAGE;
	}
	if (check) {
		free(rt.admin_token);
		printf("configuration ok: listen %s:%d, upstream %s:%d, %d workers\n",
		       rt.snap->cfg.listen_host, rt.snap->cfg.listen_port,
		       config_active_upstream(&rt.snap->cfg)->host,
		       config_active_upstream(&rt.snap->cfg)->port, rt.snap->cfg.workers);
		snapshot_free(rt.snap);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	rt.started = time(NULL);
	rt.n_workers = rt.snap->cfg.workers;
	rt.workers = calloc((size_t)rt.n_workers, sizeof(*rt.workers));
	main_base = event_base_new();
	if (!rt.workers || !main_base) {
		fprintf(stderr, "pgvalve-proxy: out of memory\n");
		return 1;
	}
	for (int i = 0; i < rt.n_workers; i++) {
		if (!worker_init(&rt.workers[i], i, rt.snap, &session_hooks, why, sizeof(why))) {
			log_error("%s", why);
			return 1;
		}
	}
	if (!admin_start(main_base, rt.snap->cfg.admin_host, rt.snap->cfg.admin_port, why, sizeof(why))) {
		log_error("%s", why);
		return 1;
	}
	for (int i = 0; i < 3; i++) {
		signals[i] = evsignal_new(main_base, signos[i], on_signal, NULL);
		event_add(signals[i], NULL);
	}
	for (int i = 0; i < rt.n_workers; i++) {
		if (!worker_start(&rt.workers[i])) {
			log_error("cannot start worker thread %d", i);
			return 1;
		}
	}
	log_info("pgvalve-proxy %s listening on %s:%d, upstream %s:%d (sslmode %s), admin %s:%d, %d workers",
		 PGVALVE_VERSION, rt.snap->cfg.listen_host, rt.snap->cfg.listen_port,
		 config_active_upstream(&rt.snap->cfg)->host, config_active_upstream(&rt.snap->cfg)->port,
		 config_sslmode_name(config_active_upstream(&rt.snap->cfg)->sslmode), rt.snap->cfg.admin_host,
		 rt.snap->cfg.admin_port, rt.n_workers);

	event_base_dispatch(main_base);

	for (int i = 0; i < rt.n_workers; i++)
		worker_join(&rt.workers[i]);
	for (int i = 0; i < rt.n_workers; i++)
		worker_destroy(&rt.workers[i]);
	for (int i = 0; i < 3; i++)
		event_free(signals[i]);
	if (shutdown_timer)
		event_free(shutdown_timer);
	event_base_free(main_base);
	free(rt.workers);
	snapshot_free(rt.snap);
	free(rt.admin_token);
	log_info("pgvalve-proxy stopped");
	return 0;
}
