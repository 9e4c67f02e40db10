/*
 * Named prepared statements of one session (see stmt.h): a chained hash
 * table that doubles when it fills. Only the session's own worker touches it.
 */
#include "stmt.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_name(const char *s)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

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
	st->res = classify_compact_copy(r);   /* NULL (out of memory): classify again next time */
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

void stmt_remove(struct stmt_map *m, const char *name)
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

void stmt_put(struct stmt_map *m, const char *name, const char *sql, size_t sql_len)
{
	struct stmt *st;
	size_t need = sizeof(*st) + strlen(name) + 1 + (sql ? sql_len + 1 : 0);

	stmt_remove(m, name);
	if (m->count >= STMT_MAX_COUNT || m->bytes + need > STMT_MAX_BYTES) {
		m->overflowed = true;
		return;
	}
	if (m->count >= m->n_slots && !grow(m)) {
		m->overflowed = true;
		return;
	}
	st = calloc(1, sizeof(*st));
	if (!st || !(st->name = strdup(name)) || (sql && !(st->sql = strndup(sql, sql_len)))) {
		if (st)
			stmt_free(st);
		m->overflowed = true;
		return;
	}
	st->hash = hash_name(name);
	st->next = m->slots[st->hash & (m->n_slots - 1)];
	m->slots[st->hash & (m->n_slots - 1)] = st;
	m->count++;
	m->bytes += stmt_bytes(st);
}

void stmt_clear(struct stmt_map *m)
{
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct stmt *st = m->slots[i], *next;

		for (; st; st = next) {
			next = st->next;
			stmt_free(st);
		}
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}
