/*
 * libFuzzer target for the session state machine: startup packet, SSL/GSS
 * negotiation, cancel forwarding, upstream connect, authentication relay,
 * the framed relay in both directions, and holds (park, release on
 * max_wait, reject, resume when the hold goes), with hostile bytes from
 * either side.
 *
 * Input: [u16 client_len][hold control, if client_len's top bit is set]
 * [client bytes][server bytes]. client_len's low 15 bits are the length;
 * the control byte says which hold is in force (see struct hold_ctl); with a
 * hold, an input of odd size also cancels the first unit it parks (as a
 * CancelRequest naming the session does, park_cancel). A real
 * worker loop runs in-process; the "client" is one end of a socketpair
 * handed to session_accept(), the "server" is whatever connects to a
 * loopback listener this target owns. Both sides send their bytes, then
 * close.
 *
 * What must hold, checked with FUZZ_CHECK:
 *   - after every loop turn, every session's state and activity are valid
 *     values, and the worker's parked list is exactly its parked sessions;
 *   - what the client receives is: one 'N' per SSL/GSSAPI request it made,
 *     then the server's messages, in order and unaltered (but for
 *     SCRAM-SHA-256-PLUS cut out of AuthenticationSASL), up to the first
 *     one the proxy refuses; in between, only the proxy's own answers to a
 *     rejected unit (55P03 and its ReadyForQuery) while a hold rejects, or
 *     to a cancelled parked unit (57014 and its ReadyForQuery), and at the
 *     end at most one FATAL;
 *   - a cancel of a parked unit is answered within the call that makes it
 *     (no session is left in PARK_CANCELED);
 *   - when the proxy says the server closed unexpectedly, every whole
 *     message the server sent reached the client first;
 *   - once both sides have hung up, the session ends on its own;
 *   - once the input ends and the session is gone: no session, no client
 *     count, nothing parked, and no cancel key of it left behind (plus
 *     LeakSanitizer's own check of every allocation).
 *
 * An input whose size is a multiple of 3 also refreshes every statement at
 * REFRESH_TURN (statement refresh, stmt_refresh.h, as POST
 * /statements/refresh does): the proxy then re-prepares, takes its own
 * answers out and rewrites results, so the stream check is left out for a
 * run where it marked something; every other check stands.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend_keys.h"
#include "park.h"
#include "pgvalve/pgwire.h"
#include "session.h"
#include "stmt_refresh.h"
#include "worker.h"
#include "fuzz_check.h"
#include "fuzz_session_env.h"

#define CHUNK 97 /* bytes per side per loop turn: odd, so headers split */
#define TURNS 600
#define HOLD_LATE_TURN 20     /* a late hold arrives at this turn (after a typical login) */
#define HOLD_RELEASE_TURN 120 /* a released hold goes at this turn */
#define REFRESH_TURN 40       /* statements are refreshed at this turn (inputs of size 3n) */
#define MAX_MESSAGE 65536     /* limits.max_message_bytes below */
#define PLUS "SCRAM-SHA-256-PLUS"
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static void setup(void)
{
	char extra[128];

	snprintf(extra, sizeof(extra), ", \"limits\": {\"max_message_bytes\": %d}", MAX_MESSAGE);
	fuzz_env_setup("fuzz_session", extra);
}

/* ---- the hold ------------------------------------------------------------- */

/*
 * The control byte: bit 0 policy reject (else queue), bit 1 on_timeout
 * reject (else release), bit 2 mode all (else writes), bit 3 every table
 * (else "t"), bits 4-5 max_wait_ms (1, 5, or an hour), bit 6 the hold goes
 * at HOLD_RELEASE_TURN, bit 7 it comes only at HOLD_LATE_TURN.
 */
struct hold_ctl {
	bool present;
	bool release;
	bool late;
	bool may_reject; /* a unit may get the proxy's 55P03 */
	bool short_wait; /* max_wait_ms is a few ms: the run waits for it */
	bool cancel;     /* the first unit parked after login is cancelled */
};

