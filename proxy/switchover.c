/*
 * The switchover state machine (see switchover.h), on the main loop:
 *
 *   begin:  workers stop connecting new sessions (they wait), a hold on
 *           everything parks each idle session's next unit of work;
 *   drain:  every few ms, count sessions on other upstreams that are busy
 *           (inside a transaction or with a statement in flight); go on
 *           when none is left or drain_ms has passed;
 *   finish: each worker makes the target active, closes its old sessions
 *           (idle and parked ones now, busy ones at their next idle point
 *           or now), and lets waiting sessions connect; the hold goes.
 *
 * Parked units never reached the old server; closing their sessions with
 * 57P01 tells pools to reconnect, and they reconnect to the new upstream.
 */
#include "switchover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_body.h"
#include "hold_registry.h"
#include "pgvalve/admin_api.h"
#include "pgvalve/jsonval.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "session.h"
#include "worker.h"
#include "pgvalve/clock.h"

#define SWITCHOVER_HOLD_ID "pgvalve-switchover"
#define SWITCHOVER_TICK_MS 5
#define SWITCHOVER_MAX_DRAIN_MS 300000
/* The hold outlives the drain by this much: the finish step always comes first. */
#define SWITCHOVER_HOLD_SLACK_MS 30000

struct switchover {
	int target;
	int previous;
	int64_t drain_ms;
	bool terminate; /* on_drain_timeout "terminate": close busy sessions at once */
	int64_t started_ms;
	struct event *tick;
	switchover_done_fn done;
	void *ctx;     /* NULL once the requester went away */
	char why[160]; /* the 57P01 message old sessions get */
};

static struct event_base *switch_base;
static struct switchover *current;

void switchover_init(struct event_base *base)
{
	switch_base = base;
}

/* ---- worker jobs ------------------------------------------------------------ */

static void begin_job(struct worker *w, void *arg)
{
	w->switching = true;
}

/* Whether 's' has a server connection to an upstream other than 'target', and is not closing. */
static bool on_other_upstream(const struct session *s, int target)
{
	int up = session_upstream(s);

	return up >= 0 && up != target && session_activity(s) != SESSION_ACT_CLOSING;
}

/* Busy: logged in, not parked, and inside a transaction or with work in flight. */
static bool busy(const struct session *s)
{
	enum session_activity a = session_activity(s);

	return a == SESSION_ACT_ACTIVE || a == SESSION_ACT_IN_TRANSACTION;
}

struct busy_count {
	int target;
	int busy;
};

static void count_job(struct worker *w, void *arg)
{
	struct busy_count *c = arg;

	for (struct session *s = w->sessions; s; s = s->next)
		if (on_other_upstream(s, c->target) && busy(s))
			c->busy++;
}

struct finish {
	const struct switchover *sw;
	int closed;   /* closed now */
	int retiring; /* inside a transaction: closed at their next idle point */
	cJSON *retiring_pids;
};

static void finish_job(struct worker *w, void *arg)
{
	struct finish *f = arg;
	struct session *s, *next;

	w->active = f->sw->target;
	w->switching = false;
	for (s = w->sessions; s; s = next) {
		next = s->next;
		if (session_connect_upstream(s)) /* it was waiting for this; may free s */
			continue;
		if (!on_other_upstream(s, f->sw->target))
			continue;
		if (busy(s) && !f->sw->terminate) {
			f->retiring++;
			cJSON_AddItemToArray(f->retiring_pids, cJSON_CreateNumber(s->backend_pid));
		} else {
			f->closed++;
		}
		session_retire(s, f->sw->why, f->sw->terminate); /* may free s */
	}
}

/* Without switching: waiting sessions connect to the upstream that stays active. */
static void abort_job(struct worker *w, void *arg)
{
	struct session *s, *next;

	w->switching = false;
	for (s = w->sessions; s; s = next) {
		next = s->next;
		(void)session_connect_upstream(s); /* only one waiting connects; may free s */
	}
}

/* ---- the main-thread side ---------------------------------------------------- */

static void end(int status, cJSON *doc)
{
	struct switchover *sw = current;

	current = NULL;
	event_free(sw->tick);
	if (sw->ctx)
		sw->done(sw->ctx, status, doc);
	else
		cJSON_Delete(doc);
	free(sw);
}

static int count_busy(int target)
{
	struct busy_count *per = worker_slots(sizeof(*per));
	int n = 0;

	for (int i = 0; i < rt.n_workers; i++)
		per[i].target = target;
	WORKER_FANOUT(count_job, per);
	for (int i = 0; i < rt.n_workers; i++)
		n += per[i].busy;
	free(per);
	return n;
}

