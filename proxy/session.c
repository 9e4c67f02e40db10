/*
 * Session state machine (see session.h). The flow of a session:
 *
 *   STARTUP ──SSLRequest──► CLIENT_TLS ──► STARTUP
 *      │ StartupMessage                     (CancelRequest: forwarded, closed)
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

#include "backend_keys.h"
#include "cancel.h"
#include "pgvalve/log.h"
#include "pgvalve/pgwire.h"
#include "runtime.h"
#include "tls.h"
#include "worker.h"
#include "pgvalve/clock.h"

#define CLOSING_FLUSH_MS 5000  /* how long a closing session may take to flush its last words */
#define CLOSING_LINGER_MS 1000 /* ... and then how long it waits for the client to close */
#define PUMP_ROUNDS 16         /* reads per callback before yielding to other sessions */

static void on_client_io(evutil_socket_t fd, short what, void *arg);
static void on_server_io(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void session_settle(struct session *s);
static void unpark(struct session *s);
static size_t reject_message(struct session *s, uint8_t *msg, size_t cap, char *text, size_t tcap);

static const char *const state_names[] = {
	[SESSION_STARTUP] = "startup",
	[SESSION_CLIENT_TLS] = "client_tls",
	[SESSION_CONNECTING] = "connecting",
	[SESSION_UPSTREAM_SSLREQ] = "upstream_sslrequest",
	[SESSION_UPSTREAM_TLS] = "upstream_tls",
	[SESSION_LOGIN] = "login",
	[SESSION_READY] = "ready",
	[SESSION_WAITING_UPSTREAM] = "waiting_upstream",
	[SESSION_CLOSING] = "closing",
};

static struct log_session who(const struct session *s)
{
	return (struct log_session){
		.conn_id = s->id,
		.user = s->user[0] ? s->user : NULL,
		.database = s->database[0] ? s->database : NULL,
		.client = s->client_addr,
	};
}

#define session_log(s, level, ...)                          \
	do {                                                \
		struct log_session who_ = who(s);           \
		if (log_enabled(level))                     \
			log_msg(level, &who_, __VA_ARGS__); \
	} while (0)

static void session_set_state(struct session *s, enum session_state state)
{
	s->state = state;
}

static void timer_arm(struct session *s, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!s->timer)
		s->timer = evtimer_new(s->w->base, on_timer, s);
	if (s->timer)
		evtimer_add(s->timer, &tv);
}

static void timer_stop(struct session *s)
{
	if (s->timer) {
		event_free(s->timer);
		s->timer = NULL;
	}
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
	timer_arm(s, w->snap->cfg.auth_ms);
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
	unpark(s);
	if (s->backend_pid)
		backend_keys_remove(s->backend_pid, s->backend_key);
	atomic_fetch_sub(&rt.clients, 1);
	timer_stop(s);
	conn_close(&s->client);
	conn_close(&s->server);
	relay_release(&s->c2s, &w->pool);
	relay_release(&s->s2c, &w->pool);
	stmt_clear(&s->statements);
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

	/* Say goodbye to the server politely when the stream allows it. */
	if (s->server.fd >= 0 && s->state == SESSION_READY && relay_empty(&s->c2s) &&
	    relay_at_boundary(&s->c2s) && !s->client_terminated) {
		static const uint8_t terminate[5] = { 'X', 0, 0, 0, 4 };
		(void)conn_write(&s->server, terminate, sizeof(terminate));
	}
	conn_close(&s->server);

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
		timer_arm(s, CLOSING_FLUSH_MS);
		return;
	}
	s->dead = true;
}

/* ---- the relay ------------------------------------------------------------ */

