/*
 * SCRAM-SHA-256 and -PLUS, the server end (see scram.h): the client leg of a
 * terminating proxy — mechanisms offered, client-first and client-final read,
 * the proof verified and the ClientKey recovered, server-final written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pgvalve/scram.h"
#include "scram_internal.h"

/* ---- server end ---- */

enum scram_result scram_parse_initial_response(const char *body, size_t len, const char **mechanism,
					       const char **msg, size_t *msg_len)
{
	const char *nul = memchr(body, '\0', len);
	const unsigned char *p;
	size_t rest;
	uint32_t n;

	if (!nul || nul == body)
		return SCRAM_MALFORMED;
	rest = len - (size_t)(nul + 1 - body);
	if (rest < 4)
		return SCRAM_MALFORMED;
	p = (const unsigned char *)nul + 1;
	n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	/* n is an Int32: -1 (no initial response) and every other negative land above INT32_MAX. */
	if (n > SCRAM_MESSAGE_MAX || n == 0 || n != rest - 4)
		return SCRAM_MALFORMED;
	*mechanism = body;
	*msg = (const char *)p + 4;
	*msg_len = n;
	return SCRAM_CONTINUE;
}

enum server_state { SERVER_START, SERVER_FIRST_SENT, SERVER_DONE, SERVER_ERROR };

struct scram_server {
	enum server_state state;
	struct scram_verifier v;
	unsigned char cbind[SCRAM_CBIND_MAX];
	size_t cbind_len;
	bool tls; /* -PLUS offered */
	bool plus;
	bool wrong_proof; /* SERVER_ERROR for a proof the verifier rejects: scram_server_recheck() may retry */
	const char *mechanism;
	char gs2[GS2_MAX]; /* the client's gs2 header, as sent */
	size_t gs2_len;
	char cfb[SCRAM_MESSAGE_MAX]; /* client-first-message-bare */
	size_t cfb_len;
	char sf[SCRAM_MESSAGE_MAX]; /* server-first-message */
	size_t sf_len;
	size_t nonce_len; /* the full nonce is sf[2 .. 2 + nonce_len) */
	char forced_nonce[NONCE_MAX + 1];
	unsigned char client_key[SCRAM_KEY_LEN];
};

struct scram_server *scram_server_new(const struct scram_verifier *v, const unsigned char *cbind,
				      size_t cbind_len)
{
	struct scram_server *s;

	if (cbind_len > SCRAM_CBIND_MAX || (cbind && cbind_len == 0))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->v = *v;
	if (cbind) {
		memcpy(s->cbind, cbind, cbind_len);
		s->cbind_len = cbind_len;
		s->tls = true;
	}
	return s;
}

const char *scram_server_mechanisms(const struct scram_server *s, size_t *len)
{
	static const char plus[] = SCRAM_MECH_PLUS "\0" SCRAM_MECH "\0";
	static const char plain[] = SCRAM_MECH "\0";

	/* sizeof counts the literal's own final NUL: the list's empty terminator. */
	if (s->tls) {
		*len = sizeof(plus);
		return plus;
	}
	*len = sizeof(plain);
	return plain;
}

const char *scram_server_mechanism(const struct scram_server *s)
{
	return s->state == SERVER_START ? NULL : s->mechanism;
}

void scram_server_force_nonce(struct scram_server *s, const char *nonce)
{
	scram_force_nonce(s->forced_nonce, nonce);
}

static enum scram_result server_fail(struct scram_server *s, enum scram_result r)
{
	s->state = SERVER_ERROR;
	OPENSSL_cleanse(s->client_key, sizeof(s->client_key));
	return r;
}

/* The gs2 header: cbind flag, then an empty authzid. Checks the flag against what was offered. */
static bool server_read_gs2(struct scram_server *s, struct scram_cursor *c)
{
	const char *start = c->p;

	if (scram_at_end(c))
		return false;
	switch (*c->p) {
	case 'p': {
		size_t n;
		const char *name;

		/* Channel binding asked for: only with -PLUS, and only of the one type PostgreSQL has. */
		if (!s->plus)
			return false;
		c->p++;
		if (!scram_take_char(c, '='))
			return false;
		name = scram_take_value(c, &n);
		if (n != sizeof(CBIND_TYPE) - 1 || memcmp(name, CBIND_TYPE, n) != 0)
			return false;
		break;
	}
	case 'y':
		/*
		 * "I support channel binding but think you do not": a downgrade
		 * when -PLUS was offered (someone in between stripped it).
		 */
		if (s->plus || s->tls)
			return false;
		c->p++;
		break;
	case 'n':
		if (s->plus)
			return false;
		c->p++;
		break;
	default:
		return false;
	}
	/* authzid: PostgreSQL supports none. */
	if (!scram_take_char(c, ',') || !scram_take_char(c, ','))
		return false;
	s->gs2_len = (size_t)(c->p - start);
	if (s->gs2_len >= sizeof(s->gs2))
		return false; /* defensive: the longest header is 24 bytes */
	memcpy(s->gs2, start, s->gs2_len);
	return true;
}

