/*
 * Terminated authentication of a session (see auth.h): the state one login
 * needs, the client leg as a server, the server leg as a client, and the
 * wiping of every secret once the server has let the session in. Nothing
 * here logs a secret: log lines name the role, the mechanism and the step.
 */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_lookup.h"
#include "pgvalve/md5_auth.h"
#include "pgvalve/pgwire.h"
#include "pgvalve/scram.h"
#include "pgvalve/verifier.h"
#include "runtime.h"
#include "server.h"
#include "session.h"
#include "worker.h"

/* Authentication request codes (https://www.postgresql.org/docs/current/protocol-message-formats.html). */
enum {
	AUTH_OK = 0,
	AUTH_KERBEROS_V5 = 2,
	AUTH_CLEARTEXT = 3,
	AUTH_MD5 = 5,
	AUTH_GSS = 7,
	AUTH_GSS_CONTINUE = 8,
	AUTH_SSPI = 9,
	AUTH_SASL = 10,
	AUTH_SASL_CONTINUE = 11,
	AUTH_SASL_FINAL = 12,
};

/* The longest message the client may send while it authenticates (a SASLInitialResponse). */
#define AUTH_CLIENT_MSG_MAX (SCRAM_MESSAGE_MAX + 64)

enum auth_step {
	STEP_CLIENT_LOOKUP,       /* waiting for auth.query's answer (auth_lookup.c) */
	STEP_CLIENT_SASL_INITIAL, /* AuthenticationSASL sent, waiting for SASLInitialResponse */
	STEP_CLIENT_SASL_FINAL,   /* SASLContinue sent, waiting for SASLResponse */
	STEP_CLIENT_MD5,          /* AuthenticationMD5Password sent, waiting for PasswordMessage */
	STEP_SERVER,              /* the client is in: logging in upstream */
};

struct auth {
	enum auth_step step;
	bool md5;                /* the role's verifier is an md5 hash (else SCRAM, maybe a mock) */
	struct scram_verifier v; /* SCRAM: the role's verifier, or a mock */
	char md5_hash[MD5_AUTH_LEN + 1];
	unsigned char md5_salt[MD5_AUTH_SALT_LEN];
	unsigned char client_key[SCRAM_KEY_LEN]; /* recovered from the client's proof */
	struct scram_server *client_leg;
	struct scram_client *server_leg;
	struct lookup_req *lookup; /* while STEP_CLIENT_LOOKUP */
	bool looked_up;            /* the verifier came from auth.query (maybe through the cache) */
	bool cached;               /* ... and is in the worker's cache as answer 'gen' */
	bool from_cache;           /* ... and was taken from there, not fetched for this login */
	unsigned long gen;
	char md5_resp[MD5_AUTH_LEN + 1]; /* the client's md5 answer, while a refetch checks it again */
	char *sasl_final; /* the client's SCRAM client-final, while a refetch checks it again */
	size_t sasl_final_len;
	bool server_verified; /* the server's SCRAM signature checked */
	int server_mech;      /* the server leg's enum stats_auth_mech, -1: none asked yet */
	uint8_t *startup;     /* the client's StartupMessage, forwarded once the client is in */
	uint32_t startup_len;
};

/* ---- the per-process secret behind mock verifiers ------------------------- */

static unsigned char mock_secret[SCRAM_KEY_LEN];
static pthread_once_t mock_once = PTHREAD_ONCE_INIT;

static void mock_secret_init(void)
{
	if (RAND_bytes(mock_secret, sizeof(mock_secret)) != 1) {
		/* No randomness: a fixed secret would let a prober tell unknown roles apart by salt. */
		log_error("cannot get random bytes for SCRAM mock verifiers");
		abort();
	}
}

