/*
 * The server side of a session (see server.h): where it connects, the
 * connect itself, TLS to the upstream, and the bookkeeping of what the
 * server sends. It does not own the relay (session.c) nor the hold check
 * (park.c), and never writes to the client itself.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "backend_keys.h"
#include "pgvalve/pgwire.h"
#include "runtime.h"
#include "session.h"
#include "stats.h"
#include "stmt_refresh.h"
#include "tls.h"
#include "worker.h"

static void start_login(struct session *s)
{
	const char *why;

	session_set_state(s, SESSION_LOGIN);
	session_timer_arm(s, s->w->snap->cfg.auth_ms);
	/* The startup packet sits scanned in c2s; anything the client sent after it is framed. */
	if (relay_scan(&s->c2s, &s->w->c2s_rules, s, &why) == RELAY_ERROR) {
		session_close(s, "08P01", "%s", why);
		return;
	}
	session_flush(s, &s->c2s, &s->server);
}

/* Where a new session goes: a reroute hold's upstream while one is in force, else the active one. */
static int upstream_for_new_session(const struct worker *w)
{
	for (int i = 0; w->holds && i < w->holds->n; i++)
		if (w->holds->holds[i]->policy == HOLD_REROUTE)
			return w->holds->holds[i]->upstream_index;
	return w->active;
}

void server_connect(struct session *s)
{
	const struct snapshot *snap = s->w->snap;
	const struct sockaddr *addr;
	int fd;

	if (s->w->switching) {
		/* A switchover is draining the old upstream: connect once it names the new one. */
		session_set_state(s, SESSION_WAITING_UPSTREAM);
		return;
	}
	s->upstream = upstream_for_new_session(s->w);
	addr = (const struct sockaddr *)&snap->upstream_addr[s->upstream];
	fd = socket(addr->sa_family, SOCK_STREAM, 0);
	if (fd < 0) {
		session_close(s, "08006", "cannot create socket: %s", strerror(errno));
		return;
	}
	conn_tune_socket(fd);
	s->server.fd = fd;
	s->server.ev = event_new(s->w->base, fd, EV_WRITE | EV_PERSIST, session_on_server_io, s);
	if (!s->server.ev) {
		session_close(s, "53200", "out of memory");
		return;
	}
	if (connect(fd, addr, snap->upstream_addrlen[s->upstream]) != 0 && errno != EINPROGRESS) {
		const struct config_upstream *up = &snap->cfg.upstreams[s->upstream];
		session_close(s, "08006", "could not connect to upstream \"%s\" (%s:%d): %s", up->name,
			      up->host, up->port, strerror(errno));
		return;
	}
	session_set_state(s, SESSION_CONNECTING);
	session_timer_arm(s, snap->cfg.connect_ms);
}

void server_connected(struct session *s)
{
	/* https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL */
	static const uint8_t ssl_request[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	const struct config_upstream *up = &s->w->snap->cfg.upstreams[s->upstream];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->server.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err) {
		session_close(s, "08006", "could not connect to upstream \"%s\" (%s:%d): %s", up->name,
			      up->host, up->port, strerror(err));
		return;
	}
	if (s->w->snap->upstream_tls[s->upstream]) {
		if (conn_write(&s->server, ssl_request, sizeof(ssl_request)) != sizeof(ssl_request)) {
			session_close(s, "08006", "could not send SSLRequest to upstream \"%s\"", up->name);
			return;
		}
		session_set_state(s, SESSION_UPSTREAM_SSLREQ);
		return;
	}
	start_login(s);
}

void server_tls_step(struct session *s)
{
	const struct config_upstream *up = &s->w->snap->cfg.upstreams[s->upstream];
	char err[256];

	switch (conn_tls_handshake(&s->server)) {
	case 1:
		start_login(s);
		break;
	case 0:
		break;
	default:
		conn_error_text(err, sizeof(err));
		session_close(s, "08006", "TLS handshake with upstream \"%s\" failed: %s", up->name, err);
	}
}

