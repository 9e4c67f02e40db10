/*
 * libFuzzer target for common/scram.c: both ends of the SCRAM-SHA-256
 * exchange fed arbitrary messages.
 *
 * Input: one flags byte, then messages, each a 2-byte big-endian length and
 * that many bytes (a short last one is cut to what is left).
 *   flags bit 0: which end: 0 = server end (messages: mechanism name,
 *                client-first, client-final, then more client-finals);
 *                1 = client end (messages: AuthenticationSASL's mechanism
 *                list, server-first, server-final, then more server-finals)
 *   flags bit 1: the server end's leg is TLS (offers -PLUS), or the client
 *                end's is (binds to its certificate hash)
 *   flags bit 2: the server end's verifier is a mock (doomed)
 *   flags bit 3: the server end's first message is a whole SASLInitialResponse
 *                body (mechanism, Int32 length, client-first) instead of the
 *                mechanism name and client-first as two messages
 * Nonces are fixed (as the unit tests' vectors: "clientnonce0123456789AB",
 * "servernonce/+xyz"), so seeds holding a right exchange reach success and
 * mutations explore around it.
 *
 * Invariants: no crash, leak or read out of bounds; an answer always fits
 * SCRAM_MESSAGE_MAX; the server end says DONE only when the ClientKey it
 * recovered hashes to the verifier's StoredKey (the proof was right) and
 * never for a mock; the client end says DONE only when the server-final is
 * exactly v=HMAC(ServerKey, AuthMessage), recomputed here from the messages;
 * after DONE or an error every further step is refused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pgvalve/scram.h"
#include "fuzz_check.h"

#define VERIFIER                                                                                    \
	"SCRAM-SHA-256$4096:cGd2YWx2ZS1zYWx0LTE2Yg==$n4gQ2oXYecVVaQXYZ2QpeEeTzChqcrBbkz1SWTmvkNE=:" \
	"iRkmwdvp5oDi/GqE70n4e6ucnMTBZ6Zvc/eobnMxldM="

static const unsigned char client_key[SCRAM_KEY_LEN] = {
	0x4b, 0xd5, 0x6d, 0xc1, 0xd1, 0x3c, 0x4d, 0x88, 0xce, 0x6e, 0xa5, 0xbf, 0x4e, 0xa2, 0x1e, 0x82,
	0x38, 0x38, 0xb2, 0x96, 0x6b, 0x5e, 0x8a, 0x3a, 0xb0, 0x5d, 0x77, 0x81, 0x08, 0x91, 0x15, 0x3e,
};

/* The certificate hash both ends see: bytes 0..31. */
static unsigned char cbind[32];

struct input {
	const uint8_t *p;
	size_t left;
};

/* The next message into buf (NUL-terminated for the mechanism name); false when none is left. */
static bool next_message(struct input *in, char *buf, size_t cap, size_t *len)
{
	size_t n;

	if (in->left < 2)
		return false;
	n = (size_t)in->p[0] << 8 | in->p[1];
	in->p += 2;
	in->left -= 2;
	if (n > in->left)
		n = in->left;
	if (n > cap - 1)
		n = cap - 1;
	memcpy(buf, in->p, n);
	buf[n] = '\0';
	in->p += n;
	in->left -= n;
	*len = n;
	return true;
}

static void fuzz_server(struct input *in, bool tls, bool doomed, bool wire)
{
	static char mech[64], msg[SCRAM_MESSAGE_MAX + 64], out[SCRAM_MESSAGE_MAX],
		body[2 * SCRAM_MESSAGE_MAX];
	struct scram_verifier v;
	struct scram_server *s;
	unsigned char key[SCRAM_KEY_LEN], hash[SCRAM_KEY_LEN];
	unsigned int hn = 0;
	size_t n, out_len = 0, mn;
	enum scram_result r;
	bool done = false, over = false;

	FUZZ_CHECK(scram_verifier_parse(VERIFIER, &v));
	v.doomed = doomed;
	s = scram_server_new(&v, tls ? cbind : NULL, tls ? sizeof(cbind) : 0);
	FUZZ_CHECK(s != NULL);
	scram_server_force_nonce(s, "servernonce/+xyz");
	FUZZ_CHECK(scram_server_mechanisms(s, &mn) != NULL && mn > 0);
	if (wire) {
		const char *m, *first;

		if (!next_message(in, body, sizeof(body), &n))
			goto out;
		r = scram_parse_initial_response(body, n, &m, &first, &n);
		FUZZ_CHECK(r == SCRAM_CONTINUE || r == SCRAM_MALFORMED);
		if (r != SCRAM_CONTINUE)
			goto out;
		FUZZ_CHECK(n > 0 && n <= SCRAM_MESSAGE_MAX && first > m && first + n <= body + sizeof(body));
		r = scram_server_first(s, m, first, n, out, sizeof(out), &out_len);
	} else {
		if (!next_message(in, mech, sizeof(mech), &n) || !next_message(in, msg, sizeof(msg), &n))
			goto out;
		r = scram_server_first(s, mech, msg, n, out, sizeof(out), &out_len);
	}
	FUZZ_CHECK(r == SCRAM_CONTINUE || r == SCRAM_MALFORMED || r == SCRAM_FAILED);
	if (r == SCRAM_CONTINUE) {
		FUZZ_CHECK(out_len > 0 && out_len <= SCRAM_MESSAGE_MAX);
		FUZZ_CHECK(scram_server_mechanism(s) != NULL);
	} else {
		over = true;
	}
	while (next_message(in, msg, sizeof(msg), &n)) {
		r = scram_server_final(s, msg, n, out, sizeof(out), &out_len);
		if (over || done) {
			FUZZ_CHECK(r == SCRAM_MALFORMED); /* nothing after the end, no replay */
			continue;
		}
		FUZZ_CHECK(r == SCRAM_DONE || r == SCRAM_MALFORMED || r == SCRAM_FAILED);
		if (r == SCRAM_DONE) {
			FUZZ_CHECK(!doomed);
			FUZZ_CHECK(out_len > 2 && out_len <= SCRAM_MESSAGE_MAX && memcmp(out, "v=", 2) == 0);
			FUZZ_CHECK(scram_server_client_key(s, key));
			FUZZ_CHECK(EVP_Digest(key, sizeof(key), hash, &hn, EVP_sha256(), NULL) == 1);
			FUZZ_CHECK(memcmp(hash, v.stored_key, SCRAM_KEY_LEN) == 0);
			FUZZ_CHECK(memcmp(key, client_key, SCRAM_KEY_LEN) == 0);
			done = true;
		} else {
			FUZZ_CHECK(!scram_server_client_key(s, key));
			over = true;
		}
	}
out:
	scram_server_free(s);
}

