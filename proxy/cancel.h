/*
 * Forwarding of CancelRequest packets (protocol docs, "Canceling Requests in
 * Progress"). Sessions keep the server's real backend key, so the 16 bytes
 * go unchanged, on a fresh connection that closes right after, to the
 * upstream the backend lives on; fire and forget.
 */
#ifndef PGVALVE_PROXY_CANCEL_H
#define PGVALVE_PROXY_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

struct worker;

/*
 * Forwards a CancelRequest 'packet' to the upstream running the backend.
 * False: the (pid, key) pair is not one this proxy handed out; nothing sent.
 */
bool cancel_forward(struct worker *w, const uint8_t *packet, uint32_t backend_pid, uint32_t backend_key);

#endif
