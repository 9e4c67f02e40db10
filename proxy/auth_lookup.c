/*
 * The verifier lookup over libpq's asynchronous API (see auth_lookup.h):
 * each worker's connections (one per database), their queues, the
 * event-driven connect, send and receive, and the worker's cache of answers
 * (a hash table with a least-recently-used list). The password of auth.user
 * comes from the snapshot and goes to libpq only.
 */
#include "auth_lookup.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/clock.h"
#include "pgvalve/secret.h"
#include "runtime.h"
#include "session.h"
#include "worker.h"

#define LOOKUP_NAME_MAX 64
#define LOOKUP_APPLICATION_NAME "pgvalve-proxy auth lookup"
#define CACHE_BUCKETS 4096       /* a power of two */
#define CACHE_DROP_EVERY_MS 1000 /* rate-limited drops: one a second per role */

/* A cached answer. Names are no secrets; 'text' is, and is wiped whenever it goes. */
struct cache_entry {
	struct cache_entry *hnext;               /* bucket chain */
	struct cache_entry *lru_prev, *lru_next; /* most recently used first */
	uint32_t hash;
	char user[LOOKUP_NAME_MAX];
	char dbname[LOOKUP_NAME_MAX];
	bool valid;         /* false: expired or dropped, kept only for dropped_ms */
	char *text;         /* the verifier, NULL for none */
	unsigned long gen;  /* which answer this is */
	int64_t expires_ms; /* clock_mono_ms() */
	int64_t dropped_ms; /* the last rate-limited drop, 0: none */
};

struct cache {
	struct cache_entry **buckets; /* NULL until the first answer is cached */
	struct cache_entry *lru_head, *lru_tail;
	int n;
	unsigned long next_gen;
};

struct lookup_req {
	struct lookup_req *next;
	struct session *s; /* NULL once cancelled */
	auth_lookup_done_fn done;
	bool retried; /* already moved once to a new connection after its own was lost */
	char user[LOOKUP_NAME_MAX];
};

struct lookup_conn {
	struct lookup_conn *next;
	struct auth_lookup *owner;
	PGconn *pg;
	struct event *ev;
	char dbname[LOOKUP_NAME_MAX];
	char *query;   /* auth.query of the snapshot it was opened with (as are its user and password) */
	bool retired;  /* reload: takes no new lookups, goes once its queue is answered */
	bool answered; /* has answered a query: it was working, so losing it is no configuration error */
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
	struct cache cache;
};

static void conn_event(evutil_socket_t fd, short what, void *arg);

/* ---- the cache ------------------------------------------------------------ */

