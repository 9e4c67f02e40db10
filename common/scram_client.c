/*
 * SCRAM-SHA-256 and -PLUS, the client end (see scram.h): the server leg of a
 * terminating proxy — logging in from a ClientKey and the ServerKey, without
 * the password, and checking the server's signature.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pgvalve/scram.h"
#include "scram_internal.h"

/* ---- client end ---- */

enum client_state { CLIENT_START, CLIENT_FIRST_SENT, CLIENT_FINAL_SENT, CLIENT_DONE, CLIENT_ERROR };

struct scram_client {
	enum client_state state;
	unsigned char client_key[SCRAM_KEY_LEN];
	struct scram_verifier v;
	unsigned char cbind[SCRAM_CBIND_MAX];
	size_t cbind_len;
	bool tls;
	bool plus;
	const char *mechanism;
	const char *gs2; /* the header we sent */
	char nonce[NONCE_MAX + 1];
	char cfb[SCRAM_MESSAGE_MAX]; /* client-first-message-bare */
	size_t cfb_len;
	unsigned char server_signature[SCRAM_KEY_LEN]; /* what server-final must say */
	char forced_nonce[NONCE_MAX + 1];
};

struct scram_client *scram_client_new(const unsigned char client_key[SCRAM_KEY_LEN],
				      const struct scram_verifier *v, const unsigned char *cbind,
				      size_t cbind_len)
{
	struct scram_client *c;

	if (cbind_len > SCRAM_CBIND_MAX || (cbind && cbind_len == 0))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
	c->v = *v;
	if (cbind) {
		memcpy(c->cbind, cbind, cbind_len);
		c->cbind_len = cbind_len;
		c->tls = true;
	}
	return c;
}

const char *scram_client_mechanism(const struct scram_client *c)
{
	return c->state == CLIENT_START ? NULL : c->mechanism;
}

void scram_client_force_nonce(struct scram_client *c, const char *nonce)
{
	scram_force_nonce(c->forced_nonce, nonce);
}

static enum scram_result client_fail(struct scram_client *c, enum scram_result r)
{
	c->state = CLIENT_ERROR;
	OPENSSL_cleanse(c->server_signature, sizeof(c->server_signature));
	return r;
}

enum scram_result scram_client_first(struct scram_client *c, const char *mechs, size_t mechs_len,
				     const char **mechanism, char *out, size_t cap, size_t *out_len)
{
	bool has_plain = false, has_plus = false, terminated = false;
	size_t pos = 0, gs2_len;
	int w;

	if (c->state != CLIENT_START || !mechs)
		return client_fail(c, SCRAM_MALFORMED);
	while (pos < mechs_len) {
		const char *name = mechs + pos;
		const char *nul = memchr(name, '\0', mechs_len - pos);

		if (!nul)
			break;
		if (nul == name) {
			terminated = true;
			break;
		}
		if (strcmp(name, SCRAM_MECH) == 0)
			has_plain = true;
		else if (strcmp(name, SCRAM_MECH_PLUS) == 0)
			has_plus = true;
		pos += (size_t)(nul - name) + 1;
	}
	if (!terminated || !has_plain)
		return client_fail(c, SCRAM_MALFORMED);
	c->plus = has_plus && c->tls;
	c->mechanism = c->plus ? SCRAM_MECH_PLUS : SCRAM_MECH;
	c->gs2 = c->plus ? "p=" CBIND_TYPE ",," : c->tls ? "y,," : "n,,";
	if (!scram_make_nonce(c->forced_nonce, c->nonce))
		return client_fail(c, SCRAM_FAILED);
	/* libpq sends an empty username too: the server takes the startup packet's. */
	w = snprintf(c->cfb, sizeof(c->cfb), "n=,r=%s", c->nonce);
	if (w < 0 || (size_t)w >= sizeof(c->cfb))
		return client_fail(c, SCRAM_FAILED);
	c->cfb_len = (size_t)w;
	gs2_len = strlen(c->gs2);
	if (cap < gs2_len + c->cfb_len)
		return client_fail(c, SCRAM_MALFORMED);
	memcpy(out, c->gs2, gs2_len);
	memcpy(out + gs2_len, c->cfb, c->cfb_len);
	*out_len = gs2_len + c->cfb_len;
	*mechanism = c->mechanism;
	c->state = CLIENT_FIRST_SENT;
	return SCRAM_CONTINUE;
}

