/*
 * Named prepared statements of one session (see stmt.h): a chained hash
 * table that doubles when it fills, and a ring of the Parse, Close and Sync
 * messages the server has not answered yet. Only the session's own worker
 * touches it.
 */
#include "stmt.h"

#include <stdlib.h>
#include <string.h>

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

/* Frees every statement and pending operation; the map stays usable (empty). */
static void free_all(struct stmt_map *m)
{
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct stmt *st = m->slots[i], *next;

		for (; st; st = next) {
			next = st->next;
			stmt_free(st);
		}
	}
	for (uint32_t i = 0; i < m->ops_n; i++) {
		struct stmt_op *op = &m->ops[(m->ops_head + i) % m->ops_cap];

		if (op->st)
			stmt_free(op->st);
	}
	free(m->slots);
	free(m->ops);
	m->slots = NULL;
	m->ops = NULL;
	m->n_slots = m->count = m->ops_cap = m->ops_head = m->ops_n = 0;
	m->bytes = 0;
}

void stmt_forget(struct stmt_map *m)
{
	free_all(m);
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
}

/* Takes the oldest pending operation; false if there is none. */
static bool pop(struct stmt_map *m, struct stmt_op *op)
{
	if (m->ops_n == 0)
		return false;
	*op = m->ops[m->ops_head];
	m->ops_head = (m->ops_head + 1) % m->ops_cap;
	m->ops_n--;
	return true;
}

static void drop(struct stmt_map *m, struct stmt_op *op)
{
	if (op->st) {
		m->bytes -= stmt_bytes(op->st);
		stmt_free(op->st);
	}
}

void stmt_parse_sent(struct stmt_map *m, const char *name, const char *sql, size_t sql_len)
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
	push(m, 'P', st);
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
	if (m->overflowed)
		return false;
	if (!pop(m, op)) {
		stmt_forget(m);
		return false;
	}
	if (op->kind != kind) {
		drop(m, op);
		stmt_forget(m);
		return false;
	}
	return true;
}

void stmt_parse_complete(struct stmt_map *m)
{
	struct stmt_op op;

	if (answered(m, 'P', &op) && op.st)
		map_insert(m, op.st);
}

void stmt_close_complete(struct stmt_map *m)
{
	struct stmt_op op;

	if (!answered(m, 'C', &op) || !op.st)
		return;
	map_remove(m, op.st->name);
	drop(m, &op);
}

void stmt_error(struct stmt_map *m)
{
	struct stmt_op op;

	/* The server skips to the next Sync: nothing before it takes effect. */
	while (m->ops_n > 0 && m->ops[m->ops_head].kind != 'S') {
		(void)pop(m, &op);
		drop(m, &op);
	}
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

		if (op->kind == 'S') {
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
