/*
 * Cancel requests (see cancel.h): the hop to the worker that owns the named
 * session (backend_keys.c says which), where a parked unit is cancelled
 * (park.c), and otherwise one in-flight cancel: connect to the upstream that
 * runs the backend, write 16 bytes, close. Bounded by timeouts.connect_ms;
 * failures are logged (the client learns nothing either way, as with a
 * direct cancel).
 */
#include "cancel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_keys.h"
#include "conn.h"
#include "pgvalve/log.h"
#include "park.h"
#include "pgvalve/pgwire.h"
#include "worker.h"

/* A cancel on its way to the worker that owns the session it names. */
struct cancel_job {
	uint8_t packet[PGWIRE_CANCEL_LEN];
	uint32_t backend_pid;
	struct backend_owner owner;
};

struct cancel {
	int fd;
	struct event *ev;
	uint8_t packet[PGWIRE_CANCEL_LEN];
	uint32_t backend_pid;
};

static void cancel_free(struct cancel *c)
{
	if (c->ev)
		event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void on_cancel_io(evutil_socket_t fd, short what, void *arg)
{
	struct cancel *c = arg;
	int err = 0;
	socklen_t len = sizeof(err);

	if (what & EV_TIMEOUT) {
		log_warn("cancel for backend_pid=%u: upstream did not accept the connection in time",
			 c->backend_pid);
	} else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
		log_warn("cancel for backend_pid=%u: cannot connect to upstream: %s", c->backend_pid,
			 strerror(err ? err : errno));
	} else if (send(fd, c->packet, sizeof(c->packet), MSG_NOSIGNAL) != (ssize_t)sizeof(c->packet)) {
		log_warn("cancel for backend_pid=%u: cannot send: %s", c->backend_pid, strerror(errno));
	}
	cancel_free(c);
}

/* Sends 'packet' to upstream 'upstream' from worker 'w', fire and forget. */
static void cancel_forward(struct worker *w, const uint8_t *packet, uint32_t backend_pid, int upstream)
{
	const struct snapshot *snap = w->snap;
	const struct sockaddr *addr;
	struct timeval tv = { snap->cfg.connect_ms / 1000, (snap->cfg.connect_ms % 1000) * 1000 };
	struct cancel *c;

	if (upstream < 0 || upstream >= snap->cfg.n_upstreams) {
		log_warn("cancel request for backend_pid=%u dropped: its upstream is no longer configured",
			 backend_pid);
		return;
	}
	log_info("cancel request for backend_pid=%u forwarded", backend_pid);
	addr = (const struct sockaddr *)&snap->upstream_addr[upstream];
	c = calloc(1, sizeof(*c));
	if (!c)
		return;
	memcpy(c->packet, packet, sizeof(c->packet));
	c->backend_pid = backend_pid;
	c->fd = socket(addr->sa_family, SOCK_STREAM, 0);
	if (c->fd < 0) {
		cancel_free(c);
		return;
	}
	conn_tune_socket(c->fd);
	if (connect(c->fd, addr, snap->upstream_addrlen[upstream]) != 0 && errno != EINPROGRESS) {
		log_warn("cancel for backend_pid=%u: cannot connect to upstream: %s", backend_pid,
			 strerror(errno));
		cancel_free(c);
		return;
	}
	c->ev = event_new(w->base, c->fd, EV_WRITE, on_cancel_io, c);
	if (!c->ev || event_add(c->ev, &tv) != 0)
		cancel_free(c);
}

/*
 * On the worker owning the session (posted there even when that is the
 * worker the cancel arrived on, so the session is never touched from inside
 * another session's callback): only there is it known, without a race,
 * whether the session's unit is parked (answered here) or may be running
 * (the server's to cancel).
 */
static void cancel_job_run(struct worker *w, void *arg)
{
	struct cancel_job *j = arg;

	if (park_cancel(w, j->owner.session_id))
		log_info("cancel request for backend_pid=%u: its unit of work was parked on a hold and "
			 "is cancelled (57014); the server is not asked",
			 j->backend_pid);
	else
		cancel_forward(w, j->packet, j->backend_pid, j->owner.upstream);
	free(j);
}

bool cancel_request(struct worker *w, const uint8_t *packet, uint32_t backend_pid, uint32_t backend_key)
{
	struct backend_owner owner;
	struct cancel_job *j;

	if (!backend_keys_find(backend_pid, backend_key, &owner))
		return false; /* not a backend this proxy handed out */
	j = malloc(sizeof(*j));
	if (j) {
		memcpy(j->packet, packet, sizeof(j->packet));
		j->backend_pid = backend_pid;
		j->owner = owner;
	}
	if (!j || owner.worker < 0 || owner.worker >= rt.n_workers ||
	    !worker_post(&rt.workers[owner.worker], cancel_job_run, j)) {
		/* Defensive: the owner cannot be reached; the server still can. */
		free(j);
		cancel_forward(w, packet, backend_pid, owner.upstream);
	}
	return true;
}