enum scram_result scram_server_first(struct scram_server *s, const char *mechanism, const char *msg,
				     size_t len, char *out, size_t cap, size_t *out_len)
{
	struct scram_cursor c = { msg, msg + len };
	char our_nonce[NONCE_MAX + 1];
	const char *bare, *cnonce;
	size_t n, cnonce_len;
	int w;

	if (s->state != SERVER_START || !mechanism || !scram_message_ok(msg, len))
		return server_fail(s, SCRAM_MALFORMED);
	if (strcmp(mechanism, SCRAM_MECH_PLUS) == 0 && s->tls)
		s->plus = true;
	else if (strcmp(mechanism, SCRAM_MECH) != 0)
		return server_fail(s, SCRAM_MALFORMED);
	s->mechanism = s->plus ? SCRAM_MECH_PLUS : SCRAM_MECH;
	if (!server_read_gs2(s, &c))
		return server_fail(s, SCRAM_MALFORMED);
	bare = c.p;
	/* A mandatory extension ("m=") we do not know: RFC 5802 says fail. */
	if (scram_take_attr(&c, 'm') || !scram_take_attr(&c, 'n'))
		return server_fail(s, SCRAM_MALFORMED);
	(void)scram_take_value(&c, &n); /* the username: PostgreSQL uses the startup packet's */
	if (!scram_take_char(&c, ',') || !scram_take_attr(&c, 'r'))
		return server_fail(s, SCRAM_MALFORMED);
	cnonce = scram_take_value(&c, &cnonce_len);
	if (!scram_printable(cnonce, cnonce_len))
		return server_fail(s, SCRAM_MALFORMED);
	while (!scram_at_end(&c))
		if (!scram_skip_extension(&c))
			return server_fail(s, SCRAM_MALFORMED);
	s->cfb_len = (size_t)(c.end - bare);
	memcpy(s->cfb, bare, s->cfb_len);

	if (!scram_make_nonce(s->forced_nonce, our_nonce))
		return server_fail(s, SCRAM_FAILED);
	{
		char salt[B64_LEN(SCRAM_SALT_MAX) + 1];

		n = scram_b64_encode(s->v.salt, s->v.salt_len, salt, sizeof(salt) - 1);
		salt[n] = '\0';
		w = snprintf(s->sf, sizeof(s->sf), "r=%.*s%s,s=%s,i=%d", (int)cnonce_len, cnonce, our_nonce,
			     salt, s->v.iterations);
	}
	if (w < 0 || (size_t)w >= sizeof(s->sf))
		return server_fail(s, SCRAM_MALFORMED); /* a client nonce too long to answer */
	s->sf_len = (size_t)w;
	s->nonce_len = cnonce_len + strlen(our_nonce);
	if (cap < s->sf_len)
		return server_fail(s, SCRAM_MALFORMED);
	memcpy(out, s->sf, s->sf_len);
	*out_len = s->sf_len;
	s->state = SERVER_FIRST_SENT;
	return SCRAM_CONTINUE;
}

/* c= decodes to exactly our gs2 header, followed for 'p' by our certificate's hash. */
static bool server_cbind_matches(const struct scram_server *s, const char *b64, size_t n)
{
	unsigned char got[GS2_MAX + SCRAM_CBIND_MAX], want[GS2_MAX + SCRAM_CBIND_MAX];
	size_t got_len, want_len = s->gs2_len;

	if (!scram_b64_decode(b64, n, got, sizeof(got), &got_len))
		return false;
	memcpy(want, s->gs2, s->gs2_len);
	if (s->plus) {
		memcpy(want + want_len, s->cbind, s->cbind_len);
		want_len += s->cbind_len;
	}
	return got_len == want_len && CRYPTO_memcmp(got, want, want_len) == 0;
}

