/*
 * Statement refresh (see stmt_refresh.h): marking, re-preparing before the
 * next use, and presenting results in the shape the client was shown. The
 * server answers in order, so a queue of what each expected answer belongs
 * to (a portal's Describe, an Execute, a Sync, a simple Query) tells which
 * RowDescription and DataRow messages to rewrite.
 */
#include "stmt_refresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hold.h"
#include "pgvalve/pgwire.h"
#include "session.h"
#include "stmt_shape.h"
#include "worker.h"

#define REFRESH_MAX_PORTALS 1024 /* named portals tracked at once; more closes the session */
#define REFRESH_MAX_QUEUE 65536  /* answers expected at once; more closes the session */

enum rq_kind {
	RQ_DESCRIBE,      /* a portal's Describe: RowDescription or NoData */
	RQ_DESCRIBE_STMT, /* a statement's Describe (stmt.c rewrites its RowDescription) */
	RQ_EXECUTE,       /* DataRows, then CommandComplete, EmptyQueryResponse or PortalSuspended */
	RQ_SYNC,          /* ReadyForQuery */
	RQ_SIMPLE,        /* a simple Query or FunctionCall: everything up to its ReadyForQuery */
};

struct rq {
	enum rq_kind kind;
	struct shape_map *map; /* RQ_DESCRIBE, RQ_EXECUTE: how to present (NULL: as is) */
	struct shape_formats f;
	char *stmt; /* RQ_DESCRIBE: the portal's statement, whose first describe is what the client was shown */
};

struct portal {
	char *name;
	char *stmt; /* the statement it was bound from (NULL: unnamed, or not known) */
	struct shape_map *map;
	struct shape_formats f;
};

struct refresh {
	bool active;       /* answers are tracked (from a point where none were outstanding) */
	bool waiting;      /* a re-prepare is under way: the client's message waits */
	bool resume;       /* ... and was answered */
	bool drop_current; /* the client message scanning stopped at was replaced */
	bool drop_server;  /* the server message scanning stopped at was replaced */
	bool poisoned;     /* a value did not fit: the server's answers are dropped up to ReadyForQuery */
	bool has_map; /* a portal of a statement presented in another shape was bound: DataRows are read */
	uint8_t *staged;
	uint32_t staged_len;

	struct rq *q; /* ring */
	uint32_t q_cap, q_head, q_n;

	struct portal unnamed;
	struct portal *named;
	int n_named;
};

/* ---- marking ------------------------------------------------------------- */

struct mark_ctx {
	struct session *s;
	const struct hold_set *set;
};

static bool mark_one(struct stmt *st, void *arg)
{
	struct mark_ctx *c = arg;
	struct session *s = c->s;
	struct classify_options opt = {
		.parse_max_bytes = (size_t)s->w->snap->cfg.parse_max_bytes,
		.standard_conforming_strings_off = s->scs_off,
	};
	struct classify_result *r = &s->w->classify_scratch;
	const char *table = NULL;

	stmt_classify(st, s->w->classify_cache, &opt, r);
	if (!hold_conflict(c->set, &HOLD_SCOPE_ALL, r, s->upstream, &table))
		return false;
	st->stale = true;
	return true;
}

void refresh_mark_job(struct worker *w, void *arg)
{
	struct refresh_job *job = arg;
	struct hold_set *set = malloc(sizeof(*set) + sizeof(set->holds[0]));
	struct mark_ctx c = { .set = set };

	if (!set) {
		log_warn("statement refresh: out of memory on worker %d", w->index);
		return;
	}
	set->newest = job->tables->seq;
	set->n = 1;
	set->holds[0] = job->tables;
	for (struct session *s = w->sessions; s; s = s->next) {
		int n;

		if (s->state != SESSION_READY || s->dead)
			continue;
		c.s = s;
		n = stmt_each(&s->statements, mark_one, &c);
		if (n == 0)
			continue;
		if (!s->refresh &&
		    !(s->refresh = calloc(1, sizeof(*s->refresh)))) { /* not a message sent yet */
			session_log(s, LOG_WARN, "out of memory: its prepared statements are not refreshed");
			continue;
		}
		job->sessions++;
		job->statements += n;
		session_log(s, LOG_INFO,
			    "statement refresh: %d prepared statement(s) re-prepared at next use", n);
	}
	free(set);
}

