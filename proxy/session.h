/*
 * A session: one client connection and the one server connection opened for
 * it (session mode). session.c owns its life (accept, the one exit, free),
 * the pump between the two sockets and event dispatch; the client side is
 * client.c's, the server side server.c's, and holds are park.c's.
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
#include "latency.h"
#include "park.h"
#include "pgvalve/log.h"
#include "relay.h"
#include "stmt.h"

struct auth;
struct worker;
struct worker_hooks;

/* Where a session is in its life. Changed only by session_set_state(). */
enum session_state {
	SESSION_STARTUP,          /* reading the client's first packet */
	SESSION_CLIENT_TLS,       /* TLS handshake with the client */
	SESSION_CLIENT_AUTH,      /* auth.mode terminate: authenticating the client (auth.c) */
	SESSION_CONNECTING,       /* TCP connect to the upstream */
	SESSION_UPSTREAM_SSLREQ,  /* waiting for the upstream's answer to SSLRequest */
	SESSION_UPSTREAM_TLS,     /* TLS handshake with the upstream */
	SESSION_WAITING_UPSTREAM, /* startup read; a switchover decides where it connects */
	SESSION_LOGIN,            /* startup forwarded; relaying authentication */
	SESSION_READY,            /* logged in: relaying queries */
	SESSION_CLOSING,          /* flushing a last message to the client, then gone */
};

/*
 * What a session is doing, as the rest of the proxy asks it: /status and
 * /metrics count by it, a hold's answer counts parked and in-transaction
 * sessions, a switchover waits for the busy ones (ACTIVE, IN_TRANSACTION).
 * Whether it is retiring is another question (session_retire): a retiring
 * session inside a transaction is still IN_TRANSACTION.
 */
enum session_activity {
	SESSION_ACT_LOGIN,          /* not serving queries yet: startup, TLS, connect, authentication */
	SESSION_ACT_IDLE,           /* logged in, outside a transaction, nothing in flight */
	SESSION_ACT_ACTIVE,         /* outside a transaction, a unit of work in flight */
	SESSION_ACT_IN_TRANSACTION, /* inside a transaction (its last ReadyForQuery said 'T' or 'E') */
	SESSION_ACT_PARKED,         /* its next unit of work waits on a hold */
	SESSION_ACT_CLOSING,        /* on its way out: last words to the client, then freed */
	SESSION_ACT_N,
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
	struct event *timer; /* connect/auth deadline, idle checks, max_wait, closing flush */

	char tx_status;         /* last ReadyForQuery: 'I', 'T' or 'E' */
	uint32_t syncs_pending; /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
	uint32_t backend_pid;
	uint32_t backend_key;
	int upstream;           /* index in the snapshot's upstreams */
	bool client_tls_done;   /* an SSLRequest was answered: no second one */
	bool scs_off;           /* standard_conforming_strings = off */
	bool server_fatal;      /* the server sent a FATAL error: its close is expected */
	bool client_terminated; /* the client sent Terminate */
	bool batch_forwarded;   /* extended messages since the last Sync reached the server */
	bool dead;              /* free at the end of the current callback */
	bool kick_client;       /* TLS holds decrypted client bytes: read again after settling */
	bool kick_server;       /* the same for the server side */
	bool lingering;         /* closing: last words sent, waiting for the client to close */
	bool retiring;          /* close at the next idle point, with 'retire_msg' (57P01) */
	char retire_msg[160];
	struct stmt_map statements; /* named prepared statements (Parse/Close) */
	struct refresh *refresh;    /* statement refresh, once one of them was marked: stmt_refresh.c's */
	struct park park;           /* holds: park.c's */
	struct latency_unit lat;    /* table latency: latency.c's */
	struct auth *auth;          /* auth.mode terminate, until the server lets the session in: auth.c's */
	time_t connected_at;
	time_t last_activity;

	char user[64];
	char database[64];
	char client_addr[64];
};

/* What workers call sessions through: accept, relay rules, free (for worker_init). */
extern const struct worker_hooks session_hooks;

/* Takes an accepted socket (the worker's accept hook). */
void session_accept(struct worker *w, int fd, const struct sockaddr *addr, socklen_t addrlen);

/* Fills the relay rules of both directions (message types the session tracks). */
void session_rules(struct relay_rules *c2s, struct relay_rules *s2c);

/* Frees at once: only for worker teardown and session_stop. */
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

/*
 * Stopping the process: closes with 57P01 and 'why', tries once to write
 * that last message without waiting, and frees the session.
 */
void session_stop(struct session *s, const char *why);

/*
 * A session waiting for a switchover connects now, to the worker's active
 * upstream. Returns whether it was waiting (it may be freed by then).
 */
bool session_connect_upstream(struct session *s);

/* What the session is doing (see enum session_activity). */
enum session_activity session_activity(const struct session *s);

/* The upstream index the session has a server connection to, or -1. */
int session_upstream(const struct session *s);

/* Adds a JSON description of the session to 'arr' (for /status). */
void session_describe(const struct session *s, cJSON *arr);

/* ---- for the session's own modules: client.c, server.c, park.c ------------ */

/* Changes s->state (the one place that does). */
void session_set_state(struct session *s, enum session_state state);

/* (Re)arms the session's one timer to fire in 'ms'. */
void session_timer_arm(struct session *s, int ms);
/* Arms the client idle check (timeouts.client_idle_ms), or stops the timer when there is none. */
void session_timer_idle(struct session *s);

/* Writes what is scanned in 'b' to 'dst'. Returns false if the session failed. */
bool session_flush(struct session *s, struct relay_buf *b, struct conn *dst);

/* Scans the client's bytes in c2s and forwards them. Returns false if the session is closing. */
bool session_forward_client(struct session *s);

/* Ends every event callback: frees a dead session, else recomputes event interest from state. */
void session_settle(struct session *s);

/* The server socket's event callback (server.c registers it at connect). */
void session_on_server_io(evutil_socket_t fd, short what, void *arg);

/* Who the session is, for log lines. */
struct log_session session_who(const struct session *s);

#define session_log(s, level, ...)                          \
	do {                                                \
		struct log_session who_ = session_who(s);   \
		if (log_enabled(level))                     \
			log_msg(level, &who_, __VA_ARGS__); \
	} while (0)

#endif
