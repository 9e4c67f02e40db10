/*
 * The backfill's replication-lag throttle (docs/architecture.md §4.9,
 * --max-lag): how far behind the server's standbys replay, as a duration.
 *
 * A standby's lag is the larger of two measures: the server's own
 * pg_stat_replication.replay_lag, and how long ago the coordinator saw the
 * server write WAL that the standby has not replayed yet (samples of
 * pg_current_wal_lsn() taken at each check). The second one keeps growing
 * while a standby's replay is stuck, where replay_lag only moves when the
 * standby passes one of the server's own samples. A standby that has
 * replayed everything has no lag. Only walsenders that report a replay
 * position count: base backups and pg_receivewal do not replay.
 */
#ifndef PGVALVE_COORDINATOR_KEYCHANGE_LAG_H
#define PGVALVE_COORDINATOR_KEYCHANGE_LAG_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

#define KC_LAG_SAMPLES 64
#define KC_LAG_NAME_MAX 128

struct kc_lag {
	struct {
		int64_t at_ms; /* clock_mono_ms() */
		uint64_t lsn;  /* pg_current_wal_lsn() then */
	} s[KC_LAG_SAMPLES];
	int n;
};

/* The worst standby at one check. */
struct keychange_lag_reading {
	int standbys;                  /* walsenders that replay (0: nothing to wait for) */
	int64_t lag_ms;                /* the largest lag among them */
	char standby[KC_LAG_NAME_MAX]; /* which one: application_name, or its address */
	long long behind_bytes;        /* its replay position's distance to the server's WAL */
};

void keychange_lag_init(struct kc_lag *l);

/*
 * Reads pg_stat_replication on 'c' (the primary) and records a sample.
 * False with 'err' filled when it cannot be read, or when the role may not
 * see the standbys' positions (it needs pg_monitor or pg_read_all_stats).
 */
bool keychange_lag_read(PGconn *c, struct kc_lag *l, struct keychange_lag_reading *out, struct db_error *err);

#endif
