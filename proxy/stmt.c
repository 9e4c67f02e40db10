/*
 * Named prepared statements of one session (see stmt.h): a chained hash
 * table that doubles when it fills, and a ring of the Parse, Close and Sync
 * messages the server has not answered yet. Only the session's own worker
 * touches it.
 */
#include "stmt.h"

#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgwire.h"

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static void stmt_free(struct stmt *st)
{
	free(st->name);
	free(st->sql);
	free(st->res);
	free(st->types);
	free(st->shown_params);
	shape_free(&st->shown);
	shape_map_unref(st->map);
	free(st);
}

void stmt_classify(struct stmt *st, struct classify_cache *cache, const struct classify_options *opt,
		   struct classify_result *r)
{
	if (st->res) {
		classify_compact_fill(st->res, r);
		return;
	}
	if (st->sql) {
		classify_cache_sql(cache, st->sql, strlen(st->sql), opt, r);
	} else {
		memset(r, 0, sizeof(*r));
		r->flags = CLASSIFY_UNKNOWN;
		r->unknown_reason = "statement text longer than the proxy keeps";
	}
	st->res = classify_compact_copy(r); /* NULL (out of memory): classify again next time */
}

static size_t stmt_bytes(const struct stmt *st)
{
	return sizeof(*st) + strlen(st->name) + 1 + (st->sql ? strlen(st->sql) + 1 : 0);
}

static bool grow(struct stmt_map *m)
{
	uint32_t n = m->n_slots ? m->n_slots * 2 : 16;
	struct stmt **slots = calloc(n, sizeof(*slots));

	if (!slots)
		return false;
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct stmt *st = m->slots[i], *next;

		for (; st; st = next) {
			next = st->next;
			st->next = slots[st->hash & (n - 1)];
			slots[st->hash & (n - 1)] = st;
		}
	}
	free(m->slots);
	m->slots = slots;
	m->n_slots = n;
	return true;
}

struct stmt *stmt_peek(const struct stmt_map *m, const char *name)
{
	uint32_t h;

	if (!m->slots)
		return NULL;
	h = hash_name(name);
	for (struct stmt *st = m->slots[h & (m->n_slots - 1)]; st; st = st->next)
		if (st->hash == h && strcmp(st->name, name) == 0)
			return st;
	return NULL;
}

/* Unlinks and frees the map's entry for 'name', if any. */
static void map_remove(struct stmt_map *m, const char *name)
{
	struct stmt **link;
	uint32_t h;

	if (!m->slots)
		return;
	h = hash_name(name);
	for (link = &m->slots[h & (m->n_slots - 1)]; *link; link = &(*link)->next) {
		struct stmt *st = *link;

		if (st->hash == h && strcmp(st->name, name) == 0) {
			*link = st->next;
			m->count--;
			m->bytes -= stmt_bytes(st);
			stmt_free(st);
			return;
		}
	}
}

/* Frees every statement of the map. */
static void free_map(struct stmt_map *m)
{
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct stmt *st = m->slots[i], *next;

		for (; st; st = next) {
			next = st->next;
			m->bytes -= stmt_bytes(st);
			stmt_free(st);
		}
	}
	free(m->slots);
	m->slots = NULL;
	m->n_slots = m->count = 0;
	if (m->describing)
		stmt_free(m->describing);
	m->describing = NULL;
	m->describing_kind = 0;
}

/* Frees every pending operation. */
static void free_ops(struct stmt_map *m)
{
	for (uint32_t i = 0; i < m->ops_n; i++) {
		struct stmt_op *op = &m->ops[(m->ops_head + i) % m->ops_cap];

		if (op->st)
			stmt_free(op->st);
	}
	free(m->ops);
	m->ops = NULL;
	m->ops_cap = m->ops_head = m->ops_n = m->injected = 0;
}

static void free_all(struct stmt_map *m)
{
	free_map(m);
	free_ops(m);
	m->bytes = 0;
}

void stmt_forget(struct stmt_map *m)
{
	free_map(m);
	/*
	 * What the proxy sent itself must still be taken out of the answers:
	 * the ring stays, in order, until those are answered.
	 */
	if (m->injected == 0) {
		free_ops(m);
		m->bytes = 0;
	}
	m->overflowed = true;
}

/* A statement not in the map yet; NULL when out of memory or over the byte bound (then forgotten). */
static struct stmt *stmt_new(struct stmt_map *m, const char *name, const char *sql, size_t sql_len)
{
	struct stmt *st;
	size_t need = sizeof(*st) + strlen(name) + 1 + (sql ? sql_len + 1 : 0);

	if (m->bytes + need > STMT_MAX_BYTES) {
		stmt_forget(m);
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(st->name = strdup(name)) || (sql && !(st->sql = strndup(sql, sql_len)))) {
		if (st)
			stmt_free(st);
		stmt_forget(m);
		return NULL;
	}
	st->hash = hash_name(name);
	st->shown.n = -1;
	st->n_shown_params = -1;
	m->bytes += stmt_bytes(st);
	return st;
}