/* Writes what is scanned in 'b' to 'dst'. Returns false if the session failed. */
static bool flush(struct session *s, struct relay_buf *b, struct conn *dst)
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
		/* A client that leaves (Terminate or not) ends the session; nothing more goes to it. */
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

	while ((rc = relay_scan(b, rules, s, &why)) == RELAY_STOPPED && b == &s->s2c &&
	       s->reject_before_ready) {
		uint8_t msg[600];
		char text[300];
		size_t n = reject_message(s, msg, sizeof(msg), text, sizeof(text));

		s->reject_before_ready = false;
		if (n > sizeof(msg) || !relay_insert_scanned(b, msg, (uint32_t)n)) {
			session_close(s, "55P03", "%s", text);
			return false;
		}
		session_log(s, LOG_INFO, "rejected the rest of an extended batch on \"%s\" (hold %s)",
			    s->rejected_table, s->rejected_hold);
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
	if (b == &s->c2s && relay_pending(&s->s2c) && !flush(s, &s->s2c, &s->client))
		return false;
	return flush(s, b, dst) && !s->dead && s->state != SESSION_CLOSING;
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
				session_log(s, LOG_INFO, "client connection lost: %s", err);
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
		if (!scan_and_flush(s, b, dst, rules) || s->parked_on)
			return;
		/* A short plain read means the socket is drained: skip the EAGAIN syscall. */
		if (!src->ssl && (uint32_t)n < room)
			break;
	}
	/* TLS may hold decrypted bytes the socket will never signal again. */
	if (src->ssl && SSL_pending(src->ssl) > 0 && relay_room(b) > 0) {
		if (from_client)
			s->kick_client = true;
		else
			s->kick_server = true;
	}
}

/* ---- holds --------------------------------------------------------------- */

static void park(struct session *s, const struct hold *h)
{
	struct worker *w = s->w;

	if (!s->parked_on) {
		s->parked_at_ms = clock_mono_ms();
		s->park_next = NULL;
		if (w->parked_tail)
			w->parked_tail->park_next = s;
		else
			w->parked_head = s;
		w->parked_tail = s;
		timer_arm(s, (int)h->max_wait_ms);
		session_log(s, LOG_DEBUG, "parked by hold %s", h->id);
	}
	s->parked_on = h;
}

static void unpark(struct session *s)
{
	struct worker *w = s->w;
	struct session **link, *prev = NULL;

	if (!s->parked_on)
		return;
	for (link = &w->parked_head; *link && *link != s; link = &(*link)->park_next)
		prev = *link;
	if (*link)
		*link = s->park_next;
	if (w->parked_tail == s)
		w->parked_tail = prev;
	s->park_next = NULL;
	s->parked_on = NULL;
	session_log(s, LOG_DEBUG, "resumed after %lld ms parked",
		    (long long)(clock_mono_ms() - s->parked_at_ms));
	if (s->w->snap->cfg.client_idle_ms > 0)
		timer_arm(s, s->w->snap->cfg.client_idle_ms);
	else
		timer_stop(s);
}

/*
 * Answers a rejected unit as the server would answer a lock_timeout: an
 * ErrorResponse (55P03), then ReadyForQuery, so the session stays usable.
 */
static size_t reject_message(struct session *s, uint8_t *msg, size_t cap, char *text, size_t tcap)
{
	snprintf(text, tcap, "pgvalve: table \"%s\" is held for a schema change (hold %s); retry shortly",
		 s->rejected_table, s->rejected_hold);
	return pgwire_build_error(msg, cap, "ERROR", "55P03", text);
}

static void finish_reject(struct session *s)
{
	uint8_t msg[600], ready[6] = { 'Z', 0, 0, 0, 5, (uint8_t)s->tx_status };
	char text[300];
	size_t n;

	s->rejecting = false;
	s->c2s.track_all = false;
	n = reject_message(s, msg, sizeof(msg), text, sizeof(text));
	if (!relay_acquire(&s->s2c, &s->w->pool) || n > sizeof(msg) ||
	    !relay_append_scanned(&s->s2c, msg, (uint32_t)n) ||
	    !relay_append_scanned(&s->s2c, ready, sizeof(ready))) {
		/* Defensive: the server is mid-message to an idle session; closing is the safe answer. */
		session_close(s, "55P03", "%s", text);
		return;
	}
	session_log(s, LOG_INFO, "rejected a unit of work on \"%s\" (hold %s)", s->rejected_table,
		    s->rejected_hold);
}