struct held {
	struct hold *hold;
	struct hold_set *set;
};

static struct held hold_make(uint8_t c, struct hold_ctl *ctl)
{
	static const int64_t waits[4] = { 1, 5, ADMIN_HOLD_MAX_MS, ADMIN_HOLD_MAX_MS };
	struct held h;

	h.hold = calloc(1, sizeof(*h.hold) + sizeof(h.hold->tables[0]));
	h.set = calloc(1, sizeof(*h.set) + sizeof(h.set->holds[0]));
	FUZZ_CHECK(h.hold && h.set);
	snprintf(h.hold->id, sizeof(h.hold->id), "fuzz");
	h.hold->policy = c & 1 ? HOLD_REJECT : HOLD_QUEUE;
	h.hold->on_timeout = c & 2 ? HOLD_TIMEOUT_REJECT : HOLD_TIMEOUT_RELEASE;
	h.hold->mode = c & 4 ? HOLD_ALL : HOLD_WRITES;
	snprintf(h.hold->tables[0].name, sizeof(h.hold->tables[0].name), "%s", c & 8 ? "*" : "t");
	h.hold->n_tables = 1;
	h.hold->max_wait_ms = waits[(c >> 4) & 3];
	h.hold->lease_ms = ADMIN_HOLD_MAX_MS;
	h.set->holds[0] = h.hold;
	h.set->n = 1;
	ctl->present = true;
	ctl->release = c & 0x40;
	ctl->late = c & 0x80;
	ctl->may_reject = (c & 1) || (c & 2);
	ctl->short_wait = h.hold->max_wait_ms < 100;
	return h;
}

/* Hands 'set' (NULL: none) to the worker, as hold_registry.c does, resuming what it may. */
static void hold_publish(const struct hold_set *set)
{
	struct hold_apply a = { .set = set, .list_parked = true };

	park_apply_holds_job(&fuzz_worker, &a);
	for (int i = 0; i < a.n_parked_refs; i++)
		park_recheck_job(&fuzz_worker, &a.parked_refs[i].session_id);
	free(a.parked_refs);
}

/* ---- what the server sends, as the client must see it --------------------- */

struct expect {
	uint8_t *out; /* the server's whole messages, as relayed */
	size_t len;
	uint32_t keys[64][2]; /* BackendKeyData the session registered */
	int n_keys;
};

/* The s2c relay with the session's rules: framing, held bodies, the SASL edit, an empty 'Z' refused. */
static void expect_server(struct expect *x, const uint8_t *in, size_t n)
{
	struct relay_rules c2s, s2c;
	size_t off = 0;

	session_rules(&c2s, &s2c);
	memset(x, 0, sizeof(*x));
	x->out = malloc(n ? n : 1);
	FUZZ_CHECK(x->out != NULL);
	while (n - off >= PGWIRE_HEADER_LEN) {
		uint8_t type = in[off], *m = x->out + x->len;
		uint32_t len = pgwire_get_u32(in + off + 1);
		size_t total = (size_t)len + 1, have = MIN(n - off, total);

		if (len < 4 || len > MAX_MESSAGE)
			break; /* a framing error: the session closes */
		if (s2c.track[type] == RELAY_TRACK_BODY && have < total)
			break; /* held until whole: never forwarded in part */
		if (type == 'Z' && len == 4)
			break; /* refused by the handler */
		memcpy(m, in + off, have);
		x->len += have;
		if (type == 'R') {
			size_t body = pgwire_sasl_remove_mechanism(m + PGWIRE_HEADER_LEN, len - 4, PLUS);

			pgwire_put_u32(m + 1, (uint32_t)body + 4);
			x->len -= have - (body + PGWIRE_HEADER_LEN);
		}
		if (type == 'K' && len >= 12 && x->n_keys < 64) {
			x->keys[x->n_keys][0] = pgwire_get_u32(in + off + 5);
			x->keys[x->n_keys++][1] = pgwire_get_u32(in + off + 9);
		}
		off += have; /* a message cut short ends the stream: the loop stops */
	}
}