enum scram_result scram_server_final(struct scram_server *s, const char *msg, size_t len, char *out,
				     size_t cap, size_t *out_len)
{
	struct scram_cursor c = { msg, msg + len };
	unsigned char proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], key_hash[SCRAM_KEY_LEN];
	char am[AUTH_MESSAGE_MAX];
	const char *v, *proof_at;
	size_t n, proof_len, am_len;
	bool ok;

	if (s->state != SERVER_FIRST_SENT || !scram_message_ok(msg, len))
		return server_fail(s, SCRAM_MALFORMED);
	if (!scram_take_attr(&c, 'c'))
		return server_fail(s, SCRAM_MALFORMED);
	v = scram_take_value(&c, &n);
	if (!server_cbind_matches(s, v, n))
		return server_fail(s, SCRAM_MALFORMED);
	if (!scram_take_char(&c, ',') || !scram_take_attr(&c, 'r'))
		return server_fail(s, SCRAM_MALFORMED);
	v = scram_take_value(&c, &n);
	/* The nonce must be this exchange's: a replayed client-final carries another one. */
	if (n != s->nonce_len || memcmp(v, s->sf + 2, n) != 0)
		return server_fail(s, SCRAM_MALFORMED);
	for (;;) {
		if (c.end - c.p >= 3 && memcmp(c.p, ",p=", 3) == 0)
			break;
		if (!scram_skip_extension(&c))
			return server_fail(s, SCRAM_MALFORMED);
	}
	proof_at = c.p; /* client-final-message-without-proof ends here */
	c.p += 3;
	v = scram_take_value(&c, &n);
	if (!scram_at_end(&c) || !scram_b64_decode(v, n, proof, sizeof(proof), &proof_len) ||
	    proof_len != SCRAM_KEY_LEN) {
		OPENSSL_cleanse(proof, sizeof(proof));
		return server_fail(s, SCRAM_MALFORMED);
	}

	am_len = scram_auth_message(am, s->cfb, s->cfb_len, s->sf, s->sf_len, msg, (size_t)(proof_at - msg));
	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); then H(ClientKey) must be StoredKey. */
	ok = scram_hmac_sha256(s->v.stored_key, SCRAM_KEY_LEN, am, am_len, sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		s->client_key[i] = proof[i] ^ sig[i];
	ok = ok && scram_sha256(s->client_key, SCRAM_KEY_LEN, key_hash) &&
		CRYPTO_memcmp(key_hash, s->v.stored_key, SCRAM_KEY_LEN) == 0 && !s->v.doomed;
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(key_hash, sizeof(key_hash));
	if (!ok) {
		OPENSSL_cleanse(sig, sizeof(sig));
		(void)server_fail(s, SCRAM_FAILED);
		s->wrong_proof = true;
		return SCRAM_FAILED;
	}
	/* server-final-message: v=ServerSignature. */
	if (cap < 2 + B64_LEN(SCRAM_KEY_LEN) ||
	    !scram_hmac_sha256(s->v.server_key, SCRAM_KEY_LEN, am, am_len, sig)) {
		OPENSSL_cleanse(sig, sizeof(sig));
		return server_fail(s, SCRAM_FAILED);
	}
	out[0] = 'v';
	out[1] = '=';
	*out_len = 2 + scram_b64_encode(sig, SCRAM_KEY_LEN, out + 2, cap - 2);
	OPENSSL_cleanse(sig, sizeof(sig));
	s->state = SERVER_DONE;
	return SCRAM_DONE;
}

enum scram_result scram_server_recheck(struct scram_server *s, const struct scram_verifier *v,
				       const char *msg, size_t len, char *out, size_t cap, size_t *out_len)
{
	if (s->state != SERVER_ERROR || !s->wrong_proof)
		return server_fail(s, SCRAM_MALFORMED);
	s->wrong_proof = false; /* once */
	if (v->doomed || v->iterations != s->v.iterations || v->salt_len != s->v.salt_len ||
	    memcmp(v->salt, s->v.salt, v->salt_len) != 0)
		return server_fail(s, SCRAM_FAILED);
	scram_verifier_clear(&s->v);
	s->v = *v;
	s->state = SERVER_FIRST_SENT;
	return scram_server_final(s, msg, len, out, cap, out_len);
}

bool scram_server_client_key(const struct scram_server *s, unsigned char out[SCRAM_KEY_LEN])
{
	if (s->state != SERVER_DONE)
		return false;
	memcpy(out, s->client_key, SCRAM_KEY_LEN);
	return true;
}

void scram_server_free(struct scram_server *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}