static void start_reject(struct session *s, const struct hold *h, const char *table, uint8_t type)
{
	unpark(s);
	snprintf(s->rejected_table, sizeof(s->rejected_table), "%s", table ? table : "*");
	snprintf(s->rejected_hold, sizeof(s->rejected_hold), "%s", h->id);
	if (type == 'Q') {
		finish_reject(s);
	} else {
		s->rejecting = true;
		s->c2s.track_all = true; /* see every message up to the Sync */
	}
}

/* What a unit colliding with hold 'h' (or with none) becomes: passed, parked or rejected. */
static enum relay_msg hold_decide(struct session *s, const struct hold *h, const char *table, uint8_t type)
{
	if (!h) {
		unpark(s);
		return RELAY_MSG_PASS;
	}
	if (h->policy == HOLD_REJECT || s->timeout_reject) {
		s->timeout_reject = false;
		start_reject(s, h, table, type);
		return RELAY_MSG_DROP;
	}
	park(s, h);
	return RELAY_MSG_STOP;
}

/*
 * The hold check for one message of a unit of work: Query, Parse (its SQL),
 * Bind (the named statement's SQL), FunctionCall (unknowable). Only a session
 * that is idle (outside any transaction, nothing in flight) is held: parking
 * one inside a transaction could deadlock against the DDL.
 */
static enum relay_msg hold_check(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail,
				 uint32_t len)
{
	const struct hold_set *set = s->w->holds;
	struct classify_result *r = &s->w->classify_scratch;
	struct classify_options opt = {
		.parse_max_bytes = (size_t)s->w->snap->cfg.parse_max_bytes,
		.standard_conforming_strings_off = s->scs_off,
	};
	const char *sql = NULL, *table = NULL;
	size_t sql_len = 0;
	bool unknown = false;
	const struct hold *h;

	if (!set || set->n == 0 || s->hold_bypass || s->tx_status != 'I' || s->syncs_pending > 0) {
		unpark(s);
		return RELAY_MSG_PASS;
	}
	switch (type) {
	case 'Q':
		sql = (const char *)body;
		sql_len = len;
		unknown = avail < len;
		break;
	case 'P': {
		const uint8_t *name_end = memchr(body, 0, avail);

		unknown = avail < len || !name_end;
		if (!unknown) {
			sql = (const char *)name_end + 1;
			sql_len = len - (uint32_t)(name_end + 1 - body);
		}
		break;
	}
	case 'B': {
		const uint8_t *portal_end = memchr(body, 0, avail), *stmt_end;
		struct stmt *st;
		bool uncertain;

		stmt_end = portal_end ? memchr(portal_end + 1, 0, avail - (uint32_t)(portal_end + 1 - body))
				      : NULL;
		if (!stmt_end)
			return RELAY_MSG_PASS; /* malformed: the server will say so */
		if (stmt_end == portal_end + 1)
			return RELAY_MSG_PASS; /* the unnamed statement was judged at its Parse */
		st = stmt_lookup(&s->statements, (const char *)portal_end + 1, &uncertain);
		if (!st) {
			/*
			 * Not known for sure (forgotten, or changed by a batch not yet
			 * answered), or prepared with SQL PREPARE (same namespace, never
			 * seen here): fail closed.
			 */
			unknown = true;
			break;
		}
		/* A named statement is classified once, the first time a hold meets it. */
		stmt_classify(st, s->w->classify_cache, &opt, r);
		h = hold_conflict(set, r, s->upstream,
				  &table); /* sets 'table': call it before reading that */
		return hold_decide(s, h, table, type);
	}
	case 'F':
		unknown = true;
		break;
	default:
		return RELAY_MSG_PASS;
	}
	if (unknown) {
		memset(r, 0, sizeof(*r));
		r->flags = CLASSIFY_UNKNOWN;
	} else {
		classify_cache_sql(s->w->classify_cache, sql, sql_len, &opt, r);
	}
	h = hold_conflict(set, r, s->upstream, &table);
	return hold_decide(s, h, table, type);
}

