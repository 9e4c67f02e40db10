/*
 * CancelRequest packets (protocol docs, "Canceling Requests in Progress").
 * Sessions keep the server's real backend key, so a cancel for a running
 * statement goes unchanged, 16 bytes on a fresh connection that closes right
 * after, to the upstream the backend lives on; fire and forget. A cancel for
 * a unit of work parked on a hold never reaches the server: the owning worker
 * answers the unit 57014 itself (park_cancel; docs/architecture.md, holds).
 */
#ifndef PGVALVE_PROXY_CANCEL_H
#define PGVALVE_PROXY_CANCEL_H

#include <stdbool.h>
#include <stdint.h>

struct worker;

/*
 * Handles a CancelRequest 'packet' that arrived on worker 'w': the worker
 * owning the session it names cancels the session's parked unit, or else
 * forwards the packet to the upstream running the backend; either is logged.
 * False: the (pid, key) pair is not one this proxy handed out; nothing done.
 */
bool cancel_request(struct worker *w, const uint8_t *packet, uint32_t backend_pid, uint32_t backend_key);

#endif
