/*
 * The client side of a session (see client.h): what happens before the
 * client is logged in (startup packet, encryption negotiation, TLS, cancel
 * requests), what it sends afterwards, and how a closing session lets go of
 * it. It does not own the relay (session.c), the hold check (park.c) or the
 * upstream connection (server.c).
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "cancel.h"
#include "park.h"
#include "pgvalve/pgwire.h"
#include "runtime.h"
#include "server.h"
#include "session.h"
#include "stats.h"
#include "stmt_refresh.h"
#include "worker.h"

#define CLOSING_LINGER_MS 1000 /* how long a closing session waits for the client to close */

void client_tls_step(struct session *s)
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

/* https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL */
static void negotiate_ssl(struct session *s, const struct pgwire_startup *st)
{
	struct relay_buf *b = &s->c2s;

	if (s->client_tls_done) {
		session_close(s, "08P01", "SSLRequest after encryption was negotiated");
		return;
	}
	/* Bytes after an SSLRequest would be plaintext smuggled past TLS (CVE-2021-23214). */
	if (b->tail > st->len) {
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
}

void client_startup(struct session *s)
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
		negotiate_ssl(s, &st);
		return;
	case PGWIRE_STARTUP_GSSENC:
		/* No GSSAPI encryption here: 'N', and the client goes on in plaintext or with SSL. */
		if (b->tail > st.len) {
			session_close(s, "08P01",
				      "received unencrypted data after GSSAPI encryption request");
			return;
		}
		b->tail = 0;
		answer_negotiation(s, 'N');
		return;
	case PGWIRE_STARTUP_CANCEL:
		/* Cancelled here if parked, else forwarded; logged where that is decided. */
		if (!cancel_request(s->w, b->data, st.cancel_pid, st.cancel_key))
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
	if (auth_terminates(s)) {
		/* The proxy authenticates the client before anything goes upstream. */
		auth_client_begin(s, st.len);
		return;
	}
	/* The startup packet is forwarded as is; it counts as scanned. */
	b->scan = st.len;
	server_connect(s);
}

/*
 * A closing session: flushes its last words (an ErrorResponse, usually), then
 * lingers. Closing a socket with unread input makes the kernel answer with
 * RST, and a client whose next query crossed our FATAL on the wire would
 * lose the FATAL to it ("server closed the connection unexpectedly"). So a
 * plain connection is half-closed and its input read and discarded until
 * the client closes or CLOSING_LINGER_MS pass.
 */
void client_closing_step(struct session *s)
{
	uint8_t scratch[4096];
	ssize_t n;

	if (!s->lingering) {
		if (!session_flush(s, &s->s2c, &s->client) || relay_pending(&s->s2c) > 0)
			return; /* failed (then dead), or the rest goes when the socket takes it */
		if (conn_is_tls(&s->client) || shutdown(s->client.fd, SHUT_WR) != 0) {
			s->dead = true; /* TLS ends with the socket: no half-close */
			return;
		}
		s->lingering = true;
		session_timer_arm(s, CLOSING_LINGER_MS);
	}
	while ((n = recv(s->client.fd, scratch, sizeof(scratch), 0)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		s->dead = true;
}

/* Parse: statement name, query text, parameter types. The text of a prefix-only Parse stays unknown. */
static void track_parse(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	const uint8_t *name_end = memchr(body, 0, avail), *sql, *sql_end;
	const uint8_t *types = NULL;
	int n = 0;

	if (!name_end) {
		stmt_parse_sent(&s->statements, NULL, NULL, 0);
		return;
	}
	sql = name_end + 1;
	sql_end = avail == len ? memchr(sql, 0, avail - (uint32_t)(sql - body)) : NULL;
	if (sql_end && len - (uint32_t)(sql_end + 1 - body) >= 2) {
		types = sql_end + 3;
		n = sql_end[1] << 8 | sql_end[2];
		if ((uint32_t)n * 4 != len - (uint32_t)(types - body))
			n = 0; /* malformed: the server says so */
	}
	stmt_parse_sent_typed(&s->statements, (const char *)body, sql_end ? (const char *)sql : NULL,
			      sql_end ? (size_t)(sql_end - sql) : 0, types, n);
}

/* Describe: 'S' statement or 'P' portal, then the name. */
static void track_describe(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	bool whole = avail == len && len >= 2 && body[len - 1] == 0;

	if (avail >= 1 && body[0] == 'S')
		stmt_describe_sent(&s->statements, whole ? (const char *)body + 1 : NULL);
}

/* Close: 'S' statement or 'P' portal, then the name. */
static void track_close(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	bool whole = avail == len && len >= 2 && memchr(body + 1, 0, len - 1);

	stmt_close_sent(&s->statements, avail >= 1 && body[0] == 'S', whole ? (const char *)body + 1 : NULL);
}

enum relay_msg client_on_msg(void *ctx, uint8_t type, uint8_t *body, uint32_t avail, uint32_t len,
			     uint32_t *new_len)
{
	struct session *s = ctx;
	enum relay_msg verdict;
	bool in_open_batch;

	/* A handler closed the session (a rejection that could not be answered, say): judge nothing more. */
	if (s->dead || s->state == SESSION_CLOSING)
		return RELAY_MSG_STOP;
	/* Statement refresh sent a rewritten copy of this message in front of it (stmt_refresh.h). */
	if (refresh_drop_current(s)) {
		s->batch_forwarded = true;
		return RELAY_MSG_DROP;
	}
	if ((verdict = park_discard(s, type)) != RELAY_MSG_PASS)
		return verdict;
	if (s->retiring && type != 'X' && s->tx_status == 'I' && s->syncs_pending == 0 &&
	    !s->batch_forwarded) {
		/* A new unit of work on a retiring session: it must not reach the old server. */
		session_close(s, "57P01", "%s", s->retire_msg);
		return RELAY_MSG_STOP;
	}
	if ((verdict = park_check(s, type, body, avail, len)) != RELAY_MSG_PASS)
		return verdict;
	/* A stale statement is re-prepared first; results of a re-prepared one are presented as shown. */
	if ((verdict = refresh_client_msg(s, type, body, avail, len)) != RELAY_MSG_PASS)
		return verdict;
	if (s->w->latency.set) /* an observation is active (latency.h) */
		latency_client_msg(s, type, body, avail, len);

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
	case 'D':
		track_describe(s, body, avail, len);
		break;
	}
	return RELAY_MSG_PASS;
}
