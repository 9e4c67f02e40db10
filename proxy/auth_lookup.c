/*
 * The verifier lookup over libpq's asynchronous API (see auth_lookup.h):
 * each worker's connections (one per database), their queues, and the
 * event-driven connect, send and receive. The password of auth.user comes
 * from the snapshot and goes to libpq only.
 */
#include "auth_lookup.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "session.h"
#include "worker.h"

#define LOOKUP_NAME_MAX 64
#define LOOKUP_APPLICATION_NAME "pgvalve-proxy auth lookup"

struct lookup_req {
	struct lookup_req *next;
	struct session *s; /* NULL once cancelled */
	auth_lookup_done_fn done;
	char user[LOOKUP_NAME_MAX];
};

struct lookup_conn {
	struct lookup_conn *next;
	struct auth_lookup *owner;
	PGconn *pg;
	struct event *ev;
	char dbname[LOOKUP_NAME_MAX];
	bool connected;
	time_t opened_at;               /* worker_now() when the connect started */
	bool busy;                      /* the head request's query is in flight */
	struct lookup_req *head, *tail; /* waiting, in arrival order */
	bool got_row;                   /* the query in flight returned a row */
	char *text;                     /* ... and this verifier (NULL: none) */
	char error[256];                /* ... or failed with this */
};

struct auth_lookup {
	struct worker *w;
	struct lookup_conn *conns;
};

static void conn_event(evutil_socket_t fd, short what, void *arg);

static void forget_result(struct lookup_conn *c)
{
	if (c->text) {
		OPENSSL_cleanse(c->text, strlen(c->text));
		free(c->text);
	}
	c->text = NULL;
	c->got_row = false;
	c->error[0] = '\0';
}

/* Unlinks the head request and answers it (unless cancelled), settling its session. */
static void answer_head(struct lookup_conn *c, bool ok, const char *text)
{
	struct lookup_req *r = c->head;
	struct session *s = r->s;
	auth_lookup_done_fn done = r->done;

	c->head = r->next;
	if (!c->head)
		c->tail = NULL;
	c->busy = false;
	free(r);
	if (s) {
		done(s, ok, text);
		session_settle(s);
	}
}

static void conn_free(struct lookup_conn *c)
{
	struct lookup_conn **p;

	for (p = &c->owner->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->ev)
		event_free(c->ev);
	PQfinish(c->pg);
	forget_result(c);
	free(c);
}

/* The connection failed: every lookup waiting on it fails, and it goes (the next lookup opens another). */
static void conn_fail(struct lookup_conn *c, const char *why)
{
	char msg[256];
	size_t n;

	snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection lost");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	log_warn("auth lookup in database \"%s\": %s", c->dbname, msg);
	/* Unlinked first: an answer may start a new lookup, which must open a new connection. */
	for (struct lookup_conn **p = &c->owner->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->next = NULL;
	while (c->head)
		answer_head(c, false, msg);
	if (c->ev)
		event_free(c->ev);
	PQfinish(c->pg);
	forget_result(c);
	free(c);
}

/* Watches the connection's current socket for 'what' (it may change while connecting). */
static bool watch(struct lookup_conn *c, short what)
{
	struct worker *w = c->owner->w;

	if (c->ev)
		event_free(c->ev);
	c->ev = event_new(w->base, PQsocket(c->pg), what | EV_PERSIST, conn_event, c);
	return c->ev && event_add(c->ev, NULL) == 0;
}

/* Sends the head request's query if the connection is free. False if the connection failed (and is gone). */
static bool dispatch(struct lookup_conn *c)
{
	const struct snapshot *snap = c->owner->w->snap;

	while (c->connected && !c->busy && c->head) {
		const char *params[1] = { c->head->user };
		int flushed;

		if (!c->head->s) {
			answer_head(c, false, NULL); /* cancelled before it ran */
			continue;
		}
		if (!PQsendQueryParams(c->pg, snap->cfg.auth.query, 1, NULL, params, NULL, NULL, 0)) {
			conn_fail(c, PQerrorMessage(c->pg));
			return false;
		}
		c->busy = true;
		forget_result(c);
		flushed = PQflush(c->pg);
		if (flushed < 0 || !watch(c, flushed ? EV_READ | EV_WRITE : EV_READ)) {
			conn_fail(c, PQerrorMessage(c->pg));
			return false;
		}
	}
	return true;
}

static void poll_connect(struct lookup_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		if (!watch(c, EV_READ))
			conn_fail(c, "out of memory");
		return;
	case PGRES_POLLING_WRITING:
		if (!watch(c, EV_WRITE))
			conn_fail(c, "out of memory");
		return;
	case PGRES_POLLING_OK:
		c->connected = true;
		if (PQsetnonblocking(c->pg, 1) != 0 || !watch(c, EV_READ)) {
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		(void)dispatch(c);
		return;
	default:
		conn_fail(c, PQerrorMessage(c->pg));
	}
}