/* Parse: statement name, query text, parameter types. The text of a prefix-only Parse stays unknown. */
static void track_parse(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	const uint8_t *name_end = memchr(body, 0, avail), *sql, *sql_end;

	if (!name_end) {
		stmt_parse_sent(&s->statements, NULL, NULL, 0);
		return;
	}
	sql = name_end + 1;
	sql_end = avail == len ? memchr(sql, 0, avail - (uint32_t)(sql - body)) : NULL;
	stmt_parse_sent(&s->statements, (const char *)body, sql_end ? (const char *)sql : NULL,
			sql_end ? (size_t)(sql_end - sql) : 0);
}

/* Close: 'S' statement or 'P' portal, then the name. */
static void track_close(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	bool whole = avail == len && len >= 2 && memchr(body + 1, 0, len - 1);

	stmt_close_sent(&s->statements, avail >= 1 && body[0] == 'S', whole ? (const char *)body + 1 : NULL);
}

static enum relay_msg on_client_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
				    uint32_t *new_len)
{
	struct session *s = ctx;
	enum relay_msg verdict;
	bool in_open_batch;

	if (s->rejecting) {
		/* Discarding a rejected extended-protocol unit: everything up to its Sync goes. */
		if (type != 'S')
			return RELAY_MSG_DROP;
		if (!s->batch_forwarded) {
			finish_reject(s);
			return RELAY_MSG_DROP;
		}
		/*
		 * Part of this batch already reached the server: it must see the Sync to
		 * answer it, and the 55P03 goes in front of its ReadyForQuery.
		 */
		s->rejecting = false;
		s->c2s.track_all = false;
		s->reject_before_ready = true;
	}
	if (s->retiring && type != 'X' && s->tx_status == 'I' && s->syncs_pending == 0 &&
	    !s->batch_forwarded) {
		/* A new unit of work on a retiring session: it must not reach the old server. */
		session_close(s, "57P01", "%s", s->retire_msg);
		return RELAY_MSG_STOP;
	}
	if ((verdict = hold_check(s, type, body, avail, len)) != RELAY_MSG_PASS)
		return verdict;

	/* An extended batch is open from its first message to its Sync; Query and FunctionCall open none. */
	in_open_batch = s->batch_forwarded;
	if (type == 'S')
		s->batch_forwarded = false;
	else if (type != 'Q' && type != 'X' && type != 'F')
		s->batch_forwarded = true;
	switch (type) {
	case 'Q':
		stats_statement(&s->w->stats, worker_now(s->w));
		/* fall through */
	case 'F': /* FunctionCall */
		if (in_open_batch) {
			/*
			 * Inside an extended batch not yet closed by Sync: the server
			 * discards it if an error came first, so whether a ReadyForQuery
			 * will answer it is unknowable. Count it as unanswered (the
			 * session looks idle sooner, never later) and stop trusting
			 * statement names.
			 */
			stmt_forget(&s->statements);
			break;
		}
		s->syncs_pending++;
		stmt_sync_sent(&s->statements);
		break;
	case 'E':
		stats_statement(&s->w->stats, worker_now(s->w));
		break;
	case 'S': /* Sync */
		s->syncs_pending++;
		stmt_sync_sent(&s->statements);
		break;
	case 'X':
		s->client_terminated = true;
		break;
	case 'P':
		track_parse(s, body, avail, len);
		break;
	case 'C':
		track_close(s, body, avail, len);
		break;
	}
	return RELAY_MSG_PASS;
}

