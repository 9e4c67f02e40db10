/*
 * pgvalve.keychange_backfill (see journal_keychange.h): one row per backfill
 * step, advanced in the same transaction as the batch it records.
 */
#include "journal_keychange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

const char journal_keychange_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS pgvalve.keychange_backfill ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  seq int NOT NULL,"
	"  next_block bigint NOT NULL DEFAULT 0,"
	"  end_block bigint NOT NULL,"
	"  rows_done bigint NOT NULL DEFAULT 0,"
	"  started_at timestamptz NOT NULL DEFAULT now(),"
	"  updated_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (migration_id, seq));"
	"CREATE TABLE IF NOT EXISTS pgvalve.keychange_finalize ("
	"  migration_id bigint PRIMARY KEY REFERENCES pgvalve.migrations (id),"
	"  finalized_at timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE IF NOT EXISTS pgvalve.keychange_unswapped ("
	"  migration_id bigint NOT NULL REFERENCES pgvalve.migrations (id),"
	"  key int NOT NULL DEFAULT 0,"
	"  unswapped_at timestamptz NOT NULL DEFAULT now(),"
	"  PRIMARY KEY (migration_id, key));"
	/* key: added when one migration's keys began to be swapped back one by one */
	"DO $upgrade$ BEGIN "
	"  IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = "
	"                 'pgvalve.keychange_unswapped'::regclass AND attname = 'key' AND NOT attisdropped) "
	"THEN "
	"    LOCK TABLE pgvalve.keychange_unswapped IN ACCESS EXCLUSIVE MODE; "
	"    ALTER TABLE pgvalve.keychange_unswapped ADD COLUMN IF NOT EXISTS key int NOT NULL DEFAULT 0; "
	"    ALTER TABLE pgvalve.keychange_unswapped DROP CONSTRAINT IF EXISTS keychange_unswapped_pkey; "
	"    ALTER TABLE pgvalve.keychange_unswapped ADD PRIMARY KEY (migration_id, key); "
	"  END IF; "
	"END $upgrade$";

bool journal_backfill_read(PGconn *c, int64_t id, int seq, struct journal_backfill *b, bool *found,
			   struct db_error *err)
{
	char ids[24], seqs[16];
	const char *params[2] = { ids, seqs };
	PGresult *r;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	snprintf(seqs, sizeof(seqs), "%d", seq);
	r = db_query(c,
		     "SELECT next_block, end_block, rows_done FROM pgvalve.keychange_backfill "
		     "WHERE migration_id = $1::bigint AND seq = $2::int",
		     2, params, err);
	if (!r)
		return false;
	*found = PQntuples(r) == 1;
	memset(b, 0, sizeof(*b));
	if (*found) {
		b->next_block = atoll(PQgetvalue(r, 0, 0));
		b->end_block = atoll(PQgetvalue(r, 0, 1));
		b->rows_done = atoll(PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	return true;
}

/* Runs 'sql' on the backfill row of (id, seq): $1 id, $2 seq, then 'n' values ($3, $4). */
static bool backfill_exec(PGconn *c, int64_t id, int seq, const char *sql, int n, long long v1, long long v2,
			  struct db_error *err)
{
	char ids[24], seqs[16], a[24], b[24];
	const char *params[4] = { ids, seqs, a, b };

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	snprintf(seqs, sizeof(seqs), "%d", seq);
	snprintf(a, sizeof(a), "%lld", v1);
	snprintf(b, sizeof(b), "%lld", v2);
	return db_command(c, sql, 2 + n, params, err);
}

bool journal_backfill_start(PGconn *c, int64_t id, int seq, long long end_block, struct db_error *err)
{
	return backfill_exec(c, id, seq,
			     "INSERT INTO pgvalve.keychange_backfill (migration_id, seq, end_block) "
			     "VALUES ($1::bigint, $2::int, $3::bigint) ON CONFLICT DO NOTHING",
			     1, end_block, 0, err);
}

bool journal_backfill_advance(PGconn *c, int64_t id, int seq, long long next_block, long long rows,
			      struct db_error *err)
{
	return backfill_exec(c, id, seq,
			     "UPDATE pgvalve.keychange_backfill SET next_block = $3::bigint, rows_done = "
			     "rows_done + $4::bigint, updated_at = now() WHERE migration_id = $1::bigint AND "
			     "seq = $2::int",
			     2, next_block, rows, err);
}

/*
 * Whether migration 'id' has its swap done; with 'unmarked' also that it has
 * no row in that table (its finalize recorded) and is committed. One query
 * for journal_keychange_waiting() and journal_keychange_swapped().
 */
static bool swap_done(PGconn *c, int64_t id, const char *unmarked, bool *out, struct db_error *err)
{
	char ids[24];
	const char *params[1] = { ids };
	char *sql = xasprintf("SELECT EXISTS (SELECT FROM pgvalve.steps WHERE migration_id = $1::bigint AND "
			      "kind = 'keychange_swap' AND state = 'done')%s%s%s",
			      unmarked ? " AND NOT EXISTS (SELECT FROM pgvalve." : "",
			      unmarked ? unmarked : "",
			      unmarked ? " WHERE migration_id = $1::bigint) AND (SELECT state FROM "
					 "pgvalve.migrations WHERE id = $1::bigint) = 'committed'"
				       : "");
	PGresult *r;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	r = db_query(c, sql, 1, params, err);
	free(sql);
	if (!r)
		return false;
	*out = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return true;
}

bool journal_keychange_waiting(PGconn *c, int64_t id, bool *waiting, struct db_error *err)
{
	return swap_done(c, id, "keychange_finalize", waiting, err);
}

char *journal_keychange_finalized_sql(int64_t id)
{
	return xasprintf("INSERT INTO pgvalve.keychange_finalize (migration_id) VALUES (%lld)",
			 (long long)id);
}

bool journal_keychange_swapped(PGconn *c, int64_t id, bool *swapped, struct db_error *err)
{
	return swap_done(c, id, NULL, swapped, err);
}

bool journal_keychange_unswapped(PGconn *c, int64_t id, int key, bool *done, struct db_error *err)
{
	char ids[24], keys[16];
	const char *params[2] = { ids, keys };
	PGresult *r;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	snprintf(keys, sizeof(keys), "%d", key);
	r = db_query(c,
		     "SELECT EXISTS (SELECT FROM pgvalve.keychange_unswapped WHERE migration_id = $1::bigint "
		     "AND key = $2::int)",
		     2, params, err);
	if (!r)
		return false;
	*done = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return true;
}

char *journal_keychange_unswapped_sql(int64_t id, int key)
{
	return xasprintf("INSERT INTO pgvalve.keychange_unswapped (migration_id, key) VALUES (%lld, %d)",
			 (long long)id, key);
}
