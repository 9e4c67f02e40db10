/*
 * Admin endpoints. Each request posts one "report" job to every worker, which
 * copies out its counters (and, for /status, its sessions); the replies are
 * merged and rendered as JSON or Prometheus text. Requests never touch a
 * worker's memory directly. Routing and the reply helpers are here; the
 * /holds endpoints are admin_holds.c's, the /observe ones admin_observe.c's
 * (admin_internal.h).
 */
#include "admin.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_body.h"
#include "admin_internal.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/jsonval.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "session.h"
#include "hold.h"
#include "hold_registry.h"
#include "latency_report.h"
#include "observe_registry.h"
#include "prom_text.h"
#include "stmt_refresh.h"
#include "switchover.h"
#include "worker.h"

static struct evhttp *http;

struct report {
	int window_s; /* > 0: fill 'window' */
	bool with_sessions;
	/* filled by the worker */
	struct stats totals;            /* scalar counters only; keys below */
	struct stats_keys error_totals; /* by SQLSTATE and by constraint */
	struct stats_window window;
	cJSON *sessions;
	int by_activity[SESSION_ACT_N]; /* sessions, by session_activity() */
	struct classify_cache_stats parse_cache;
};

static void report_job(struct worker *w, void *arg)
{
	struct report *r = arg;
	const struct stats *st = &w->stats;

	r->totals.connections_total = st->connections_total;
	r->totals.clients = st->clients;
	r->totals.bytes_client_to_server = st->bytes_client_to_server;
	r->totals.bytes_server_to_client = st->bytes_server_to_client;
	r->totals.statements_total = st->statements_total;
	r->totals.errors_total = st->errors_total;
	r->totals.protocol_errors_total = st->protocol_errors_total;
	r->totals.auth_lookups_total = st->auth_lookups_total;
	r->totals.auth_cache_hits_total = st->auth_cache_hits_total;
	memcpy(r->totals.auth_logins_total, st->auth_logins_total, sizeof(st->auth_logins_total));
	classify_cache_stats(w->classify_cache, &r->parse_cache);
	for (int i = 0; i < st->error_totals.n; i++)
		stats_keys_add(&r->error_totals, st->error_totals.v[i].kind, st->error_totals.v[i].name,
			       st->error_totals.v[i].count, 1 << 20);
	if (r->window_s > 0)
		/* The window ends at this worker's clock, the one its counters were stamped with. */
		stats_window_add(st, worker_now(w), r->window_s, &r->window);
	for (struct session *s = w->sessions; s; s = s->next) {
		r->by_activity[session_activity(s)]++;
		if (r->with_sessions)
			session_describe(s, r->sessions);
	}
}

/* Runs a report on every worker; the caller frees with reports_free(). */
static struct report *reports_collect(int window_s, bool with_sessions)
{
	struct report *r = worker_slots(sizeof(*r));

	for (int i = 0; i < rt.n_workers; i++) {
		r[i].window_s = window_s;
		r[i].with_sessions = with_sessions;
		r[i].sessions = with_sessions ? cJSON_CreateArray() : NULL;
	}
	WORKER_FANOUT(report_job, r);
	return r;
}

/* The names /status and /metrics count sessions under, by session_activity(). */
static const char *const activity_names[SESSION_ACT_N] = {
	[SESSION_ACT_LOGIN] = "login",   [SESSION_ACT_IDLE] = "idle",
	[SESSION_ACT_ACTIVE] = "active", [SESSION_ACT_IN_TRANSACTION] = "in_transaction",
	[SESSION_ACT_PARKED] = "parked", [SESSION_ACT_CLOSING] = "closing",
};

/* Sessions of every worker, by activity. */
static void activity_sum(const struct report *r, int n[SESSION_ACT_N])
{
	for (int a = 0; a < SESSION_ACT_N; a++) {
		n[a] = 0;
		for (int i = 0; i < rt.n_workers; i++)
			n[a] += r[i].by_activity[a];
	}
}

static void reports_free(struct report *r)
{
	for (int i = 0; i < rt.n_workers; i++) {
		stats_keys_free(&r[i].error_totals);
		stats_keys_free(&r[i].window.keys);
		cJSON_Delete(r[i].sessions);
	}
	free(r);
}

