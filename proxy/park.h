/*
 * Holds on the hot path: the check of each unit of work against the worker's
 * hold set, parking a unit (its session stops reading the client), resuming
 * it, rejecting it with 55P03, and the worker's list of parked sessions. The
 * hold table itself is hold.c's and the registry on the main thread is
 * hold_registry.c's; this file owns what a worker does with them.
 */
#ifndef PGVALVE_PROXY_PARK_H
#define PGVALVE_PROXY_PARK_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "hold.h"
#include "relay.h"

struct session;
struct worker;

/*
 * Where a session's current unit of work is with respect to the holds. A
 * session has one; it changes only in park_set_state(), which keeps the
 * parked list and the relay's track_all in step with it.
 *
 *   from \ to        FREE  PARKED  BYPASS  EXPIRED  CANCELED  DISCARDING  REJECT_AT_READY
 *   FREE              -     hold     .       .        .     reject(ext)      .
 *   PARKED          resume  rehold  release  reject  cancel   reject(ext)      .
 *   BYPASS          ready    .       -       .        .         .              .
 *   EXPIRED         check    .       .       -        .     reject(ext)      .
 *   CANCELED        answer   .       .       .        -     answer(ext)      .
 *   DISCARDING      sync     .       .       .        .         -         sync(sent)
 *   REJECT_AT_READY ready    .       .       .        .         .              -
 *
 *   hold        a queue hold collides with the unit (or any hold does, before
 *               login completes: the client cannot be answered before that)
 *   rehold      a re-check finds it collides with another hold
 *   resume      nothing holds it any more, or a Query is rejected at once
 *               (55P03 and ReadyForQuery queued), or the session goes away
 *               (any state may go to FREE then)
 *   release     max_wait_ms ran out, on_timeout release
 *   reject      max_wait_ms ran out, on_timeout reject; or login completed
 *               for a unit a reject hold parked
 *   check       the expired unit's re-check: rejected (a Query at once), or
 *               no hold any more
 *   cancel      a CancelRequest names the session (park_cancel)
 *   answer      the cancelled unit's re-scan: a Query or FunctionCall is
 *               answered 57014 and ReadyForQuery at once; 'ext': an
 *               extended-protocol unit is dropped up to its Sync, as a
 *               rejected one
 *   reject(ext) an extended-protocol unit is rejected: drop up to its Sync
 *   sync        its Sync arrives and nothing of it reached the server (the
 *               55P03, or 57014 for a cancelled unit, and a ReadyForQuery
 *               are queued for the client)
 *   sync(sent)  part of the batch reached the server, which must see the Sync
 *   ready       the server's ReadyForQuery ends the unit (REJECT_AT_READY: the
 *               55P03 goes in front of it)
 */
enum park_state {
	PARK_FREE,            /* no unit held back: the next one is checked when it starts */
	PARK_PARKED,          /* the unit waits unscanned in c2s, on the worker's parked list (the
			       * client is still read, unscanned, to notice it leaving) */
	PARK_BYPASS,          /* max_wait_ms ran out (release): the unit goes through, unchecked */
	PARK_EXPIRED,         /* to be rejected (max_wait_ms ran out, on_timeout reject) at its re-check */
	PARK_CANCELED,        /* a CancelRequest came while parked: answered 57014 at its re-scan */
	PARK_DISCARDING,      /* a rejected extended unit: its messages are dropped up to its Sync */
	PARK_REJECT_AT_READY, /* the 55P03 waits to go in front of the server's ReadyForQuery */
	PARK_N_STATES,
};

/* A session's share of the hold machinery. Only park.c writes it. */
struct park {
	enum park_state state;
	const struct hold *hold; /* PARKED: what it waits on; borrowed from the worker's hold set */
	struct session *next;    /* PARKED: the worker's parked list, in arrival order */
	int64_t since_ms;        /* PARKED: when (clock_mono_ms) */
	uint64_t arrival;        /* PARKED: when, as a process-wide count (orders parking across workers) */
	bool canceled;           /* the unit being rejected was cancelled: 57014, not 55P03 */
	char rejected_table[CLASSIFY_NAME_MAX]; /* for the 55P03 message */
	char rejected_hold[ADMIN_HOLD_ID_MAX];
	/* The newest hold (seq) in force when the session last began a unit while idle: its transaction's holds. */
	uint64_t tx_placed_by;
	/*
	 * The newest hold (seq) placed while a unit of this session, outside a
	 * transaction, was in flight (forwarded, its ReadyForQuery not yet seen);
	 * 0 once nothing is in flight. The hold's 201 waits for it (hold_registry.h).
	 */
	uint64_t in_flight_for;
};

