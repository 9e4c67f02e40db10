/*
 * Admin endpoints. Each request posts one "report" job to every worker, which
 * copies out its counters (and, for /status, its sessions); the replies are
 * merged and rendered as JSON or Prometheus text. Requests never touch a
 * worker's memory directly.
 */
#include "admin.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/log.h"
#include "runtime.h"
#include "session.h"
#include "hold.h"
#include "worker.h"

static struct evhttp *http;
static struct event_base *admin_base;

/* ---- the hold registry (main thread only) ---------------------------------- */

struct held {
	struct hold *hold;
	struct event *lease;         /* fires when the lease runs out without renewal */
	struct held *next;
};

static struct held *registry;
static struct hold_set *published;   /* what every worker currently sees */
static int n_held;

static struct held *held_find(const char *id)
{
	for (struct held *h = registry; h; h = h->next)
		if (strcmp(h->hold->id, id) == 0)
			return h;
	return NULL;
}

/*
 * Builds a set from the registry and hands it to every worker; returns once
 * all have applied it (so a hold is acknowledged only when in force
 * everywhere), with their counts merged into 'sum'.
 */
static int by_park_time(const void *a, const void *b)
{
	const struct parked_ref *x = a, *y = b;

	return x->parked_at_ms < y->parked_at_ms ? -1 : x->parked_at_ms > y->parked_at_ms;
}

/*
 * After a hold went away: re-checks every parked session, oldest first across
 * all workers, one at a time, so released work reaches the server in the
 * order it arrived at the proxy.
 */
static void resume_in_arrival_order(struct hold_apply *per)
{
	struct parked_ref *all;
	int n = 0, k = 0;

	for (int i = 0; i < rt.n_workers; i++)
		n += per[i].n_parked_refs;
	all = n ? malloc((size_t)n * sizeof(*all)) : NULL;
	for (int i = 0; i < rt.n_workers; i++) {
		for (int j = 0; all && j < per[i].n_parked_refs; j++)
			all[k++] = per[i].parked_refs[j];
		free(per[i].parked_refs);
	}
	if (!all)
		return;
	qsort(all, (size_t)n, sizeof(*all), by_park_time);
	for (int i = 0; i < n; i++)
		worker_call(&rt.workers[all[i].worker], worker_recheck_parked, &all[i].session_id);
	free(all);
}

static void publish(const char *count_id, struct hold_apply *sum)
{
	struct hold_set *set = calloc(1, sizeof(*set) + (size_t)n_held * sizeof(set->holds[0]));
	struct hold_apply *per = calloc((size_t)rt.n_workers, sizeof(*per));
	void **args = calloc((size_t)rt.n_workers, sizeof(*args));
	struct hold_set *old = published;

	if (!set || !per || !args)
		abort();   /* defensive: a few bytes; a hold half-published would be worse than stopping */
	for (struct held *h = registry; h; h = h->next)
		set->holds[set->n++] = h->hold;
	for (int i = 0; i < rt.n_workers; i++) {
		per[i].set = set;
		per[i].count_id = count_id;
		per[i].pids = sum ? cJSON_CreateArray() : NULL;
		/* Only a smaller set can let parked work go; a new hold never does. */
		per[i].list_parked = old && set->n < old->n;
		args[i] = &per[i];
	}
	worker_call_all(worker_apply_holds, args);
	published = set;
	free(old);
	resume_in_arrival_order(per);
	for (int i = 0; i < rt.n_workers; i++) {
		if (sum) {
			cJSON *pid;

			sum->parked += per[i].parked;
			sum->in_transaction += per[i].in_transaction;
			cJSON_ArrayForEach(pid, per[i].pids)
				cJSON_AddItemToArray(sum->pids, cJSON_CreateNumber(pid->valuedouble));
		}
		cJSON_Delete(per[i].pids);
	}
	free(per);
	free(args);
}

static void held_arm_lease(struct held *h, int64_t lease_ms)
{
	struct timeval tv = { (time_t)(lease_ms / 1000), (suseconds_t)(lease_ms % 1000) * 1000 };

	evtimer_add(h->lease, &tv);
}

/* Unlinks, publishes the set without it, then frees it (no worker sees it any more). */
static void held_release(struct held *h)
{
	struct held **link;

	for (link = &registry; *link != h; link = &(*link)->next)
		;
	*link = h->next;
	n_held--;
	publish(NULL, NULL);
	event_free(h->lease);
	free(h->hold);
	free(h);
}