/* ---- the queue ----------------------------------------------------------- */

static void rq_release(struct rq *e)
{
	shape_map_unref(e->map);
	shape_formats_free(&e->f);
	free(e->stmt);
}

static bool formats_copy(struct shape_formats *to, const struct shape_formats *from)
{
	*to = *from;
	to->more = NULL;
	if (from->n > 64) {
		if (!(to->more = malloc((size_t)from->n)))
			return false;
		memcpy(to->more, from->more, (size_t)from->n);
	}
	return true;
}

static bool rq_push(struct refresh *r, enum rq_kind kind, struct shape_map *map,
		    const struct shape_formats *f, const char *stmt)
{
	struct rq *e;

	if (r->q_n == r->q_cap) {
		/*
		 * Kept for the session's life at its high-water mark, so small to
		 * start (an entry is ~100 bytes): a simple Query queues one, libpq's
		 * extended query (Describe, Execute, Sync) three; pipelines grow it.
		 */
		uint32_t cap = r->q_cap ? r->q_cap * 2 : 4;
		struct rq *q;

		if (r->q_n >= REFRESH_MAX_QUEUE || !(q = malloc(cap * sizeof(*q))))
			return false;
		for (uint32_t i = 0; i < r->q_n; i++)
			q[i] = r->q[(r->q_head + i) % r->q_cap];
		free(r->q);
		r->q = q;
		r->q_cap = cap;
		r->q_head = 0;
	}
	e = &r->q[(r->q_head + r->q_n) % r->q_cap];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->map = shape_map_ref(map);
	if ((f && !formats_copy(&e->f, f)) || (stmt && !(e->stmt = strdup(stmt)))) {
		rq_release(e);
		return false;
	}
	r->q_n++;
	return true;
}

static struct rq *rq_head(struct refresh *r)
{
	return r->q_n ? &r->q[r->q_head] : NULL;
}

static void rq_pop(struct refresh *r)
{
	if (!r->q_n)
		return;
	rq_release(&r->q[r->q_head]);
	r->q_head = (r->q_head + 1) % r->q_cap;
	r->q_n--;
}

/* ---- portals ------------------------------------------------------------- */

static void portal_release(struct portal *p)
{
	free(p->name);
	free(p->stmt);
	shape_map_unref(p->map);
	shape_formats_free(&p->f);
	memset(p, 0, sizeof(*p));
}

static struct portal *portal_find(struct refresh *r, const char *name)
{
	if (!*name)
		return &r->unnamed;
	for (int i = 0; i < r->n_named; i++)
		if (strcmp(r->named[i].name, name) == 0)
			return &r->named[i];
	return NULL;
}

static void portal_close(struct refresh *r, const char *name)
{
	struct portal *p = portal_find(r, name);

	if (!p || p == &r->unnamed) {
		if (p)
			portal_release(p);
		return;
	}
	portal_release(p);
	*p = r->named[--r->n_named];
}

/* Binds 'name' to statement 'stmt', 'map' and formats 'f' (taken). False: out of memory or too many portals. */
static bool portal_bind(struct refresh *r, const char *name, const char *stmt, struct shape_map *map,
			struct shape_formats *f)
{
	struct portal *p = portal_find(r, name);

	if (!p) {
		struct portal *grown;

		if (r->n_named >= REFRESH_MAX_PORTALS ||
		    !(grown = realloc(r->named, (size_t)(r->n_named + 1) * sizeof(*grown))))
			return false;
		r->named = grown;
		p = &r->named[r->n_named++];
		memset(p, 0, sizeof(*p));
		if (!(p->name = strdup(name))) {
			r->n_named--;
			return false;
		}
	}
	shape_map_unref(p->map);
	shape_formats_free(&p->f);
	free(p->stmt);
	p->stmt = *stmt ? strdup(stmt)
			: NULL; /* NULL when out of memory too: its shape is then not recorded */
	p->map = shape_map_ref(map);
	p->f = *f;
	memset(f, 0, sizeof(*f));
	return true;
}

void refresh_free(struct session *s)
{
	struct refresh *r = s->refresh;

	if (!r)
		return;
	while (r->q_n)
		rq_pop(r);
	free(r->q);
	portal_release(&r->unnamed);
	for (int i = 0; i < r->n_named; i++)
		portal_release(&r->named[i]);
	free(r->named);
	free(r->staged);
	free(r);
	s->refresh = NULL;
}

