/*
 * A session: one client connection and the one server connection opened for
 * it (session mode). Owns the startup handshake (SSL/GSS negotiation,
 * cancel forwarding, upstream connect and TLS), the relay of authentication
 * and queries in both directions, and the session's single exit.
 */
#ifndef PGVALVE_PROXY_SESSION_H
#define PGVALVE_PROXY_SESSION_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "hold.h"
#include "relay.h"
#include "stmt.h"

struct worker;

/* Where a session is in its life. Changed only by session_set_state(). */
enum session_state {
	SESSION_STARTUP,          /* reading the client's first packet */
	SESSION_CLIENT_TLS,       /* TLS handshake with the client */
	SESSION_CONNECTING,       /* TCP connect to the upstream */
	SESSION_UPSTREAM_SSLREQ,  /* waiting for the upstream's answer to SSLRequest */
	SESSION_UPSTREAM_TLS,     /* TLS handshake with the upstream */
	SESSION_WAITING_UPSTREAM, /* startup read; a switchover decides where it connects */
	SESSION_LOGIN,            /* startup forwarded; relaying authentication */
	SESSION_READY,            /* logged in: relaying queries */
	SESSION_CLOSING,          /* flushing a last message to the client, then gone */
};

struct session {
	struct session *prev, *next; /* the worker's list */
	struct worker *w;
	uint64_t id;
	enum session_state state;
	struct conn client;
	struct conn server;
	struct relay_buf c2s;
	struct relay_buf s2c;
	struct event *timer; /* connect/auth deadline, idle checks, closing flush */

	char tx_status;         /* last ReadyForQuery: 'I', 'T' or 'E' */
	uint32_t syncs_pending; /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
	uint32_t backend_pid;
	uint32_t backend_key;
	int upstream;           /* index in the snapshot's upstreams */
	bool client_tls_done;   /* an SSLRequest was answered: no second one */
	bool scs_off;           /* standard_conforming_strings = off */
	bool server_fatal;      /* the server sent a FATAL error: its close is expected */
	bool client_terminated; /* the client sent Terminate */
	bool dead;              /* free at the end of the current callback */
	bool kick_client;       /* TLS holds decrypted client bytes: read again after settling */
	bool kick_server;       /* the same for the server side */
	bool lingering;         /* closing: last words sent, waiting for the client to close */
	bool retiring;          /* close at the next idle point, with 'retire_msg' (57P01) */
	char retire_msg[160];
	struct stmt_map statements; /* named prepared statements (Parse/Close) */

	/* Holds: a parked session's next unit of work waits in c2s, unscanned. */
	const struct hold *parked_on; /* NULL unless parked */
	struct session *park_next;    /* the worker's parked list, in arrival order */
	int64_t parked_at_ms;
	bool hold_bypass;                       /* max_wait ran out: this unit goes through */
	bool timeout_reject;                    /* max_wait ran out under on_timeout=reject */
	bool rejecting;                         /* discarding the rejected unit up to its Sync */
	bool batch_forwarded;                   /* extended messages since the last Sync reached the server */
	bool reject_before_ready;               /* put the 55P03 before the server's next ReadyForQuery */
	char rejected_table[CLASSIFY_NAME_MAX]; /* for the 55P03 message */
	char rejected_hold[HOLD_ID_MAX];
	time_t connected_at;
	time_t last_activity;

	char user[64];
	char database[64];
	char client_addr[64];
};

/* Takes an accepted socket. */
void session_accept(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen);

/* Fills the relay rules of both directions (message types the session tracks). */
void session_rules(struct relay_rules *c2s, struct relay_rules *s2c);

/* Frees at once: only for worker teardown. */
void session_free(struct session *s);

/*
 * The session's one exit: tells the client why with an ErrorResponse
 * (FATAL, 'sqlstate') where the protocol allows, logs it, and frees the
 * session once that message is flushed (or at once). NULL sqlstate: just
 * close. Safe to call from inside the session's own callbacks.
 */
void session_close(struct session *s, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Closes the session with 57P01 and 'why' now if it is idle, parked or not
 * yet logged in (or 'now' is set: an open transaction is then rolled back by
 * the server), else at its next idle point; its next unit of work never
 * reaches the server. Used by shutdown (session_drain) and switchover. May
 * free the session.
 */
void session_retire(struct session *s, const char *why, bool now);

/* Starts draining (SIGTERM): session_retire with the shutdown message. */
void session_drain(struct session *s);

/* A session waiting for a switchover connects now, to the worker's active upstream. */
void session_connect_upstream(struct session *s);

/* Whether the session is idle: logged in, not in a transaction, nothing in flight. */
bool session_is_idle(const struct session *s);

/*
 * Re-checks a parked session against the worker's current holds: resumes it
 * (in the caller's order) if nothing holds its unit any more.
 */
void session_recheck_parked(struct session *s);

/* Adds a JSON description of the session to 'arr' (for /status). */
void session_describe(const struct session *s, cJSON *arr);

const char *session_state_name(const struct session *s);

#endif