/* ---- replies and request bodies, for every admin file (admin_internal.h) ---- */

void admin_reply(struct evhttp_request *req, int code, const char *ctype, const char *body)
{
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
}

void admin_reply_json(struct evhttp_request *req, int code, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);

	admin_reply(req, code, "application/json", text ? text : "{}");
	free(text);
	cJSON_Delete(doc);
}

void admin_reply_error(struct evhttp_request *req, int code, const char *msg)
{
	cJSON *doc = cJSON_CreateObject();

	cJSON_AddStringToObject(doc, ADMIN_ERROR, msg);
	admin_reply_json(req, code, doc);
}

/* The request body as JSON; NULL (and a 400 sent) when it is not. */
cJSON *admin_read_json_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *text = malloc(len + 1);
	cJSON *doc;

	if (!text) {
		admin_reply_error(req, 500, "out of memory");
		return NULL;
	}
	evbuffer_copyout(in, text, len);
	text[len] = '\0';
	doc = len ? cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1)
		  : cJSON_CreateObject(); /* + its NUL: nothing may follow */
	free(text);
	if (!doc)
		admin_reply_error(req, 400, "body: expected a JSON object");
	return doc;
}

/*
 * A lease renewal's body (POST .../{id}/renew) for something whose lease is
 * now 'current_ms': the new lease in '*lease_ms', or false once the request
 * is answered (no JSON, or a bad lease_ms: 400).
 */
bool admin_read_renew(struct evhttp_request *req, int64_t current_ms, int64_t *lease_ms)
{
	cJSON *body = admin_read_json_body(req);
	char err[256];
	bool ok;

	if (!body)
		return false;
	ok = admin_body_renew(body, current_ms, lease_ms, err, sizeof(err));
	cJSON_Delete(body);
	if (!ok)
		admin_reply_error(req, 400, err);
	return ok;
}

/*
 * The id at the start of 'rest' ("{id}" or "{id}/..." after /holds/ or
 * /observe/) into 'id', '*slash' at what follows it (NULL: nothing). False:
 * no id, or one too long to be any (the caller answers 404).
 */
bool admin_path_id(const char *rest, char id[ADMIN_HOLD_ID_MAX], const char **slash)
{
	size_t idlen;

	*slash = strchr(rest, '/');
	idlen = *slash ? (size_t)(*slash - rest) : strlen(rest);
	if (idlen == 0 || idlen >= ADMIN_HOLD_ID_MAX)
		return false;
	snprintf(id, ADMIN_HOLD_ID_MAX, "%.*s", (int)idlen, rest);
	return true;
}

/* ---- endpoints and routing ---------------------------------------------------- */

/* A collection (/holds, /observe): GET lists, POST creates, any other method 405. */
static void handle_collection(struct evhttp_request *req, void (*list)(struct evhttp_request *),
			      void (*create)(struct evhttp_request *))
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_GET)
		list(req);
	else if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
		create(req);
	else
		admin_reply_error(req, 405, "method not allowed");
}

static void on_switchover_done(void *ctx, int status, cJSON *doc)
{
	struct evhttp_request *req = ctx;

	evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
	admin_reply_json(req, status, doc);
}

/* The client of a pending POST /switchover hung up: its request is about to be freed. */
static void on_switchover_requester_gone(struct evhttp_connection *conn, void *ctx)
{
	switchover_forget_requester(ctx);
}

/* POST /switchover: answered when the switchover is done (up to drain_ms later). */
static void handle_switchover(struct evhttp_request *req)
{
	cJSON *body = admin_read_json_body(req);
	char err[512];
	int status;

	if (!body)
		return;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_switchover_requester_gone, req);
	status = switchover_begin(body, on_switchover_done, req, err, sizeof(err));
	cJSON_Delete(body);
	if (status != 0) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
		admin_reply_error(req, status, err);
	}
}

/*
 * POST /statements/refresh {"tables": [...]}: the named prepared statements
 * of every session that read those tables are re-prepared before their next
 * use (stmt_refresh.h). The tables are read as a hold's are.
 */