static enum relay_msg on_server_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
				    uint32_t *new_len)
{
	struct session *s = ctx;
	struct pgwire_error err;
	const char *name, *value;

	switch (type) {
	case 'Z':
		if (avail < 1)
			return RELAY_MSG_ERROR;
		if (s->reject_before_ready)
			return RELAY_MSG_STOP; /* scan_and_flush puts the 55P03 in front, then goes on */
		s->tx_status = (char)body[0];
		if (s->syncs_pending)
			s->syncs_pending--;
		stmt_ready(&s->statements);
		s->hold_bypass = false; /* a unit let through by max_wait has ended */
		if (s->state == SESSION_LOGIN) {
			session_set_state(s, SESSION_READY);
			session_log(s, LOG_INFO, "login: backend_pid=%u upstream=%s", s->backend_pid,
				    s->w->snap->cfg.upstreams[s->upstream].name);
			if (s->w->snap->cfg.client_idle_ms > 0)
				timer_arm(s, s->w->snap->cfg.client_idle_ms);
			else
				timer_stop(s);
		}
		break;
	case '1':
		stmt_parse_complete(&s->statements);
		break;
	case '3':
		stmt_close_complete(&s->statements);
		break;
	case 'E':
		stmt_error(&s->statements);
		if (pgwire_parse_error(body, avail, &err)) {
			stats_error(&s->w->stats, worker_now(s->w), &err);
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
			if (!backend_keys_add(s->backend_pid, s->backend_key, s->upstream))
				session_log(
					s, LOG_WARN,
					"out of memory: cancel requests for this session will be dropped");
		}
		break;
	case 'R':
		/*
		 * Channel binding cannot survive a proxy: the client's TLS ends here,
		 * so SCRAM-SHA-256-PLUS would fail. Offer only what can work.
		 */
		if (avail == len)
			*new_len = (uint32_t)pgwire_sasl_remove_mechanism(body, len, "SCRAM-SHA-256-PLUS");
		break;
	}
	return RELAY_MSG_PASS;
}

void session_rules(struct relay_rules *c2s, struct relay_rules *s2c)
{
	memset(c2s, 0, sizeof(*c2s));
	memset(s2c, 0, sizeof(*s2c));
	c2s->on_msg = on_client_msg;
	s2c->on_msg = on_server_msg;
	c2s->track['Q'] = c2s->track['E'] = c2s->track['S'] = RELAY_TRACK_HEADER;
	c2s->track['F'] = c2s->track['X'] = RELAY_TRACK_HEADER;
	c2s->track['P'] = c2s->track['C'] = RELAY_TRACK_BODY;
	s2c->track['Z'] = s2c->track['E'] = s2c->track['S'] = RELAY_TRACK_BODY;
	s2c->track['K'] = s2c->track['R'] = RELAY_TRACK_BODY;
	/* ParseComplete and CloseComplete: a statement exists, or is gone, only once the server says so. */
	s2c->track['1'] = s2c->track['3'] = RELAY_TRACK_HEADER;
}

static void relay_io(struct session *s, struct conn *c, short what)
{
	bool is_client = c == &s->client;
	bool can_read = (what & EV_READ && !c->read_wants_write) || (what & EV_WRITE && c->read_wants_write);
	bool can_write = (what & EV_WRITE && !c->write_wants_read) || (what & EV_READ && c->write_wants_read);

	if (can_write && !flush(s, is_client ? &s->s2c : &s->c2s, c))
		return;
	if (can_read && !s->dead && s->state != SESSION_CLOSING) {
		if (is_client)
			pump(s, &s->c2s, &s->client, &s->server, &s->w->c2s_rules);
		else
			pump(s, &s->s2c, &s->server, &s->client, &s->w->s2c_rules);
	}
}

/* ---- upstream connection -------------------------------------------------- */