/* Takes the results of the query in flight; answers when the last one is in. False if the connection is gone. */
static bool read_results(struct lookup_conn *c)
{
	while (c->busy && !PQisBusy(c->pg)) {
		PGresult *res = PQgetResult(c->pg);

		if (!res) {
			if (c->error[0])
				answer_head(c, false, c->error);
			else
				answer_head(c, true, c->text);
			forget_result(c);
			if (!dispatch(c))
				return false;
			continue;
		}
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			if (PQntuples(res) > 0 && PQnfields(res) >= 2 && !c->got_row) {
				c->got_row = true;
				if (!PQgetisnull(res, 0, 1) && !(c->text = strdup(PQgetvalue(res, 0, 1))))
					snprintf(c->error, sizeof(c->error), "out of memory");
			}
		} else {
			const char *m = PQresultErrorMessage(res);
			size_t n;

			snprintf(c->error, sizeof(c->error), "auth.query failed: %s", m && *m ? m : "?");
			n = strlen(c->error);
			while (n > 0 && c->error[n - 1] == '\n')
				c->error[--n] = '\0';
			log_warn("auth lookup in database \"%s\": %s", c->dbname, c->error);
		}
		/* Results carry verifiers: wipe what libpq held. */
		if (PQntuples(res) > 0 && PQnfields(res) >= 2 && !PQgetisnull(res, 0, 1))
			OPENSSL_cleanse(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
		PQclear(res);
	}
	return true;
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct lookup_conn *c = arg;

	(void)fd;
	if (!c->connected) {
		poll_connect(c);
		return;
	}
	if (what & EV_WRITE) {
		int flushed = PQflush(c->pg);

		if (flushed < 0) {
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		if (flushed == 0 && !watch(c, EV_READ)) {
			conn_fail(c, "out of memory");
			return;
		}
	}
	if (what & EV_READ) {
		if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD) {
			conn_fail(c, PQerrorMessage(c->pg));
			return;
		}
		if (!read_results(c))
			return;
	}
	/* A lookup queued while the connection was idle (auth_lookup_start wakes this event). */
	if (!c->busy)
		(void)dispatch(c);
}

/* A connection that could not even start fails on the next loop turn (answers never come from start). */
static void fail_soon(evutil_socket_t fd, short what, void *arg)
{
	struct lookup_conn *c = arg;

	(void)fd;
	(void)what;
	conn_fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
}

/* A notice on the lookup connection is nobody's business (libpq's default prints it to stderr). */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static struct lookup_conn *conn_open(struct auth_lookup *l, const char *dbname)
{
	const struct snapshot *snap = l->w->snap;
	const struct config_upstream *up = &snap->cfg.upstreams[l->w->active];
	struct lookup_conn *c = calloc(1, sizeof(*c));
	const char *keys[12], *vals[12];
	char port[16], timeout[16];
	int n = 0;

	if (!c)
		return NULL;
	c->owner = l;
	snprintf(c->dbname, sizeof(c->dbname), "%s", dbname);
	snprintf(port, sizeof(port), "%d", up->port);
	snprintf(timeout, sizeof(timeout), "%d",
		 snap->cfg.connect_ms > 1000 ? snap->cfg.connect_ms / 1000 : 1);
	keys[n] = "host", vals[n++] = up->host;
	keys[n] = "port", vals[n++] = port;
	keys[n] = "user", vals[n++] = snap->cfg.auth.user;
	keys[n] = "dbname", vals[n++] = dbname;
	keys[n] = "sslmode", vals[n++] = config_sslmode_name(up->sslmode);
	keys[n] = "application_name", vals[n++] = LOOKUP_APPLICATION_NAME;
	keys[n] = "connect_timeout", vals[n++] = timeout;
	if (snap->lookup_password)
		keys[n] = "password", vals[n++] = snap->lookup_password;
	if (up->sslrootcert)
		keys[n] = "sslrootcert", vals[n++] = up->sslrootcert;
	keys[n] = NULL, vals[n] = NULL;
	c->pg = PQconnectStartParams(keys, vals, 0);
	c->opened_at = worker_now(l->w);
	if (c->pg)
		PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
	c->next = l->conns;
	l->conns = c;
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD || !watch(c, EV_WRITE)) {
		struct timeval now = { 0, 0 };

		if (event_base_once(l->w->base, -1, EV_TIMEOUT, fail_soon, c, &now) != 0) {
			conn_free(c);
			return NULL;
		}
	}
	return c;
}

struct lookup_req *auth_lookup_start(struct session *s, const char *dbname, auth_lookup_done_fn done)
{
	struct worker *w = s->w;
	struct lookup_conn *c;
	struct lookup_req *r;

	if (!w->auth_lookup && (w->auth_lookup = calloc(1, sizeof(*w->auth_lookup))))
		w->auth_lookup->w = w;
	if (!w->auth_lookup)
		return NULL;
	for (c = w->auth_lookup->conns; c; c = c->next)
		if (strcmp(c->dbname, dbname) == 0)
			break;
	/*
	 * libpq does not time out a non-blocking connect: one still connecting
	 * after timeouts.connect_ms is given up (its lookups fail) for a new one.
	 */
	if (c && !c->connected && (worker_now(w) - c->opened_at) * 1000 > w->snap->cfg.connect_ms) {
		conn_fail(c, "timeout connecting");
		c = NULL;
	}
	if (!(r = calloc(1, sizeof(*r))))
		return NULL;
	if (!c && !(c = conn_open(w->auth_lookup, dbname))) {
		free(r);
		return NULL;
	}
	r->s = s;
	r->done = done;
	snprintf(r->user, sizeof(r->user), "%s", s->user);
	if (c->tail)
		c->tail->next = r;
	else
		c->head = r;
	c->tail = r;
	/* A connected, idle connection sends it from its own event, on this loop turn. */
	if (c->connected && !c->busy && c->ev)
		event_active(c->ev, EV_WRITE, 0);
	return r;
}

void auth_lookup_cancel(struct lookup_req *req)
{
	if (req)
		req->s = NULL;
}

void auth_lookup_free(struct auth_lookup *l)
{
	if (!l)
		return;
	while (l->conns) {
		struct lookup_conn *c = l->conns;

		while (c->head) {
			struct lookup_req *r = c->head;

			c->head = r->next;
			free(r);
		}
		conn_free(c);
	}
	free(l);
}