static void handle_statements_refresh(struct evhttp_request *req)
{
	static const char *const keys[] = { ADMIN_HOLD_TABLES, NULL };
	cJSON *body = admin_read_json_body(req), *as_hold, *doc;
	struct refresh_job *slots;
	struct hold *h;
	char err[512];
	int sessions = 0, statements = 0;

	if (!body)
		return;
	if (!admin_body_known_keys(body, keys, err, sizeof(err))) {
		cJSON_Delete(body);
		admin_reply_error(req, 400, err);
		return;
	}
	as_hold = cJSON_CreateObject();
	cJSON_AddItemToObject(
		as_hold, ADMIN_HOLD_TABLES,
		cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(body, ADMIN_HOLD_TABLES), true));
	cJSON_AddStringToObject(as_hold, ADMIN_HOLD_MODE, admin_hold_modes[ADMIN_MODE_ALL]);
	cJSON_Delete(body);
	h = hold_parse(as_hold, err, sizeof(err));
	cJSON_Delete(as_hold);
	if (!h) {
		admin_reply_error(req, 400, err);
		return;
	}
	h->upstream_index = -1;
	slots = worker_slots(sizeof(*slots));
	for (int i = 0; i < rt.n_workers; i++)
		slots[i].tables = h;
	WORKER_FANOUT(refresh_mark_job, slots);
	for (int i = 0; i < rt.n_workers; i++) {
		sessions += slots[i].sessions;
		statements += slots[i].statements;
	}
	free(slots);
	free(h);
	log_info("statement refresh: %d statement(s) of %d session(s) re-prepared at their next use",
		 statements, sessions);
	doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, ADMIN_REFRESH_SESSIONS, sessions);
	cJSON_AddNumberToObject(doc, ADMIN_REFRESH_STATEMENTS, statements);
	admin_reply_json(req, 200, doc);
}

static void handle_healthz(struct evhttp_request *req)
{
	if (atomic_load(&rt.draining))
		admin_reply(req, 503, "text/plain", "draining\n");
	else
		admin_reply(req, 200, "text/plain", "ok\n");
}

static void handle_status(struct evhttp_request *req)
{
	struct report *r = reports_collect(0, true);
	const struct config *cfg = &rt.snap->cfg;
	cJSON *doc = cJSON_CreateObject(), *clients, *ups, *sessions = cJSON_CreateArray();
	int n[SESSION_ACT_N], total = 0;

	activity_sum(r, n);
	for (int a = 0; a < SESSION_ACT_N; a++)
		total += n[a];
	for (int i = 0; i < rt.n_workers; i++) {
		cJSON *item, *next;

		for (item = r[i].sessions->child; item; item = next) {
			next = item->next;
			cJSON_AddItemToArray(sessions, cJSON_DetachItemViaPointer(r[i].sessions, item));
		}
	}
	cJSON_AddStringToObject(doc, "version", PGVALVE_VERSION);
	cJSON_AddNumberToObject(doc, "uptime_s", (double)(time(NULL) - rt.started));
	cJSON_AddNumberToObject(doc, "workers", rt.n_workers);
	cJSON_AddBoolToObject(doc, "draining", atomic_load(&rt.draining));
	clients = cJSON_AddObjectToObject(doc, "clients");
	cJSON_AddNumberToObject(clients, "total", total);
	for (int a = 0; a < SESSION_ACT_N; a++)
		cJSON_AddNumberToObject(clients, activity_names[a], n[a]);
	ups = cJSON_AddArrayToObject(doc, "upstreams");
	for (int i = 0; i < cfg->n_upstreams; i++) {
		cJSON *u = cJSON_CreateObject();

		cJSON_AddStringToObject(u, "name", cfg->upstreams[i].name);
		cJSON_AddStringToObject(u, "host", cfg->upstreams[i].host);
		cJSON_AddNumberToObject(u, "port", cfg->upstreams[i].port);
		cJSON_AddStringToObject(u, "sslmode", config_sslmode_name(cfg->upstreams[i].sslmode));
		cJSON_AddBoolToObject(u, "active", i == rt.snap->active);
		cJSON_AddItemToArray(ups, u);
	}
	cJSON_AddItemToObject(doc, "sessions", sessions);
	hold_registry_describe(cJSON_AddArrayToObject(doc, ADMIN_HOLDS_LIST));
	reports_free(r);
	admin_reply_json(req, 200, doc);
}