bool auth_terminates(const struct session *s)
{
	return s->w->snap->cfg.auth.mode == AUTH_MODE_TERMINATE;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	scram_server_free(a->client_leg);
	scram_client_free(a->server_leg);
	auth_lookup_cancel(a->lookup);
	free(a->startup);
	if (a->sasl_final) {
		OPENSSL_cleanse(a->sasl_final, a->sasl_final_len);
		free(a->sasl_final);
	}
	OPENSSL_cleanse(a, sizeof(*a)); /* the verifier, the md5 hash, the ClientKey */
	free(a);
}

/* Which enum stats_auth_mech a SCRAM mechanism name is. */
static int scram_mech(const char *name)
{
	return strcmp(name, "SCRAM-SHA-256-PLUS") == 0 ? STATS_AUTH_SCRAM_PLUS : STATS_AUTH_SCRAM;
}

/* A leg of the login passed with 'mech' (pgvalve_auth_logins_total). */
static void count_login(struct session *s, enum stats_auth_leg leg, int mech)
{
	if (mech >= 0 && mech < STATS_AUTH_MECHS)
		s->w->stats.auth_logins_total[leg][mech]++;
}

static void auth_done(struct session *s)
{
	auth_free(s->auth);
	s->auth = NULL;
}

/* PostgreSQL's answer to an unknown role, a role without a password and a wrong password alike. */
static void fail_password(struct session *s, const char *why)
{
	session_log(s, LOG_INFO, "authentication failed: %s", why);
	session_close(s, "28P01", "password authentication failed for user \"%s\"", s->user);
}

/* ---- the cache of auth.query's answers ------------------------------------ */

/* The database auth.query runs in for this session. */
static const char *lookup_dbname(const struct session *s)
{
	const struct snapshot *snap = s->w->snap;

	return snap->cfg.auth.dbname ? snap->cfg.auth.dbname : s->database;
}

/*
 * The verifier this login used may be stale: the next login asks the server
 * again. 'rate_limit' for a client's failed proof, which may as well be a
 * wrong password; the server's refusal is proof enough.
 */
static void drop_verifier(struct session *s, bool rate_limit, const char *why)
{
	struct auth *a = s->auth;

	if (a && a->cached && auth_cache_drop(s, lookup_dbname(s), a->gen, rate_limit)) {
		a->cached = false;
		session_log(s, LOG_DEBUG, "auth cache: dropped the verifier of role \"%s\" (%s)", s->user,
			    why);
	}
}

/* ---- framing -------------------------------------------------------------- */

/* Queues an Authentication message (code, then 'n' bytes of data) for the client. */
static bool send_to_client(struct session *s, uint32_t code, const void *data, size_t n)
{
	uint8_t msg[9 + SCRAM_MESSAGE_MAX];

	if (n > SCRAM_MESSAGE_MAX || !relay_acquire(&s->s2c, &s->w->pool))
		return false;
	msg[0] = 'R';
	pgwire_put_u32(msg + 1, (uint32_t)(8 + n));
	pgwire_put_u32(msg + 5, code);
	if (n)
		memcpy(msg + 9, data, n);
	return relay_append_scanned(&s->s2c, msg, (uint32_t)(9 + n));
}

/*
 * Queues a 'p' message for the server: 'prefix' (SASLInitialResponse's
 * mechanism and length, or nothing) then 'data'. It goes in front of
 * anything the client sent that is not scanned yet.
 */
static bool send_to_server(struct session *s, const void *prefix, size_t prefix_len, const void *data,
			   size_t n)
{
	uint8_t msg[5 + 64 + SCRAM_MESSAGE_MAX + 1];

	if (prefix_len > 64 || n > SCRAM_MESSAGE_MAX + 1 || !relay_acquire(&s->c2s, &s->w->pool) ||
	    !relay_at_boundary(&s->c2s))
		return false;
	msg[0] = 'p';
	pgwire_put_u32(msg + 1, (uint32_t)(4 + prefix_len + n));
	if (prefix_len)
		memcpy(msg + 5, prefix, prefix_len);
	memcpy(msg + 5 + prefix_len, data, n);
	return relay_insert_scanned(&s->c2s, msg, (uint32_t)(5 + prefix_len + n));
}