/* Puts a pending statement into the map, replacing one of the same name. */
static void map_insert(struct stmt_map *m, struct stmt *st)
{
	m->bytes -= stmt_bytes(st); /* counted again below, as the map's */
	map_remove(m, st->name);
	if (m->count >= STMT_MAX_COUNT || (m->count >= m->n_slots && !grow(m))) {
		stmt_free(st);
		stmt_forget(m);
		return;
	}
	st->next = m->slots[st->hash & (m->n_slots - 1)];
	m->slots[st->hash & (m->n_slots - 1)] = st;
	m->count++;
	m->bytes += stmt_bytes(st);
}

static void push(struct stmt_map *m, uint8_t kind, struct stmt *st)
{
	if (m->ops_n == m->ops_cap) {
		uint32_t cap = m->ops_cap ? m->ops_cap * 2 : 16;
		struct stmt_op *ops;

		if (m->ops_n >= STMT_MAX_PENDING || !(ops = malloc(cap * sizeof(*ops)))) {
			if (st)
				stmt_free(st);
			stmt_forget(m);
			return;
		}
		for (uint32_t i = 0; i < m->ops_n; i++)
			ops[i] = m->ops[(m->ops_head + i) % m->ops_cap];
		free(m->ops);
		m->ops = ops;
		m->ops_cap = cap;
		m->ops_head = 0;
	}
	m->ops[(m->ops_head + m->ops_n) % m->ops_cap] = (struct stmt_op){ kind, st };
	m->ops_n++;
	if (kind >= 'a')
		m->injected++;
}

/* Takes the oldest pending operation; false if there is none. */
static bool pop(struct stmt_map *m, struct stmt_op *op)
{
	if (m->ops_n == 0)
		return false;
	*op = m->ops[m->ops_head];
	m->ops_head = (m->ops_head + 1) % m->ops_cap;
	m->ops_n--;
	if (op->kind >= 'a')
		m->injected--;
	return true;
}

static void drop(struct stmt_map *m, struct stmt_op *op)
{
	if (op->st) {
		m->bytes -= stmt_bytes(op->st);
		stmt_free(op->st);
	}
}

void stmt_parse_sent_typed(struct stmt_map *m, const char *name, const char *sql, size_t sql_len,
			   const uint8_t *types, int n)
{
	struct stmt *st = NULL;

	if (m->overflowed)
		return;
	if (!name) {
		stmt_forget(m); /* a statement we cannot name */
		return;
	}
	if (*name && !(st = stmt_new(m, name, sql, sql_len)))
		return;
	if (st && n > 0 && (st->types = calloc((size_t)n, sizeof(*st->types)))) {
		st->n_types = n;
		for (int i = 0; i < n; i++)
			st->types[i] = pgwire_get_u32(types + 4 * i);
	}
	push(m, 'P', st);
}

void stmt_parse_sent(struct stmt_map *m, const char *name, const char *sql, size_t sql_len)
{
	stmt_parse_sent_typed(m, name, sql, sql_len, NULL, 0);
}

void stmt_describe_sent(struct stmt_map *m, const char *name)
{
	struct stmt *st = NULL;

	if (m->overflowed)
		return;
	if (name && !(st = stmt_new(m, name, NULL, 0)))
		return;
	push(m, 'D', st);
}

void stmt_refresh_sent(struct stmt_map *m, const struct stmt *st)
{
	static const uint8_t kinds[3] = { 'c', 'p', 'd' };

	for (int i = 0; i < 3 && !m->overflowed; i++) {
		struct stmt *copy = stmt_new(m, st->name, NULL, 0);

		if (copy)
			push(m, kinds[i], copy);
	}
}

void stmt_close_sent(struct stmt_map *m, bool statement, const char *name)
{
	struct stmt *st = NULL;

	if (m->overflowed)
		return;
	if (statement && name && *name && !(st = stmt_new(m, name, NULL, 0)))
		return;
	push(m, 'C', st);
}

void stmt_sync_sent(struct stmt_map *m)
{
	if (!m->overflowed)
		push(m, 'S', NULL);
}

/* The oldest pending operation answered by a 'kind' message; a mismatch forgets everything. */
static bool answered(struct stmt_map *m, uint8_t kind, struct stmt_op *op)
{
	if (m->overflowed && m->ops_n == 0)
		return false;
	if (!pop(m, op)) {
		stmt_forget(m);
		return false;
	}
	if (op->kind != kind && op->kind != kind + ('a' - 'A')) {
		drop(m, op);
		stmt_forget(m);
		return false;
	}
	return true;
}

bool stmt_parse_complete(struct stmt_map *m)
{
	struct stmt_op op;
	struct stmt *e;

	if (!answered(m, 'P', &op))
		return false;
	if (op.kind == 'P') {
		if (op.st && !m->overflowed)
			map_insert(m, op.st);
		else
			drop(m, &op); /* answered after the map gave up (its ring kept for the proxy's own) */
		return false;
	}
	/* Re-prepared: the server's statement is new; its shape is known once its Describe is answered. */
	if (op.st && (e = stmt_peek(m, op.st->name)))
		e->stale = false;
	drop(m, &op);
	return true;
}

