/*
 * Error and statement accounting of one worker (see stats.h). The bucket of
 * second t lives at ring[t % STATS_WINDOW_S] and is cleared when a later
 * second claims it.
 */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void stats_init(struct stats *st)
{
	memset(st, 0, sizeof(*st));
}

void stats_keys_free(struct stats_keys *k)
{
	free(k->v);
	memset(k, 0, sizeof(*k));
}

void stats_destroy(struct stats *st)
{
	stats_keys_free(&st->error_totals);
	for (int i = 0; i < STATS_WINDOW_S; i++)
		stats_keys_free(&st->ring[i].keys);
}

void stats_keys_add(struct stats_keys *k, int kind, const char *name, uint64_t count, int max)
{
	for (int i = 0; i < k->n; i++) {
		if (k->v[i].kind == kind && strcmp(k->v[i].name, name) == 0) {
			k->v[i].count += count;
			return;
		}
	}
	if (k->n >= max) {
		/* Defensive: a flood of distinct names folds into one line rather than growing. */
		if (strcmp(name, "(other)") != 0)
			stats_keys_add(k, kind, "(other)", count, max + 1);
		return;
	}
	if (k->n == k->cap) {
		int cap = k->cap ? k->cap * 2 : 8;
		struct stats_key *v = realloc(k->v, (size_t)cap * sizeof(*v));

		if (!v)
			return;
		k->v = v;
		k->cap = cap;
	}
	k->v[k->n].kind = (uint8_t)kind;
	snprintf(k->v[k->n].name, sizeof(k->v[k->n].name), "%s", name);
	k->v[k->n].count = count;
	k->n++;
}

static struct stats_bucket *bucket_at(struct stats *st, time_t now)
{
	struct stats_bucket *b = &st->ring[now % STATS_WINDOW_S];

	if (b->second != now) {
		b->second = now;
		b->statements = 0;
		b->errors = 0;
		b->keys.n = 0;
	}
	return b;
}

void stats_statement(struct stats *st, time_t now)
{
	st->statements_total++;
	bucket_at(st, now)->statements++;
}

void stats_error(struct stats *st, time_t now, const struct pgwire_error *e)
{
	struct stats_bucket *b = bucket_at(st, now);
	const char *sqlstate = e->sqlstate ? e->sqlstate : "XX000";

	st->errors_total++;
	b->errors++;
	stats_keys_add(&st->error_totals, STATS_SQLSTATE, sqlstate, 1, 1024);
	stats_keys_add(&b->keys, STATS_SQLSTATE, sqlstate, 1, STATS_KEYS_PER_BUCKET);
	if (e->table) {
		char name[128];

		if (e->schema)
			snprintf(name, sizeof(name), "%s.%s", e->schema, e->table);
		else
			snprintf(name, sizeof(name), "%s", e->table);
		stats_keys_add(&b->keys, STATS_TABLE, name, 1, STATS_KEYS_PER_BUCKET);
	}
	if (e->constraint) {
		stats_keys_add(&st->error_totals, STATS_CONSTRAINT, e->constraint, 1, 2048);
		stats_keys_add(&b->keys, STATS_CONSTRAINT, e->constraint, 1, STATS_KEYS_PER_BUCKET);
	}
}

void stats_window_add(const struct stats *st, time_t now, int window_s, struct stats_window *out)
{
	for (int i = 0; i < STATS_WINDOW_S; i++) {
		const struct stats_bucket *b = &st->ring[i];

		if (b->second <= now - window_s || b->second > now)
			continue;
		out->statements += b->statements;
		out->errors += b->errors;
		for (int k = 0; k < b->keys.n; k++)
			stats_keys_add(&out->keys, b->keys.v[k].kind, b->keys.v[k].name, b->keys.v[k].count,
				       1 << 20);
	}
}