enum scram_result scram_client_final(struct scram_client *c, const char *msg, size_t len, char *out,
				     size_t cap, size_t *out_len)
{
	struct scram_cursor cur = { msg, msg + len };
	unsigned char salt[SCRAM_SALT_MAX], proof[SCRAM_KEY_LEN], cbind_input[GS2_MAX + SCRAM_CBIND_MAX];
	char cfwp[SCRAM_MESSAGE_MAX], am[AUTH_MESSAGE_MAX];
	const char *nonce, *v;
	size_t nonce_len, our_len = strlen(c->nonce), salt_len, n, gs2_len, cfwp_len, am_len, o;
	int iterations, w;
	bool ok;

	if (c->state != CLIENT_FIRST_SENT || !scram_message_ok(msg, len))
		return client_fail(c, SCRAM_MALFORMED);
	if (scram_take_attr(&cur, 'm') || !scram_take_attr(&cur, 'r'))
		return client_fail(c, SCRAM_MALFORMED);
	nonce = scram_take_value(&cur, &nonce_len);
	/* The server's nonce extends ours by at least one character. */
	if (nonce_len <= our_len || memcmp(nonce, c->nonce, our_len) != 0 ||
	    !scram_printable(nonce, nonce_len))
		return client_fail(c, SCRAM_MALFORMED);
	if (!scram_take_char(&cur, ',') || !scram_take_attr(&cur, 's'))
		return client_fail(c, SCRAM_MALFORMED);
	v = scram_take_value(&cur, &n);
	if (!scram_b64_decode(v, n, salt, sizeof(salt), &salt_len))
		return client_fail(c, SCRAM_MALFORMED);
	if (!scram_take_char(&cur, ',') || !scram_take_attr(&cur, 'i'))
		return client_fail(c, SCRAM_MALFORMED);
	v = scram_take_value(&cur, &n);
	if (!scram_parse_iterations(v, n, &iterations) || !scram_at_end(&cur))
		return client_fail(c, SCRAM_MALFORMED);
	/* Our keys derive from the verifier's salt and count; others mean the password changed. */
	if (salt_len != c->v.salt_len || memcmp(salt, c->v.salt, salt_len) != 0 ||
	    iterations != c->v.iterations)
		return client_fail(c, SCRAM_STALE);

	/* client-final-message-without-proof: c=base64(gs2 header [+ cbind data]),r=nonce */
	gs2_len = strlen(c->gs2);
	memcpy(cbind_input, c->gs2, gs2_len);
	n = gs2_len;
	if (c->plus) {
		memcpy(cbind_input + n, c->cbind, c->cbind_len);
		n += c->cbind_len;
	}
	memcpy(cfwp, "c=", 2);
	o = 2 + scram_b64_encode(cbind_input, n, cfwp + 2, sizeof(cfwp) - 2);
	w = snprintf(cfwp + o, sizeof(cfwp) - o, ",r=%.*s", (int)nonce_len, nonce);
	if (w < 0 || (size_t)w >= sizeof(cfwp) - o)
		return client_fail(c, SCRAM_MALFORMED);
	cfwp_len = o + (size_t)w;

	am_len = scram_auth_message(am, c->cfb, c->cfb_len, msg, len, cfwp, cfwp_len);
	/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage). */
	ok = scram_hmac_sha256(c->v.stored_key, SCRAM_KEY_LEN, am, am_len, proof) &&
		scram_hmac_sha256(c->v.server_key, SCRAM_KEY_LEN, am, am_len, c->server_signature);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] ^= c->client_key[i];
	if (!ok || cap < cfwp_len + 3 + B64_LEN(SCRAM_KEY_LEN)) {
		OPENSSL_cleanse(proof, sizeof(proof));
		return client_fail(c, ok ? SCRAM_MALFORMED : SCRAM_FAILED);
	}
	memcpy(out, cfwp, cfwp_len);
	memcpy(out + cfwp_len, ",p=", 3);
	*out_len = cfwp_len + 3 +
		scram_b64_encode(proof, SCRAM_KEY_LEN, out + cfwp_len + 3, cap - cfwp_len - 3);
	OPENSSL_cleanse(proof, sizeof(proof));
	c->state = CLIENT_FINAL_SENT;
	return SCRAM_CONTINUE;
}

enum scram_result scram_client_verify(struct scram_client *c, const char *msg, size_t len)
{
	struct scram_cursor cur = { msg, msg + len };
	unsigned char sig[SCRAM_KEY_LEN];
	const char *v;
	size_t n, sig_len;

	if (c->state != CLIENT_FINAL_SENT || !scram_message_ok(msg, len))
		return client_fail(c, SCRAM_MALFORMED);
	if (scram_take_attr(&cur, 'e'))
		return client_fail(c, SCRAM_FAILED); /* server-error */
	if (!scram_take_attr(&cur, 'v'))
		return client_fail(c, SCRAM_MALFORMED);
	v = scram_take_value(&cur, &n);
	if (!scram_at_end(&cur) || !scram_b64_decode(v, n, sig, sizeof(sig), &sig_len) ||
	    sig_len != SCRAM_KEY_LEN)
		return client_fail(c, SCRAM_MALFORMED);
	if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0)
		return client_fail(c, SCRAM_FAILED);
	c->state = CLIENT_DONE;
	return SCRAM_DONE;
}

void scram_client_free(struct scram_client *c)
{
	if (!c)
		return;
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}