static void on_lease_expired(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;

	log_warn("hold %s: lease of %lld ms ran out without renewal: released (a coordinator that "
		 "stops renewing can never freeze traffic)", h->hold->id, (long long)h->hold->lease_ms);
	held_release(h);
}

static void detach_holds_job(struct worker *w, void *arg)
{
	w->holds = NULL;
}

void admin_release_all_holds(void)
{
	while (registry)
		held_release(registry);
	/* Workers still point at the (now empty) published set: detach them before freeing it. */
	worker_call_all(detach_holds_job, NULL);
	free(published);
	published = NULL;
}

struct report {
	int window_s;            /* > 0: fill 'window' */
	bool with_sessions;
	/* filled by the worker */
	struct stats totals;     /* scalar counters only; keys below */
	struct stats_keys by_sqlstate;
	struct stats_window window;
	cJSON *sessions;
	int idle, in_transaction, active, login, parked;
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
	for (int i = 0; i < st->errors_by_sqlstate.n; i++)
		stats_keys_add(&r->by_sqlstate, STATS_SQLSTATE, st->errors_by_sqlstate.v[i].name,
			       st->errors_by_sqlstate.v[i].count, 1 << 20);
	if (r->window_s > 0)
		/* The window ends at this worker's clock, the one its counters were stamped with. */
		stats_window_add(st, worker_now(w), r->window_s, &r->window);
	for (struct session *s = w->sessions; s; s = s->next) {
		if (s->parked_on)
			r->parked++;
		else if (s->state != SESSION_READY)
			r->login++;
		else if (s->tx_status != 'I')
			r->in_transaction++;
		else if (session_is_idle(s))
			r->idle++;
		else
			r->active++;
		if (r->with_sessions)
			session_describe(s, r->sessions);
	}
}

/* Runs a report on every worker; the caller frees with reports_free(). */
static struct report *reports_collect(int window_s, bool with_sessions)
{
	struct report *r = calloc((size_t)rt.n_workers, sizeof(*r));
	void **args = calloc((size_t)rt.n_workers, sizeof(*args));

	if (!r || !args)
		abort();  /* defensive: a few hundred bytes; nothing sane to answer without them */
	for (int i = 0; i < rt.n_workers; i++) {
		r[i].window_s = window_s;
		r[i].with_sessions = with_sessions;
		r[i].sessions = with_sessions ? cJSON_CreateArray() : NULL;
		args[i] = &r[i];
	}
	worker_call_all(report_job, args);
	free(args);
	return r;
}

static void reports_free(struct report *r)
{
	for (int i = 0; i < rt.n_workers; i++) {
		stats_keys_free(&r[i].by_sqlstate);
		stats_keys_free(&r[i].window.keys);
		cJSON_Delete(r[i].sessions);
	}
	free(r);
}

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body)
{
	struct evbuffer *out = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
}

static void reply_json(struct evhttp_request *req, int code, cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);

	reply(req, code, "application/json", text ? text : "{}");
	free(text);
	cJSON_Delete(doc);
}

static void reply_error(struct evhttp_request *req, int code, const char *msg)
{
	cJSON *doc = cJSON_CreateObject();

	cJSON_AddStringToObject(doc, "error", msg);
	reply_json(req, code, doc);
}

/* The request body as JSON; NULL (and a 400 sent) when it is not. */
static cJSON *read_json_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *text = malloc(len + 1);
	cJSON *doc;

	if (!text) {
		reply_error(req, 500, "out of memory");
		return NULL;
	}
	evbuffer_copyout(in, text, len);
	text[len] = '\0';
	doc = len ? cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1) : cJSON_CreateObject();   /* + its NUL: nothing may follow */
	free(text);
	if (!doc)
		reply_error(req, 400, "body: expected a JSON object");
	return doc;
}

static void handle_holds_list(struct evhttp_request *req)
{
	cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "holds");

	for (struct held *h = registry; h; h = h->next) {
		cJSON *o = cJSON_CreateObject();

		hold_describe(h->hold, o);
		cJSON_AddItemToArray(arr, o);
	}
	reply_json(req, 200, doc);
}