/* ---- the client leg ------------------------------------------------------- */

/* Which verifier 'text' (the role's, or NULL) is: SCRAM, md5, or a mock that fails at the end. */
static void find_verifier(struct session *s, struct auth *a, const char *text)
{
	switch (verifier_classify(text)) {
	case VERIFIER_SCRAM:
		if (scram_verifier_parse(text, &a->v))
			return;
		break;
	case VERIFIER_MD5:
		a->md5 = true;
		snprintf(a->md5_hash, sizeof(a->md5_hash), "%s", text);
		return;
	default:
		break;
	}
	if (text)
		session_log(s, LOG_WARN,
			    "the verifier of role \"%s\" is no SCRAM-SHA-256 verifier or md5 hash: its "
			    "logins fail",
			    s->user);
	pthread_once(&mock_once, mock_secret_init);
	scram_verifier_mock(s->user, mock_secret, &a->v);
}

/* Sends the first authentication request for the role's verifier 'text' (or NULL). */
static void begin_exchange(struct session *s, const char *text)
{
	struct auth *a = s->auth;
	bool sent;

	find_verifier(s, a, text);
	if (a->md5) {
		if (RAND_bytes(a->md5_salt, sizeof(a->md5_salt)) != 1) {
			session_close(s, "XX000", "cannot get random bytes for the md5 salt");
			return;
		}
		a->step = STEP_CLIENT_MD5;
		sent = send_to_client(s, AUTH_MD5, a->md5_salt, sizeof(a->md5_salt));
	} else {
		const char *mechs;
		unsigned char cbind[SCRAM_CBIND_MAX];
		size_t mechs_len, cbind_len;

		if (!conn_cbind(&s->client, cbind, &cbind_len))
			cbind_len = 0;

		a->client_leg = scram_server_new(&a->v, cbind_len ? cbind : NULL, cbind_len);
		if (!a->client_leg) {
			session_close(s, "53200", "out of memory");
			return;
		}
		mechs = scram_server_mechanisms(a->client_leg, &mechs_len);
		a->step = STEP_CLIENT_SASL_INITIAL;
		sent = send_to_client(s, AUTH_SASL, mechs, mechs_len);
	}
	if (!sent) {
		session_close(s, "53200", "out of memory");
		return;
	}
	auth_client_step(s);
}

/* auth.query answered (auth_lookup.c). */
static void lookup_done(struct session *s, enum auth_lookup_result r, const char *text)
{
	struct auth *a = s->auth;
	const char *peeked;

	a->lookup = NULL;
	if (s->dead || s->state != SESSION_CLIENT_AUTH)
		return;
	if (r == AUTH_LOOKUP_NO_DATABASE && !s->w->snap->cfg.auth.dbname) {
		/* The client's own database: PostgreSQL's answer. */
		session_close(s, "3D000", "database \"%s\" does not exist", s->database);
		return;
	}
	if (r != AUTH_LOOKUP_OK) {
		/* The details are in the log; the client learns nothing about the role. */
		session_close(s, "08006", "could not look up the role's password verifier (auth.query)");
		return;
	}
	a->looked_up = true;
	/* Cached by auth_lookup.c just now (unless auth.cache_ttl_ms is 0): remember which answer. */
	a->cached = auth_cache_peek(s, lookup_dbname(s), &peeked, &a->gen);
	begin_exchange(s, text);
}