/* The /errors groups are the window's key kinds, in the same order. */
_Static_assert((int)STATS_SQLSTATE == (int)ADMIN_BY_SQLSTATE && (int)STATS_TABLE == (int)ADMIN_BY_TABLE &&
		       (int)STATS_CONSTRAINT == (int)ADMIN_BY_CONSTRAINT &&
		       (int)STATS_KIND_COUNT == (int)ADMIN_ERRORS_GROUPS,
	       "enum stats_key_kind indexes admin_errors_groups");
/* The window a worker keeps must cover the longest one /errors is asked for. */
_Static_assert(ADMIN_ERRORS_MAX_WINDOW_S <= STATS_WINDOW_S,
	       "STATS_WINDOW_S covers ADMIN_ERRORS_MAX_WINDOW_S");

/* The request's query parameters; the caller clears them (evhttp_clear_headers). */
static void query_params(struct evhttp_request *req, struct evkeyvalq *query)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	evhttp_parse_query_str(q ? q : "", query);
}

/* ?window_s=N, 1 to 'max', default 60; false (and a 400 sent) when it is not. */
static bool query_window_s(struct evhttp_request *req, struct evkeyvalq *query, const char *key, int max,
			   long *window_s)
{
	const char *ws = evhttp_find_header(query, key);
	char *end, err[256];

	*window_s = 60;
	if (!ws)
		return true;
	*window_s = strtol(ws, &end, 10);
	if (!*end && end != ws && *window_s >= 1 && *window_s <= max)
		return true;
	jsonval_fail(err, sizeof(err), key, "expected an integer from 1 to %d, got \"%.60s\"", max, ws);
	admin_reply_error(req, 400, err);
	return false;
}

static void handle_errors(struct evhttp_request *req)
{
	struct evkeyvalq query = { 0 };
	long window_s;
	struct stats_window sum = { 0 };
	struct report *r;
	cJSON *doc, *groups[STATS_KIND_COUNT];

	query_params(req, &query);
	if (!query_window_s(req, &query, ADMIN_ERRORS_WINDOW_S, ADMIN_ERRORS_MAX_WINDOW_S, &window_s)) {
		evhttp_clear_headers(&query);
		return;
	}
	evhttp_clear_headers(&query);

	r = reports_collect((int)window_s, false);
	for (int i = 0; i < rt.n_workers; i++) {
		sum.statements += r[i].window.statements;
		sum.errors += r[i].window.errors;
		for (int k = 0; k < r[i].window.keys.n; k++)
			stats_keys_add(&sum.keys, r[i].window.keys.v[k].kind, r[i].window.keys.v[k].name,
				       r[i].window.keys.v[k].count, 1 << 20);
	}
	reports_free(r);

	doc = cJSON_CreateObject();
	cJSON_AddNumberToObject(doc, ADMIN_ERRORS_WINDOW_S, (double)window_s);
	cJSON_AddNumberToObject(doc, ADMIN_ERRORS_STATEMENTS, (double)sum.statements);
	cJSON_AddNumberToObject(doc, ADMIN_ERRORS_ERRORS, (double)sum.errors);
	for (int kind = 0; kind < STATS_KIND_COUNT; kind++)
		groups[kind] = cJSON_AddObjectToObject(doc, admin_errors_groups[kind]);
	for (int k = 0; k < sum.keys.n; k++)
		cJSON_AddNumberToObject(groups[sum.keys.v[k].kind], sum.keys.v[k].name,
					(double)sum.keys.v[k].count);
	stats_keys_free(&sum.keys);
	admin_reply_json(req, 200, doc);
}