/* How many one-byte negotiation answers precede the StartupMessage; sets *v3 if one follows. */
static int negotiations(const uint8_t *in, size_t n, bool *v3)
{
	struct pgwire_startup st;
	const char *why;
	size_t off = 0;
	int k = 0;
	bool ssl = false;

	*v3 = false;
	while (pgwire_parse_startup(in + off, n - off, &st, &why) == PGWIRE_OK) {
		if (st.kind == PGWIRE_STARTUP_V3)
			*v3 = true;
		if (st.kind == PGWIRE_STARTUP_SSL && !ssl)
			ssl = true;
		else if (st.kind != PGWIRE_STARTUP_GSSENC)
			break;
		k++;
		off += st.len;
	}
	return k;
}

/* An ErrorResponse the proxy itself builds (severity and SQLSTATE as given), or false. */
static bool proxy_error(const uint8_t *m, size_t total, const char *severity, const char *sqlstate)
{
	struct pgwire_error e;

	if (m[0] != 'E' || !pgwire_parse_error(m + PGWIRE_HEADER_LEN, total - PGWIRE_HEADER_LEN, &e))
		return false;
	return e.severity && strcmp(e.severity, severity) == 0 &&
		(!sqlstate || (e.sqlstate && strcmp(e.sqlstate, sqlstate) == 0));
}

/*
 * Whether what the client got from 'r' on ('got', 'n') is explained by the
 * server's stream from 'e' on: the server's bytes in order, the proxy's
 * rejections ('may_reject': a 55P03, and the ReadyForQuery answering a
 * rejected Query; 'may_cancel': the same with 57014 for a cancelled parked
 * unit) at message boundaries, a FATAL only last, and every whole server
 * message before a FATAL saying the server closed. 'after_reject': the
 * message before 'r' was the proxy's 55P03 or 57014.
 */
static bool explained(const uint8_t *got, size_t n, size_t r, const struct expect *x, size_t e,
		      bool may_reject, bool may_cancel, bool after_reject, int depth)
{
	while (r < n) {
		size_t total = n - r >= PGWIRE_HEADER_LEN ? (size_t)pgwire_get_u32(got + r + 1) + 1
							  : SIZE_MAX;
		size_t have = MIN(total, n - r);
		bool server = e + have <= x->len && memcmp(got + r, x->out + e, have) == 0;
		bool whole = total != SIZE_MAX && r + total <= n;
		bool reject_ready = whole && after_reject && got[r] == 'Z' && total == 6;
		struct pgwire_error err;

		/* The proxy's ReadyForQuery and the server's can be the same bytes: try both. */
		if (server && reject_ready && depth < 64 &&
		    explained(got, n, r + total, x, e, may_reject, may_cancel, false, depth + 1))
			return true;
		if (server) {
			/* The server's next bytes (a last message may be cut short by the close). */
			r += have;
			e += have;
			after_reject = false;
			continue;
		}
		if (!whole)
			return false; /* the proxy only ever adds whole messages */
		if ((may_reject && proxy_error(got + r, total, "ERROR", "55P03")) ||
		    (may_cancel && proxy_error(got + r, total, "ERROR", "57014"))) {
			after_reject = true;
		} else if (reject_ready) {
			after_reject = false;
		} else {
			if (!proxy_error(got + r, total, "FATAL", NULL) || r + total != n)
				return false;
			(void)pgwire_parse_error(got + r + PGWIRE_HEADER_LEN, total - PGWIRE_HEADER_LEN,
						 &err);
			return !err.message ||
				strcmp(err.message, "server closed the connection unexpectedly") != 0 ||
				e == x->len;
		}
		r += total;
	}
	return true;
}

/* ---- the run -------------------------------------------------------------- */

/* Writes what fits without blocking; returns bytes written. */
static size_t push(int fd, const uint8_t *p, size_t n)
{
	ssize_t w = n ? send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

	return w > 0 ? (size_t)w : 0;
}

