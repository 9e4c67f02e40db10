/*
 * libFuzzer target for a session in auth.mode "terminate" (proxy/auth.c):
 * the client leg, where the proxy is the SCRAM-SHA-256 or md5 server, and
 * the server leg, where it logs in upstream from the recovered ClientKey or
 * the stored md5 hash. fuzz_session.c covers relay mode, whose invariant
 * (the client sees the server's stream unaltered) does not hold here.
 *
 * The worker loop, socketpair client and loopback "server" are
 * fuzz_session_env.c's, shared with fuzz_session.c; the snapshot has an
 * auth.userlist_file (written at setup) with a SCRAM role and an md5 role. Each side is played either by
 * the input's raw bytes or by an honest peer built from common/'s own SCRAM
 * and md5 ends, so runs get past the proof check:
 *
 * Input: [ctl][u16 client_len][client bytes][server bytes]. ctl:
 *   bit 0   the md5 role (else the SCRAM role)
 *   bit 1   the honest client uses a wrong password
 *   bit 2   the role is unknown to the userlist
 *   bit 3   raw client: after the harness's StartupMessage, the client
 *           bytes are sent as they are (else an honest client, whose
 *           first/second answer may be tampered with, see bits 5-6)
 *   bit 4   honest server: answers the proxy's login with the role's
 *           verifier, then sends the server bytes (else the server bytes
 *           are all it sends)
 *   bits 5-6 which answer of the honest client the client bytes tamper
 *           with: 0 none, 1 the first (SASLInitialResponse or md5's
 *           PasswordMessage), 2 the second (SASLResponse), 3 both.
 *   Tampering: client bytes [op][arg][data...]: op%4 0 xor data in at
 *   arg, 1 cut to arg bytes, 2 replace by data, 3 append data.
 *
 * What must hold, checked with FUZZ_CHECK:
 *   - after every loop turn every session's state is valid and, before it
 *     is READY, it waits on a timer;
 *   - no upstream connection is made while the client is authenticating,
 *     nor ever when the client does not know the password (wrong one,
 *     unknown role, an answer tampered into other bytes): the client gets
 *     one FATAL 28P01 or 08P01 and nothing from the server;
 *   - an honest client with the right password and an honest server: the
 *     client gets AuthenticationOk;
 *   - once the input ends and the session is gone: no session and no client
 *     count left (plus LeakSanitizer's own check of every allocation).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgvalve/md5_auth.h"
#include "pgvalve/pgwire.h"
#include "pgvalve/scram.h"
#include "session.h"
#include "worker.h"
#include "fuzz_check.h"
#include "fuzz_session_env.h"

#define CHUNK 61 /* bytes per side per loop turn */
#define TURNS 400
#define PASSWORD "fuzz-secret"
#define SCRAM_ROLE "scram_role"
#define MD5_ROLE "md5_role"
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static struct scram_verifier scram_v; /* SCRAM_ROLE's, from PASSWORD */
static unsigned char right_key[SCRAM_KEY_LEN], wrong_key[SCRAM_KEY_LEN];
static char md5_hash[MD5_AUTH_LEN + 1], md5_wrong[MD5_AUTH_LEN + 1];