/* GET /latency?window_s=N[&table=T]...[&buckets=1] (docs/architecture.md, table latency). */
static void handle_latency(struct evhttp_request *req)
{
	struct evkeyvalq query = { 0 };
	const char *tables[ADMIN_OBSERVE_MAX_TABLES];
	struct evkeyval *kv;
	const char *b;
	long window_s;
	int n = 0;
	char err[512];
	cJSON *doc;

	query_params(req, &query);
	if (!query_window_s(req, &query, ADMIN_LATENCY_WINDOW_S, ADMIN_LATENCY_MAX_WINDOW_S, &window_s))
		goto done;
	b = evhttp_find_header(&query, ADMIN_LATENCY_BUCKETS);
	if (b && strcmp(b, "0") != 0 && strcmp(b, "1") != 0) {
		jsonval_fail(err, sizeof(err), ADMIN_LATENCY_BUCKETS, "expected 0 or 1, got \"%.60s\"", b);
		admin_reply_error(req, 400, err);
		goto done;
	}
	TAILQ_FOREACH(kv, &query, next)
	{
		if (strcmp(kv->key, ADMIN_LATENCY_TABLE) != 0)
			continue;
		if (n == ADMIN_OBSERVE_MAX_TABLES) {
			jsonval_fail(err, sizeof(err), ADMIN_LATENCY_TABLE, "at most %d of them",
				     ADMIN_OBSERVE_MAX_TABLES);
			admin_reply_error(req, 400, err);
			goto done;
		}
		tables[n++] = kv->value;
	}
	doc = latency_report_json((int)window_s, tables, n, b && strcmp(b, "1") == 0, err, sizeof(err));
	if (doc)
		admin_reply_json(req, 200, doc);
	else
		admin_reply_error(req, 404, err);
done:
	evhttp_clear_headers(&query);
}

static void prom(struct evbuffer *out, const char *name, const char *type, const char *help,
		 unsigned long long value)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
			    value);
}