void auth_client_begin(struct session *s, uint32_t startup_len)
{
	struct relay_buf *b = &s->c2s;
	struct auth *a = calloc(1, sizeof(*a));
	const struct snapshot *snap = s->w->snap;
	const char *text;

	if (!a || !(a->startup = malloc(startup_len))) {
		free(a);
		session_close(s, "53200", "out of memory");
		return;
	}
	s->auth = a;
	a->server_mech = -1;
	memcpy(a->startup, b->data + b->head, startup_len);
	a->startup_len = startup_len;
	b->scan = b->head + startup_len;
	relay_consume(b, startup_len);
	session_set_state(s, SESSION_CLIENT_AUTH);
	/* auth.userlist_file first, then auth.query. */
	text = snap->userlist ? verifier_list_peek(snap->userlist, s->user) : NULL;
	if (text || !snap->cfg.auth.user) {
		begin_exchange(s, text);
		return;
	}
	if (auth_cache_peek(s, lookup_dbname(s), &text, &a->gen)) {
		s->w->stats.auth_cache_hits_total++;
		session_log(s, LOG_DEBUG, "auth cache: verifier of role \"%s\" found", s->user);
		a->looked_up = a->cached = a->from_cache = true;
		begin_exchange(s, text);
		return;
	}
	a->step = STEP_CLIENT_LOOKUP;
	a->lookup = auth_lookup_start(s, lookup_dbname(s), lookup_done);
	if (!a->lookup)
		session_close(s, "53200", "out of memory");
}

/* The client is in: the StartupMessage goes upstream, and the server leg begins. */
static void client_leg_done(struct session *s)
{
	struct auth *a = s->auth;
	struct relay_buf *b = &s->c2s;

	scram_server_free(a->client_leg);
	a->client_leg = NULL;
	a->step = STEP_SERVER;
	/* The client waits for AuthenticationOk now; anything it sent meanwhile breaks the protocol. */
	if (b->data && !relay_empty(b)) {
		session_close(s, "08P01", "unexpected message from the client during authentication");
		return;
	}
	if (!relay_acquire(b, &s->w->pool) || !relay_append_scanned(b, a->startup, a->startup_len)) {
		session_close(s, "53200", "out of memory");
		return;
	}
	free(a->startup);
	a->startup = NULL;
	server_connect(s);
}

/* The client's proof checked (scram_server_final() or _recheck() said DONE; 'out' is server-final). */
static void client_scram_done(struct session *s, const char *out, size_t out_len)
{
	struct auth *a = s->auth;

	if (!scram_server_client_key(a->client_leg, a->client_key) ||
	    !send_to_client(s, AUTH_SASL_FINAL, out, out_len)) {
		session_close(s, "53200", "out of memory");
		return;
	}
	session_log(s, LOG_DEBUG, "client authenticated with %s%s", scram_server_mechanism(a->client_leg),
		    a->sasl_final ? " (refetched verifier)" : "");
	count_login(s, STATS_AUTH_CLIENT, scram_mech(scram_server_mechanism(a->client_leg)));
	client_leg_done(s);
}

/*
 * A refetch of the verifier answered: false when the login is over (the
 * session went away, or no fresher verifier could be had: 28P01 sent),
 * else the answer is the session's verifier from now on ('*peeked': the
 * cache's copy).
 */
static bool refetch_landed(struct session *s, enum auth_lookup_result r, const char **peeked)
{
	struct auth *a = s->auth;

	a->lookup = NULL;
	if (s->dead || s->state != SESSION_CLIENT_AUTH)
		return false;
	if (r != AUTH_LOOKUP_OK) {
		/*
		 * The answer did not match the verifier the proxy has, and no
		 * fresher one can be had (why is in the log): a wrong password, as
		 * far as the client can be told.
		 */
		fail_password(s, "wrong password, and the refetch of the verifier failed");
		return false;
	}
	a->from_cache = false;
	a->cached = auth_cache_peek(s, lookup_dbname(s), peeked, &a->gen);
	return true;
}

/*
 * The refetched verifier (see client_sasl()) answered: the client's
 * client-final is checked once more against it when it has the salt and
 * iteration count the client was sent (scram_server_recheck()), so a
 * verifier replaced with the same salt works in the very login that found
 * the cached one stale. With another salt the client's proof cannot be
 * judged: 28P01, and the next login gets the new salt.
 */