static void start_login(struct session *s)
{
	const char *why;

	session_set_state(s, SESSION_LOGIN);
	timer_arm(s, s->w->snap->cfg.auth_ms);
	/* The startup packet sits scanned in c2s; anything the client sent after it is framed. */
	if (relay_scan(&s->c2s, &s->w->c2s_rules, s, &why) == RELAY_ERROR) {
		session_close(s, "08P01", "%s", why);
		return;
	}
	flush(s, &s->c2s, &s->server);
}

/* Where a new session goes: a reroute hold's upstream while one is in force, else the active one. */
static int upstream_for_new_session(const struct worker *w)
{
	for (int i = 0; w->holds && i < w->holds->n; i++)
		if (w->holds->holds[i]->policy == HOLD_REROUTE)
			return w->holds->holds[i]->upstream_index;
	return w->active;
}

static void upstream_connect(struct session *s)
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
	s->server.ev = event_new(s->w->base, fd, EV_WRITE | EV_PERSIST, on_server_io, s);
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
	timer_arm(s, snap->cfg.connect_ms);
}

static void upstream_connected(struct session *s)
{
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

static void upstream_tls_step(struct session *s)
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

static void upstream_ssl_answer(struct session *s)
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
		upstream_tls_step(s);
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

/* ---- client startup ------------------------------------------------------- */

static void client_tls_step(struct session *s)
{
	char err[256];

	switch (conn_tls_handshake(&s->client)) {
	case 1:
		session_set_state(s, SESSION_STARTUP);
		/* The startup packet may already be decrypted and waiting inside OpenSSL. */
		s->kick_client = true;
		break;
	case 0:
		break;
	default:
		conn_error_text(err, sizeof(err));
		session_log(s, LOG_INFO, "TLS handshake with client failed: %s", err);
		s->dead = true;
	}
}

/* Answers an SSLRequest or GSSENCRequest with one byte. */
static bool answer_negotiation(struct session *s, char answer)
{
	if (conn_write(&s->client, &answer, 1) != 1) {
		s->dead = true;
		return false;
	}
	return true;
}

static void client_startup(struct session *s)
{
	struct relay_buf *b = &s->c2s;
	struct pgwire_startup st;
	const char *why;
	long n;

	if (!relay_acquire(b, &s->w->pool)) {
		session_close(s, "53200", "out of memory");
		return;
	}
	n = conn_read(&s->client, b->data + b->tail, b->cap - b->tail);
	if (n == CONN_AGAIN)
		return;
	if (n <= 0) {
		session_log(s, LOG_DEBUG, "client left before startup");
		s->dead = true;
		return;
	}
	b->tail += (uint32_t)n;
	switch (pgwire_parse_startup(b->data, b->tail, &st, &why)) {
	case PGWIRE_INCOMPLETE:
		if (b->tail == b->cap)
			session_close(s, "08P01", "invalid length of startup packet");
		return;
	case PGWIRE_ERROR:
		session_close(s, "08P01", "%s", why);
		return;
	case PGWIRE_OK:
		break;
	}
	switch (st.kind) {
	case PGWIRE_STARTUP_SSL:
		if (s->client_tls_done) {
			session_close(s, "08P01", "SSLRequest after encryption was negotiated");
			return;
		}
		/* Bytes after an SSLRequest would be plaintext smuggled past TLS (CVE-2021-23214). */
		if (b->tail > st.len) {
			session_close(s, "08P01", "received unencrypted data after SSL request");
			return;
		}
		s->client_tls_done = true;
		b->tail = 0;
		if (!s->w->snap->client_tls) {
			answer_negotiation(s, 'N');
			return;
		}
		if (!answer_negotiation(s, 'S'))
			return;
		s->client.ssl = SSL_new(s->w->snap->client_tls);
		if (!s->client.ssl || SSL_set_fd(s->client.ssl, s->client.fd) != 1) {
			s->dead = true;
			return;
		}
		SSL_set_accept_state(s->client.ssl);
		session_set_state(s, SESSION_CLIENT_TLS);
		client_tls_step(s);
		return;
	case PGWIRE_STARTUP_GSSENC:
		if (b->tail > st.len) {
			session_close(s, "08P01",
				      "received unencrypted data after GSSAPI encryption request");
			return;
		}
		b->tail = 0;
		answer_negotiation(s, 'N');
		return;
	case PGWIRE_STARTUP_CANCEL:
		if (cancel_forward(s->w, b->data, st.cancel_pid, st.cancel_key))
			session_log(s, LOG_INFO, "cancel request for backend_pid=%u forwarded",
				    st.cancel_pid);
		else
			session_log(s, LOG_WARN,
				    "cancel request for backend_pid=%u dropped: not a backend "
				    "this proxy handed out",
				    st.cancel_pid);
		s->dead = true;
		return;
	case PGWIRE_STARTUP_V3:
		break;
	}
	snprintf(s->user, sizeof(s->user), "%s", st.user);
	snprintf(s->database, sizeof(s->database), "%s", st.database);
	/* The startup packet is forwarded as is; it counts as scanned. */
	b->scan = st.len;
	upstream_connect(s);
}

/*
 * A closing session: flushes its last words (an ErrorResponse, usually), then
 * lingers. Closing a socket with unread input makes the kernel answer with
 * RST, and a client whose next query crossed our FATAL on the wire would
 * lose the FATAL to it ("server closed the connection unexpectedly"). So a
 * plain connection is half-closed and its input read and discarded until
 * the client closes or CLOSING_LINGER_MS pass.
 */
static void closing_step(struct session *s)
{
	uint8_t scratch[4096];
	ssize_t n;

	if (!s->lingering) {
		if (!flush(s, &s->s2c, &s->client) || relay_pending(&s->s2c) > 0)
			return; /* failed (then dead), or the rest goes when the socket takes it */
		if (s->client.ssl || shutdown(s->client.fd, SHUT_WR) != 0) {
			s->dead = true; /* TLS ends with the socket: no half-close */
			return;
		}
		s->lingering = true;
		timer_arm(s, CLOSING_LINGER_MS);
	}
	while ((n = recv(s->client.fd, scratch, sizeof(scratch), 0)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		s->dead = true;
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
	case SESSION_LOGIN:
	case SESSION_READY:
		relay_io(s, &s->client, what);
		break;
	case SESSION_CLOSING:
		closing_step(s);
		break;
	default:
		break;
	}
	session_settle(s);
}

static void on_server_io(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	switch (s->state) {
	case SESSION_CONNECTING:
		upstream_connected(s);
		break;
	case SESSION_UPSTREAM_SSLREQ:
		upstream_ssl_answer(s);
		break;
	case SESSION_UPSTREAM_TLS:
		upstream_tls_step(s);
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

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	const struct config *cfg = &s->w->snap->cfg;
	const struct config_upstream *up = &cfg->upstreams[s->upstream];

	switch (s->state) {
	case SESSION_STARTUP:
	case SESSION_CLIENT_TLS:
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

		if (s->parked_on) {
			/* max_wait_ms ran out: release the unit or reject it, per the hold's on_timeout. */
			const struct hold *h = s->parked_on;

			session_log(s, LOG_WARN, "waited max_wait_ms (%lld) on hold %s: %s",
				    (long long)h->max_wait_ms, h->id,
				    h->on_timeout == HOLD_TIMEOUT_REJECT ? "rejecting" : "releasing");
			if (h->on_timeout == HOLD_TIMEOUT_REJECT)
				s->timeout_reject = true;
			else
				s->hold_bypass = true;
			unpark(s);
			if (scan_and_flush(s, &s->c2s, &s->server, &s->w->c2s_rules))
				s->kick_client = true;
			break;
		}
		if (cfg->client_idle_ms <= 0) {
			timer_stop(s);
		} else if (idle_s * 1000 >= cfg->client_idle_ms && session_is_idle(s)) {
			session_close(s, "57P05",
				      "terminating connection due to client idle timeout "
				      "(timeouts.client_idle_ms)");
		} else {
			timer_arm(s, cfg->client_idle_ms);
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

bool session_is_idle(const struct session *s)
{
	return s->state == SESSION_READY && s->tx_status == 'I' && s->syncs_pending == 0 &&
		relay_empty(&s->c2s) && relay_empty(&s->s2c) && relay_at_boundary(&s->c2s);
}

void session_retire(struct session *s, const char *why, bool now)
{
	snprintf(s->retire_msg, sizeof(s->retire_msg), "%s", why);
	s->retiring = true;
	if (now || s->state != SESSION_READY || session_is_idle(s) || s->parked_on)
		session_close(s, "57P01", "%s", s->retire_msg);
	session_settle(s);
}

void session_drain(struct session *s)
{
	session_retire(s, "terminating connection because pgvalve-proxy is shutting down", false);
}

void session_connect_upstream(struct session *s)
{
	if (s->state == SESSION_WAITING_UPSTREAM)
		upstream_connect(s);
	session_settle(s);
}

static void session_settle(struct session *s)
{
	short client = 0, server = 0;

	if (!s->dead && s->retiring && session_is_idle(s))
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
	case SESSION_CONNECTING:
		server = EV_WRITE;
		break;
	case SESSION_UPSTREAM_SSLREQ:
	case SESSION_UPSTREAM_TLS:
		server = EV_READ;
		break;
	case SESSION_LOGIN:
	case SESSION_READY:
		if (has_room(&s->c2s) && !s->parked_on)
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

void session_recheck_parked(struct session *s)
{
	/* The unit waits at c2s.scan: scanning again runs the hold check against the new set. */
	if (scan_and_flush(s, &s->c2s, &s->server, &s->w->c2s_rules) && !s->parked_on)
		s->kick_client = true; /* more may have arrived behind it; read on */
	session_settle(s);
}

/* ---- introspection -------------------------------------------------------- */

const char *session_state_name(const struct session *s)
{
	if (s->state == SESSION_READY) {
		if (s->parked_on)
			return "parked";
		if (s->tx_status == 'T' || s->tx_status == 'E')
			return "in_transaction";
		return session_is_idle(s) ? "idle" : "active";
	}
	return state_names[s->state];
}

void session_describe(const struct session *s, cJSON *arr)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double)s->id);
	cJSON_AddStringToObject(o, "user", s->user);
	cJSON_AddStringToObject(o, "database", s->database);
	cJSON_AddStringToObject(o, "client", s->client_addr);
	cJSON_AddStringToObject(o, "state", session_state_name(s));
	cJSON_AddBoolToObject(o, "tls", s->client.ssl != NULL);
	cJSON_AddBoolToObject(o, "upstream_tls", s->server.ssl != NULL);
	cJSON_AddStringToObject(o, "upstream", s->w->snap->cfg.upstreams[s->upstream].name);
	if (s->backend_pid)
		cJSON_AddNumberToObject(o, "backend_pid", s->backend_pid);
	else
		cJSON_AddNullToObject(o, "backend_pid");
	cJSON_AddNumberToObject(o, "prepared_statements", s->statements.count);
	if (s->parked_on) {
		cJSON_AddStringToObject(o, "parked_on", s->parked_on->id);
		cJSON_AddNumberToObject(o, "parked_ms", (double)(clock_mono_ms() - s->parked_at_ms));
	}
	cJSON_AddNumberToObject(o, "connected_s", (double)(worker_now(s->w) - s->connected_at));
	cJSON_AddNumberToObject(o, "worker", s->w->index);
	cJSON_AddItemToArray(arr, o);
}
