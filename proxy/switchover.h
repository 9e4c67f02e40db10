/*
 * Switchover (docs/architecture.md, switchover): moves the proxy from the active upstream to
 * another without touching clients' connection strings. Holds everything,
 * waits up to drain_ms for sessions on the old upstream to finish what they
 * are doing, makes the new upstream active, closes old sessions with 57P01
 * (those still in a transaction at their next idle point, or at once with
 * on_drain_timeout "terminate"), and releases. One at a time; main thread.
 */
#ifndef PGVALVE_PROXY_SWITCHOVER_H
#define PGVALVE_PROXY_SWITCHOVER_H

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stddef.h>

void switchover_init(struct event_base *base);

/*
 * Called once with the outcome: an HTTP status and a JSON document (taken).
 * 'ctx' is what switchover_begin was given.
 */
typedef void (*switchover_done_fn)(void *ctx, int status, cJSON *doc);

/*
 * Starts a switchover from a POST /switchover body: {upstream, drain_ms?,
 * on_drain_timeout?}. Returns 0 when started ('done' is called later, also
 * on abort), else an HTTP status (400, 409) with 'err' filled and no call.
 */
int switchover_begin(const cJSON *body, switchover_done_fn done, void *ctx, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The requester went away: the switchover goes on, nobody is told. */
void switchover_forget_requester(void *ctx);

/* Ends a switchover in progress without switching (shutdown); 'done' gets 503. */
void switchover_abort(const char *why);

#endif