void server_ssl_answer(struct session *s)
{
	const struct config_upstream *up = &s->w->snap->cfg.upstreams[s->upstream];
	uint8_t answer;
	long n = conn_read(&s->server, &answer, 1);

	if (n == CONN_AGAIN)
		return;
	if (n <= 0) {
		session_close(s, "08006", "upstream \"%s\" closed the connection during SSL negotiation",
			      up->name);
		return;
	}
	if (answer == 'S') {
		s->server.ssl = SSL_new(s->w->snap->upstream_tls[s->upstream]);
		if (!s->server.ssl || SSL_set_fd(s->server.ssl, s->server.fd) != 1 ||
		    tls_upstream_setup(s->server.ssl, up) != 0) {
			session_close(s, "08006", "cannot set up TLS to upstream \"%s\"", up->name);
			return;
		}
		SSL_set_connect_state(s->server.ssl);
		session_set_state(s, SESSION_UPSTREAM_TLS);
		server_tls_step(s);
	} else if (answer == 'N' && up->sslmode == SSLMODE_PREFER) {
		start_login(s);
	} else if (answer == 'N') {
		session_close(s, "08006", "upstream \"%s\" does not accept TLS, but its sslmode is %s",
			      up->name, config_sslmode_name(up->sslmode));
	} else {
		session_close(s, "08006",
			      "upstream \"%s\" answered SSLRequest with an unexpected byte 0x%02x", up->name,
			      answer);
	}
}

enum relay_msg server_on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len)
{
	struct session *s = ctx;
	struct pgwire_error err;
	const char *name, *value;

	switch (type) {
	case 'Z':
		if (avail < 1)
			return RELAY_MSG_ERROR;
		if (s->park.state == PARK_REJECT_AT_READY)
			return RELAY_MSG_STOP; /* the scan puts the 55P03 in front, then goes on */
		s->tx_status = (char)body[0];
		if (s->syncs_pending)
			s->syncs_pending--;
		stmt_ready(&s->statements);
		park_unit_done(s);
		if (s->lat.state != LATENCY_IDLE) /* a unit timed for an observation (latency.h) */
			latency_ready(s);
		if (s->state == SESSION_LOGIN) {
			session_set_state(s, SESSION_READY);
			session_log(s, LOG_INFO, "login: backend_pid=%u upstream=%s", s->backend_pid,
				    s->w->snap->cfg.upstreams[s->upstream].name);
			park_login_done(s);
		}
		break;
	case '1':
		if (stmt_parse_complete(&s->statements))
			return RELAY_MSG_DROP; /* the proxy's re-prepare (stmt_refresh.h) */
		break;
	case '3':
		if (stmt_close_complete(&s->statements))
			return RELAY_MSG_DROP;
		break;
	case 't':
		if (stmt_param_desc(&s->statements, body, avail, len))
			return RELAY_MSG_DROP;
		break;
	case 'T':
	case 'n':
		if (stmt_row_desc(&s->statements, type == 'T' ? body : NULL, avail, len))
			return RELAY_MSG_DROP;
		break;
	case 'E':
		stmt_error(&s->statements);
		if (pgwire_parse_error(body, avail, &err)) {
			stats_error(&s->w->stats, worker_now(s->w), &err);
			if (s->auth) /* auth.mode terminate: a refused login drops a stale verifier */
				auth_server_error(s, err.sqlstate);
			if (err.severity &&
			    (strcmp(err.severity, "FATAL") == 0 || strcmp(err.severity, "PANIC") == 0))
				s->server_fatal = true;
		}
		break;
	case 'S':
		if (avail == len && pgwire_parse_parameter_status(body, avail, &name, &value) &&
		    strcmp(name, "standard_conforming_strings") == 0)
			s->scs_off = strcmp(value, "on") != 0;
		break;
	case 'K':
		if (avail >= 8) {
			if (s->backend_pid)
				backend_keys_remove(s->backend_pid, s->backend_key);
			s->backend_pid = pgwire_get_u32(body);
			s->backend_key = pgwire_get_u32(body + 4);
			/* No backend has PID 0: such a key is never registered (so never left behind at free). */
			if (s->backend_pid &&
			    !backend_keys_add(s->backend_pid, s->backend_key,
					      &(struct backend_owner){ s->upstream, s->w->index, s->id }))
				session_log(
					s, LOG_WARN,
					"out of memory: cancel requests for this session will be dropped");
		}
		break;
	case 'R':
		if (s->auth) /* auth.mode terminate, this session's login not done */
			return auth_server_msg(s, body, avail, len);
		/*
		 * Channel binding cannot survive a proxy: the client's TLS ends here,
		 * so SCRAM-SHA-256-PLUS would fail. Offer only what can work.
		 */
		if (avail == len)
			*new_len = (uint32_t)pgwire_sasl_remove_mechanism(body, len, "SCRAM-SHA-256-PLUS");
		break;
	}
	return refresh_server_msg(s, type, body, avail, len, new_len);
}
