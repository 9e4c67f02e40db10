/*
 * Holds on the hot path (see park.h): the hold check of each unit of work,
 * parking, resuming, rejecting with 55P03, and each worker's parked list.
 * It owns struct park in every session and struct park_list in every worker;
 * the hold set it reads is published by hold_registry.c, and the bytes of a
 * parked unit stay in the session's relay buffer (session.c's).
 */
#include "park.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/clock.h"
#include "pgvalve/pgwire.h"
#include "runtime.h"
#include "session.h"
#include "unit_sql.h"
#include "worker.h"

#define TO(state) (1u << (state))

/* Counts units parked by every worker: a unit's number says when it parked (struct park.arrival). */
static atomic_uint_fast64_t arrivals;

/* The transitions park.h's table allows, as a bit set of targets per state. */
static const unsigned allowed[PARK_N_STATES] = {
	[PARK_FREE] = TO(PARK_PARKED) | TO(PARK_DISCARDING),
	[PARK_PARKED] = TO(PARK_FREE) | TO(PARK_PARKED) | TO(PARK_BYPASS) | TO(PARK_EXPIRED) |
		TO(PARK_CANCELED) | TO(PARK_DISCARDING),
	[PARK_BYPASS] = TO(PARK_FREE),
	[PARK_EXPIRED] = TO(PARK_FREE) | TO(PARK_DISCARDING),
	[PARK_CANCELED] = TO(PARK_FREE) | TO(PARK_DISCARDING),
	[PARK_DISCARDING] = TO(PARK_FREE) | TO(PARK_REJECT_AT_READY),
	[PARK_REJECT_AT_READY] = TO(PARK_FREE),
};

static const char *const state_names[PARK_N_STATES] = {
	[PARK_FREE] = "free",
	[PARK_PARKED] = "parked",
	[PARK_BYPASS] = "bypass",
	[PARK_EXPIRED] = "expired",
	[PARK_CANCELED] = "canceled",
	[PARK_DISCARDING] = "discarding",
	[PARK_REJECT_AT_READY] = "reject_at_ready",
};

const char *park_state_name(enum park_state state)
{
	return (unsigned)state < PARK_N_STATES ? state_names[state] : "invalid";
}

/* ---- the parked list ------------------------------------------------------ */

static void list_append(struct worker *w, struct session *s)
{
	struct park_list *l = &w->parked;

	s->park.next = NULL;
	if (l->tail)
		l->tail->park.next = s;
	else
		l->head = s;
	l->tail = s;
	l->n++;
}

static void list_remove(struct worker *w, struct session *s)
{
	struct park_list *l = &w->parked;
	struct session **link, *prev = NULL;

	for (link = &l->head; *link && *link != s; link = &(*link)->park.next)
		prev = *link;
	if (!*link)
		return; /* defensive: a parked session is always on its worker's list */
	*link = s->park.next;
	if (l->tail == s)
		l->tail = prev;
	s->park.next = NULL;
	l->n--;
}

bool park_list_consistent(const struct worker *w)
{
	const struct park_list *l = &w->parked;
	const struct session *s, *last = NULL;
	int n = 0, parked = 0;

	for (s = l->head; s; s = s->park.next) {
		if (s->w != w || s->park.state != PARK_PARKED || !s->park.hold || ++n > l->n)
			return false;
		last = s;
	}
	for (s = w->sessions; s; s = s->next) {
		if ((unsigned)s->park.state >= PARK_N_STATES)
			return false;
		parked += s->park.state == PARK_PARKED;
	}
	return n == l->n && parked == n && last == l->tail && (l->head == NULL) == (l->tail == NULL);
}

/* ---- the one place the state changes -------------------------------------- */

/*
 * Moves the session's unit to 'to' ('h': the hold it parks on, for PARKED).
 * Keeps the rest in step: the parked list, the arrival number and the
 * max_wait timer for PARKED, the relay's track_all for DISCARDING (every
 * message up to the Sync must be seen to be dropped) and CANCELED (the
 * cancelled unit's first message must be seen, whatever its type).
 */