static void sasl_refetch_done(struct session *s, enum auth_lookup_result r, const char *text)
{
	struct auth *a = s->auth;
	struct scram_verifier fresh;
	char out[SCRAM_MESSAGE_MAX];
	size_t out_len = 0;
	const char *peeked;
	enum scram_result res;

	if (!refetch_landed(s, r, &peeked))
		return;
	if (verifier_classify(text) != VERIFIER_SCRAM || !scram_verifier_parse(text, &fresh)) {
		fail_password(s, "wrong SCRAM proof (the refetched verifier is no SCRAM verifier)");
		return;
	}
	res = scram_server_recheck(a->client_leg, &fresh, a->sasl_final, a->sasl_final_len, out, sizeof(out),
				   &out_len);
	if (res == SCRAM_DONE) {
		scram_verifier_clear(&a->v);
		a->v = fresh; /* the server leg logs in with this one's ServerKey */
	}
	scram_verifier_clear(&fresh);
	if (res != SCRAM_DONE) {
		fail_password(s, "wrong SCRAM proof (checked against the refetched verifier too)");
		return;
	}
	client_scram_done(s, out, out_len);
}

/*
 * A wrong proof against a cached verifier: when auth_cache_may_refetch() lets it
 * (once a second per role), the verifier is fetched again and the same
 * client-final checked against it (sasl_refetch_done()). True if that is
 * under way.
 */
static bool sasl_refetch(struct session *s, const uint8_t *body, uint32_t len)
{
	struct auth *a = s->auth;

	if (!a->from_cache)
		return false;
	if (a->v.doomed) {
		/* A cached "no such role": no verifier can judge a proof made with a mock's salt. */
		drop_verifier(s, true, "the client's proof does not match it");
		return false;
	}
	if (!a->cached || !auth_cache_may_refetch(s, lookup_dbname(s), a->gen))
		return false;
	if (!(a->sasl_final = malloc(len))) {
		session_close(s, "53200", "out of memory");
		return true;
	}
	memcpy(a->sasl_final, body, len);
	a->sasl_final_len = len;
	a->step = STEP_CLIENT_LOOKUP;
	session_log(s, LOG_DEBUG,
		    "auth cache: refetching the verifier of role \"%s\" (the client's proof does not "
		    "match it)",
		    s->user);
	if (!(a->lookup = auth_lookup_start(s, lookup_dbname(s), sasl_refetch_done)))
		session_close(s, "53200", "out of memory");
	return true;
}

/* A SASLInitialResponse or SASLResponse, as the step expects. */
static void client_sasl(struct session *s, const uint8_t *body, uint32_t len)
{
	struct auth *a = s->auth;
	char out[SCRAM_MESSAGE_MAX];
	size_t out_len = 0;
	enum scram_result r;

	if (a->step == STEP_CLIENT_SASL_INITIAL) {
		const char *mech, *msg;
		size_t msg_len;

		r = scram_parse_initial_response((const char *)body, len, &mech, &msg, &msg_len);
		if (r == SCRAM_CONTINUE)
			r = scram_server_first(a->client_leg, mech, msg, msg_len, out, sizeof(out), &out_len);
		if (r == SCRAM_CONTINUE) {
			a->step = STEP_CLIENT_SASL_FINAL;
			if (!send_to_client(s, AUTH_SASL_CONTINUE, out, out_len))
				session_close(s, "53200", "out of memory");
			return;
		}
	} else {
		r = scram_server_final(a->client_leg, (const char *)body, len, out, sizeof(out), &out_len);
		if (r == SCRAM_DONE) {
			client_scram_done(s, out, out_len);
			return;
		}
		/* A cached verifier may be stale: checked again against a fresh one. */
		if (r == SCRAM_FAILED && sasl_refetch(s, body, len))
			return;
	}
	if (r == SCRAM_FAILED) {
		fail_password(s, "wrong SCRAM proof, or no usable verifier for the role");
	} else
		session_close(s, "08P01", "malformed SCRAM authentication message");
}