static void handle_holds_create(struct evhttp_request *req)
{
	cJSON *body = read_json_body(req), *doc;
	struct hold_apply sum = { 0 };
	struct held *h;
	struct hold *hold;
	char err[256];

	if (!body)
		return;
	hold = hold_parse(body, err, sizeof(err));
	cJSON_Delete(body);
	if (!hold) {
		reply_error(req, 400, err);
		return;
	}
	if (held_find(hold->id)) {
		snprintf(err, sizeof(err), "a hold with id \"%s\" exists already", hold->id);
		free(hold);
		reply_error(req, 409, err);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->lease = evtimer_new(admin_base, on_lease_expired, h))) {
		free(h);
		free(hold);
		reply_error(req, 500, "out of memory");
		return;
	}
	h->hold = hold;
	h->next = registry;
	registry = h;
	n_held++;
	held_arm_lease(h, hold->lease_ms);
	sum.pids = cJSON_CreateArray();
	publish(hold->id, &sum);
	log_info("hold %s: %s mode, %s policy, %d table(s), lease %lld ms: in force on %d workers; "
		 "%d parked, %d in a transaction", hold->id, hold_mode_name(hold->mode),
		 hold_policy_name(hold->policy), hold->n_tables, (long long)hold->lease_ms, rt.n_workers,
		 sum.parked, sum.in_transaction);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "id", hold->id);
	cJSON_AddNumberToObject(doc, "parked", sum.parked);
	cJSON_AddNumberToObject(doc, "in_transaction", sum.in_transaction);
	cJSON_AddItemToObject(doc, "in_transaction_pids", sum.pids);
	cJSON_AddNumberToObject(doc, "lease_ms", (double)hold->lease_ms);
	reply_json(req, 201, doc);
}

static void handle_hold_renew(struct evhttp_request *req, struct held *h)
{
	cJSON *body = read_json_body(req), *v, *doc;
	int64_t lease_ms = h->hold->lease_ms;

	if (!body)
		return;
	v = cJSON_GetObjectItemCaseSensitive(body, "lease_ms");
	if (v && (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 3600000))) {
		cJSON_Delete(body);
		reply_error(req, 400, "lease_ms: expected an integer from 1 to 3600000 (milliseconds)");
		return;
	}
	if (v)
		lease_ms = (int64_t)v->valuedouble;
	cJSON_Delete(body);
	h->hold->lease_ms = lease_ms;   /* main thread only: workers never read the lease */
	held_arm_lease(h, lease_ms);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "id", h->hold->id);
	cJSON_AddNumberToObject(doc, "lease_ms", (double)lease_ms);
	reply_json(req, 200, doc);
}

static void handle_hold_path(struct evhttp_request *req, const char *rest)
{
	char id[HOLD_ID_MAX + 8];
	const char *slash = strchr(rest, '/');
	size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct held *h;
	cJSON *doc;

	if (idlen == 0 || idlen >= HOLD_ID_MAX) {
		reply_error(req, 404, "no such hold");
		return;
	}
	snprintf(id, sizeof(id), "%.*s", (int)idlen, rest);
	h = held_find(id);
	if (!h) {
		reply_error(req, 404, "no such hold");
		return;
	}
	if (slash && strcmp(slash, "/renew") == 0 && cmd == EVHTTP_REQ_POST) {
		handle_hold_renew(req, h);
	} else if (!slash && cmd == EVHTTP_REQ_DELETE) {
		held_release(h);
		log_info("hold %s: released", id);
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "released", id);
		reply_json(req, 200, doc);
	} else if (!slash && cmd == EVHTTP_REQ_GET) {
		doc = cJSON_CreateObject();
		hold_describe(h->hold, doc);
		reply_json(req, 200, doc);
	} else {
		reply_error(req, 405, "method not allowed");
	}
}

static void handle_healthz(struct evhttp_request *req)
{
	if (atomic_load(&rt.draining))
		reply(req, 503, "text/plain", "draining\n");
	else
		reply(req, 200, "text/plain", "ok\n");
}