static uint32_t cache_hash(const char *user, const char *dbname)
{
	uint32_t h = 2166136261u; /* FNV-1a over user, NUL, dbname */
	const char *p;

	for (p = user;; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
		if (!*p)
			break;
	}
	for (p = dbname; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h;
}

static void entry_forget(struct cache_entry *e)
{
	secret_free(e->text);
	e->text = NULL;
	e->valid = false;
}

static void lru_unlink(struct cache *k, struct cache_entry *e)
{
	if (e->lru_prev)
		e->lru_prev->lru_next = e->lru_next;
	else
		k->lru_head = e->lru_next;
	if (e->lru_next)
		e->lru_next->lru_prev = e->lru_prev;
	else
		k->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_push(struct cache *k, struct cache_entry *e)
{
	e->lru_prev = NULL;
	e->lru_next = k->lru_head;
	if (k->lru_head)
		k->lru_head->lru_prev = e;
	else
		k->lru_tail = e;
	k->lru_head = e;
}

static void entry_remove(struct cache *k, struct cache_entry *e)
{
	struct cache_entry **p;

	for (p = &k->buckets[e->hash & (CACHE_BUCKETS - 1)]; *p; p = &(*p)->hnext)
		if (*p == e) {
			*p = e->hnext;
			break;
		}
	lru_unlink(k, e);
	entry_forget(e);
	free(e);
	k->n--;
}

static void cache_clear(struct cache *k)
{
	while (k->lru_head)
		entry_remove(k, k->lru_head);
	free(k->buckets);
	k->buckets = NULL;
}

static struct cache_entry *cache_find(struct cache *k, const char *user, const char *dbname)
{
	uint32_t h = cache_hash(user, dbname);

	if (!k->buckets)
		return NULL;
	for (struct cache_entry *e = k->buckets[h & (CACHE_BUCKETS - 1)]; e; e = e->hnext)
		if (e->hash == h && strcmp(e->user, user) == 0 && strcmp(e->dbname, dbname) == 0)
			return e;
	return NULL;
}

/* Caches the answer 'text' (NULL: none) for 'user' in 'dbname'; out of memory, it is just not cached. */
static void cache_store(struct auth_lookup *l, const char *user, const char *dbname, const char *text)
{
	struct cache *k = &l->cache;
	int ttl = l->w->snap->cfg.auth.cache_ttl_ms;
	struct cache_entry *e;
	char *copy = NULL;

	if (ttl <= 0 || strlen(user) >= LOOKUP_NAME_MAX || strlen(dbname) >= LOOKUP_NAME_MAX)
		return;
	if (text && !(copy = strdup(text)))
		return;
	if (!k->buckets && !(k->buckets = calloc(CACHE_BUCKETS, sizeof(*k->buckets)))) {
		free(copy);
		return;
	}
	if (!(e = cache_find(k, user, dbname))) {
		if (k->n >= AUTH_CACHE_MAX)
			entry_remove(k, k->lru_tail);
		if (!(e = calloc(1, sizeof(*e)))) {
			secret_free(copy);
			return;
		}
		e->hash = cache_hash(user, dbname);
		snprintf(e->user, sizeof(e->user), "%s", user);
		snprintf(e->dbname, sizeof(e->dbname), "%s", dbname);
		e->hnext = k->buckets[e->hash & (CACHE_BUCKETS - 1)];
		k->buckets[e->hash & (CACHE_BUCKETS - 1)] = e;
		k->n++;
	} else {
		entry_forget(e);
		lru_unlink(k, e);
	}
	lru_push(k, e);
	e->text = copy;
	e->valid = true;
	e->gen = ++k->next_gen;
	e->expires_ms = clock_mono_ms() + ttl;
}

bool auth_cache_peek(struct session *s, const char *dbname, const char **text, unsigned long *gen)
{
	struct auth_lookup *l = s->w->auth_lookup;
	struct cache_entry *e;

	if (!l || s->w->snap->cfg.auth.cache_ttl_ms <= 0 || !(e = cache_find(&l->cache, s->user, dbname)) ||
	    !e->valid)
		return false;
	if (clock_mono_ms() >= e->expires_ms) {
		entry_forget(e);
		return false;
	}
	lru_unlink(&l->cache, e);
	lru_push(&l->cache, e);
	*text = e->text;
	*gen = e->gen;
	return true;
}

/* Whether a rate-limited drop or refetch of 'e' may happen now (and stamps it if so). */
static bool rate_ok(struct cache_entry *e, int64_t now)
{
	if (e->dropped_ms && now - e->dropped_ms < CACHE_DROP_EVERY_MS)
		return false;
	e->dropped_ms = now;
	return true;
}

bool auth_cache_may_refetch(struct session *s, const char *dbname, unsigned long gen)
{
	struct auth_lookup *l = s->w->auth_lookup;
	struct cache_entry *e;

	if (!l || !(e = cache_find(&l->cache, s->user, dbname)) || !e->valid || e->gen != gen)
		return false;
	return rate_ok(e, clock_mono_ms());
}

bool auth_cache_drop(struct session *s, const char *dbname, unsigned long gen, bool rate_limit)
{
	struct auth_lookup *l = s->w->auth_lookup;
	struct cache_entry *e;
	int64_t now = clock_mono_ms();

	if (!l || !(e = cache_find(&l->cache, s->user, dbname)) || !e->valid || e->gen != gen)
		return false;
	if (rate_limit && !rate_ok(e, now))
		return false;
	entry_forget(e);
	return true;
}

/* ---- the connections ------------------------------------------------------ */

static void forget_result(struct lookup_conn *c)
{
	secret_free(c->text);
	c->text = NULL;
	c->got_row = false;
	c->error[0] = '\0';
}

/* Unlinks the head request and answers it (unless cancelled), settling its session. */
static void answer_head(struct lookup_conn *c, enum auth_lookup_result result, const char *text)
{
	struct lookup_req *r = c->head;
	struct session *s = r->s;
	auth_lookup_done_fn done = r->done;

	c->head = r->next;
	if (!c->head)
		c->tail = NULL;
	c->busy = false;
	/* A retired connection answers for the old auth section: not cached for the new one. */
	if (result == AUTH_LOOKUP_OK && !c->retired)
		cache_store(c->owner, r->user, c->dbname, text);
	free(r);
	if (s) {
		done(s, result, text);
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
	free(c->query);
	free(c);
}

static struct lookup_conn *conn_open(struct auth_lookup *l, const char *dbname);

/*
 * Moves the lookups waiting on the lost connection 'c' (which had been
 * working) to a new one, once each: a connection the server closed while it
 * sat idle (a restart, pg_terminate_backend) is only noticed when a lookup
 * finds it gone, and that lookup should not fail for it. Lookups already
 * moved once stay on 'c' and fail with it.
 */
static void requeue(struct lookup_conn *c)
{
	struct lookup_req *keep = NULL, *keep_tail = NULL, *move = NULL, *move_tail = NULL, *r;
	struct lookup_conn *fresh;

	if (c->retired || !c->answered)
		return;
	for (r = c->head; r && !(r->s && !r->retried); r = r->next)
		;
	if (!r || !(fresh = conn_open(c->owner, c->dbname)))
		return; /* nothing to move, or out of memory: they fail with 'c' */
	while ((r = c->head)) {
		bool again = r->s && !r->retried;

		c->head = r->next;
		r->next = NULL;
		r->retried = r->retried || again;
		if (again) {
			if (move_tail)
				move_tail->next = r;
			else
				move = r;
			move_tail = r;
		} else {
			if (keep_tail)
				keep_tail->next = r;
			else
				keep = r;
			keep_tail = r;
		}
	}
	c->head = keep;
	c->tail = keep_tail;
	fresh->head = move;
	fresh->tail = move_tail;
	if (move)
		log_info("auth lookup in database \"%s\": retrying on a new connection", c->dbname);
}

/* The connection failed: every lookup waiting on it fails, and it goes (the next lookup opens another). */
static void conn_fail(struct lookup_conn *c, const char *why)
{
	char msg[256], missing[LOOKUP_NAME_MAX + 32];
	enum auth_lookup_result result = AUTH_LOOKUP_FAILED;
	size_t n;

	snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection lost");
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
	/* libpq has no SQLSTATE for a refused connection: PostgreSQL's (English) message says it. */
	snprintf(missing, sizeof(missing), "database \"%s\" does not exist", c->dbname);
	if (!c->connected && strstr(msg, missing))
		result = AUTH_LOOKUP_NO_DATABASE;
	log_warn("auth lookup in database \"%s\": %s", c->dbname, msg);
	/* Unlinked first: an answer may start a new lookup, which must open a new connection. */
	for (struct lookup_conn **p = &c->owner->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->next = NULL;
	c->busy = false;
	requeue(c);
	while (c->head)
		answer_head(c, result, msg);
	conn_free(c);
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
	if (c->retired && !c->head) {
		conn_free(c);
		return false;
	}
	while (c->connected && !c->busy && c->head) {
		const char *params[1] = { c->head->user };
		int flushed;

		if (!c->head->s) {
			answer_head(c, AUTH_LOOKUP_FAILED, NULL); /* cancelled before it ran */
			continue;
		}
		if (!PQsendQueryParams(c->pg, c->query, 1, NULL, params, NULL, NULL, 0)) {
			conn_fail(c, PQerrorMessage(c->pg));
			return false;
		}
		c->busy = true;
		c->owner->w->stats.auth_lookups_total++;
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
			c->answered = true;
			if (c->error[0])
				answer_head(c, AUTH_LOOKUP_FAILED, c->error);
			else
				answer_head(c, AUTH_LOOKUP_OK, c->text);
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
	if (!(c->query = strdup(snap->cfg.auth.query))) {
		free(c);
		return NULL;
	}
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
		if (!c->retired && strcmp(c->dbname, dbname) == 0)
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
	cache_clear(&l->cache);
	free(l);
}

void auth_lookup_reload(struct auth_lookup *l)
{
	struct lookup_conn *c, *next;

	if (!l)
		return;
	cache_clear(&l->cache);
	/*
	 * Every connection logged in with the old auth.user, password, upstream
	 * and query: idle ones go now, busy ones once their queue is answered;
	 * the next lookup opens a new one with the new section.
	 */
	for (c = l->conns; c; c = next) {
		next = c->next;
		if (!c->head)
			conn_free(c);
		else
			c->retired = true;
	}
}
