/*
 * Who owns each backend a client may cancel: (pid, secret key) as the server
 * sent them in BackendKeyData → the upstream the backend runs on and the
 * session (worker, id) logged in to it. A cancel request arrives on a fresh
 * connection, on any worker, possibly after a switchover made another
 * upstream active; this map lets it reach the owning worker (which answers a
 * parked unit itself) or the server that runs the backend, and drops cancels
 * for keys the proxy never handed out. Shared by all workers (a mutex;
 * touched at login, close and cancel).
 */
#ifndef PGVALVE_PROXY_BACKEND_KEYS_H
#define PGVALVE_PROXY_BACKEND_KEYS_H

#include <stdbool.h>
#include <stdint.h>

/* Where a backend lives and which session uses it. */
struct backend_owner {
	int upstream;        /* index in the snapshot's upstreams */
	int worker;          /* index of the worker the session runs on */
	uint64_t session_id; /* the session's id (struct session.id) */
};

/* Records a backend. False: out of memory (its cancels will be dropped). */
bool backend_keys_add(uint32_t pid, uint32_t key, const struct backend_owner *owner)
	__attribute__((warn_unused_result));
void backend_keys_remove(uint32_t pid, uint32_t key);
/* Whether the pair is known; if so, fills '*owner' (NULL: not wanted). */
bool backend_keys_find(uint32_t pid, uint32_t key, struct backend_owner *owner);

#endif