static void handle_status(struct evhttp_request *req)
{
	struct report *r = reports_collect(0, true);
	const struct config *cfg = &rt.snap->cfg;
	cJSON *doc = cJSON_CreateObject(), *clients, *ups, *sessions = cJSON_CreateArray();
	int idle = 0, in_tx = 0, active = 0, login = 0, parked = 0;
	cJSON *holds;

	for (int i = 0; i < rt.n_workers; i++) {
		cJSON *item, *next;

		parked += r[i].parked;
		idle += r[i].idle;
		in_tx += r[i].in_transaction;
		active += r[i].active;
		login += r[i].login;
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
	cJSON_AddNumberToObject(clients, "total", idle + in_tx + active + login + parked);
	cJSON_AddNumberToObject(clients, "idle", idle);
	cJSON_AddNumberToObject(clients, "active", active);
	cJSON_AddNumberToObject(clients, "in_transaction", in_tx);
	cJSON_AddNumberToObject(clients, "login", login);
	cJSON_AddNumberToObject(clients, "parked", parked);
	ups = cJSON_AddArrayToObject(doc, "upstreams");
	for (int i = 0; i < cfg->n_upstreams; i++) {
		cJSON *u = cJSON_CreateObject();

		cJSON_AddStringToObject(u, "name", cfg->upstreams[i].name);
		cJSON_AddStringToObject(u, "host", cfg->upstreams[i].host);
		cJSON_AddNumberToObject(u, "port", cfg->upstreams[i].port);
		cJSON_AddStringToObject(u, "sslmode", config_sslmode_name(cfg->upstreams[i].sslmode));
		cJSON_AddBoolToObject(u, "active", i == cfg->active);
		cJSON_AddItemToArray(ups, u);
	}
	cJSON_AddItemToObject(doc, "sessions", sessions);
	holds = cJSON_AddArrayToObject(doc, "holds");
	for (struct held *h = registry; h; h = h->next) {
		cJSON *o = cJSON_CreateObject();

		hold_describe(h->hold, o);
		cJSON_AddItemToArray(holds, o);
	}
	reports_free(r);
	reply_json(req, 200, doc);
}

static const char *stats_kind_name(int kind)
{
	static const char *const names[] = { "by_sqlstate", "by_table", "by_constraint" };

	return names[kind];
}

static void handle_errors(struct evhttp_request *req)
{
	struct evkeyvalq query = { 0 };
	const char *ws;
	long window_s = 60;
	struct stats_window sum = { 0 };
	struct report *r;
	cJSON *doc, *groups[STATS_KIND_COUNT];

	evhttp_parse_query_str(evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) ?
				       evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) : "",
			       &query);
	ws = evhttp_find_header(&query, "window_s");
	if (ws) {
		char *end;

		window_s = strtol(ws, &end, 10);
		if (*end || end == ws || window_s < 1 || window_s > STATS_WINDOW_S - 30) {
			evhttp_clear_headers(&query);
			reply_error(req, 400, "window_s: expected an integer from 1 to 300");
			return;
		}
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
	cJSON_AddNumberToObject(doc, "window_s", (double)window_s);
	cJSON_AddNumberToObject(doc, "statements", (double)sum.statements);
	cJSON_AddNumberToObject(doc, "errors", (double)sum.errors);
	for (int kind = 0; kind < STATS_KIND_COUNT; kind++)
		groups[kind] = cJSON_AddObjectToObject(doc, stats_kind_name(kind));
	for (int k = 0; k < sum.keys.n; k++)
		cJSON_AddNumberToObject(groups[sum.keys.v[k].kind], sum.keys.v[k].name,
					(double)sum.keys.v[k].count);
	stats_keys_free(&sum.keys);
	reply_json(req, 200, doc);
}

static void prom(struct evbuffer *out, const char *name, const char *type, const char *help,
		 unsigned long long value)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
			    name, value);
}

