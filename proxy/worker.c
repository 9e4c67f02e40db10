/*
 * Worker threads (see worker.h): the event loop, accepting connections and
 * balancing them across workers, and the job queue through which the main
 * thread asks for snapshots of state or hands over configuration. Sessions
 * live in session.c and reach this file only through struct worker_hooks.
 */
#include "worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth_lookup.h"
#include "pgvalve/classify.h"
#include "pgvalve/log.h"

struct worker_batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int remaining;
};

struct handoff {
	int fd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

static void handoff_job(struct worker *w, void *arg)
{
	struct handoff *h = arg;

	/* The reservation made at accept becomes the session's own count. */
	atomic_fetch_sub_explicit(&w->n_sessions, 1, memory_order_relaxed);
	w->hooks->accept(w, h->fd, (struct sockaddr *)&h->addr, h->addrlen);
	free(h);
}

/*
 * The kernel spreads connections over the SO_REUSEPORT sockets by a hash of
 * the addresses, which for a handful of long-lived sessions is often lopsided
 * (6 on one loop, 2 on the other). Sessions go to the worker with the fewest,
 * this one when tied, so every core carries its share.
 */
static struct worker *least_loaded(struct worker *self)
{
	struct worker *best = self;
	int best_n = atomic_load_explicit(&self->n_sessions, memory_order_relaxed);

