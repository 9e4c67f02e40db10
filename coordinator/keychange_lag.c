/*
 * Replication lag for the backfill's throttle (see keychange_lag.h).
 */
#include "keychange_lag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/clock.h"

void keychange_lag_init(struct kc_lag *l)
{
	memset(l, 0, sizeof(*l));
}

/* Remembers that the server's WAL reached 'lsn' at 'now', dropping what every standby has replayed. */
static void sample(struct kc_lag *l, int64_t now, uint64_t lsn, uint64_t min_replay, bool any)
{
	int keep = 0;

	for (int i = 0; i < l->n; i++)
		if (!any || l->s[i].lsn > min_replay)
			l->s[keep++] = l->s[i];
	l->n = keep;
	if (l->n > 0 && l->s[l->n - 1].lsn >= lsn)
		return;
	if (l->n == KC_LAG_SAMPLES)
		l->n--; /* full: the newest goes; the older ones bound the lag from below all the same */
	l->s[l->n].at_ms = now;
	l->s[l->n].lsn = lsn;
	l->n++;
}

/* How long ago the oldest WAL this standby has not replayed was known to exist. */
static int64_t seen_lag(const struct kc_lag *l, int64_t now, uint64_t replay)
{
	for (int i = 0; i < l->n; i++)
		if (l->s[i].lsn > replay)
			return now - l->s[i].at_ms;
	return 0;
}

bool keychange_lag_read(PGconn *c, struct kc_lag *l, struct keychange_lag_reading *out, struct db_error *err)
{
	PGresult *r = db_query(
		c,
		"SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::bigint, "
		"state IS NULL, "
		"coalesce(nullif(application_name, ''), host(client_addr), 'pid ' || pid), "
		"pg_catalog.pg_wal_lsn_diff(replay_lsn, '0/0')::bigint, "
		"coalesce((extract(epoch FROM replay_lag) * 1000)::bigint, 0) "
		"FROM pg_catalog.pg_stat_replication WHERE state IS NULL OR replay_lsn IS NOT NULL",
		0, NULL, err);
	int64_t now = clock_mono_ms();
	uint64_t cur = 0, min_replay = UINT64_MAX;
	int n;

	if (!r)
		return false;
	memset(out, 0, sizeof(*out));
	n = PQntuples(r);
	for (int i = 0; i < n; i++) {
		if (strcmp(PQgetvalue(r, i, 1), "t") == 0) {
			snprintf(err->msg, sizeof(err->msg),
				 "pg_stat_replication hides the standbys' replay positions from this role");
			err->sqlstate[0] = '\0';
			PQclear(r);
			return false;
		}
		cur = strtoull(PQgetvalue(r, i, 0), NULL, 10);
		if (strtoull(PQgetvalue(r, i, 3), NULL, 10) < min_replay)
			min_replay = strtoull(PQgetvalue(r, i, 3), NULL, 10);
	}
	if (n > 0)
		sample(l, now, cur, min_replay, true);
	for (int i = 0; i < n; i++) {
		uint64_t replay = strtoull(PQgetvalue(r, i, 3), NULL, 10);
		int64_t lag = 0;

		if (replay < cur) {
			int64_t server = atoll(PQgetvalue(r, i, 4));

			lag = seen_lag(l, now, replay);
			if (server > lag)
				lag = server;
		}
		out->standbys++;
		if (out->standbys == 1 || lag > out->lag_ms) {
			out->lag_ms = lag;
			out->behind_bytes = replay < cur ? (long long)(cur - replay) : 0;
			snprintf(out->standby, sizeof(out->standby), "%s", PQgetvalue(r, i, 2));
		}
	}
	PQclear(r);
	return true;
}