static void handle_metrics(struct evhttp_request *req)
{
	struct report *r = reports_collect(0, false);
	struct stats sum = { 0 };
	struct stats_keys by_sqlstate = { 0 };
	struct evbuffer *out = evbuffer_new();
	int idle = 0, in_tx = 0, active = 0, login = 0, parked = 0;

	for (int i = 0; i < rt.n_workers; i++) {
		parked += r[i].parked;
		sum.connections_total += r[i].totals.connections_total;
		sum.clients += r[i].totals.clients;
		sum.bytes_client_to_server += r[i].totals.bytes_client_to_server;
		sum.bytes_server_to_client += r[i].totals.bytes_server_to_client;
		sum.statements_total += r[i].totals.statements_total;
		sum.errors_total += r[i].totals.errors_total;
		sum.protocol_errors_total += r[i].totals.protocol_errors_total;
		idle += r[i].idle;
		in_tx += r[i].in_transaction;
		active += r[i].active;
		login += r[i].login;
		for (int k = 0; k < r[i].by_sqlstate.n; k++)
			stats_keys_add(&by_sqlstate, STATS_SQLSTATE, r[i].by_sqlstate.v[k].name,
				       r[i].by_sqlstate.v[k].count, 1 << 20);
	}
	reports_free(r);

	prom(out, "pgvalve_up", "gauge", "1 while the proxy accepts connections", atomic_load(&rt.draining) ? 0 : 1);
	prom(out, "pgvalve_uptime_seconds", "gauge", "Seconds since start", (unsigned long long)(time(NULL) - rt.started));
	prom(out, "pgvalve_workers", "gauge", "Worker event loops", (unsigned long long)rt.n_workers);
	prom(out, "pgvalve_clients", "gauge", "Client connections now open", sum.clients);
	evbuffer_add_printf(out, "# HELP pgvalve_clients_by_state Client connections by session state\n"
				 "# TYPE pgvalve_clients_by_state gauge\n"
				 "pgvalve_clients_by_state{state=\"idle\"} %d\n"
				 "pgvalve_clients_by_state{state=\"active\"} %d\n"
				 "pgvalve_clients_by_state{state=\"in_transaction\"} %d\n"
				 "pgvalve_clients_by_state{state=\"login\"} %d\n"
				 "pgvalve_clients_by_state{state=\"parked\"} %d\n",
			    idle, active, in_tx, login, parked);
	prom(out, "pgvalve_connections_total", "counter", "Client connections accepted", sum.connections_total);
	evbuffer_add_printf(out, "# HELP pgvalve_bytes_total Bytes relayed\n# TYPE pgvalve_bytes_total counter\n"
				 "pgvalve_bytes_total{direction=\"client_to_server\"} %llu\n"
				 "pgvalve_bytes_total{direction=\"server_to_client\"} %llu\n",
			    (unsigned long long)sum.bytes_client_to_server,
			    (unsigned long long)sum.bytes_server_to_client);
	prom(out, "pgvalve_statements_total", "counter", "Statements (Query and Execute messages)", sum.statements_total);
	prom(out, "pgvalve_protocol_errors_total", "counter", "Connections closed for malformed input", sum.protocol_errors_total);
	evbuffer_add_printf(out, "# HELP pgvalve_errors_total ErrorResponses from the server, by SQLSTATE\n"
				 "# TYPE pgvalve_errors_total counter\n");
	for (int k = 0; k < by_sqlstate.n; k++)
		evbuffer_add_printf(out, "pgvalve_errors_total{sqlstate=\"%s\"} %llu\n", by_sqlstate.v[k].name,
				    (unsigned long long)by_sqlstate.v[k].count);
	prom(out, "pgvalve_holds", "gauge", "Active holds", (unsigned long long)n_held);
	prom(out, "pgvalve_parked", "gauge", "Sessions parked by a hold", (unsigned long long)parked);
	stats_keys_free(&by_sqlstate);

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
		{ "/healthz", handle_healthz },
		{ "/status", handle_status },
		{ "/metrics", handle_metrics },
		{ "/errors", handle_errors },
	};

	if (!path)
		path = "/";
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && !authorized(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		reply_error(req, 401, "this call needs Authorization: Bearer <token> (admin.token_file)");
		return;
	}
	if (strcmp(path, "/holds") == 0) {
		if (evhttp_request_get_command(req) == EVHTTP_REQ_GET)
			handle_holds_list(req);
		else if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
			handle_holds_create(req);
		else
			reply_error(req, 405, "method not allowed");
		return;
	}
	if (strncmp(path, "/holds/", 7) == 0) {
		handle_hold_path(req, path + 7);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(path, routes[i].path) != 0)
			continue;
		if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
			reply_error(req, 405, "method not allowed");
			return;
		}
		routes[i].fn(req);
		return;
	}
	reply_error(req, 404, "not found");
}

bool admin_start(struct event_base *base, const char *host, int port, char *err, size_t errlen)
{
	admin_base = base;
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