static const char *const auth_leg_names[STATS_AUTH_LEGS] = { "client", "server" };
static const char *const auth_mech_names[STATS_AUTH_MECHS] = { "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "md5" };

static void handle_metrics(struct evhttp_request *req)
{
	struct report *r = reports_collect(0, false);
	struct stats sum = { 0 };
	struct stats_keys error_totals = { 0 };
	struct classify_cache_stats cache = { 0 };
	struct evbuffer *out = evbuffer_new();
	int n[SESSION_ACT_N];

	activity_sum(r, n);
	for (int i = 0; i < rt.n_workers; i++) {
		sum.connections_total += r[i].totals.connections_total;
		sum.clients += r[i].totals.clients;
		sum.bytes_client_to_server += r[i].totals.bytes_client_to_server;
		sum.bytes_server_to_client += r[i].totals.bytes_server_to_client;
		sum.statements_total += r[i].totals.statements_total;
		sum.errors_total += r[i].totals.errors_total;
		sum.protocol_errors_total += r[i].totals.protocol_errors_total;
		sum.auth_lookups_total += r[i].totals.auth_lookups_total;
		sum.auth_cache_hits_total += r[i].totals.auth_cache_hits_total;
		for (int leg = 0; leg < STATS_AUTH_LEGS; leg++)
			for (int m = 0; m < STATS_AUTH_MECHS; m++)
				sum.auth_logins_total[leg][m] += r[i].totals.auth_logins_total[leg][m];
		cache.hits += r[i].parse_cache.hits;
		cache.misses += r[i].parse_cache.misses;
		cache.evictions += r[i].parse_cache.evictions;
		cache.entries += r[i].parse_cache.entries;
		cache.bytes += r[i].parse_cache.bytes;
		for (int k = 0; k < r[i].error_totals.n; k++)
			stats_keys_add(&error_totals, r[i].error_totals.v[k].kind,
				       r[i].error_totals.v[k].name, r[i].error_totals.v[k].count, 1 << 20);
	}
	reports_free(r);

	prom(out, "pgvalve_up", "gauge", "1 while the proxy accepts connections",
	     atomic_load(&rt.draining) ? 0 : 1);
	prom(out, "pgvalve_uptime_seconds", "gauge", "Seconds since start",
	     (unsigned long long)(time(NULL) - rt.started));
	prom(out, "pgvalve_workers", "gauge", "Worker event loops", (unsigned long long)rt.n_workers);
	prom(out, "pgvalve_clients", "gauge", "Client connections now open", sum.clients);
	evbuffer_add_printf(out,
			    "# HELP pgvalve_clients_by_state Client connections by session state\n"
			    "# TYPE pgvalve_clients_by_state gauge\n");
	for (int a = 0; a < SESSION_ACT_N; a++)
		evbuffer_add_printf(out, "pgvalve_clients_by_state{state=\"%s\"} %d\n", activity_names[a],
				    n[a]);
	prom(out, "pgvalve_connections_total", "counter", "Client connections accepted",
	     sum.connections_total);
	evbuffer_add_printf(out,
			    "# HELP pgvalve_bytes_total Bytes relayed\n# TYPE pgvalve_bytes_total counter\n"
			    "pgvalve_bytes_total{direction=\"client_to_server\"} %llu\n"
			    "pgvalve_bytes_total{direction=\"server_to_client\"} %llu\n",
			    (unsigned long long)sum.bytes_client_to_server,
			    (unsigned long long)sum.bytes_server_to_client);
	prom(out, "pgvalve_statements_total", "counter", "Statements (Query and Execute messages)",
	     sum.statements_total);
	prom(out, "pgvalve_protocol_errors_total", "counter", "Connections closed for malformed input",
	     sum.protocol_errors_total);
	prom(out, "pgvalve_auth_lookups_total", "counter",
	     "Verifier lookups sent to the server (auth.mode terminate, auth.query)", sum.auth_lookups_total);
	prom(out, "pgvalve_auth_cache_hits_total", "counter",
	     "Verifiers taken from the workers' caches instead (auth.cache_ttl_ms)",
	     sum.auth_cache_hits_total);
	evbuffer_add_printf(out,
			    "# HELP pgvalve_auth_logins_total Logins that passed a leg in auth.mode "
			    "terminate, by leg (client: the client's proof checked; server: the "
			    "server let the proxy in) and mechanism\n"
			    "# TYPE pgvalve_auth_logins_total counter\n");
	for (int leg = 0; leg < STATS_AUTH_LEGS; leg++)
		for (int m = 0; m < STATS_AUTH_MECHS; m++)
			evbuffer_add_printf(out,
					    "pgvalve_auth_logins_total{leg=\"%s\",mechanism=\"%s\"} %llu\n",
					    auth_leg_names[leg], auth_mech_names[m],
					    (unsigned long long)sum.auth_logins_total[leg][m]);
	evbuffer_add_printf(out,
			    "# HELP pgvalve_errors_total ErrorResponses from the server, by SQLSTATE\n"
			    "# TYPE pgvalve_errors_total counter\n");
	for (int k = 0; k < error_totals.n; k++)
		if (error_totals.v[k].kind == STATS_SQLSTATE)
			evbuffer_add_printf(out, "pgvalve_errors_total{sqlstate=\"%s\"} %llu\n",
					    error_totals.v[k].name,
					    (unsigned long long)error_totals.v[k].count);
	evbuffer_add_printf(out,
			    "# HELP pgvalve_constraint_errors_total ErrorResponses naming a constraint "
			    "(violations), by constraint name\n"
			    "# TYPE pgvalve_constraint_errors_total counter\n");
	for (int k = 0; k < error_totals.n; k++) {
		char name[2 * sizeof(error_totals.v[k].name)];

		if (error_totals.v[k].kind != STATS_CONSTRAINT)
			continue;
		prom_label_value(name, sizeof(name), error_totals.v[k].name);
		evbuffer_add_printf(out, "pgvalve_constraint_errors_total{constraint=\"%s\"} %llu\n", name,
				    (unsigned long long)error_totals.v[k].count);
	}
	prom(out, "pgvalve_holds", "gauge", "Active holds", (unsigned long long)hold_registry_count());
	prom(out, "pgvalve_parked", "gauge", "Sessions parked by a hold",
	     (unsigned long long)n[SESSION_ACT_PARKED]);
	prom(out, "pgvalve_parse_cache_hits_total", "counter",
	     "Classifications answered from the parse cache", cache.hits);
	prom(out, "pgvalve_parse_cache_misses_total", "counter", "Classifications that had to parse",
	     cache.misses);
	prom(out, "pgvalve_parse_cache_evictions_total", "counter", "Parse cache entries dropped for room",
	     cache.evictions);
	prom(out, "pgvalve_parse_cache_entries", "gauge", "Statements in the parse caches",
	     (unsigned long long)cache.entries);
	prom(out, "pgvalve_parse_cache_bytes", "gauge", "Bytes the parse caches hold",
	     (unsigned long long)cache.bytes);
	stats_keys_free(&error_totals);
	latency_report_metrics(out);

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, out);
	evbuffer_free(out);
}