static void setup(void)
{
	static const unsigned char salt[16] = "fuzz-salt-16byte";
	const char *tmp = getenv("TMPDIR");
	char path[512], text[256], extra[1024];
	struct scram_verifier wrong;
	FILE *f;
	int fd;

	if (!scram_verifier_from_password(PASSWORD, salt, sizeof(salt), 4096, &scram_v, right_key) ||
	    !scram_verifier_from_password("not-" PASSWORD, salt, sizeof(salt), 4096, &wrong, wrong_key) ||
	    !md5_auth_hash(PASSWORD, MD5_ROLE, md5_hash) ||
	    !md5_auth_hash("not-" PASSWORD, MD5_ROLE, md5_wrong) ||
	    !scram_verifier_format(&scram_v, text, sizeof(text)))
		fuzz_env_fatal("verifiers");
	snprintf(path, sizeof(path), "%s/fuzz_auth_session_userlist.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if ((fd = mkstemp(path)) < 0 || !(f = fdopen(fd, "w")))
		fuzz_env_fatal("userlist file");
	fprintf(f, "\"%s\" \"%s\"\n\"%s\" \"%s\"\n", SCRAM_ROLE, text, MD5_ROLE, md5_hash);
	fclose(f);

	snprintf(extra, sizeof(extra), ", \"auth\": {\"mode\": \"terminate\", \"userlist_file\": \"%s\"}",
		 path);
	fuzz_env_setup("fuzz_auth_session", extra);
	unlink(path); /* loaded into the snapshot */
}

/* ---- byte streams ---------------------------------------------------------- */

struct buf {
	uint8_t *p;
	size_t len, cap, off; /* off: what was sent (outgoing) or consumed (incoming) */
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->cap - b->len < n) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		FUZZ_CHECK(b->p != NULL);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_msg(struct buf *b, uint8_t type, const void *body, size_t n)
{
	uint8_t head[5];

	head[0] = type;
	pgwire_put_u32(head + 1, (uint32_t)(n + 4));
	buf_add(b, head, sizeof(head));
	buf_add(b, body, n);
}

/* Sends up to CHUNK bytes of what is queued. */
static void pump_out(int fd, struct buf *b)
{
	size_t n = MIN(CHUNK, b->len - b->off);
	ssize_t w = n ? send(fd, b->p + b->off, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

	if (w > 0)
		b->off += (size_t)w;
}

static bool pump_in(int fd, struct buf *b)
{
	uint8_t tmp[4096];
	ssize_t n;
	bool any = false;

	while ((n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
		buf_add(b, tmp, (size_t)n);
		any = true;
	}
	return any;
}

/* The next whole typed message of 'b' (from b->off), or false. */
static bool next_msg(struct buf *b, uint8_t *type, const uint8_t **body, uint32_t *len)
{
	uint32_t l;

	if (b->len - b->off < 5)
		return false;
	l = pgwire_get_u32(b->p + b->off + 1);
	if (l < 4 || b->len - b->off < (size_t)l + 1)
		return false;
	*type = b->p[b->off];
	*body = b->p + b->off + 5;
	*len = l - 4;
	b->off += (size_t)l + 1;
	return true;
}

/* ---- tampering ----------------------------------------------------------------- */

/* Applies the tamper bytes to msg (its 'n' bytes, room for 'cap'); returns the new length. */
static size_t tamper(uint8_t *msg, size_t n, size_t cap, const uint8_t *t, size_t tn)
{
	size_t at, dn = tn > 2 ? tn - 2 : 0;
	const uint8_t *d = t + 2;

	if (tn < 2)
		return n;
	switch (t[0] & 3) {
	case 0:
		at = n ? t[1] % n : 0;
		for (size_t i = 0; i < dn && at + i < n; i++)
			msg[at + i] ^= d[i];
		return n;
	case 1:
		return MIN(n, t[1]);
	case 2:
		dn = MIN(dn, cap);
		memcpy(msg, d, dn);
		return dn;
	default:
		dn = MIN(dn, cap - n);
		memcpy(msg + n, d, dn);
		return n + dn;
	}
}

/* ---- the honest peers ------------------------------------------------------------- */

struct client {
	const uint8_t *tamper;
	size_t tamper_len;
	int tamper_which; /* bit 0: the first answer, bit 1: the second */
	bool md5, wrong;
	int answers;   /* sent so far */
	bool tampered; /* an answer went out other than the honest one */
	struct scram_client *scram;
	bool got_ok, got_fatal;
	bool stuck;      /* its SCRAM end refused the proxy's message: it says nothing more */
	bool final_sent; /* its last answer (md5's, or SCRAM's client-final) went out */
	char sqlstate[6];
};

/* Sends answer number 'k' (0 or 1) of the honest client, tampered with as asked. */
static void client_answer(struct client *c, struct buf *out, const uint8_t *honest, size_t n)
{
	uint8_t msg[SCRAM_MESSAGE_MAX * 2 + 64];
	size_t len = MIN(n, sizeof(msg) / 2);

	memcpy(msg, honest, len);
	if (c->tamper_which & (1 << c->answers)) {
		len = tamper(msg, len, sizeof(msg), c->tamper, c->tamper_len);
		c->tampered |= len != n || memcmp(msg, honest, n) != 0;
	}
	c->answers++;
	put_msg(out, 'p', msg, len);
}

/* Reads the proxy's messages to the client and answers them as libpq would. */
static void client_step(struct client *c, struct buf *in, struct buf *out)
{
	const uint8_t *body;
	uint32_t len;
	uint8_t type;

	while (next_msg(in, &type, &body, &len)) {
		uint8_t msg[SCRAM_MESSAGE_MAX + 64];
		char text[SCRAM_MESSAGE_MAX];
		size_t n = 0, ml;
		const char *mech;
		uint32_t code;

		if (type == 'E') {
			struct pgwire_error e;

			if (pgwire_parse_error(body, len, &e) && e.severity &&
			    strcmp(e.severity, "FATAL") == 0) {
				c->got_fatal = true;
				snprintf(c->sqlstate, sizeof(c->sqlstate), "%s",
					 e.sqlstate ? e.sqlstate : "");
			}
			continue;
		}
		if (type != 'R' || len < 4 || c->got_ok)
			continue; /* after login: the server's stream */
		code = pgwire_get_u32(body);
		if (code == 0) {
			c->got_ok = true;
		} else if (code == 5 && len == 8 && c->answers == 0) {
			char resp[MD5_AUTH_LEN + 1];

			FUZZ_CHECK(md5_auth_response(c->wrong ? md5_wrong : md5_hash, body + 4, resp));
			client_answer(c, out, (const uint8_t *)resp, sizeof(resp));
			c->final_sent = true;
		} else if (code == 10 && c->answers == 0 && !c->scram) {
			c->scram = scram_client_new(c->wrong ? wrong_key : right_key, &scram_v, NULL, 0);
			FUZZ_CHECK(c->scram != NULL);
			if (scram_client_first(c->scram, (const char *)body + 4, len - 4, &mech, text,
					       sizeof(text), &n) != SCRAM_CONTINUE) {
				c->stuck = true;
				continue;
			}
			ml = strlen(mech) + 1;
			memcpy(msg, mech, ml);
			pgwire_put_u32(msg + ml, (uint32_t)n);
			memcpy(msg + ml + 4, text, n);
			client_answer(c, out, msg, ml + 4 + n);
		} else if (code == 11 && c->answers == 1 && c->scram) {
			/* The wrong password's verifier has the same salt: the proof is made, and wrong. */
			if (scram_client_final(c->scram, (const char *)body + 4, len - 4, text, sizeof(text),
					       &n) != SCRAM_CONTINUE) {
				c->stuck = true;
				continue;
			}
			client_answer(c, out, (const uint8_t *)text, n);
			c->final_sent = true;
		}
	}
}

struct server {
	bool startup_read;
	bool md5;
	unsigned char salt[MD5_AUTH_SALT_LEN];
	struct scram_server *scram;
	bool done;
	const uint8_t *after; /* the server bytes, sent once the login is done */
	size_t after_len;
};

/* The honest server: the proxy's StartupMessage, then its login answered from the verifier. */
static void server_step(struct server *sv, struct buf *in, struct buf *out)
{
	const uint8_t *body;
	uint32_t len;
	uint8_t type;
	char text[SCRAM_MESSAGE_MAX];
	size_t n = 0;

	if (!sv->startup_read) {
		uint32_t l;

		if (in->len - in->off < 4)
			return;
		l = pgwire_get_u32(in->p + in->off);
		if (in->len - in->off < l)
			return;
		in->off += l;
		sv->startup_read = true;
		if (sv->md5) {
			uint8_t m[4 + MD5_AUTH_SALT_LEN];

			pgwire_put_u32(m, 5);
			memcpy(m + 4, "salt", 4);
			memcpy(sv->salt, "salt", 4);
			put_msg(out, 'R', m, sizeof(m));
		} else {
			static const uint8_t m[] = "\0\0\0\x0aSCRAM-SHA-256\0";

			sv->scram = scram_server_new(&scram_v, NULL, 0);
			FUZZ_CHECK(sv->scram != NULL);
			put_msg(out, 'R', m, sizeof(m)); /* sizeof: the list's final NUL too */
		}
	}
	while (!sv->done && next_msg(in, &type, &body, &len)) {
		enum scram_result r;
		uint8_t m[4 + SCRAM_MESSAGE_MAX];
		const char *mech, *msg;
		size_t msg_len;

		FUZZ_CHECK(type == 'p');
		if (sv->md5) {
			/* What the proxy answers from the stored hash: exactly the client's answer. */
			FUZZ_CHECK(len == MD5_AUTH_LEN + 1 &&
				   md5_auth_check(md5_hash, sv->salt, (const char *)body, MD5_AUTH_LEN));
		} else if (scram_server_mechanism(sv->scram) == NULL) {
			FUZZ_CHECK(scram_parse_initial_response((const char *)body, len, &mech, &msg,
								&msg_len) == SCRAM_CONTINUE);
			r = scram_server_first(sv->scram, mech, msg, msg_len, text, sizeof(text), &n);
			FUZZ_CHECK(r == SCRAM_CONTINUE);
			pgwire_put_u32(m, 11);
			memcpy(m + 4, text, n);
			put_msg(out, 'R', m, 4 + n);
			continue;
		} else {
			/* The proxy's proof, made from the ClientKey it recovered: right. */
			r = scram_server_final(sv->scram, (const char *)body, len, text, sizeof(text), &n);
			FUZZ_CHECK(r == SCRAM_DONE);
			pgwire_put_u32(m, 12);
			memcpy(m + 4, text, n);
			put_msg(out, 'R', m, 4 + n);
		}
		pgwire_put_u32(m, 0);
		put_msg(out, 'R', m, 4);
		buf_add(out, sv->after, sv->after_len);
		sv->done = true;
	}
}

/* ---- the run ---------------------------------------------------------------------- */

/* Before it is READY, a session waits on a timer. */
static void check_session(const struct session *s)
{
	if (s->state != SESSION_READY)
		FUZZ_CHECK(s->timer && evtimer_pending(s->timer, NULL));
}

static void check_sessions(void)
{
	fuzz_env_check_sessions(check_session);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	struct buf c_out = { 0 }, c_in = { 0 }, s_out = { 0 }, s_in = { 0 };
	struct client cl = { 0 };
	struct server sv = { 0 };
	const uint8_t *client_bytes, *server_bytes;
	size_t client_len, server_len;
	struct fuzz_input in;
	bool raw_client, honest_server, unknown, connected_in_auth = false;
	int client_fd, server_fd = -1, quiet = 0;
	uint8_t ctl;
	const char *role;

	if (!initialized) {
		setup();
		initialized = 1;
	}
	if (size < 3)
		return 0;
	ctl = data[0];
	in = fuzz_env_split(data, size, 3, (size_t)(data[1] << 8 | data[2]));
	client_bytes = in.client;
	client_len = in.client_len;
	server_bytes = in.server;
	server_len = in.server_len;
	cl.md5 = ctl & 1;
	cl.wrong = ctl & 2;
	unknown = ctl & 4;
	raw_client = ctl & 8;
	honest_server = ctl & 16;
	cl.tamper_which = (ctl >> 5) & 3;
	cl.tamper = client_bytes;
	cl.tamper_len = client_len;
	sv.md5 = cl.md5;
	sv.after = server_bytes;
	sv.after_len = server_len;
	role = unknown ? "nobody" : cl.md5 ? MD5_ROLE : SCRAM_ROLE;

	{
		uint8_t st[256];
		size_t n = 8;

		pgwire_put_u32(st + 4, 3 << 16);
		n += (size_t)snprintf((char *)st + 8, sizeof(st) - 8, "user%c%s%cdatabase%cdb%c", 0, role, 0,
				      0, 0);
		st[n++] = 0;
		pgwire_put_u32(st, (uint32_t)n);
		buf_add(&c_out, st, n);
	}
	if (raw_client)
		buf_add(&c_out, client_bytes, client_len);
	if (!honest_server)
		buf_add(&s_out, server_bytes, server_len);

	client_fd = fuzz_env_session_start();
	check_sessions();

	for (int turn = 0; turn < TURNS && fuzz_worker.n_sessions > 0; turn++) {
		bool moved = false;

		pump_out(client_fd, &c_out);
		if (server_fd < 0 && (server_fd = fuzz_env_accept_upstream()) >= 0) {
			int one = 1;

			/* Nagle would hold a message's second piece back for the proxy's delayed ACK. */
			(void)setsockopt(server_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			/* Upstream only once the client is in. */
			for (const struct session *s = fuzz_worker.sessions; s; s = s->next)
				connected_in_auth |= s->state == SESSION_CLIENT_AUTH;
		}
		if (server_fd >= 0) {
			moved |= pump_in(server_fd, &s_in);
			if (honest_server)
				server_step(&sv, &s_in, &s_out);
			pump_out(server_fd, &s_out);
		}
		moved |= pump_in(client_fd, &c_in);
		if (!raw_client)
			client_step(&cl, &c_in, &c_out);
		event_base_loop(fuzz_worker.base, EVLOOP_NONBLOCK);
		check_sessions();
		/*
		 * Nothing more to say and nothing heard for a while: both peers hang
		 * up; an honest client only once its login is over one way or another.
		 */
		if (c_out.off == c_out.len && (server_fd < 0 || s_out.off == s_out.len) && !moved &&
		    (raw_client || cl.got_ok || cl.got_fatal || cl.stuck) && ++quiet == 12) {
			shutdown(client_fd, SHUT_WR);
			if (server_fd >= 0)
				shutdown(server_fd, SHUT_WR);
		}
	}
	fuzz_env_sessions_free();
	pump_in(client_fd, &c_in);
	if (!raw_client)
		client_step(&cl, &c_in, &c_out);

	FUZZ_CHECK(!connected_in_auth);
	if (!raw_client && (cl.wrong || unknown || cl.tampered)) {
		/* The client does not know the password: nothing went upstream. */
		FUZZ_CHECK(server_fd < 0);
		FUZZ_CHECK(!cl.got_ok);
		if (cl.got_fatal)
			FUZZ_CHECK(strcmp(cl.sqlstate, "28P01") == 0 || strcmp(cl.sqlstate, "08P01") == 0);
		/* A wrong password, untampered, is always told so, as PostgreSQL tells it. */
		if (!cl.tampered && cl.final_sent)
			FUZZ_CHECK(cl.got_fatal && strcmp(cl.sqlstate, "28P01") == 0);
	}
	if (!raw_client && honest_server && !cl.wrong && !unknown && !cl.tampered)
		FUZZ_CHECK(cl.got_ok);

	scram_client_free(cl.scram);
	scram_server_free(sv.scram);
	free(c_out.p);
	free(c_in.p);
	free(s_out.p);
	free(s_in.p);
	fuzz_env_finish(client_fd, server_fd);
	return 0;
}