static void drain(int fd)
{
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

struct sink {
	uint8_t *p;
	size_t len, cap;
};

/* Reads what the proxy sent the client. */
static void collect(int fd, struct sink *s)
{
	for (;;) {
		ssize_t n;

		if (s->cap - s->len < 4096) {
			s->cap = s->cap ? s->cap * 2 : 16384;
			s->p = realloc(s->p, s->cap);
			FUZZ_CHECK(s->p != NULL);
		}
		n = recv(fd, s->p + s->len, s->cap - s->len, MSG_DONTWAIT);
		if (n <= 0)
			return;
		s->len += (size_t)n;
	}
}

/* A session's park state agrees with its activity, and every wait has a deadline. */
static void check_session(const struct session *s)
{
	enum session_activity a = session_activity(s);

	FUZZ_CHECK((a == SESSION_ACT_PARKED) == (s->park.state == PARK_PARKED) || a == SESSION_ACT_CLOSING);
	FUZZ_CHECK(s->park.state != PARK_PARKED || s->state == SESSION_READY || s->state == SESSION_LOGIN);
	FUZZ_CHECK(s->park.state != PARK_CANCELED);
	FUZZ_CHECK(s->c2s.track_all == (s->park.state == PARK_DISCARDING));
	/* Every wait has a deadline: login, connect, max_wait_ms, the last words. */
	if (s->state != SESSION_READY || s->park.state == PARK_PARKED)
		FUZZ_CHECK(s->timer && evtimer_pending(s->timer, NULL));
}

/* Every session in a valid state, and the parked list just the parked ones. */
static void check_sessions(void)
{
	fuzz_env_check_sessions(check_session);
	FUZZ_CHECK(park_list_consistent(&fuzz_worker));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	const uint8_t *client_bytes, *server_bytes;
	size_t client_len, server_len, client_sent = 0, server_sent = 0, head = 2;
	int client_fd, server_fd = -1, k;
	struct fuzz_input in;
	struct hold_ctl ctl = { 0 };
	struct held held = { 0 };
	struct expect x;
	struct sink got = { 0 };
	bool v3, cancelled = false, refreshed = false;
	int hung_up = 0; /* 8 or more: both sides have shut down */

	if (!initialized) {
		setup();
		initialized = 1;
	}
	if (size < 2)
		return 0;
	client_len = ((size_t)data[0] << 8 | data[1]) & 0x7fff;
	if (data[0] & 0x80) {
		if (size < 3)
			return 0;
		held = hold_make(data[2], &ctl);
		ctl.cancel = size & 1;
		head = 3;
	}
	in = fuzz_env_split(data, size, head, client_len);
	client_bytes = in.client;
	client_len = in.client_len;
	server_bytes = in.server;
	server_len = in.server_len;
	expect_server(&x, server_bytes, server_len);
	k = negotiations(client_bytes, client_len, &v3);

	if (ctl.present && !ctl.late)
		hold_publish(held.set);
	client_fd = fuzz_env_session_start();
	check_sessions();

	/*
	 * Both sides trickle CHUNK bytes a turn, so the proxy sees messages split
	 * and interleaved; the client hangs up only after the server has said all
	 * it had, so replies reach the proxy before the session ends.
	 */
	for (int turn = 0, quiet = 0; turn < TURNS && fuzz_worker.n_sessions > 0; turn++) {
		bool waiting, waiting_timer;

		if (ctl.present && ctl.late && turn == HOLD_LATE_TURN)
			hold_publish(held.set);
		if (ctl.present && ctl.release && turn == HOLD_RELEASE_TURN)
			hold_publish(NULL);
		if (size % 3 == 0 && turn == REFRESH_TURN) {
			struct hold *every = calloc(1, sizeof(*every) + sizeof(every->tables[0]));
			struct refresh_job job = { 0 };

			FUZZ_CHECK(every);
			every->mode = HOLD_ALL;
			every->n_tables = 1;
			every->upstream_index = -1;
			snprintf(every->tables[0].name, sizeof(every->tables[0].name), "*");
			job.tables = every;
			refresh_mark_job(&fuzz_worker, &job);
			refreshed = job.statements > 0;
			free(every);
			check_sessions();
		}
		/* A CancelRequest naming the session, as the cancel job runs it on the owning fuzz_worker. */
		if (ctl.cancel && !cancelled && fuzz_worker.parked.head &&
		    fuzz_worker.parked.head->state == SESSION_READY) {
			cancelled = true;
			FUZZ_CHECK(park_cancel(&fuzz_worker, fuzz_worker.parked.head->id));
			check_sessions();
		}
		client_sent += push(client_fd, client_bytes + client_sent,
				    MIN(CHUNK, client_len - client_sent));
		if (server_fd < 0)
			server_fd = fuzz_env_accept_upstream();
		if (server_fd >= 0) {
			server_sent += push(server_fd, server_bytes + server_sent,
					    MIN(CHUNK, server_len - server_sent));
			drain(server_fd);
		}
		/* A parked unit is given the time its hold says before both sides hang up. */
		waiting = fuzz_worker.parked.n > 0 && ctl.release && turn < HOLD_RELEASE_TURN;
		waiting_timer = false;
		for (const struct session *s = fuzz_worker.parked.head; s && ctl.short_wait; s = s->park.next)
			waiting_timer |= s->state == SESSION_READY; /* before login: the login deadline */
		waiting |= waiting_timer;
		if (client_sent == client_len && (server_fd < 0 || server_sent == server_len) && !waiting &&
		    ++quiet == 8) {
			shutdown(client_fd, SHUT_WR);
			if (server_fd >= 0)
				shutdown(server_fd, SHUT_WR);
		}
		collect(client_fd, &got);
		/* Waiting on max_wait_ms: block until the timer (a few ms) or anything else fires. */
		event_base_loop(fuzz_worker.base, waiting_timer ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
		check_sessions();
		hung_up = quiet;
	}
	/* Both peers hung up: the session noticed and ended on its own, parked or not. */
	FUZZ_CHECK(hung_up < 8 || fuzz_worker.n_sessions == 0);
	/* Else it waits on a timer (auth_ms, max_wait_ms): end it as shutdown does. */
	fuzz_env_sessions_free();
	collect(client_fd, &got);

	if (v3 && server_fd >= 0) {
		/* Logged in (or trying): the negotiation answers, then the server's stream. */
		FUZZ_CHECK(got.len >= (size_t)k);
		for (int i = 0; i < k; i++)
			FUZZ_CHECK(got.p[i] == 'N');
		FUZZ_CHECK(refreshed ||
			   explained(got.p + k, got.len - (size_t)k, 0, &x, 0, ctl.may_reject, ctl.cancel,
				     false, 0));
	} else {
		/* No server: at most the negotiation answers, then at most the proxy's FATAL. */
		size_t i = 0;

		while (i < got.len && i < (size_t)k && got.p[i] == 'N')
			i++;
		if (i < got.len) {
			size_t total = got.len - i >= PGWIRE_HEADER_LEN ? pgwire_get_u32(got.p + i + 1) + 1
									: 0;

			FUZZ_CHECK(total == got.len - i);
			FUZZ_CHECK(proxy_error(got.p + i, total, "FATAL", NULL));
		}
	}

	/* Nothing of the session is left behind (and fuzz_env_finish checks the rest). */
	FUZZ_CHECK(fuzz_worker.parked.n == 0 && fuzz_worker.parked.head == NULL &&
		   fuzz_worker.parked.tail == NULL);
	for (int i = 0; i < x.n_keys; i++)
		FUZZ_CHECK(!backend_keys_find(x.keys[i][0], x.keys[i][1], NULL));

	if (ctl.present)
		hold_publish(NULL);
	free(held.hold);
	free(held.set);
	free(x.out);
	free(got.p);
	fuzz_env_finish(client_fd, server_fd);
	return 0;
}