	for (int i = 0; i < rt.n_workers; i++) {
		int n = atomic_load_explicit(&rt.workers[i].n_sessions, memory_order_relaxed);

		if (n < best_n) {
			best = &rt.workers[i];
			best_n = n;
		}
	}
	return best;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int addrlen,
		      void *arg)
{
	struct worker *w = arg, *target = least_loaded(w);
	struct handoff *h;

	if (target != w && (h = malloc(sizeof(*h)))) {
		h->fd = fd;
		memcpy(&h->addr, addr, (size_t)addrlen);
		h->addrlen = (socklen_t)addrlen;
		/* Counted now, so a burst of accepts does not pick the same worker for all. */
		atomic_fetch_add_explicit(&target->n_sessions, 1, memory_order_relaxed);
		if (worker_post(target, handoff_job, h))
			return;
		atomic_fetch_sub_explicit(&target->n_sessions, 1, memory_order_relaxed);
		free(h);
	}
	w->hooks->accept(w, fd, addr, (socklen_t)addrlen);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep listening; the next accept may succeed. */
	log_warn("accept failed: %s", evutil_socket_error_to_string(err));
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct worker_job *jobs;
	uint64_t n;

	(void)!read(w->wake_fd, &n, sizeof(n));
	pthread_mutex_lock(&w->jobs_mu);
	jobs = w->jobs;
	w->jobs = NULL;
	pthread_mutex_unlock(&w->jobs_mu);
	while (jobs) {
		struct worker_job *next = jobs->next;
		struct worker_batch *batch = jobs->batch;

		jobs->fn(w, jobs->arg);
		if (batch) {
			pthread_mutex_lock(&batch->mu);
			if (--batch->remaining == 0)
				pthread_cond_signal(&batch->cv);
			pthread_mutex_unlock(&batch->mu);
		} else {
			free(jobs); /* posted with worker_post: nobody waits for it */
		}
		jobs = next;
	}
}

static int listen_socket(const struct snapshot *snap, char *err, size_t errlen)
{
	int fd = socket(snap->listen_addr.ss_family, SOCK_STREAM, 0);
	int one = 1;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Each worker binds its own socket; the kernel spreads connections across them. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	if (bind(fd, (const struct sockaddr *)&snap->listen_addr, snap->listen_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", snap->cfg.listen_host,
			 snap->cfg.listen_port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void worker_apply_snapshot(struct worker *w, const struct snapshot *snap)
{
	w->snap = snap;
	auth_lookup_reload(w->auth_lookup); /* cached verifiers belong to the old auth section */
	w->active = snap->active;
	w->c2s_rules.max_len = (uint32_t)snap->cfg.max_message_bytes;
	w->s2c_rules.max_len = (uint32_t)snap->cfg.max_message_bytes;
	w->rules_gen++;
}

bool worker_init(struct worker *w, int index, const struct snapshot *snap, const struct worker_hooks *hooks,
		 char *err, size_t errlen)
{
	int fd;

	memset(w, 0, sizeof(*w));
	w->index = index;
	w->wake_fd = -1;
	w->hooks = hooks;
	hooks->rules(&w->c2s_rules, &w->s2c_rules);
	worker_apply_snapshot(w, snap);
	pthread_mutex_init(&w->jobs_mu, NULL);
	relay_pool_init(&w->pool, RELAY_POOL_MAX);
	stats_init(&w->stats);
	w->classify_cache = classify_cache_new(WORKER_PARSE_CACHE_ENTRIES, WORKER_PARSE_CACHE_BYTES);
	if (!w->classify_cache) {
		snprintf(err, errlen, "out of memory for the parse cache");
		return false;
	}
	w->base = event_base_new();
	if (!w->base) {
		snprintf(err, errlen, "cannot create event loop");
		return false;
	}
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->wake_ev = w->wake_fd >= 0 ? event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w)
				     : NULL;
	if (!w->wake_ev || event_add(w->wake_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot create worker wakeup: %s", strerror(errno));
		return false;
	}
	fd = listen_socket(snap, err, errlen);
	if (fd < 0)
		return false;
	w->listener = evconnlistener_new(w->base, on_accept, w, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!w->listener) {
		close(fd);
		snprintf(err, errlen, "cannot create listener");
		return false;
	}
	evconnlistener_set_error_cb(w->listener, on_accept_error);
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

bool worker_start(struct worker *w)
{
	pthread_attr_t attr;
	bool ok;

	pthread_attr_init(&attr);
	/* SQL is classified on these threads: libpg_query recurses without a limit (classify.h). */
	pthread_attr_setstacksize(&attr, CLASSIFY_STACK_BYTES);
	ok = pthread_create(&w->thread, &attr, worker_main, w) == 0;
	pthread_attr_destroy(&attr);
	return ok;
}

static void enqueue(struct worker *w, struct worker_job *job)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->jobs_mu);
	job->next = w->jobs;
	w->jobs = job;
	pthread_mutex_unlock(&w->jobs_mu);
	(void)!write(w->wake_fd, &one, sizeof(one));
}

bool worker_post(struct worker *w, worker_job_fn fn, void *arg)
{
	struct worker_job *job = calloc(1, sizeof(*job));

	if (!job)
		return false;
	job->fn = fn;
	job->arg = arg;
	enqueue(w, job);
	return true;
}

/* Queues jobs[i] on workers[i] and returns when every one has run. */
static void run_batch(struct worker **workers, struct worker_job *jobs, int n)
{
	struct worker_batch batch = { .remaining = n };

	pthread_mutex_init(&batch.mu, NULL);
	pthread_cond_init(&batch.cv, NULL);
	for (int i = 0; i < n; i++) {
		jobs[i].batch = &batch;
		enqueue(workers[i], &jobs[i]);
	}
	pthread_mutex_lock(&batch.mu);
	while (batch.remaining > 0)
		pthread_cond_wait(&batch.cv, &batch.mu);
	pthread_mutex_unlock(&batch.mu);
	pthread_mutex_destroy(&batch.mu);
	pthread_cond_destroy(&batch.cv);
}

void worker_call(struct worker *w, worker_job_fn fn, void *arg)
{
	struct worker_job job = { .fn = fn, .arg = arg };

	run_batch(&w, &job, 1);
}

void worker_fanout(worker_job_fn fn, void *slots, size_t stride)
{
	struct worker_job *jobs = calloc((size_t)rt.n_workers, sizeof(*jobs));
	struct worker **workers = calloc((size_t)rt.n_workers, sizeof(*workers));

	if (!jobs || !workers)
		abort(); /* defensive: a few bytes a worker; nothing sane to return without them */
	for (int i = 0; i < rt.n_workers; i++) {
		workers[i] = &rt.workers[i];
		jobs[i] = (struct worker_job){ .fn = fn,
					       .arg = slots ? (char *)slots + (size_t)i * stride : NULL };
	}
	run_batch(workers, jobs, rt.n_workers);
	free(workers);
	free(jobs);
}

void *worker_slots(size_t size)
{
	void *slots = calloc((size_t)rt.n_workers, size);

	if (!slots) {
		log_error("out of memory for %d worker slots of %zu bytes", rt.n_workers, size);
		abort();
	}
	return slots;
}

time_t worker_now(struct worker *w)
{
	struct timeval tv;

	event_base_gettimeofday_cached(w->base, &tv);
	return tv.tv_sec;
}

void worker_track_bodies(struct worker *w)
{
	bool classify = (w->holds && w->holds->n > 0) || w->latency.set;

	w->c2s_rules.track['Q'] = classify ? RELAY_TRACK_BODY : RELAY_TRACK_HEADER;
	w->c2s_rules.track['B'] = classify ? RELAY_TRACK_BODY : RELAY_TRACK_NONE;
	w->rules_gen++;
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
	while (w->sessions)
		w->hooks->free_session(w->sessions);
	if (w->listener)
		evconnlistener_free(w->listener);
	if (w->wake_ev)
		event_free(w->wake_ev);
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	auth_lookup_free(w->auth_lookup); /* its events live on the base */
	if (w->base)
		event_base_free(w->base);
	relay_pool_destroy(&w->pool);
	stats_destroy(&w->stats);
	latency_store_free(&w->latency);
	classify_cache_free(w->classify_cache);
	pthread_mutex_destroy(&w->jobs_mu);
}