bool stmt_close_complete(struct stmt_map *m)
{
	struct stmt_op op;

	if (!answered(m, 'C', &op))
		return false;
	if (op.kind == 'C' && op.st)
		map_remove(m, op.st->name);
	drop(m, &op);
	return op.kind == 'c';
}

bool stmt_param_desc(struct stmt_map *m, const uint8_t *body, uint32_t avail, uint32_t len)
{
	struct stmt_op op;
	struct stmt *e;
	int n;

	if (!answered(m, 'D', &op))
		return false;
	if (m->describing)
		stmt_free(m->describing);
	m->describing = op.st; /* owned now; its bytes no longer count */
	if (op.st)
		m->bytes -= stmt_bytes(op.st);
	m->describing_kind = op.kind;
	if (op.kind == 'd')
		return true;
	/* What the client is shown of it first is what it may have cached. */
	if (!op.st || !(e = stmt_peek(m, op.st->name)) || e->n_shown_params >= 0 || avail != len || len < 2)
		return false;
	n = body[0] << 8 | body[1];
	if ((uint32_t)n * 4 != len - 2)
		return false;
	e->shown_params = calloc(n ? (size_t)n : 1, sizeof(*e->shown_params));
	if (!e->shown_params)
		return false;
	e->n_shown_params = n;
	for (int i = 0; i < n; i++)
		e->shown_params[i] = pgwire_get_u32(body + 2 + 4 * i);
	return false;
}

int stmt_row_desc(struct stmt_map *m, const uint8_t *body, uint32_t avail, uint32_t len)
{
	uint8_t kind = m->describing_kind;
	struct stmt *e = m->describing ? stmt_peek(m, m->describing->name) : NULL;
	struct shape now = { .n = 0, .cols = NULL };

	if (!kind)
		return 0; /* a portal's, or a query's */
	if (m->describing)
		stmt_free(m->describing);
	m->describing = NULL;
	m->describing_kind = 0;
	if (body && (avail != len || !shape_read(body, len, &now)))
		now.n = -1;
	if (kind == 'D') {
		if (e && e->shown.n < 0) {
			e->shown = now;
			return 0;
		}
		shape_free(&now); /* presented as shown by stmt_refresh.c */
		return 0;
	}
	/* The re-prepare's own Describe: how the new shape is presented as the one the client saw. */
	if (e) {
		bool same;

		shape_map_unref(e->map);
		e->map = e->shown.n >= 0 ? shape_map_make(&e->shown, &now, &same) : NULL;
	}
	shape_free(&now);
	m->refreshed = true;
	return 1;
}

void stmt_error(struct stmt_map *m)
{
	struct stmt_op op;

	/* The server skips to the next Sync: nothing before it takes effect. */
	while (m->ops_n > 0 && m->ops[m->ops_head].kind != 'S') {
		(void)pop(m, &op);
		if (op.kind >= 'a')
			m->refreshed = true; /* a re-prepare failed: the client's own message goes on */
		drop(m, &op);
	}
	if (m->describing)
		stmt_free(m->describing);
	m->describing = NULL;
	m->describing_kind = 0;
}

void stmt_ready(struct stmt_map *m)
{
	struct stmt_op op;

	while (pop(m, &op)) {
		drop(m, &op);
		if (op.kind == 'S')
			return;
	}
}

struct stmt *stmt_lookup(const struct stmt_map *m, const char *name, bool *uncertain)
{
	struct stmt *st = stmt_peek(m, name);
	bool touched = false;

	*uncertain = m->overflowed;
	for (uint32_t i = 0; i < m->ops_n; i++) {
		const struct stmt_op *op = &m->ops[(m->ops_head + i) % m->ops_cap];

		if (op->kind == 'D' || op->kind >= 'a') {
			continue; /* Describe, and the proxy's re-prepare, leave the name as it is */
		} else if (op->kind == 'S') {
			/* Whether an earlier batch's Parse or Close of it took effect is not known yet. */
			*uncertain |= touched;
		} else if (op->st && strcmp(op->st->name, name) == 0) {
			/*
			 * In the Bind's own batch this is what it finds: if this Parse or
			 * Close fails, or anything before it, the server skips the Bind too.
			 */
			st = op->kind == 'P' ? op->st : NULL;
			touched = true;
			*uncertain = m->overflowed;
		}
	}
	return *uncertain ? NULL : st;
}

void stmt_clear(struct stmt_map *m)
{
	free_all(m);
	memset(m, 0, sizeof(*m));
}

int stmt_each(struct stmt_map *m, bool (*fn)(struct stmt *st, void *arg), void *arg)
{
	int n = 0;

	for (uint32_t i = 0; i < m->n_slots; i++)
		for (struct stmt *st = m->slots[i]; st; st = st->next)
			n += fn(st, arg);
	/* Parsed but not answered yet: what it becomes once the ParseComplete arrives. */
	for (uint32_t i = 0; i < m->ops_n; i++) {
		struct stmt_op *op = &m->ops[(m->ops_head + i) % m->ops_cap];

		if (op->kind == 'P' && op->st)
			n += fn(op->st, arg);
	}
	return n;
}