/*
 * The refetched verifier (see client_md5()) answered: the client's md5
 * answer is checked once more against it, so a rotated md5 password works
 * in the very login that found the cached hash stale.
 */
static void md5_refetch_done(struct session *s, enum auth_lookup_result r, const char *text)
{
	struct auth *a = s->auth;
	const char *peeked;
	bool ok;

	if (!refetch_landed(s, r, &peeked))
		return;
	ok = verifier_classify(text) == VERIFIER_MD5 &&
		md5_auth_check(text, a->md5_salt, a->md5_resp, strlen(a->md5_resp));
	OPENSSL_cleanse(a->md5_resp, sizeof(a->md5_resp));
	if (!ok) {
		fail_password(s, "wrong md5 password (checked against the refetched verifier too)");
		return;
	}
	snprintf(a->md5_hash, sizeof(a->md5_hash), "%s", text);
	session_log(s, LOG_DEBUG, "client authenticated with md5 (refetched verifier)");
	count_login(s, STATS_AUTH_CLIENT, STATS_AUTH_MD5);
	client_leg_done(s);
}

/* A PasswordMessage answering AuthenticationMD5Password. */
static void client_md5(struct session *s, const uint8_t *body, uint32_t len)
{
	struct auth *a = s->auth;
	const uint8_t *nul = memchr(body, 0, len);

	if (!nul || (uint32_t)(nul - body) + 1 != len) {
		session_close(s, "08P01", "invalid password packet");
		return;
	}
	if (!md5_auth_check(a->md5_hash, a->md5_salt, (const char *)body, len - 1)) {
		/*
		 * A cached hash may be stale, and md5 has no salt of the verifier's
		 * that the client saw: the same answer can be checked against a
		 * fresh one (once; rate-limited per role by auth_cache_drop()).
		 */
		if (a->from_cache && len - 1 <= MD5_AUTH_LEN && a->cached &&
		    auth_cache_may_refetch(s, lookup_dbname(s), a->gen)) {
			memcpy(a->md5_resp, body, len);
			a->step = STEP_CLIENT_LOOKUP;
			session_log(s, LOG_DEBUG,
				    "auth cache: refetching the verifier of role \"%s\" (the client's "
				    "password does not match it)",
				    s->user);
			if (!(a->lookup = auth_lookup_start(s, lookup_dbname(s), md5_refetch_done)))
				session_close(s, "53200", "out of memory");
			return;
		}
		fail_password(s, "wrong md5 password");
		return;
	}
	session_log(s, LOG_DEBUG, "client authenticated with md5");
	count_login(s, STATS_AUTH_CLIENT, STATS_AUTH_MD5);
	client_leg_done(s);
}

/* Handles whole messages at the head of c2s until one is incomplete or the step changes. */
static void client_messages(struct session *s)
{
	struct relay_buf *b = &s->c2s;
	uint8_t body[AUTH_CLIENT_MSG_MAX];

	while (s->state == SESSION_CLIENT_AUTH && !s->dead && s->auth->step != STEP_CLIENT_LOOKUP &&
	       b->tail - b->head >= 5) {
		const uint8_t *p = b->data + b->head;
		uint32_t len = pgwire_get_u32(p + 1);

		if (p[0] != 'p') {
			session_close(s, "08P01", "expected %s response, got message type %d",
				      s->auth->md5 ? "password" : "SASL", p[0]);
			return;
		}
		if (len < 4 || len - 4 > AUTH_CLIENT_MSG_MAX) {
			session_close(s, "08P01", "invalid message length %u during authentication", len);
			return;
		}
		if (b->tail - b->head < len + 1)
			return;
		/* Taken out of c2s first: once the client is in, c2s carries the startup packet. */
		memcpy(body, p + 5, len - 4);
		b->scan = b->head + len + 1;
		relay_consume(b, len + 1);
		b->scan = b->head;
		if (s->auth->step == STEP_CLIENT_MD5)
			client_md5(s, body, len - 4);
		else
			client_sasl(s, body, len - 4);
		OPENSSL_cleanse(body, len - 4);
	}
}

