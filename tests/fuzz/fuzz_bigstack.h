/*
 * Running each fuzz input on one long-lived thread with a large stack:
 * libpg_query recurses without a depth limit and leaks a pthread key per
 * thread that ever parsed (docs/architecture.md §3.2), so targets that parse
 * SQL do it where the proxy does — on one fixed thread with
 * CLASSIFY_STACK_BYTES of stack — never on libFuzzer's own thread.
 *
 * A target defines its run(data, size) and calls fuzz_on_big_stack() from
 * LLVMFuzzerTestOneInput; 'init' (may be NULL) runs once, before the thread
 * starts. Header-only: each target is its own program.
 */
#ifndef PGVALVE_FUZZ_BIGSTACK_H
#define PGVALVE_FUZZ_BIGSTACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_check.h"
#include "pgvalve/classify.h"

typedef void (*fuzz_run_fn)(const uint8_t *data, size_t size);

/* The one input in flight, handed from libFuzzer's thread to the parsing thread. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	fuzz_run_fn run;
	void (*init)(void);
	const uint8_t *data;
	size_t size;
	bool pending;
} fuzz_job = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, NULL, 0, false };

static void *fuzz_bigstack_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fuzz_job.lock);
	for (;;) {
		while (!fuzz_job.pending)
			pthread_cond_wait(&fuzz_job.cond, &fuzz_job.lock);
		fuzz_job.run(fuzz_job.data, fuzz_job.size);
		fuzz_job.pending = false;
		pthread_cond_broadcast(&fuzz_job.cond);
	}
	return NULL;
}

static void fuzz_bigstack_start(void)
{
	pthread_attr_t attr;
	pthread_t th;

	if (fuzz_job.init)
		fuzz_job.init();
	FUZZ_CHECK(pthread_attr_init(&attr) == 0);
	FUZZ_CHECK(pthread_attr_setstacksize(&attr, CLASSIFY_STACK_BYTES) == 0);
	FUZZ_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0);
	FUZZ_CHECK(pthread_create(&th, &attr, fuzz_bigstack_main, NULL) == 0);
	pthread_attr_destroy(&attr);
}

/* Runs run(data, size) on the big-stack thread and returns when it is done. */
static inline void fuzz_on_big_stack(fuzz_run_fn run, void (*init)(void), const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	fuzz_job.run = run;
	fuzz_job.init = init;
	pthread_once(&once, fuzz_bigstack_start);
	pthread_mutex_lock(&fuzz_job.lock);
	fuzz_job.data = data;
	fuzz_job.size = size;
	fuzz_job.pending = true;
	pthread_cond_broadcast(&fuzz_job.cond);
	while (fuzz_job.pending)
		pthread_cond_wait(&fuzz_job.cond, &fuzz_job.lock);
	pthread_mutex_unlock(&fuzz_job.lock);
}

#endif
