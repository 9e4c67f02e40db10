/*
 * A worker: one thread, one libevent loop, its own listening socket
 * (SO_REUSEPORT), its sessions, buffer pool and counters. Other threads
 * never touch a worker's data directly: they post jobs, which the worker
 * runs on its own loop (worker_call_all waits for all of them).
 */
#ifndef PGVALVE_PROXY_WORKER_H
#define PGVALVE_PROXY_WORKER_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "hold.h"
#include "pgvalve/classify_cache.h"
#include "relay.h"
#include "runtime.h"
#include "stats.h"

/*
 * Each worker's parse cache (DESIGN.md §3.2): enough for the distinct
 * statements of a large ORM application, at a bounded cost per worker.
 */
#define WORKER_PARSE_CACHE_ENTRIES 8192
#define WORKER_PARSE_CACHE_BYTES (16u << 20)

struct session;
struct worker;

typedef void (*worker_job_fn)(struct worker *w, void *arg);

struct worker_job {
	worker_job_fn fn;
	void *arg;
	struct worker_job *next;
	struct worker_batch *batch;
};

struct worker {
	int index;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener *listener;
	const struct snapshot *snap;
	struct relay_rules c2s_rules;
	struct relay_rules s2c_rules;

	struct session *sessions; /* all sessions of this worker, newest first */
	atomic_int n_sessions;    /* written by this worker; read by others to balance accepts */
	struct relay_pool pool;
	struct stats stats;
	bool draining;
	int active;     /* upstream index new sessions connect to */
	bool switching; /* a switchover is draining: new sessions wait to connect */

	const struct hold_set *holds; /* NULL or empty: nothing is classified */
	struct session *parked_head;  /* parked sessions, in arrival order */
	struct session *parked_tail;
	struct classify_result classify_scratch; /* one classification at a time per worker */
	struct classify_cache *classify_cache;   /* this worker's parse cache (never NULL after init) */

	pthread_mutex_t jobs_mu;
	struct worker_job *jobs; /* LIFO; order across one batch does not matter */
	int wake_fd;             /* eventfd: jobs are waiting */
	struct event *wake_ev;
};

/* Binds the worker's listening socket; called on the main thread so errors surface at start. */
bool worker_init(struct worker *w, int index, const struct snapshot *snap, char *err, size_t errlen)
	__attribute__((warn_unused_result));
bool worker_start(struct worker *w) __attribute__((warn_unused_result));
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Runs fn(w, arg) on worker 'w' later, without waiting. Returns false if it could not be queued. */
bool worker_post(struct worker *w, worker_job_fn fn, void *arg) __attribute__((warn_unused_result));

/* Runs fn(w, arg) on worker 'w' and returns when it has finished. */
void worker_call(struct worker *w, worker_job_fn fn, void *arg);

/* Runs fn(worker, args[i]) on every worker and returns when all have finished. */
void worker_call_all(worker_job_fn fn, void **args);

/* Switches a worker to a new snapshot and its active upstream (job body; also used at init). */
void worker_apply_snapshot(struct worker *w, const struct snapshot *snap);

/* A parked session, as the main thread may know it: by worker and id, never by pointer. */
struct parked_ref {
	int64_t parked_at_ms;
	int worker;
	uint64_t session_id;
};

/* Job argument and answer for worker_apply_holds. */
struct hold_apply {
	const struct hold_set *set; /* the new set (may be empty) */
	const char *count_id;       /* count sessions parked on this hold (NULL: on any) */
	bool list_parked;           /* fill 'parked_refs' (a hold went away: some may resume) */
	int parked;
	int in_transaction;
	cJSON *pids;                    /* backend PIDs of sessions inside a transaction */
	struct parked_ref *parked_refs; /* malloc'd; the caller frees */
	int n_parked_refs;
};

/* Job: switches the worker to a new hold set; parked sessions are re-checked by the caller. */
void worker_apply_holds(struct worker *w, void *arg);

/* Job: re-checks one parked session (arg: its uint64_t id) against the current set. */
void worker_recheck_parked(struct worker *w, void *arg);

time_t worker_now(struct worker *w);

#endif