void auth_client_step(struct session *s)
{
	struct relay_buf *b = &s->c2s;
	long n;

	if (!session_flush(s, &s->s2c, &s->client))
		return;
	if (!relay_acquire(b, &s->w->pool)) {
		session_close(s, "53200", "out of memory");
		return;
	}
	client_messages(s);
	while (s->state == SESSION_CLIENT_AUTH && !s->dead) {
		uint32_t room = relay_room(b);

		if (room == 0) {
			session_close(s, "08P01", "too much data from the client during authentication");
			return;
		}
		n = conn_read(&s->client, b->data + b->tail, room);
		if (n == CONN_AGAIN)
			break;
		if (n <= 0) {
			/* libpq hangs up here to ask the user for a password, then reconnects. */
			session_log(s, LOG_DEBUG, "client left during authentication");
			s->dead = true;
			return;
		}
		b->tail += (uint32_t)n;
		b->scan = b->head;
		client_messages(s);
	}
	if (s->state == SESSION_CLIENT_AUTH && !s->dead && conn_has_pending(&s->client))
		s->kick_client = true;
	if (!s->dead && s->state != SESSION_CLOSING && relay_pending(&s->s2c))
		(void)session_flush(s, &s->s2c, &s->client);
}

/* ---- the server leg ------------------------------------------------------- */

/* tls-server-end-point of the server's certificate when the upstream leg is TLS. */
static enum relay_msg server_refuses(struct session *s, const char *sqlstate, const char *msg)
{
	session_close(s, sqlstate, "%s", msg);
	return RELAY_MSG_STOP;
}

static enum relay_msg server_sasl(struct session *s, uint32_t code, const uint8_t *data, uint32_t n)
{
	struct auth *a = s->auth;
	char out[SCRAM_MESSAGE_MAX];
	size_t out_len = 0;
	enum scram_result r;

	switch (code) {
	case AUTH_SASL: {
		unsigned char cbind[SCRAM_CBIND_MAX];
		size_t cbind_len;
		const char *mech;
		uint8_t prefix[64];
		size_t mech_len;
		bool bound = conn_cbind(&s->server, cbind, &cbind_len);

		if (a->server_leg)
			return server_refuses(s, "08006", "the server started SCRAM authentication twice");
		a->server_leg = scram_client_new(a->client_key, &a->v, bound ? cbind : NULL,
						 bound ? cbind_len : 0);
		OPENSSL_cleanse(cbind, sizeof(cbind));
		if (!a->server_leg)
			return server_refuses(s, "53200", "out of memory");
		r = scram_client_first(a->server_leg, (const char *)data, n, &mech, out, sizeof(out),
				       &out_len);
		if (r != SCRAM_CONTINUE)
			return server_refuses(
				s, "08006",
				"the server offers no SCRAM-SHA-256 mechanism pgvalve-proxy can use");
		mech_len = strlen(mech) + 1;
		memcpy(prefix, mech, mech_len);
		pgwire_put_u32(prefix + mech_len, (uint32_t)out_len);
		if (!send_to_server(s, prefix, mech_len + 4, out, out_len))
			return server_refuses(s, "53200", "out of memory");
		session_log(s, LOG_DEBUG, "logging in upstream with %s", mech);
		a->server_mech = scram_mech(mech);
		return RELAY_MSG_DROP;
	}
	case AUTH_SASL_CONTINUE:
		if (!a->server_leg)
			return server_refuses(s, "08006",
					      "the server continued a SASL exchange it did not start");
		r = scram_client_final(a->server_leg, (const char *)data, n, out, sizeof(out), &out_len);
		if (r == SCRAM_CONTINUE) {
			if (!send_to_server(s, NULL, 0, out, out_len))
				return server_refuses(s, "53200", "out of memory");
			return RELAY_MSG_DROP;
		}
		if (r == SCRAM_STALE) {
			/* The password changed since the verifier was read or fetched. */
			if (a->looked_up)
				drop_verifier(s, false, "the server's salt or iteration count differ");
			else
				session_log(
					s, LOG_WARN,
					"the server's salt or iteration count for role \"%s\" is not the one "
					"in auth.userlist_file: the verifier there is stale",
					s->user);
			fail_password(s, "stale verifier");
			return RELAY_MSG_STOP;
		}
		return server_refuses(s, "08006", "malformed SCRAM message from the server");
	default: /* AUTH_SASL_FINAL */
		if (!a->server_leg)
			return server_refuses(s, "08006",
					      "the server finished a SASL exchange it did not start");
		r = scram_client_verify(a->server_leg, (const char *)data, n);
		if (r != SCRAM_DONE)
			return server_refuses(s, "08006",
					      "the server's SCRAM final message does not prove it knows the "
					      "role's verifier");
		a->server_verified = true;
		return RELAY_MSG_DROP;
	}
}

