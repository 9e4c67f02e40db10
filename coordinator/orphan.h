/*
 * Backends a dead coordinator left behind. The session that holds the
 * one-coordinator lock (journal_lock) keeps it until the server notices its
 * coordinator is gone: at once for an idle session, within
 * client_connection_check_interval for a running query (db.h), and, before
 * PostgreSQL 14 or when the coordinator's machine vanished, maybe only when
 * the query ends. This file has the journal record whose each coordinator
 * session is (journal.h, coordinator sessions), and from that record tells a
 * lock holder orphaned by a dead coordinator of this machine (ended with
 * pg_terminate_backend), one it cannot judge (waited for, within a bound) and
 * a live coordinator (refused). It neither takes the lock nor queries the
 * journal's tables: journal_lock takes the lock and calls in here, and the
 * journal's functions read and write the records. See docs/recovery.md.
 */
#ifndef PGVALVE_COORDINATOR_ORPHAN_H
#define PGVALVE_COORDINATOR_ORPHAN_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

/* How long a lock holder that cannot be judged from here is waited for before refusing. */
#define ORPHAN_WAIT_MS 30000
/* How long a backend ended with pg_terminate_backend gets to go away. */
#define ORPHAN_END_WAIT_MS 30000

/* One wait for the lock; zero it before the first orphan_resolve(). */
struct orphan_wait {
	int64_t started_ms;  /* 0: not waiting yet */
	int64_t reported_ms; /* the last "still waiting" line */
	int announced_pid;   /* the holder the wait was announced for */
};

/*
 * The lock is held by backend 'holder_pid' (0: not seen). Ends it when the
 * journal shows its coordinator ran on this machine and is gone, waits a
 * little when it cannot tell, and returns true: try the lock again. Returns
 * false, 'err' saying who holds it (the coordinator's pid when known), when
 * the holder is a live coordinator, when the wait is over, or on a database
 * error.
 */
bool orphan_resolve(PGconn *c, int holder_pid, struct orphan_wait *w, struct db_error *err)
	__attribute__((warn_unused_result));

/*
 * With the lock held by 'c': ends what sessions of dead coordinators of this
 * machine are still connected (they hold no lock now but may still run
 * statements), forgets the records of backends that are gone, and records
 * this process's sessions. False with 'err' filled when it could not record
 * them; the lock is held either way.
 */
bool orphan_register(PGconn *c, struct db_error *err) __attribute__((warn_unused_result));

#endif