static void park_set_state(struct session *s, enum park_state to, const struct hold *h)
{
	struct park *p = &s->park;
	enum park_state from = p->state;

	if (from == to && to != PARK_PARKED)
		return;
	if (!(allowed[from] & TO(to))) {
		/* Defensive: a bug. Debug builds stop here; a release logs and goes on. */
		session_log(s, LOG_ERROR, "bug: hold state %s -> %s is not a transition park.h allows",
			    park_state_name(from), park_state_name(to));
		assert(!"park state transition not allowed");
	}
	if (from == PARK_PARKED && to != PARK_PARKED) {
		list_remove(s->w, s);
		p->hold = NULL;
		session_log(s, LOG_DEBUG, "resumed after %lld ms parked",
			    (long long)(clock_mono_ms() - p->since_ms));
		/* Before login the timer is the login deadline, which parking left alone. */
		if (s->state == SESSION_READY)
			session_timer_idle(s);
	}
	s->c2s.track_all = to == PARK_DISCARDING || to == PARK_CANCELED;
	p->state = to;
	switch (to) {
	case PARK_PARKED:
		if (from != PARK_PARKED) {
			p->since_ms = clock_mono_ms();
			p->arrival = atomic_fetch_add(&arrivals, 1) + 1;
			list_append(s->w, s);
			/* A unit sent before login completes keeps the login deadline; see park_login_done. */
			if (s->state == SESSION_READY)
				session_timer_arm(s, (int)h->max_wait_ms);
			session_log(s, LOG_DEBUG, "parked by hold %s", h->id);
		}
		p->hold = h;
		break;
	default:
		break;
	}
}

/* ---- rejecting ------------------------------------------------------------ */

/*
 * Answers a rejected unit as the server would answer a lock_timeout: an
 * ErrorResponse (55P03), then ReadyForQuery, so the session stays usable. A
 * cancelled one is answered as the server answers a cancelled statement
 * (57014, https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS).
 */
static const char *reject_sqlstate(const struct session *s)
{
	return s->park.canceled ? "57014" : "55P03";
}

static size_t reject_message(struct session *s, uint8_t *msg, size_t cap, char *text, size_t tcap)
{
	if (s->park.canceled)
		snprintf(text, tcap, "canceling statement due to user request");
	else
		snprintf(text, tcap,
			 "pgvalve: table \"%s\" is held for a schema change (hold %s); retry shortly",
			 s->park.rejected_table, s->park.rejected_hold);
	return pgwire_build_error(msg, cap, "ERROR", reject_sqlstate(s), text);
}

/* For log lines: why the unit was answered instead of run. */
static void reject_log(struct session *s, const char *what)
{
	if (s->park.canceled)
		session_log(s, LOG_INFO, "cancelled %s while it was parked (hold %s)", what,
			    s->park.rejected_hold);
	else
		session_log(s, LOG_INFO, "rejected %s on \"%s\" (hold %s)", what, s->park.rejected_table,
			    s->park.rejected_hold);
}

/* Nothing of the unit reached the server: the proxy answers it alone, as the server would. */
static void finish_reject(struct session *s)
{
	uint8_t msg[600], ready[6] = { 'Z', 0, 0, 0, 5, (uint8_t)s->tx_status };
	char text[300];
	size_t n;

	park_set_state(s, PARK_FREE, NULL);
	n = reject_message(s, msg, sizeof(msg), text, sizeof(text));
	if (!relay_acquire(&s->s2c, &s->w->pool) || n > sizeof(msg) ||
	    !relay_append_scanned(&s->s2c, msg, (uint32_t)n) ||
	    !relay_append_scanned(&s->s2c, ready, sizeof(ready))) {
		/* Defensive: the server is mid-message to an idle session; closing is the safe answer. */
		session_close(s, reject_sqlstate(s), "%s", text);
		return;
	}
	reject_log(s, "a unit of work");
}

/*
 * Rejects the unit whose first message is 'type' (the reason is in
 * s->park): a Query or FunctionCall is a unit alone and is answered at
 * once; an extended-protocol unit is dropped up to its Sync first.
 */
static void start_reject(struct session *s, uint8_t type)
{
	if (type == 'Q' || type == 'F')
		finish_reject(s);
	else
		park_set_state(s, PARK_DISCARDING, NULL);
}

static void start_hold_reject(struct session *s, const struct hold *h, const char *table, uint8_t type)
{
	s->park.canceled = false;
	snprintf(s->park.rejected_table, sizeof(s->park.rejected_table), "%s", table ? table : "*");
	snprintf(s->park.rejected_hold, sizeof(s->park.rejected_hold), "%s", h->id);
	start_reject(s, type);
}

enum relay_msg park_discard(struct session *s, uint8_t type)
{
	if (s->park.state != PARK_DISCARDING)
		return RELAY_MSG_PASS;
	/* Discarding a rejected extended-protocol unit: everything up to its Sync goes. */
	if (type != 'S')
		return RELAY_MSG_DROP;
	if (!s->batch_forwarded) {
		finish_reject(s);
		return RELAY_MSG_DROP;
	}
	/*
	 * Part of this batch already reached the server: it must see the Sync to
	 * answer it, and the 55P03 goes in front of its ReadyForQuery.
	 */
	park_set_state(s, PARK_REJECT_AT_READY, NULL);
	return RELAY_MSG_PASS;
}