/* ---- rules and staging ----------------------------------------------------- */

/* Raises how much of a message type the session sees (never lowers what the worker's rules ask). */
static void want(struct relay_rules *r, const char *types, enum relay_track level)
{
	for (; *types; types++)
		if (r->track[(uint8_t)*types] < level)
			r->track[(uint8_t)*types] = (uint8_t)level;
}

const struct relay_rules *refresh_rules(struct session *s, bool c2s)
{
	struct refresh *r = s->refresh;
	struct worker *w = s->w;

	/* Logged in: from the first scan on, so no Bind of the session goes by unseen. */
	if (!r && s->state == SESSION_READY)
		r = s->refresh = calloc(1, sizeof(*s->refresh));
	if (!r || s->state != SESSION_READY)
		return c2s ? &w->c2s_rules : &w->s2c_rules; /* out of memory: refresh_client_msg closes it */
	if (w->refresh_gen != w->rules_gen) {
		w->refresh_c2s = w->c2s_rules;
		want(&w->refresh_c2s, "BDECP", RELAY_TRACK_BODY);
		want(&w->refresh_c2s, "SQF", RELAY_TRACK_HEADER);
		w->refresh_s2c = w->s2c_rules;
		want(&w->refresh_s2c, "TtEZ", RELAY_TRACK_BODY);
		want(&w->refresh_s2c, "nCIs", RELAY_TRACK_HEADER);
		/* With a shape map DataRows are read; everything else too, at its header, to be dropped after a 22003. */
		w->refresh_s2c_map = w->refresh_s2c;
		want(&w->refresh_s2c_map, "D", RELAY_TRACK_BODY);
		want(&w->refresh_s2c_map, "NA2VGHdcW", RELAY_TRACK_HEADER);
		w->refresh_gen = w->rules_gen;
	}
	if (c2s)
		return &w->refresh_c2s;
	return r->has_map ? &w->refresh_s2c_map : &w->refresh_s2c;
}

const uint8_t *refresh_staged(struct session *s, uint32_t *len)
{
	if (!s->refresh || !s->refresh->staged)
		return NULL;
	*len = s->refresh->staged_len;
	return s->refresh->staged;
}

void refresh_staged_done(struct session *s)
{
	free(s->refresh->staged);
	s->refresh->staged = NULL;
	s->refresh->staged_len = 0;
}

bool refresh_take_resume(struct session *s)
{
	if (!s->refresh || !s->statements.refreshed)
		return false;
	s->statements.refreshed = false;
	if (!s->refresh->waiting)
		return false;
	s->refresh->waiting = false;
	return true;
}

bool refresh_drop_pending(const struct session *s)
{
	return s->refresh && s->refresh->drop_current;
}

bool refresh_drop_current(struct session *s)
{
	if (!s->refresh || !s->refresh->drop_current)
		return false;
	s->refresh->drop_current = false;
	return true;
}

/* Appends a message: type, length, then 'n' parts. */
struct msgbuf {
	uint8_t *p;
	uint32_t len, cap;
	bool failed;
};

