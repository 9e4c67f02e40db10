/*
 * Forwarding of CancelRequest packets (protocol docs, "Canceling Requests in
 * Progress"). Sessions keep the server's real backend key, so the 16 bytes
 * go unchanged to the upstream on a fresh connection that closes right after.
 */
#ifndef PGVALVE_PROXY_CANCEL_H
#define PGVALVE_PROXY_CANCEL_H

#include <stdint.h>

struct worker;

/* Sends the 16-byte CancelRequest 'packet' to the active upstream; fire and forget. */
void cancel_forward(struct worker *w, const uint8_t *packet, uint32_t backend_pid);

#endif
