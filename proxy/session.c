/*
 * A session's life (see session.h): accept, the one exit (close), free, the
 * pump that moves bytes between the two sockets, and event dispatch. What is
 * said on each side is client.c's and server.c's; holds are park.c's.
 *
 *   STARTUP ──SSLRequest──► CLIENT_TLS ──► STARTUP
 *      │ StartupMessage                     (CancelRequest: to cancel.c, closed)
 *      │ (auth.mode terminate: CLIENT_AUTH first, auth.c)
 *      ▼
 *   CONNECTING ──► UPSTREAM_SSLREQ ──► UPSTREAM_TLS
 *      │                                   │
 *      └──────────────► LOGIN ◄────────────┘
 *                         │ first ReadyForQuery
 *                         ▼
 *                       READY ──session_close()──► CLOSING ──► freed
 *
 * Every event callback ends in session_settle(), which frees a dead session
 * or recomputes both sockets' event interest from state.
 */
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "backend_keys.h"
#include "client.h"
#include "pgvalve/pgwire.h"
#include "runtime.h"
#include "server.h"
#include "stmt_refresh.h"
#include "worker.h"

#define CLOSING_FLUSH_MS 5000 /* how long a closing session may take to flush its last words */
#define PUMP_ROUNDS 16        /* reads per callback before yielding to other sessions */

static void on_client_io(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

static const char *const state_names[] = {
	[SESSION_STARTUP] = "startup",
	[SESSION_CLIENT_TLS] = "client_tls",
	[SESSION_CLIENT_AUTH] = "client_auth",
	[SESSION_CONNECTING] = "connecting",
	[SESSION_UPSTREAM_SSLREQ] = "upstream_sslrequest",
	[SESSION_UPSTREAM_TLS] = "upstream_tls",
	[SESSION_LOGIN] = "login",
	[SESSION_READY] = "ready",
	[SESSION_WAITING_UPSTREAM] = "waiting_upstream",
	[SESSION_CLOSING] = "closing",
};

struct log_session session_who(const struct session *s)
{
	return (struct log_session){
		.conn_id = s->id,
		.user = s->user[0] ? s->user : NULL,
		.database = s->database[0] ? s->database : NULL,
		.client = s->client_addr,
	};
}

void session_set_state(struct session *s, enum session_state state)
{
	s->state = state;
}

void session_timer_arm(struct session *s, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!s->timer)
		s->timer = evtimer_new(s->w->base, on_timer, s);
	if (s->timer)
		evtimer_add(s->timer, &tv);
}

static void session_timer_stop(struct session *s)
{
	if (s->timer) {
		event_free(s->timer);
		s->timer = NULL;
	}
}

void session_timer_idle(struct session *s)
{
	if (s->w->snap->cfg.client_idle_ms > 0)
		session_timer_arm(s, s->w->snap->cfg.client_idle_ms);
	else
		session_timer_stop(s);
}

/* ---- accept and free ------------------------------------------------------ */
static void format_addr(const struct sockaddr *addr, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, cap, "%s:%d", host, port);
}