static void put(struct msgbuf *b, const void *p, uint32_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		uint32_t cap = (b->len + n) * 2;
		uint8_t *grown = realloc(b->p, cap);

		if (!grown) {
			b->failed = true;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static uint32_t begin(struct msgbuf *b, uint8_t type)
{
	uint8_t h[5] = { type, 0, 0, 0, 0 };

	put(b, h, 5);
	return b->len - 4;
}

static void end(struct msgbuf *b, uint32_t at)
{
	if (!b->failed)
		pgwire_put_u32(b->p + at, b->len - at);
}

static void put_u16(struct msgbuf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(b, p, 2);
}

static void put_u32(struct msgbuf *b, uint32_t v)
{
	uint8_t p[4];

	pgwire_put_u32(p, v);
	put(b, p, 4);
}

/* Close, Parse, Describe and Flush of 'st'; parameter types pinned to what the client gave or was shown. */
static bool stage_reprepare(struct session *s, const struct stmt *st)
{
	struct msgbuf b = { 0 };
	int n = st->n_types > st->n_shown_params ? st->n_types : st->n_shown_params;
	uint32_t at;

	at = begin(&b, 'C');
	put(&b, "S", 1);
	put(&b, st->name, (uint32_t)strlen(st->name) + 1);
	end(&b, at);
	at = begin(&b, 'P');
	put(&b, st->name, (uint32_t)strlen(st->name) + 1);
	put(&b, st->sql, (uint32_t)strlen(st->sql) + 1);
	put_u16(&b, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		uint32_t t = i < st->n_types ? st->types[i] : 0;

		if (t == 0 && i < st->n_shown_params)
			t = st->shown_params[i];
		put_u32(&b, t);
	}
	end(&b, at);
	at = begin(&b, 'D');
	put(&b, "S", 1);
	put(&b, st->name, (uint32_t)strlen(st->name) + 1);
	end(&b, at);
	at = begin(&b, 'H');
	end(&b, at);
	if (b.failed) {
		free(b.p);
		return false;
	}
	free(s->refresh->staged);
	s->refresh->staged = b.p;
	s->refresh->staged_len = b.len;
	return true;
}

/*
 * Re-prepares 'name' first if it is stale and that can be done here: not
 * inside a failed transaction (Parse would fail there, after Close took the
 * statement away), with nothing unanswered before it (so the transaction
 * state is known). Returns STOP while it does.
 */
static enum relay_msg maybe_reprepare(struct session *s, const char *name)
{
	struct refresh *r = s->refresh;
	struct stmt *st;
	bool uncertain;

	if (!*name || !(st = stmt_lookup(&s->statements, name, &uncertain)) || !st->stale)
		return RELAY_MSG_PASS;
	if (st != stmt_peek(&s->statements, name) || !st->sql || s->tx_status == 'E' || s->syncs_pending > 0)
		return RELAY_MSG_PASS; /* PostgreSQL answers as it would without the proxy */
	if (!stage_reprepare(s, st))
		return RELAY_MSG_PASS;
	stmt_refresh_sent(&s->statements, st);
	r->waiting = true;
	return RELAY_MSG_STOP;
}

static enum relay_msg fail(struct session *s, const char *why)
{
	session_close(s, "53000", "statement refresh: %s", why);
	return RELAY_MSG_STOP;
}

static enum relay_msg on_bind(struct session *s, uint8_t *body, uint32_t avail, uint32_t len)
{
	struct refresh *r = s->refresh;
	const uint8_t *portal_end = memchr(body, 0, avail), *stmt_end;
	const char *portal, *name;
	struct stmt *st = NULL;
	struct shape_formats f = { 0 };
	enum relay_msg v;
	bool uncertain, bad;
	uint8_t *rewritten;
	uint32_t out_len;

	stmt_end = portal_end ? memchr(portal_end + 1, 0, avail - (uint32_t)(portal_end + 1 - body)) : NULL;
	if (!stmt_end)
		return RELAY_MSG_PASS; /* malformed: the server says so */
	portal = (const char *)body;
	name = (const char *)portal_end + 1;
	if ((v = maybe_reprepare(s, name)) != RELAY_MSG_PASS)
		return v;
	if (*name)
		st = stmt_lookup(&s->statements, name, &uncertain);
	if (!st || !st->map) {
		if (!portal_bind(r, portal, name, NULL, &f))
			return fail(s, "too many open portals");
		return RELAY_MSG_PASS;
	}
	if (avail != len)
		return fail(s, "a Bind of a re-prepared statement larger than the proxy reads whole");
	rewritten = shape_rewrite_bind(st->map, body, len, &out_len, &f, &bad);
	if (bad) {
		shape_formats_free(&f);
		if (!portal_bind(r, portal, name, NULL, &f))
			return fail(s, "too many open portals");
		return RELAY_MSG_PASS; /* the server refuses it */
	}
	r->has_map = true;
	if (!portal_bind(r, portal, name, st->map, &f)) {
		free(rewritten);
		shape_formats_free(&f);
		return fail(s, "too many open portals");
	}
	if (!rewritten)
		return RELAY_MSG_PASS;
	/* Result formats for the server's columns: this Bind goes as a new one, and this is dropped. */
	free(r->staged);
	r->staged = malloc(out_len + 5);
	if (!r->staged) {
		free(rewritten);
		return fail(s, "out of memory");
	}
	r->staged[0] = 'B';
	pgwire_put_u32(r->staged + 1, out_len + 4);
	memcpy(r->staged + 5, rewritten, out_len);
	r->staged_len = out_len + 5;
	free(rewritten);
	r->drop_current = true;
	return RELAY_MSG_STOP;
}

enum relay_msg refresh_client_msg(struct session *s, uint8_t type, uint8_t *body, uint32_t avail,
				  uint32_t len)
{
	struct refresh *r = s->refresh;
	enum relay_msg v;
	struct portal *p;
	bool ok = true;

	if (!r && !(r = s->refresh = calloc(1, sizeof(*s->refresh))))
		return fail(s, "out of memory");
	if (r->waiting)
		return RELAY_MSG_STOP;
	/* Answers are tracked from a point where none are outstanding. */
	if (!r->active) {
		if (s->syncs_pending > 0 || s->batch_forwarded)
			return RELAY_MSG_PASS;
		r->active = true;
	}
	switch (type) {
	case 'B':
		return on_bind(s, body, avail, len);
	case 'D':
		if (avail < 2 || avail != len || body[len - 1] != 0)
			return RELAY_MSG_PASS;
		if (body[0] == 'S') {
			if ((v = maybe_reprepare(s, (const char *)body + 1)) != RELAY_MSG_PASS)
				return v;
			ok = rq_push(r, RQ_DESCRIBE_STMT, NULL, NULL, (const char *)body + 1);
		} else {
			p = portal_find(r, (const char *)body + 1);
			ok = rq_push(r, RQ_DESCRIBE, p ? p->map : NULL, NULL, p ? p->stmt : NULL);
		}
		break;
	case 'E':
		if (avail != len || !memchr(body, 0, len))
			return RELAY_MSG_PASS;
		p = portal_find(r, (const char *)body);
		ok = rq_push(r, RQ_EXECUTE, p ? p->map : NULL, p && p->map ? &p->f : NULL, NULL);
		break;
	case 'C':
		if (avail == len && len >= 2 && body[0] == 'P' && body[len - 1] == 0)
			portal_close(r, (const char *)body + 1);
		break;
	case 'S':
		ok = rq_push(r, RQ_SYNC, NULL, NULL, NULL);
		break;
	case 'Q':
	case 'F':
		ok = rq_push(r, RQ_SIMPLE, NULL, NULL, NULL);
		break;
	}
	return ok ? RELAY_MSG_PASS : fail(s, "too many answers outstanding");
}

/* ---- the server's answers ------------------------------------------------ */

static enum relay_msg out_of_range(struct session *s, const char *col)
{
	struct refresh *r = s->refresh;
	char msg[512];
	uint8_t err[1024];
	size_t n;

	snprintf(msg, sizeof(msg),
		 "value of column \"%s\" does not fit the type this prepared statement showed when it was "
		 "prepared (its table's column is now bigint): prepare the statement again (pgvalve-proxy "
		 "statement refresh)",
		 col);
	n = pgwire_build_error(err, sizeof(err), "ERROR", "22003", msg);
	if (n > sizeof(err) || !(r->staged = malloc(n)))
		return fail(s, "out of memory");
	memcpy(r->staged, err, n);
	r->staged_len = (uint32_t)n;
	r->poisoned = true; /* this row and the rest of the answers up to ReadyForQuery */
	session_log(s, LOG_WARN, "statement refresh: %s", msg);
	return RELAY_MSG_STOP;
}

/* A portal's first description is what the client may cache for its statement (stmt.h). */
static void record_shown(struct session *s, const struct rq *h, const uint8_t *body, uint32_t avail,
			 uint32_t len)
{
	struct stmt *e;

	if (!h->stmt || !(e = stmt_peek(&s->statements, h->stmt)) || e->shown.n >= 0)
		return;
	if (!body)
		e->shown.n = 0; /* NoData */
	else if (avail == len)
		(void)shape_read(body, len, &e->shown);
}

/* Puts 'n' bytes of a rewritten message of 'type' in front of the one scanning stopped at, which is dropped. */
static enum relay_msg replace_server_msg(struct session *s, uint8_t type, uint8_t *out, uint32_t n)
{
	struct refresh *r = s->refresh;

	out[0] = type;
	pgwire_put_u32(out + 1, n + 4);
	free(r->staged);
	r->staged = out;
	r->staged_len = n + 5;
	r->drop_server = true;
	return RELAY_MSG_STOP;
}

/* A RowDescription of a statement or portal presented in another shape. */
static enum relay_msg present_rowdesc(struct session *s, const struct shape_map *map, uint8_t *body,
				      uint32_t len, uint32_t *new_len)
{
	uint8_t *out = malloc(shape_rowdesc_max(map) + 5);
	uint32_t n;

	if (!out)
		return fail(s, "out of memory");
	n = shape_rewrite_rowdesc(map, body, len, out + 5);
	if (n == 0 || n <= len) {
		if (n) {
			memcpy(body, out + 5, n);
			*new_len = n;
		}
		free(out);
		return RELAY_MSG_PASS;
	}
	return replace_server_msg(s, 'T', out, n);
}

/* A DataRow of a portal presented in another shape. */
static enum relay_msg present_row(struct session *s, const struct rq *h, uint8_t *body, uint32_t len,
				  uint32_t *new_len)
{
	uint32_t cap = shape_datarow_max(h->map, len), n;
	uint8_t *out = malloc(cap + 5);
	const char *col;

	if (!out)
		return fail(s, "out of memory");
	switch (shape_rewrite_datarow(h->map, &h->f, body, len, out + 5, &n, &col)) {
	case SHAPE_ROW_OK:
		break;
	case SHAPE_ROW_RANGE:
		free(out);
		return out_of_range(s, col);
	case SHAPE_ROW_INVALID:
		free(out);
		return RELAY_MSG_PASS;
	}
	if (n <= len) {
		memcpy(body, out + 5, n);
		*new_len = n;
		free(out);
		return RELAY_MSG_PASS;
	}
	/* Wider than it came (a column widened, one presented as NULL): the new row goes in front. */
	return replace_server_msg(s, 'D', out, n);
}

enum relay_msg refresh_server_msg(struct session *s, uint8_t type, uint8_t *body, uint32_t avail,
				  uint32_t len, uint32_t *new_len)
{
	struct refresh *r = s->refresh;
	struct rq *h;

	if (!r || !r->active)
		return RELAY_MSG_PASS;
	if (r->drop_server) {
		r->drop_server = false;
		return RELAY_MSG_DROP;
	}
	h = rq_head(r);
	switch (type) {
	case 'T': {
		struct shape_map *map = NULL;
		struct stmt *e;
		enum relay_msg v = RELAY_MSG_PASS;

		if (h && h->kind == RQ_DESCRIBE) {
			record_shown(s, h, body, avail, len);
			map = shape_map_ref(h->map);
		} else if (h && h->kind == RQ_DESCRIBE_STMT && h->stmt &&
			   (e = stmt_peek(&s->statements, h->stmt))) {
			map = shape_map_ref(e->map); /* stmt.c recorded what a first Describe showed */
		}
		if (h && (h->kind == RQ_DESCRIBE || h->kind == RQ_DESCRIBE_STMT))
			rq_pop(r);
		if (map && avail == len && !r->poisoned)
			v = present_rowdesc(s, map, body, len, new_len);
		shape_map_unref(map);
		if (v != RELAY_MSG_PASS)
			return v;
		break;
	}
	case 'n':
		if (h && h->kind == RQ_DESCRIBE)
			record_shown(s, h, NULL, 0, 0);
		if (h && (h->kind == RQ_DESCRIBE || h->kind == RQ_DESCRIBE_STMT))
			rq_pop(r);
		break;
	case 'D':
		if (!h || h->kind != RQ_EXECUTE || !h->map || r->poisoned)
			break;
		if (avail != len)
			return fail(s, "a row of a re-prepared statement larger than the proxy reads whole");
		return present_row(s, h, body, len, new_len);
	case 'C':
	case 'I':
	case 's':
		if (h && h->kind == RQ_EXECUTE)
			rq_pop(r);
		break;
	case 'E':
		/* The server skips to the next Sync; a simple Query ends at its ReadyForQuery. */
		while ((h = rq_head(r)) && h->kind != RQ_SYNC && h->kind != RQ_SIMPLE)
			rq_pop(r);
		break;
	case 'Z':
		while ((h = rq_head(r))) {
			enum rq_kind k = h->kind;

			rq_pop(r);
			if (k == RQ_SYNC || k == RQ_SIMPLE)
				break;
		}
		r->poisoned = false;
		return RELAY_MSG_PASS;
	}
	return r->poisoned ? RELAY_MSG_DROP : RELAY_MSG_PASS;
}