enum relay_msg auth_server_msg(struct session *s, const uint8_t *body, uint32_t avail, uint32_t len)
{
	struct auth *a = s->auth;
	uint32_t code;

	if (!a || a->step != STEP_SERVER || s->state != SESSION_LOGIN)
		return server_refuses(s, "08006", "unexpected authentication message from the server");
	if (avail != len || len < 4)
		return RELAY_MSG_ERROR;
	code = pgwire_get_u32(body);
	switch (code) {
	case AUTH_OK:
		if (a->server_leg && !a->server_verified)
			return server_refuses(s, "08006",
					      "the server accepted the login without proving it knows the "
					      "role's verifier");
		count_login(s, STATS_AUTH_SERVER, a->server_mech);
		auth_done(s); /* the keys are not needed any more */
		return RELAY_MSG_PASS;
	case AUTH_SASL:
	case AUTH_SASL_CONTINUE:
	case AUTH_SASL_FINAL:
		if (a->md5)
			return server_refuses(
				s, "28000",
				"the server asks for SCRAM authentication, but auth.userlist_file "
				"has an md5 hash for this role");
		return server_sasl(s, code, body + 4, len - 4);
	case AUTH_MD5: {
		char resp[MD5_AUTH_LEN + 1];
		bool ok;

		if (!a->md5 || len != 4 + MD5_AUTH_SALT_LEN)
			return server_refuses(
				s, "28000",
				"the server asks for md5 authentication, but auth.userlist_file "
				"has no md5 hash for this role");
		a->server_mech = STATS_AUTH_MD5;
		ok = md5_auth_response(a->md5_hash, body + 4, resp) &&
			send_to_server(s, NULL, 0, resp, MD5_AUTH_LEN + 1);
		OPENSSL_cleanse(resp, sizeof(resp));
		return ok ? RELAY_MSG_DROP : server_refuses(s, "53200", "out of memory");
	}
	case AUTH_CLEARTEXT:
		return server_refuses(
			s, "28000",
			"the server asks for a cleartext password, which pgvalve-proxy does not "
			"have in auth.mode terminate (use scram-sha-256 or md5 in pg_hba.conf)");
	default:
		return server_refuses(
			s, "28000",
			"the server asks for an authentication method pgvalve-proxy cannot use in "
			"auth.mode terminate (use scram-sha-256 or md5 in pg_hba.conf)");
	}
}

void auth_server_error(struct session *s, const char *sqlstate)
{
	struct auth *a = s->auth;

	if (a && a->step == STEP_SERVER && sqlstate && strcmp(sqlstate, "28P01") == 0 && a->looked_up)
		drop_verifier(s, false, "the server refused the login made with it");
}