bool park_reject_before_ready(struct session *s)
{
	uint8_t msg[600];
	char text[300];
	size_t n = reject_message(s, msg, sizeof(msg), text, sizeof(text));

	park_set_state(s, PARK_FREE, NULL);
	if (n > sizeof(msg) || !relay_insert_scanned(&s->s2c, msg, (uint32_t)n)) {
		session_close(s, reject_sqlstate(s), "%s", text);
		return false;
	}
	reject_log(s, "the rest of an extended batch");
	return true;
}

/* ---- the check ------------------------------------------------------------ */

/* What a unit colliding with hold 'h' (or with none) becomes: passed, parked or rejected. */
static enum relay_msg hold_decide(struct session *s, const struct hold *h, const char *table, uint8_t type)
{
	if (!h) {
		park_set_state(s, PARK_FREE, NULL);
		return RELAY_MSG_PASS;
	}
	if ((h->policy == HOLD_REJECT || s->park.state == PARK_EXPIRED) && s->state == SESSION_READY) {
		start_hold_reject(s, h, table, type);
		return RELAY_MSG_DROP;
	}
	/*
	 * Before login completes the client cannot be answered yet (the server's
	 * authentication exchange and ReadyForQuery come first): a unit a reject
	 * hold meets then waits, and is rejected right after login.
	 */
	park_set_state(s, PARK_PARKED, h);
	return RELAY_MSG_STOP;
}

/*
 * A unit of an idle session (outside any transaction, nothing in flight) is
 * checked against every hold. Inside a transaction, parking could deadlock
 * against the DDL — the transaction may hold a lock the DDL waits for — so a
 * transaction runs on (the coordinator waits for it), except under the queue
 * holds that were in force when it began: each of its units was checked
 * against those, so it took no lock on their tables, and they park its units
 * too. Without that, a BEGIN, which names no table, would let every explicit
 * transaction past a hold. Reject and reroute holds leave such units alone:
 * a 55P03 the server never saw would leave its transaction open as if
 * nothing failed, and a session cannot move while its transaction is open.
 */
enum relay_msg park_check(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len)
{
	const struct hold_set *set = s->w->holds;
	struct classify_result *r = &s->w->classify_scratch;
	const char *table = NULL;
	bool in_tx;
	struct hold_scope scope = HOLD_SCOPE_ALL;
	const struct hold *h;

	/* A cancelled unit: its first message is this one (scanning stopped before it when it parked). */
	if (s->park.state == PARK_CANCELED) {
		start_reject(s, type);
		return RELAY_MSG_DROP;
	}
	/* A bypassed unit, or a rejected one whose 55P03 waits for the server: nothing to decide. */
	if (s->park.state == PARK_BYPASS || s->park.state == PARK_REJECT_AT_READY)
		return RELAY_MSG_PASS;
	in_tx = s->tx_status != 'I';
	if (!in_tx && s->syncs_pending == 0)
		s->park.tx_placed_by = set ? set->newest : 0;
	if (!set || set->n == 0 || s->syncs_pending > 0 || (in_tx && s->park.tx_placed_by == 0)) {
		park_set_state(s, PARK_FREE, NULL);
		return RELAY_MSG_PASS;
	}
	if (in_tx)
		scope = (struct hold_scope){ .placed_by = s->park.tx_placed_by, .queue_only = true };
	if (!unit_sql_classify(s, type, body, avail, len, r))
		return RELAY_MSG_PASS;
	h = hold_conflict(set, &scope, r, s->upstream,
			  &table); /* sets 'table': call it before reading that */
	return hold_decide(s, h, table, type);
}

void park_unit_done(struct session *s)
{
	if (s->park.state == PARK_BYPASS)
		park_set_state(s, PARK_FREE, NULL);
	if (s->syncs_pending == 0 && !s->batch_forwarded)
		s->park.in_flight_for = 0; /* what a hold's 201 waits for is done */
}

void park_login_done(struct session *s)
{
	int64_t left;

	if (s->park.state != PARK_PARKED) {
		session_timer_idle(s);
		return;
	}
	left = s->park.hold->max_wait_ms - (clock_mono_ms() - s->park.since_ms);
	if (s->park.hold->policy == HOLD_REJECT)
		left = 0; /* parked only because it came before login: rejected now */
	session_timer_arm(s, left > 0 ? (int)left : 0);
}