/* A worker's parked sessions, oldest first. Only park.c touches it. */
struct park_list {
	struct session *head;
	struct session *tail;
	int n;
};

/*
 * A parked session, as the main thread may know it: by worker and id, never
 * by pointer. 'arrival' orders parked sessions of all workers by when they
 * parked (a millisecond clock cannot: many park in the same millisecond).
 */
struct parked_ref {
	uint64_t arrival;
	int worker;
	uint64_t session_id;
};

/* Job argument and answer for park_apply_holds_job. */
struct hold_apply {
	const struct hold_set *set; /* the new set (may be empty) */
	const char *count_id;       /* count sessions parked on this hold (NULL: on any) */
	bool list_parked;           /* fill 'parked_refs' (a hold went away: some may resume) */
	int parked;
	int in_transaction;
	int in_flight;                  /* sessions marked in_flight_for the new hold (count_id set) */
	cJSON *pids;                    /* backend PIDs of sessions inside a transaction */
	struct parked_ref *parked_refs; /* malloc'd; the caller frees */
	int n_parked_refs;
};

/* Job: switches the worker to a new hold set; parked sessions are re-checked by the caller. */
void park_apply_holds_job(struct worker *w, void *arg);

/* Job argument and answer for park_count_in_flight_job. */
struct in_flight_count {
	uint64_t seq; /* the hold's */
	int n;        /* sessions whose unit in flight when it came is not done yet */
};

/* Job: counts the sessions still running a unit that was in flight when hold 'seq' came. */
void park_count_in_flight_job(struct worker *w, void *arg);

/* Job: re-checks one parked session (arg: its uint64_t id) against the current set. */
void park_recheck_job(struct worker *w, void *arg);

/*
 * A client message of the unit being rejected (PARK_DISCARDING): returns
 * RELAY_MSG_DROP for it, or RELAY_MSG_PASS when the message is not the
 * discarded unit's (the session then goes on with it). May close the session.
 */
enum relay_msg park_discard(struct session *s, uint8_t type);

/*
 * The hold check for one message of a unit of work: Query, Parse (its SQL),
 * Bind (the named statement's SQL), FunctionCall (unknowable). Returns PASS,
 * STOP (parked: scanning stops before it) or DROP (rejected).
 */
enum relay_msg park_check(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len);

/* The server's ReadyForQuery ended the current unit (a bypassed one is checked no more). */
void park_unit_done(struct session *s);

/*
 * In PARK_REJECT_AT_READY, with the s2c scan stopped at the ReadyForQuery:
 * puts the 55P03 in front of it. Returns false if the session closed instead.
 */
bool park_reject_before_ready(struct session *s);

/*
 * The session just logged in: arms its timer for the client idle check, or,
 * if a unit it sent before login completed is parked, for what is left of
 * that unit's max_wait_ms (parking before login keeps the login deadline).
 */
void park_login_done(struct session *s);

/* max_wait_ms ran out for a parked session: releases or rejects its unit, per the hold. */
void park_timed_out(struct session *s);

/*
 * A CancelRequest for session 'session_id' of worker 'w' (run on that
 * worker). If the session's unit of work is parked, the unit is answered as
 * PostgreSQL answers a cancelled query (ErrorResponse 57014, then
 * ReadyForQuery; an extended-protocol unit is dropped up to its Sync) and
 * never reaches the server: returns true, and the cancel must not be
 * forwarded. False: nothing parked for that session; the cancel is the
 * server's. May free the session.
 */
bool park_cancel(struct worker *w, uint64_t session_id);

/* The session leaves the hold machinery (closing or freed): unparks it. */
void park_leave(struct session *s);

/* Adds "parked_on" and "parked_ms" to a parked session's JSON description. */
void park_describe(const struct session *s, cJSON *o);

/* Whether the worker's parked list and its sessions' park states agree (tests, fuzzing). */
bool park_list_consistent(const struct worker *w);

const char *park_state_name(enum park_state state);

#endif
