/*
 * A worker: one thread, one libevent loop, its own listening socket
 * (SO_REUSEPORT), its sessions, buffer pool and counters. Other threads
 * never touch a worker's data directly: they post jobs, which the worker
 * runs on its own loop (worker_fanout runs one on every worker and waits).
 * It knows sessions only through the hooks it is given: what a session is
 * and does is session.c's, holds are park.c's.
 */
#ifndef PGVALVE_PROXY_WORKER_H
#define PGVALVE_PROXY_WORKER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "hold.h"
#include "latency.h"
#include "park.h"
#include "pgvalve/classify_cache.h"
#include "relay.h"
#include "runtime.h"
#include "stats.h"

/*
 * Each worker's parse cache (docs/architecture.md, the hold check): enough
 * for the distinct statements of a large ORM application, at a bounded cost
 * per worker.
 */
#define WORKER_PARSE_CACHE_ENTRIES 8192
#define WORKER_PARSE_CACHE_BYTES (16u << 20)

struct auth_lookup;
struct session;
struct worker;

typedef void (*worker_job_fn)(struct worker *w, void *arg);

/* What a worker asks of the sessions layer above it (main.c passes session.c's). */
struct worker_hooks {
	/* Takes an accepted socket. */
	void (*accept)(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen);
	/* Fills the relay rules of both directions. */
	void (*rules)(struct relay_rules *c2s, struct relay_rules *s2c);
	/* Frees a session at once (teardown). */
	void (*free_session)(struct session *s);
};

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
	const struct worker_hooks *hooks;
	struct relay_rules c2s_rules;
	struct relay_rules s2c_rules;
	uint64_t rules_gen; /* moves on whenever the two above change */
	/*
	 * What a logged-in session's relay reads: the rules above raised for
	 * statement refresh (stmt_refresh.c refresh_rules), derived once per
	 * rules_gen and shared by the worker's sessions.
	 */
	struct relay_rules refresh_c2s, refresh_s2c, refresh_s2c_map;
	uint64_t refresh_gen;

	struct session *sessions; /* all sessions of this worker, newest first */
	atomic_int n_sessions;    /* written by this worker; read by others to balance accepts */
	struct relay_pool pool;
	struct stats stats;
	bool draining;
	int active;     /* upstream index new sessions connect to */
	bool switching; /* a switchover is draining: new sessions wait to connect */

	const struct hold_set *holds;            /* NULL or empty: nothing is classified */
	struct park_list parked;                 /* park.c's: sessions parked by a hold, in arrival order */
	struct classify_result classify_scratch; /* one classification at a time per worker */
	struct classify_cache *classify_cache;   /* this worker's parse cache (never NULL after init) */
	struct latency_store latency;            /* latency.c's: observed tables' histograms */
	struct auth_lookup *auth_lookup; /* auth_lookup.c's: verifier lookup connections (NULL: none yet) */

	pthread_mutex_t jobs_mu;
	struct worker_job *jobs; /* LIFO; order across one batch does not matter */
	int wake_fd;             /* eventfd: jobs are waiting */
	struct event *wake_ev;
};

/* Binds the worker's listening socket; called on the main thread so errors surface at start. */
bool worker_init(struct worker *w, int index, const struct snapshot *snap, const struct worker_hooks *hooks,
		 char *err, size_t errlen) __attribute__((warn_unused_result));
bool worker_start(struct worker *w) __attribute__((warn_unused_result));
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Runs fn(w, arg) on worker 'w' later, without waiting. Returns false if it could not be queued. */
bool worker_post(struct worker *w, worker_job_fn fn, void *arg) __attribute__((warn_unused_result));

/* Runs fn(w, arg) on worker 'w' and returns when it has finished. */
void worker_call(struct worker *w, worker_job_fn fn, void *arg);

/*
 * The one way to run a job on every worker: fn(worker i, slots + i * stride)
 * runs on each worker's own thread, and this returns when all have finished.
 * With stride 0 every worker gets 'slots' itself (NULL allowed). Use
 * WORKER_FANOUT for an array from worker_slots, so the stride is its type's.
 */
void worker_fanout(worker_job_fn fn, void *slots, size_t stride);
#define WORKER_FANOUT(fn, slots) worker_fanout((fn), (slots), sizeof(*(slots)))

/*
 * One zeroed slot of 'size' bytes per worker, for results a fan-out job
 * fills (the caller fills inputs first, reads results after, then free()s).
 * Dies on allocation failure: a half-run fan-out would be worse.
 */
void *worker_slots(size_t size) __attribute__((malloc));

/* Switches a worker to a new snapshot and its active upstream (job body; also used at init). */
void worker_apply_snapshot(struct worker *w, const struct snapshot *snap);

time_t worker_now(struct worker *w);

/*
 * Sets whether Query and Bind bodies are read whole: only while a hold or an
 * observation needs them classified (otherwise a message costs its framing
 * alone). Called by park.c and latency.c when their sets change.
 */
void worker_track_bodies(struct worker *w);

#endif