static void fuzz_client(struct input *in, bool tls)
{
	static char mechs[256], msg[SCRAM_MESSAGE_MAX + 64], first[SCRAM_MESSAGE_MAX],
		final[SCRAM_MESSAGE_MAX], server_first[SCRAM_MESSAGE_MAX + 64];
	static char am[4 * SCRAM_MESSAGE_MAX];
	struct scram_verifier v;
	struct scram_client *c;
	const char *mech = NULL, *proof_at;
	unsigned char sig[SCRAM_KEY_LEN];
	char want[8 + 2 * SCRAM_KEY_LEN];
	unsigned int sn = 0;
	size_t n, first_len = 0, final_len = 0, sf_len, am_len, gs2_len;
	enum scram_result r;
	bool over = false;

	FUZZ_CHECK(scram_verifier_parse(VERIFIER, &v));
	c = scram_client_new(client_key, &v, tls ? cbind : NULL, tls ? sizeof(cbind) : 0);
	FUZZ_CHECK(c != NULL);
	scram_client_force_nonce(c, "clientnonce0123456789AB");
	if (!next_message(in, mechs, sizeof(mechs), &n))
		goto out;
	r = scram_client_first(c, mechs, n, &mech, first, sizeof(first), &first_len);
	FUZZ_CHECK(r == SCRAM_CONTINUE || r == SCRAM_MALFORMED);
	if (r != SCRAM_CONTINUE)
		goto rest;
	FUZZ_CHECK(mech != NULL && first_len > 0 && first_len < SCRAM_MESSAGE_MAX);
	first[first_len] = '\0'; /* for the strchr() below */
	FUZZ_CHECK(tls || first[0] == 'n');
	if (!next_message(in, server_first, sizeof(server_first), &sf_len))
		goto out;
	r = scram_client_final(c, server_first, sf_len, final, sizeof(final), &final_len);
	FUZZ_CHECK(r == SCRAM_CONTINUE || r == SCRAM_MALFORMED || r == SCRAM_STALE || r == SCRAM_FAILED);
	if (r != SCRAM_CONTINUE)
		goto rest;
	FUZZ_CHECK(final_len > 0 && final_len <= SCRAM_MESSAGE_MAX);
	/* The one server-final that may succeed: v=HMAC(ServerKey, AuthMessage), rebuilt here. */
	proof_at = NULL;
	for (size_t i = 0; i + 3 <= final_len; i++)
		if (memcmp(final + i, ",p=", 3) == 0)
			proof_at = final + i;
	FUZZ_CHECK(proof_at != NULL);
	gs2_len = (size_t)(strchr(strchr(first, ',') + 1, ',') + 1 - first);
	am_len = 0;
	memcpy(am, first + gs2_len, first_len - gs2_len);
	am_len += first_len - gs2_len;
	am[am_len++] = ',';
	memcpy(am + am_len, server_first, sf_len);
	am_len += sf_len;
	am[am_len++] = ',';
	memcpy(am + am_len, final, (size_t)(proof_at - final));
	am_len += (size_t)(proof_at - final);
	FUZZ_CHECK(HMAC(EVP_sha256(), v.server_key, SCRAM_KEY_LEN, (unsigned char *)am, am_len, sig, &sn) !=
		   NULL);
	memcpy(want, "v=", 2);
	FUZZ_CHECK(EVP_EncodeBlock((unsigned char *)want + 2, sig, SCRAM_KEY_LEN) == 44);
	while (next_message(in, msg, sizeof(msg), &n)) {
		r = scram_client_verify(c, msg, n);
		if (over) {
			FUZZ_CHECK(r == SCRAM_MALFORMED);
			continue;
		}
		FUZZ_CHECK(r == SCRAM_DONE || r == SCRAM_MALFORMED || r == SCRAM_FAILED);
		if (r == SCRAM_DONE)
			FUZZ_CHECK(n == 46 && memcmp(msg, want, 46) == 0);
		over = true;
	}
	goto out;
rest:
	/* After a refused step, nothing more is accepted. */
	while (next_message(in, msg, sizeof(msg), &n)) {
		r = scram_client_verify(c, msg, n);
		FUZZ_CHECK(r == SCRAM_MALFORMED);
	}
out:
	scram_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data + 1, size ? size - 1 : 0 };

	if (size == 0)
		return 0;
	for (int i = 0; i < 32; i++)
		cbind[i] = (unsigned char)i;
	if (data[0] & 1)
		fuzz_client(&in, (data[0] & 2) != 0);
	else
		fuzz_server(&in, (data[0] & 2) != 0, (data[0] & 4) != 0, (data[0] & 8) != 0);
	return 0;
}
