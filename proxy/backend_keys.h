/*
 * Which upstream each backend a client may cancel lives on: (pid, secret
 * key) as the server sent them in BackendKeyData → upstream index. A cancel
 * request arrives on a fresh connection, on any worker, possibly after a
 * switchover made another upstream active; this map sends it to the server
 * that runs the backend, and drops cancels for keys the proxy never handed
 * out. Shared by all workers (a mutex; touched at login, close and cancel).
 */
#ifndef PGVALVE_PROXY_BACKEND_KEYS_H
#define PGVALVE_PROXY_BACKEND_KEYS_H

#include <stdbool.h>
#include <stdint.h>

/* Records a backend. False: out of memory (its cancels will be dropped). */
bool backend_keys_add(uint32_t pid, uint32_t key, int upstream);
void backend_keys_remove(uint32_t pid, uint32_t key);
/* The backend's upstream index, or -1 when the pair is unknown. */
int backend_keys_find(uint32_t pid, uint32_t key);

#endif