void park_timed_out(struct session *s)
{
	const struct hold *h = s->park.hold;
	/* Inside a transaction a 55P03 would leave it open on the server as if nothing failed: release. */
	bool reject = (h->policy == HOLD_REJECT || h->on_timeout == HOLD_TIMEOUT_REJECT) &&
		s->tx_status == 'I';

	if (h->policy == HOLD_REJECT)
		session_log(s, LOG_DEBUG, "hold %s rejects the unit sent before login completed", h->id);
	else
		session_log(s, LOG_WARN, "waited max_wait_ms (%lld) on hold %s: %s",
			    (long long)h->max_wait_ms, h->id, reject ? "rejecting" : "releasing");
	park_set_state(s, reject ? PARK_EXPIRED : PARK_BYPASS, NULL);
	/* The unit waits at c2s.scan: scanning again lets it through, or rejects it. */
	if (session_forward_client(s))
		s->kick_client = true;
}

bool park_cancel(struct worker *w, uint64_t session_id)
{
	struct session *s;

	for (s = w->parked.head; s && s->id != session_id; s = s->park.next)
		;
	/*
	 * Not parked (its unit may be running: the server cancels it), or parked
	 * before login completed, when the client cannot be answered yet: the
	 * server, idle, ignores the cancel, as PostgreSQL does between statements.
	 */
	if (!s || s->state != SESSION_READY)
		return false;
	s->park.canceled = true;
	snprintf(s->park.rejected_table, sizeof(s->park.rejected_table), "*");
	snprintf(s->park.rejected_hold, sizeof(s->park.rejected_hold), "%s", s->park.hold->id);
	park_set_state(s, PARK_CANCELED, NULL);
	/* The unit waits at c2s.scan: scanning again answers it and lets what follows be checked. */
	if (session_forward_client(s))
		s->kick_client = true;
	session_settle(s); /* may free s: nothing touches it after */
	return true;
}

void park_leave(struct session *s)
{
	park_set_state(s, PARK_FREE, NULL);
}

void park_describe(const struct session *s, cJSON *o)
{
	if (s->park.state != PARK_PARKED)
		return;
	cJSON_AddStringToObject(o, "parked_on", s->park.hold->id);
	cJSON_AddNumberToObject(o, "parked_ms", (double)(clock_mono_ms() - s->park.since_ms));
}

/* ---- worker jobs ---------------------------------------------------------- */

/*
 * A unit of work outside a transaction block reached the server and its
 * ReadyForQuery has not: the server may not have begun it, so a DDL taking
 * its lock now would run first (docs/architecture.md, holds). Units are not
 * classified while no hold is in force, so which tables it reads is unknown:
 * every such unit counts.
 */
static bool in_flight_outside_tx(const struct session *s)
{
	return s->state == SESSION_READY && s->tx_status == 'I' && s->park.state != PARK_PARKED &&
		(s->syncs_pending > 0 || s->batch_forwarded);
}

void park_apply_holds_job(struct worker *w, void *arg)
{
	struct hold_apply *a = arg;
	struct session *s;

	w->holds = a->set;
	worker_track_bodies(w);

	if (a->list_parked && w->parked.n > 0) {
		a->parked_refs = calloc((size_t)w->parked.n, sizeof(*a->parked_refs));
		for (s = w->parked.head; s && a->parked_refs; s = s->park.next)
			a->parked_refs[a->n_parked_refs++] = (struct parked_ref){ s->park.arrival, w->index,
										  s->id };
	}
	for (s = w->sessions; s; s = s->next) {
		if (a->count_id && in_flight_outside_tx(s)) {
			s->park.in_flight_for = a->set->newest; /* the new hold's seq */
			a->in_flight++;
		}
		switch (session_activity(s)) {
		case SESSION_ACT_PARKED:
			if (!a->count_id || strcmp(s->park.hold->id, a->count_id) == 0)
				a->parked++;
			break;
		case SESSION_ACT_IN_TRANSACTION:
			a->in_transaction++;
			if (a->pids)
				cJSON_AddItemToArray(a->pids, cJSON_CreateNumber(s->backend_pid));
			break;
		default:
			break;
		}
	}
}

void park_count_in_flight_job(struct worker *w, void *arg)
{
	struct in_flight_count *c = arg;

	for (const struct session *s = w->sessions; s; s = s->next)
		c->n += s->park.in_flight_for >= c->seq && s->state != SESSION_CLOSING;
}

void park_recheck_job(struct worker *w, void *arg)
{
	uint64_t id = *(const uint64_t *)arg;
	struct session *s;

	for (s = w->parked.head; s && s->id != id; s = s->park.next)
		;
	if (!s)
		return; /* resumed, rejected or gone since the list was taken */
	/* The unit waits at c2s.scan: scanning again runs the hold check against the new set. */
	if (session_forward_client(s) && s->park.state != PARK_PARKED)
		s->kick_client = true; /* more may have arrived behind it; read on */
	session_settle(s);             /* may free s: nothing touches it after */
}
