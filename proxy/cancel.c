/*
 * One in-flight cancel: connect to the upstream that runs the backend
 * (backend_keys.c), write 16 bytes, close. Bounded by timeouts.connect_ms;
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
#include "pgvalve/pgwire.h"
#include "worker.h"

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

bool cancel_forward(struct worker *w, const uint8_t *packet, uint32_t backend_pid, uint32_t backend_key)
{
	const struct snapshot *snap = w->snap;
	int upstream = backend_keys_find(backend_pid, backend_key);
	const struct sockaddr *addr;
	struct timeval tv = { snap->cfg.connect_ms / 1000, (snap->cfg.connect_ms % 1000) * 1000 };
	struct cancel *c;

	if (upstream < 0 || upstream >= snap->cfg.n_upstreams)
		return false; /* not a backend this proxy handed out */
	addr = (const struct sockaddr *)&snap->upstream_addr[upstream];
	c = calloc(1, sizeof(*c));
	if (!c)
		return true;
	memcpy(c->packet, packet, sizeof(c->packet));
	c->backend_pid = backend_pid;
	c->fd = socket(addr->sa_family, SOCK_STREAM, 0);
	if (c->fd < 0) {
		cancel_free(c);
		return true;
	}
	conn_tune_socket(c->fd);
	if (connect(c->fd, addr, snap->upstream_addrlen[upstream]) != 0 && errno != EINPROGRESS) {
		log_warn("cancel for backend_pid=%u: cannot connect to upstream: %s", backend_pid,
			 strerror(errno));
		cancel_free(c);
		return true;
	}
	c->ev = event_new(w->base, c->fd, EV_WRITE, on_cancel_io, c);
	if (!c->ev || event_add(c->ev, &tv) != 0)
		cancel_free(c);
	return true;
}