static void finish(bool drained)
{
	struct switchover *sw = current;
	struct finish *per = worker_slots(sizeof(*per));
	const struct config *cfg = &rt.snap->cfg;
	int closed = 0, retiring = 0;
	int64_t elapsed = clock_mono_ms() - sw->started_ms;
	cJSON *doc = cJSON_CreateObject(), *pids = cJSON_CreateArray(), *pid;

	for (int i = 0; i < rt.n_workers; i++) {
		per[i].sw = sw;
		per[i].retiring_pids = cJSON_CreateArray();
	}
	WORKER_FANOUT(finish_job, per);
	rt.snap->active = sw->target; /* for /status and the next reload */
	(void)hold_registry_release(SWITCHOVER_HOLD_ID);
	for (int i = 0; i < rt.n_workers; i++) {
		closed += per[i].closed;
		retiring += per[i].retiring;
		cJSON_ArrayForEach(pid, per[i].retiring_pids)
			cJSON_AddItemToArray(pids, cJSON_CreateNumber(pid->valuedouble));
		cJSON_Delete(per[i].retiring_pids);
	}
	free(per);
	log_info("switchover: upstream \"%s\" is active (was \"%s\"); %s after %lld ms; %d old session(s) "
		 "closed, %d %s",
		 cfg->upstreams[sw->target].name, cfg->upstreams[sw->previous].name,
		 drained ? "drained" : "drain_ms ran out", (long long)elapsed, closed, retiring,
		 "inside a transaction, closed at their next idle point");
	cJSON_AddStringToObject(doc, "upstream", cfg->upstreams[sw->target].name);
	cJSON_AddStringToObject(doc, "previous", cfg->upstreams[sw->previous].name);
	cJSON_AddBoolToObject(doc, "drained", drained);
	cJSON_AddNumberToObject(doc, "held_ms", (double)(clock_mono_ms() - sw->started_ms));
	cJSON_AddNumberToObject(doc, "closed", closed);
	cJSON_AddNumberToObject(doc, "retiring", retiring);
	cJSON_AddItemToObject(doc, "retiring_pids", pids);
	end(200, doc);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	int busy_now = count_busy(current->target);

	if (busy_now == 0)
		finish(true);
	else if (clock_mono_ms() - current->started_ms >= current->drain_ms)
		finish(false);
}

/* Reads the body into 'sw'. Returns 0 or an HTTP status with 'err' filled. */
static int parse_body(const cJSON *body, struct switchover *sw, char *err, size_t errlen)
{
	struct admin_switchover_body b;
	char why[512];

	if (!admin_body_switchover(body, SWITCHOVER_MAX_DRAIN_MS, &b, err, errlen))
		return 400;
	sw->target = config_upstream_index(&rt.snap->cfg, b.upstream, why, sizeof(why));
	if (sw->target < 0) {
		jsonval_fail(err, errlen, ADMIN_SWITCHOVER_UPSTREAM, "%s", why);
		return 400;
	}
	sw->drain_ms = b.drain_ms;
	sw->terminate = b.terminate;
	sw->previous = rt.snap->active;
	if (sw->target == sw->previous) {
		snprintf(err, errlen, "upstream \"%s\" is active already", b.upstream);
		return 409;
	}
	return 0;
}

/* The hold on everything that stops new work while old sessions drain. */
static struct hold *switchover_hold(const struct switchover *sw)
{
	struct hold *h = calloc(1, sizeof(*h) + sizeof(h->tables[0]));

	if (!h)
		return NULL;
	snprintf(h->id, sizeof(h->id), "%s", SWITCHOVER_HOLD_ID);
	h->mode = HOLD_ALL;
	h->policy = HOLD_QUEUE;
	h->on_timeout = HOLD_TIMEOUT_RELEASE;
	h->lease_ms = sw->drain_ms + SWITCHOVER_HOLD_SLACK_MS;
	h->max_wait_ms = sw->drain_ms + SWITCHOVER_HOLD_SLACK_MS;
	h->n_tables = 1;
	snprintf(h->tables[0].name, sizeof(h->tables[0].name), "*");
	return h;
}

int switchover_begin(const cJSON *body, switchover_done_fn done, void *ctx, char *err, size_t errlen)
{
	struct switchover *sw;
	struct hold *hold = NULL;
	struct timeval tick = { 0, SWITCHOVER_TICK_MS * 1000 };
	int status;

	if (current) {
		snprintf(err, errlen, "a switchover to \"%s\" is in progress",
			 rt.snap->cfg.upstreams[current->target].name);
		return 409;
	}
	sw = calloc(1, sizeof(*sw));
	if (!sw) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	status = parse_body(body, sw, err, errlen);
	if (status == 0 && !(hold = switchover_hold(sw))) {
		snprintf(err, errlen, "out of memory");
		status = 500;
	}
	if (status == 0 && !(sw->tick = event_new(switch_base, -1, EV_PERSIST, on_tick, NULL))) {
		free(hold);
		snprintf(err, errlen, "out of memory");
		status = 500;
	}
	if (status != 0) {
		free(sw);
		return status;
	}
	sw->done = done;
	sw->ctx = ctx;
	sw->started_ms = clock_mono_ms();
	snprintf(sw->why, sizeof(sw->why),
		 "terminating connection: pgvalve-proxy switched to upstream \"%s\"; reconnect",
		 rt.snap->cfg.upstreams[sw->target].name);
	worker_fanout(begin_job, NULL, 0);
	status = hold_registry_add(hold, NULL, err, errlen); /* takes 'hold' */
	if (status != 0) {
		worker_fanout(abort_job, NULL, 0);
		event_free(sw->tick);
		free(sw);
		return status;
	}
	current = sw;
	log_info("switchover to upstream \"%s\": holding everything, draining sessions on \"%s\" for up "
		 "to %lld ms",
		 rt.snap->cfg.upstreams[sw->target].name, rt.snap->cfg.upstreams[sw->previous].name,
		 (long long)sw->drain_ms);
	/* Often nothing is busy: finish without waiting a tick. */
	on_tick(-1, 0, NULL);
	if (current)
		event_add(current->tick, &tick);
	return 0;
}

void switchover_forget_requester(void *ctx)
{
	if (current && current->ctx == ctx)
		current->ctx = NULL;
}

void switchover_abort(const char *why)
{
	cJSON *doc;

	if (!current)
		return;
	worker_fanout(abort_job, NULL, 0);
	(void)hold_registry_release(SWITCHOVER_HOLD_ID);
	log_warn("switchover to upstream \"%s\" aborted: %s", rt.snap->cfg.upstreams[current->target].name,
		 why);
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, ADMIN_ERROR, why);
	end(503, doc);
}