/* Answers a connection the proxy will not serve, without allocating a session. */
static void refuse(int fd, const char *sqlstate, const char *msg)
{
	uint8_t buf[512];
	size_t n = pgwire_build_error(buf, sizeof(buf), "FATAL", sqlstate, msg);

	if (n <= sizeof(buf))
		(void)!send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

void session_accept(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	struct session *s;

	if (w->draining) {
		refuse(fd, "57P03", "pgvalve-proxy is shutting down");
		return;
	}
	if (atomic_fetch_add(&rt.clients, 1) >= w->snap->cfg.max_clients) {
		atomic_fetch_sub(&rt.clients, 1);
		log_warn("refusing connection: limits.max_clients (%lld) reached",
			 (long long)w->snap->cfg.max_clients);
		refuse(fd, "53300", "sorry, too many clients already (pgvalve-proxy limits.max_clients)");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		atomic_fetch_sub(&rt.clients, 1);
		refuse(fd, "53200", "out of memory");
		return;
	}
	s->w = w;
	s->id = atomic_fetch_add(&rt.next_conn_id, 1) + 1;
	s->client.fd = fd;
	s->server.fd = -1;
	s->tx_status = 'I';
	s->upstream = w->active;
	s->connected_at = s->last_activity = worker_now(w);
	format_addr(addr, s->client_addr, sizeof(s->client_addr));
	conn_tune_socket(fd);
	s->client.ev = event_new(w->base, fd, EV_READ | EV_PERSIST, on_client_io, s);
	if (!s->client.ev) {
		atomic_fetch_sub(&rt.clients, 1);
		refuse(fd, "53200", "out of memory");
		free(s);
		return;
	}
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	w->n_sessions++;
	w->stats.connections_total++;
	w->stats.clients++;
	session_set_state(s, SESSION_STARTUP);
	session_timer_arm(s, w->snap->cfg.auth_ms);
	session_settle(s);
}

void session_free(struct session *s)
{
	struct worker *w = s->w;

	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->n_sessions--;
	w->stats.clients--;
	park_leave(s);
	if (s->backend_pid)
		backend_keys_remove(s->backend_pid, s->backend_key);
	atomic_fetch_sub(&rt.clients, 1);
	session_timer_stop(s);
	conn_close(&s->client);
	conn_close(&s->server);
	relay_release(&s->c2s, &w->pool);
	relay_release(&s->s2c, &w->pool);
	stmt_clear(&s->statements);
	refresh_free(s);
	auth_free(s->auth);
	free(s);
}

/* ---- closing -------------------------------------------------------------- */

/* Whether an ErrorResponse can go to the client now without corrupting its stream. */
static bool client_can_take_error(struct session *s)
{
	switch (s->state) {
	case SESSION_CLIENT_TLS:
	case SESSION_CLOSING:
		return false;
	case SESSION_LOGIN:
	case SESSION_READY:
		return relay_at_boundary(&s->s2c);
	default:
		return true;
	}
}

void session_close(struct session *s, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (s->dead || s->state == SESSION_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	session_log(s, sqlstate && strcmp(sqlstate, "57P01") != 0 ? LOG_WARN : LOG_INFO, "closing: %s%s%s",
		    msg, sqlstate ? " sqlstate=" : "", sqlstate ? sqlstate : "");
	if (sqlstate && strcmp(sqlstate, "08P01") == 0)
		s->w->stats.protocol_errors_total++;

	/*
	 * A parked unit (and whatever the client queued behind it) waits
	 * unscanned: it never reaches the server, which is only told goodbye.
	 */
	if (s->park.state == PARK_PARKED)
		relay_drop_unscanned(&s->c2s);
	/* Say goodbye to the server politely when the stream allows it. */
	if (s->server.fd >= 0 && s->state == SESSION_READY && relay_empty(&s->c2s) &&
	    relay_at_boundary(&s->c2s) && !s->client_terminated) {
		static const uint8_t terminate[5] = { 'X', 0, 0, 0, 4 };
		(void)conn_write(&s->server, terminate, sizeof(terminate));
	}
	conn_close(&s->server);
	/* A unit waiting on a hold will never run: the session holds nothing while it goes. */
	park_leave(s);

	if (sqlstate && client_can_take_error(s) && relay_acquire(&s->s2c, &s->w->pool)) {
		uint8_t err[1200];
		size_t n;

		relay_drop_unscanned(&s->s2c);
		n = pgwire_build_error(err, sizeof(err), "FATAL", sqlstate, msg);
		if (n <= sizeof(err) && !relay_append_scanned(&s->s2c, err, (uint32_t)n))
			session_log(s, LOG_DEBUG, "could not queue the error for the client");
	}
	/* What is already on its way to the client (the server's own FATAL, say) still goes. */
	if (s->state != SESSION_CLIENT_TLS && relay_pending(&s->s2c) > 0) {
		session_set_state(s, SESSION_CLOSING);
		session_timer_arm(s, CLOSING_FLUSH_MS);
		return;
	}
	s->dead = true;
}

/* ---- the relay ------------------------------------------------------------ */

/* Writes what is scanned in 'b' to 'dst'. Returns false if the session failed. */
bool session_flush(struct session *s, struct relay_buf *b, struct conn *dst)
{
	while (relay_pending(b) > 0) {
		long n = conn_write(dst, b->data + b->head, relay_pending(b));
		char why[256];

		if (n == CONN_AGAIN)
			return true;
		if (n < 0) {
			conn_error_text(why, sizeof(why));
			if (dst == &s->client) {
				session_log(s, LOG_INFO, "client connection lost: %s", why);
				s->dead = true;
			} else {
				session_close(s, "08006", "lost connection to the server: %s", why);
			}
			return false;
		}
		relay_consume(b, (uint32_t)n);
	}
	return true;
}

static void on_eof(struct session *s, bool from_client)
{
	if (from_client) {
		/*
		 * A client that leaves (Terminate or not) ends the session; nothing
		 * more goes to it. One whose unit is parked never got an answer for
		 * it: the unit goes with it (session_close), unrun. A half-closed
		 * client looks the same: the protocol has no half-close.
		 */
		if (s->park.state == PARK_PARKED)
			session_log(s, LOG_INFO,
				    "client closed the connection while parked on hold %s: its unit of "
				    "work is dropped, unrun",
				    s->park.hold->id);
		relay_release(&s->s2c, &s->w->pool);
		session_close(s, NULL,
			      s->client_terminated ? "client terminated the session"
						   : "client closed the connection");
		return;
	}
	relay_drop_unscanned(&s->s2c);
	/* After Terminate the server closes without a word: that is the expected end. */
	if (s->client_terminated)
		session_close(s, NULL, "client terminated the session");
	else if (s->server_fatal)
		session_close(s, NULL, "server closed the connection after a FATAL error");
	else
		session_close(s, "08006", "server closed the connection unexpectedly");
}

/* Scans what 'b' holds and forwards it. Returns false if the session is closing. */
static bool scan_and_flush(struct session *s, struct relay_buf *b, struct conn *dst,
			   const struct relay_rules *rules)
{
	const char *why;
	enum relay_result rc;
	const uint8_t *staged;
	uint32_t staged_len;

	for (;;) {
		rc = relay_scan(b, rules, s, &why);
		if (rc != RELAY_STOPPED || s->dead || s->state == SESSION_CLOSING)
			break;
		if (b == &s->s2c && s->park.state == PARK_REJECT_AT_READY) {
			if (!park_reject_before_ready(s))
				return false;
			continue;
		}
		/* Statement refresh put messages in front of the one it stopped at (stmt_refresh.h). */
		if (!(staged = refresh_staged(s, &staged_len)))
			break;
		if (!relay_insert_scanned(b, staged, staged_len)) {
			session_close(s, "53200", "out of memory");
			return false;
		}
		refresh_staged_done(s);
		if (b == &s->c2s && !refresh_drop_pending(s))
			break; /* a re-prepare: the client's message waits for its answers */
	}
	if (rc == RELAY_ERROR) {
		if (b == &s->c2s) {
			session_close(s, "08P01", "%s", why);
		} else {
			relay_drop_unscanned(&s->s2c);
			session_close(s, "08006", "malformed message from the server: %s", why);
		}
		return false;
	}
	if (s->dead || s->state == SESSION_CLOSING)
		return false; /* a handler closed the session: nothing more goes anywhere */
	/* A rejection may have queued an answer for the client. */
	if (b == &s->c2s && relay_pending(&s->s2c) && !session_flush(s, &s->s2c, &s->client))
		return false;
	if (!session_flush(s, b, dst) || s->dead || s->state == SESSION_CLOSING)
		return false;
	/* A re-prepare was answered: the client's message that waited for it goes on. */
	if (b == &s->s2c && refresh_take_resume(s))
		return session_forward_client(s);
	return true;
}

/*
 * Reads from 'src' into 'b', scans, and forwards to 'dst', until the socket
 * is drained, the buffer is full (back-pressure), or PUMP_ROUNDS reads.
 */
static void pump(struct session *s, struct relay_buf *b, struct conn *src, struct conn *dst,
		 const struct relay_rules *rules)
{
	bool from_client = src == &s->client;

	for (int round = 0; round < PUMP_ROUNDS; round++) {
		uint32_t room;
		long n;

		if (!relay_acquire(b, &s->w->pool) || !relay_fit(b)) {
			session_close(s, "53200", "out of memory");
			return;
		}
		room = relay_room(b);
		if (room == 0)
			break; /* full: resumes when 'dst' drains */
		n = conn_read(src, b->data + b->tail, room);
		if (n == CONN_AGAIN)
			break;
		if (n == 0) {
			on_eof(s, from_client);
			return;
		}
		if (n < 0) {
			char err[256];

			conn_error_text(err, sizeof(err));
			if (from_client) {
				session_log(s, LOG_INFO, "client connection lost%s: %s",
					    s->park.state == PARK_PARKED
						    ? " while parked (its unit of work is dropped, unrun)"
						    : "",
					    err);
				session_close(s, NULL, "client connection lost");
			} else {
				relay_drop_unscanned(&s->s2c);
				session_close(s, "08006", "lost connection to the server: %s", err);
			}
			return;
		}
		b->tail += (uint32_t)n;
		if (from_client) {
			s->w->stats.bytes_client_to_server += (uint64_t)n;
			s->last_activity = worker_now(s->w);
		} else {
			s->w->stats.bytes_server_to_client += (uint64_t)n;
		}
		/*
		 * A parked unit waits unscanned at c2s.scan, and what follows it
		 * waits behind it: reading on (until the buffer is full, which is the
		 * back-pressure) only notices a client that leaves while it waits.
		 */
		if (from_client && s->park.state == PARK_PARKED)
			continue;
		if (!scan_and_flush(s, b, dst, rules))
			return;
		/* The socket is drained (a short read, nothing decrypted waiting): skip the EAGAIN syscall. */
		if (src->drained)
			break;
	}
	/* TLS may hold decrypted bytes the socket will never signal again. */
	if (conn_has_pending(src) && relay_room(b) > 0) {
		if (from_client)
			s->kick_client = true;
		else
			s->kick_server = true;
	}
}

bool session_forward_client(struct session *s)
{
	return scan_and_flush(s, &s->c2s, &s->server, refresh_rules(s, true));
}

void session_rules(struct relay_rules *c2s, struct relay_rules *s2c)
{
	memset(c2s, 0, sizeof(*c2s));
	memset(s2c, 0, sizeof(*s2c));
	c2s->on_msg = client_on_msg;
	s2c->on_msg = server_on_msg;
	c2s->track['Q'] = c2s->track['E'] = c2s->track['S'] = RELAY_TRACK_HEADER;
	c2s->track['F'] = c2s->track['X'] = RELAY_TRACK_HEADER;
	c2s->track['P'] = c2s->track['C'] = RELAY_TRACK_BODY;
	/* Describe of a statement, and its answers: the shape a client was shown (stmt.h). */
	c2s->track['D'] = RELAY_TRACK_BODY;
	s2c->track['t'] = s2c->track['T'] = RELAY_TRACK_BODY;
	s2c->track['n'] = RELAY_TRACK_HEADER;
	s2c->track['Z'] = s2c->track['E'] = s2c->track['S'] = RELAY_TRACK_BODY;
	s2c->track['K'] = s2c->track['R'] = RELAY_TRACK_BODY;
	/* ParseComplete and CloseComplete: a statement exists, or is gone, only once the server says so. */
	s2c->track['1'] = s2c->track['3'] = RELAY_TRACK_HEADER;
}

const struct worker_hooks session_hooks = {
	.accept = session_accept,
	.rules = session_rules,
	.free_session = session_free,
};

static void relay_io(struct session *s, struct conn *c, short what)
{
	bool is_client = c == &s->client;
	bool can_read = (what & EV_READ && !c->read_wants_write) || (what & EV_WRITE && c->read_wants_write);
	bool can_write = (what & EV_WRITE && !c->write_wants_read) || (what & EV_READ && c->write_wants_read);

	if (can_write && !session_flush(s, is_client ? &s->s2c : &s->c2s, c))
		return;
	if (can_read && !s->dead && s->state != SESSION_CLOSING) {
		if (is_client)
			pump(s, &s->c2s, &s->client, &s->server, refresh_rules(s, true));
		else
			pump(s, &s->s2c, &s->server, &s->client, refresh_rules(s, false));
	}
}

/* ---- events --------------------------------------------------------------- */

static void on_client_io(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	switch (s->state) {
	case SESSION_STARTUP:
		client_startup(s);
		break;
	case SESSION_CLIENT_TLS:
		client_tls_step(s);
		break;
	case SESSION_CLIENT_AUTH:
		auth_client_step(s);
		break;
	case SESSION_LOGIN:
	case SESSION_READY:
		relay_io(s, &s->client, what);
		break;
	case SESSION_CLOSING:
		client_closing_step(s);
		break;
	default:
		break;
	}
	session_settle(s);
}

void session_on_server_io(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	switch (s->state) {
	case SESSION_CONNECTING:
		server_connected(s);
		break;
	case SESSION_UPSTREAM_SSLREQ:
		server_ssl_answer(s);
		break;
	case SESSION_UPSTREAM_TLS:
		server_tls_step(s);
		break;
	case SESSION_LOGIN:
	case SESSION_READY:
		relay_io(s, &s->server, what);
		break;
	default:
		break;
	}
	session_settle(s);
}

/* Logged in, outside a transaction, nothing in flight in either direction. */
static bool is_idle(const struct session *s)
{
	return s->state == SESSION_READY && s->tx_status == 'I' && s->syncs_pending == 0 &&
		relay_empty(&s->c2s) && relay_empty(&s->s2c) && relay_at_boundary(&s->c2s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	const struct config *cfg = &s->w->snap->cfg;
	const struct config_upstream *up = &cfg->upstreams[s->upstream];

	switch (s->state) {
	case SESSION_STARTUP:
	case SESSION_CLIENT_TLS:
	case SESSION_CLIENT_AUTH:
	case SESSION_LOGIN:
		session_close(s, "08006", "timeout: no completed login within timeouts.auth_ms (%d ms)",
			      cfg->auth_ms);
		break;
	case SESSION_CONNECTING:
	case SESSION_UPSTREAM_SSLREQ:
	case SESSION_UPSTREAM_TLS:
		session_close(s, "08006", "timeout connecting to upstream \"%s\" (%s:%d) after %d ms",
			      up->name, up->host, up->port, cfg->connect_ms);
		break;
	case SESSION_WAITING_UPSTREAM:
		session_close(s, "08006",
			      "timeout: a switchover did not finish within timeouts.auth_ms (%d ms)",
			      cfg->auth_ms);
		break;
	case SESSION_READY: {
		time_t idle_s = worker_now(s->w) - s->last_activity;

		if (s->park.state == PARK_PARKED) {
			park_timed_out(s); /* max_wait_ms ran out */
			break;
		}
		if (cfg->client_idle_ms <= 0) {
			session_timer_stop(s);
		} else if (idle_s * 1000 >= cfg->client_idle_ms && is_idle(s)) {
			session_close(s, "57P05",
				      "terminating connection due to client idle timeout "
				      "(timeouts.client_idle_ms)");
		} else {
			session_timer_arm(s, cfg->client_idle_ms);
		}
		break;
	}
	case SESSION_CLOSING:
		if (!s->lingering)
			session_log(s, LOG_INFO, "client did not take its last message in time");
		s->dead = true;
		break;
	}
	session_settle(s);
}

/* ---- state to interest ---------------------------------------------------- */

static bool has_room(const struct relay_buf *b)
{
	return b->data == NULL || b->tail < b->cap || b->head > 0;
}

void session_settle(struct session *s)
{
	short client = 0, server = 0;

	if (!s->dead && s->retiring && is_idle(s))
		session_close(s, "57P01", "%s", s->retire_msg);
	if (s->dead) {
		session_free(s);
		return;
	}
	switch (s->state) {
	case SESSION_STARTUP:
	case SESSION_CLIENT_TLS:
		client = EV_READ;
		break;
	case SESSION_CLIENT_AUTH:
		client = EV_READ | (relay_pending(&s->s2c) ? EV_WRITE : 0);
		break;
	case SESSION_CONNECTING:
		server = EV_WRITE;
		break;
	case SESSION_UPSTREAM_SSLREQ:
	case SESSION_UPSTREAM_TLS:
		server = EV_READ;
		break;
	case SESSION_LOGIN:
	case SESSION_READY:
		/* Parked too: a client that leaves while its unit waits is noticed at once (pump). */
		if (has_room(&s->c2s))
			client |= EV_READ;
		if (has_room(&s->s2c))
			server |= EV_READ;
		if (relay_pending(&s->s2c))
			client |= EV_WRITE;
		if (relay_pending(&s->c2s))
			server |= EV_WRITE;
		break;
	case SESSION_WAITING_UPSTREAM:
		break; /* nothing to read before the server's first answer */
	case SESSION_CLOSING:
		client = s->lingering ? EV_READ : EV_WRITE;
		break;
	}
	conn_set_interest(&s->client, client);
	conn_set_interest(&s->server, server);
	/* After the interest update: re-adding an event would cancel an activation. */
	if (s->kick_client && s->client.ev)
		event_active(s->client.ev, EV_READ, 0);
	if (s->kick_server && s->server.ev)
		event_active(s->server.ev, EV_READ, 0);
	s->kick_client = s->kick_server = false;
	relay_release_if_empty(&s->c2s, &s->w->pool);
	relay_release_if_empty(&s->s2c, &s->w->pool);
}

/* ---- asked from outside: retire, drain, stop, connect --------------------- */

void session_retire(struct session *s, const char *why, bool now)
{
	enum session_activity a = session_activity(s);

	snprintf(s->retire_msg, sizeof(s->retire_msg), "%s", why);
	s->retiring = true;
	if (now || (a != SESSION_ACT_ACTIVE && a != SESSION_ACT_IN_TRANSACTION))
		session_close(s, "57P01", "%s", s->retire_msg);
	session_settle(s);
}

void session_drain(struct session *s)
{
	session_retire(s, "terminating connection because pgvalve-proxy is shutting down", false);
}

void session_stop(struct session *s, const char *why)
{
	session_close(s, "57P01", "%s", why);
	/* Best effort: the last message goes out now or never. */
	while (s->state == SESSION_CLOSING && relay_pending(&s->s2c) > 0) {
		long n = conn_write(&s->client, s->s2c.data + s->s2c.head, relay_pending(&s->s2c));

		if (n <= 0)
			break;
		relay_consume(&s->s2c, (uint32_t)n);
	}
	session_free(s);
}

bool session_connect_upstream(struct session *s)
{
	if (s->state != SESSION_WAITING_UPSTREAM)
		return false;
	server_connect(s);
	session_settle(s);
	return true;
}

/* ---- introspection -------------------------------------------------------- */

enum session_activity session_activity(const struct session *s)
{
	if (s->dead || s->state == SESSION_CLOSING)
		return SESSION_ACT_CLOSING;
	if (s->park.state == PARK_PARKED)
		return SESSION_ACT_PARKED;
	if (s->state != SESSION_READY)
		return SESSION_ACT_LOGIN;
	if (s->tx_status != 'I')
		return SESSION_ACT_IN_TRANSACTION;
	return is_idle(s) ? SESSION_ACT_IDLE : SESSION_ACT_ACTIVE;
}

int session_upstream(const struct session *s)
{
	return s->server.fd >= 0 ? s->upstream : -1;
}

/* The name /status shows: the activity once logged in, else the startup step. */
static const char *session_state_name(const struct session *s)
{
	switch (session_activity(s)) {
	case SESSION_ACT_IDLE:
		return "idle";
	case SESSION_ACT_ACTIVE:
		return "active";
	case SESSION_ACT_IN_TRANSACTION:
		return "in_transaction";
	case SESSION_ACT_PARKED:
		return "parked";
	default:
		return state_names[s->state];
	}
}

void session_describe(const struct session *s, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double)s->id);
	cJSON_AddStringToObject(o, "user", s->user);
	cJSON_AddStringToObject(o, "database", s->database);
	cJSON_AddStringToObject(o, "client", s->client_addr);
	cJSON_AddStringToObject(o, "state", session_state_name(s));
	cJSON_AddBoolToObject(o, "tls", conn_is_tls(&s->client));
	cJSON_AddBoolToObject(o, "upstream_tls", conn_is_tls(&s->server));
	cJSON_AddStringToObject(o, "upstream", s->w->snap->cfg.upstreams[s->upstream].name);
	if (s->backend_pid)
		cJSON_AddNumberToObject(o, "backend_pid", s->backend_pid);
	else
		cJSON_AddNullToObject(o, "backend_pid");
	cJSON_AddNumberToObject(o, "prepared_statements", s->statements.count);
	park_describe(s, o);
	cJSON_AddNumberToObject(o, "connected_s", (double)(worker_now(s->w) - s->connected_at));
	cJSON_AddNumberToObject(o, "worker", s->w->index);
	cJSON_AddItemToArray(arr, o);
}