/*
 * Mutating calls (anything but GET) need "Authorization: Bearer <token>" when
 * admin.token_file is set. The compare takes the same time wherever the
 * first difference is, so the token cannot be guessed byte by byte.
 */
static bool authorized(struct evhttp_request *req)
{
	const char *token = rt.admin_token;
	const char *auth;
	size_t tlen, alen;
	unsigned char diff = 0;

	if (!token)
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return false;
	auth += 7;
	tlen = strlen(token);
	alen = strlen(auth);
	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)(i < alen ? auth[i] : 0);
	return diff == 0 && alen == tlen;
}

static void route(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	static const struct {
		const char *path;
		void (*fn)(struct evhttp_request *);
	} routes[] = {
		{ ADMIN_PATH_HEALTHZ, handle_healthz }, { ADMIN_PATH_STATUS, handle_status },
		{ ADMIN_PATH_METRICS, handle_metrics }, { ADMIN_PATH_ERRORS, handle_errors },
		{ ADMIN_PATH_LATENCY, handle_latency },
	};

	if (!path)
		path = "/";
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && !authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		admin_reply_error(req, 401,
				  "this call needs Authorization: Bearer <token> (admin.token_file)");
		return;
	}
	if (strcmp(path, ADMIN_PATH_HOLDS) == 0) {
		handle_collection(req, admin_holds_list, admin_holds_create);
		return;
	}
	if (strncmp(path, ADMIN_PATH_HOLDS_PREFIX, strlen(ADMIN_PATH_HOLDS_PREFIX)) == 0) {
		admin_holds_path(req, path + strlen(ADMIN_PATH_HOLDS_PREFIX));
		return;
	}
	if (strcmp(path, ADMIN_PATH_OBSERVE) == 0) {
		handle_collection(req, admin_observe_list, admin_observe_create);
		return;
	}
	if (strncmp(path, ADMIN_PATH_OBSERVE_PREFIX, strlen(ADMIN_PATH_OBSERVE_PREFIX)) == 0) {
		admin_observe_path(req, path + strlen(ADMIN_PATH_OBSERVE_PREFIX));
		return;
	}
	if (strcmp(path, ADMIN_PATH_SWITCHOVER) == 0) {
		if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
			handle_switchover(req);
		else
			admin_reply_error(req, 405, "method not allowed");
		return;
	}
	if (strcmp(path, ADMIN_PATH_STATEMENTS_REFRESH) == 0) {
		if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
			handle_statements_refresh(req);
		else
			admin_reply_error(req, 405, "method not allowed");
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(path, routes[i].path) != 0)
			continue;
		if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
			admin_reply_error(req, 405, "method not allowed");
			return;
		}
		routes[i].fn(req);
		return;
	}
	admin_reply_error(req, 404, "not found");
}

bool admin_start(struct event_base *base, const char *host, int port, char *err, size_t errlen)
{
	hold_registry_init(base);
	observe_registry_init(base);
	switchover_init(base);
	http = evhttp_new(base);
	if (!http || evhttp_bind_socket(http, host, (ev_uint16_t)port) != 0) {
		snprintf(err, errlen, "cannot listen on admin address %s:%d", host, port);
		return false;
	}
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(http, 1 << 20);
	evhttp_set_timeout(http, 10);
	evhttp_set_gencb(http, route, NULL);
	return true;
}

void admin_stop(void)
{
	if (http)
		evhttp_free(http);
	http = NULL;
}
