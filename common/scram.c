/*
 * SCRAM-SHA-256 (see scram.h): what both ends share — base64, the crypto,
 * verifiers, the message cursor, nonces. The server end is scram_server.c,
 * the client end scram_client.c. Parsing follows
 * RFC 5802 §7's grammar as PostgreSQL applies it (src/backend/libpq/
 * auth-scram.c, src/interfaces/libpq/fe-auth-scram.c): every message is a
 * bounded byte string read with a cursor that never passes its end, base64
 * is strict, and a step out of order ends the exchange. The crypto is
 * OpenSSL 3's; comparisons of secrets are constant-time.
 */
#include "pgvalve/scram.h"
#include "scram_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

const char *scram_result_name(enum scram_result r)
{
	switch (r) {
	case SCRAM_CONTINUE:
		return "continue";
	case SCRAM_DONE:
		return "done";
	case SCRAM_MALFORMED:
		return "malformed";
	case SCRAM_FAILED:
		return "failed";
	case SCRAM_STALE:
		return "stale";
	}
	return "?";
}

/* ---- base64 (RFC 4648, padded, nothing else accepted) ---- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes src[n] into out[cap]; returns the length written, or 0 if it does not fit. */
size_t scram_b64_encode(const unsigned char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	if (B64_LEN(n) > cap)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		if (i + 2 < n)
			v |= src[i + 2];
		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	return o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decodes src[n] into out[cap]: *out_len bytes. False unless 'src' is whole
 * groups of four alphabet characters, '=' only as the last one or two, the
 * unused bits before '=' zero, and the result fits.
 */
bool scram_b64_decode(const char *src, size_t n, unsigned char *out, size_t cap, size_t *out_len)
{
	size_t o = 0;

	if (n == 0 || n % 4 != 0)
		return false;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		uint32_t w;

		for (int k = 0; k < 4; k++) {
			char ch = src[i + (size_t)k];

			if (ch == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0) /* a character after '=' */
				return false;
			v[k] = b64_value(ch);
			if (v[k] < 0)
				return false;
		}
		/* Canonical only: the bits a padded group drops must be zero, so one value has one text. */
		if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
			return false;
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (o + 3 - (size_t)pad > cap)
			return false;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	*out_len = o;
	return true;
}

/* ---- crypto ---- */

bool scram_hmac_sha256(const unsigned char *key, size_t key_len, const void *data, size_t len,
		       unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (key_len > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) != NULL && n == SCRAM_KEY_LEN;
}

bool scram_sha256(const void *data, size_t len, unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SCRAM_KEY_LEN;
}

/* ---- verifiers ---- */

bool scram_parse_iterations(const char *s, size_t n, int *out)
{
	long v = 0;

	if (n == 0 || n > 9) /* SCRAM_ITERATIONS_MAX has 8 digits */
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > SCRAM_ITERATIONS_MAX)
		return false;
	*out = (int)v;
	return true;
}

bool scram_verifier_parse(const char *text, struct scram_verifier *out)
{
	static const char prefix[] = "SCRAM-SHA-256$";
	const char *p, *colon, *dollar, *colon2, *end;
	struct scram_verifier v;
	size_t n;

	memset(&v, 0, sizeof(v));
	if (strncmp(text, prefix, sizeof(prefix) - 1) != 0)
		return false;
	p = text + sizeof(prefix) - 1;
	end = p + strlen(p);
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon)
		return false;
	dollar = memchr(colon, '$', (size_t)(end - colon));
	if (!dollar)
		return false;
	colon2 = memchr(dollar, ':', (size_t)(end - dollar));
	if (!colon2)
		return false;
	if (!scram_parse_iterations(p, (size_t)(colon - p), &v.iterations) ||
	    !scram_b64_decode(colon + 1, (size_t)(dollar - colon - 1), v.salt, sizeof(v.salt), &v.salt_len) ||
	    !scram_b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), v.stored_key, sizeof(v.stored_key),
			      &n) ||
	    n != SCRAM_KEY_LEN ||
	    !scram_b64_decode(colon2 + 1, (size_t)(end - colon2 - 1), v.server_key, sizeof(v.server_key),
			      &n) ||
	    n != SCRAM_KEY_LEN) {
		OPENSSL_cleanse(&v, sizeof(v));
		return false;
	}
	*out = v;
	OPENSSL_cleanse(&v, sizeof(v));
	return true;
}

void scram_verifier_mock(const char *username, const unsigned char secret[SCRAM_KEY_LEN],
			 struct scram_verifier *out)
{
	unsigned char h[SCRAM_KEY_LEN];

	memset(out, 0, sizeof(*out));
	out->doomed = true;
	out->iterations = SCRAM_DEFAULT_ITERATIONS;
	out->salt_len = 16;
	if (!scram_hmac_sha256(secret, SCRAM_KEY_LEN, username, strlen(username), h))
		memset(h, 0, sizeof(h)); /* defensive: the exchange is doomed whatever the salt */
	memcpy(out->salt, h, out->salt_len);
	/* Keys nobody knows; 'doomed' fails the proof even if one were guessed. */
	if (RAND_bytes(out->stored_key, SCRAM_KEY_LEN) != 1 ||
	    RAND_bytes(out->server_key, SCRAM_KEY_LEN) != 1) {
		memset(out->stored_key, 0xa5, SCRAM_KEY_LEN);
		memset(out->server_key, 0x5a, SCRAM_KEY_LEN);
	}
}

bool scram_verifier_from_password(const char *password, const unsigned char *salt, size_t salt_len,
				  int iterations, struct scram_verifier *out,
				  unsigned char client_key_out[SCRAM_KEY_LEN])
{
	unsigned char salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN];
	size_t pw_len = strlen(password);
	bool ok;

	if (salt_len == 0 || salt_len > SCRAM_SALT_MAX || iterations < 1 ||
	    iterations > SCRAM_ITERATIONS_MAX || pw_len > INT_MAX)
		return false;
	memset(out, 0, sizeof(*out));
	out->iterations = iterations;
	out->salt_len = salt_len;
	memcpy(out->salt, salt, salt_len);
	ok = PKCS5_PBKDF2_HMAC(password, (int)pw_len, salt, (int)salt_len, iterations, EVP_sha256(),
			       SCRAM_KEY_LEN, salted) == 1 &&
		scram_hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) &&
		scram_sha256(client_key, SCRAM_KEY_LEN, out->stored_key) &&
		scram_hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", 10, out->server_key);
	if (ok && client_key_out)
		memcpy(client_key_out, client_key, SCRAM_KEY_LEN);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(client_key, sizeof(client_key));
	if (!ok)
		scram_verifier_clear(out);
	return ok;
}

bool scram_verifier_format(const struct scram_verifier *v, char *out, size_t cap)
{
	char salt[B64_LEN(SCRAM_SALT_MAX) + 1], sk[B64_LEN(SCRAM_KEY_LEN) + 1],
		srv[B64_LEN(SCRAM_KEY_LEN) + 1];
	size_t n;
	int w;

	n = scram_b64_encode(v->salt, v->salt_len, salt, sizeof(salt) - 1);
	salt[n] = '\0';
	n = scram_b64_encode(v->stored_key, SCRAM_KEY_LEN, sk, sizeof(sk) - 1);
	sk[n] = '\0';
	n = scram_b64_encode(v->server_key, SCRAM_KEY_LEN, srv, sizeof(srv) - 1);
	srv[n] = '\0';
	w = snprintf(out, cap, "SCRAM-SHA-256$%d:%s$%s:%s", v->iterations, salt, sk, srv);
	return w > 0 && (size_t)w < cap;
}

void scram_verifier_clear(struct scram_verifier *v)
{
	OPENSSL_cleanse(v, sizeof(*v));
}

bool scram_cert_endpoint_hash(X509 *cert, unsigned char out[SCRAM_CBIND_MAX], size_t *out_len)
{
	const EVP_MD *md;
	unsigned int n = 0;
	int algo_nid;

	/* As PostgreSQL's be_tls_get_certificate_hash(), so both ends of a leg agree on the data. */
	if (!OBJ_find_sigid_algs(X509_get_signature_nid(cert), &algo_nid, NULL))
		return false;
	switch (algo_nid) {
	case NID_md5:
	case NID_sha1:
		md = EVP_sha256(); /* RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256 */
		break;
	default:
		md = EVP_get_digestbynid(algo_nid);
		if (!md)
			return false;
		break;
	}
	if (EVP_MD_get_size(md) <= 0 || EVP_MD_get_size(md) > SCRAM_CBIND_MAX)
		return false;
	if (X509_digest(cert, md, out, &n) != 1)
		return false;
	*out_len = n;
	return true;
}

/* ---- message parsing ---- */

bool scram_at_end(const struct scram_cursor *c)
{
	return c->p >= c->end;
}

/* Consumes 'ch' if it is next. */
bool scram_take_char(struct scram_cursor *c, char ch)
{
	if (scram_at_end(c) || *c->p != ch)
		return false;
	c->p++;
	return true;
}

/* Consumes "<attr>=" if it is next. */
bool scram_take_attr(struct scram_cursor *c, char attr)
{
	if (c->end - c->p < 2 || c->p[0] != attr || c->p[1] != '=')
		return false;
	c->p += 2;
	return true;
}

/* The value up to the next ',' or the end (not consumed); *len may be 0. */
const char *scram_take_value(struct scram_cursor *c, size_t *len)
{
	const char *start = c->p;
	const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));

	c->p = comma ? comma : c->end;
	*len = (size_t)(c->p - start);
	return start;
}

/* RFC 5802's printable: 0x21..0x7e but ','. */
bool scram_printable(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* An extension attribute: ',' ALPHA '=' value. Consumes it. */
bool scram_skip_extension(struct scram_cursor *c)
{
	size_t n;

	if (!scram_take_char(c, ','))
		return false;
	if (c->end - c->p < 2 ||
	    !((c->p[0] >= 'a' && c->p[0] <= 'z') || (c->p[0] >= 'A' && c->p[0] <= 'Z')) || c->p[1] != '=')
		return false;
	c->p += 2;
	(void)scram_take_value(c, &n);
	return true;
}

/* Whole messages only: at most SCRAM_MESSAGE_MAX bytes, no NUL inside. */
bool scram_message_ok(const char *msg, size_t len)
{
	return msg != NULL && len > 0 && len <= SCRAM_MESSAGE_MAX && memchr(msg, '\0', len) == NULL;
}

/* A fresh nonce: 'forced' if set, else RAW_NONCE_LEN random bytes in base64. */
bool scram_make_nonce(const char *forced, char out[NONCE_MAX + 1])
{
	unsigned char raw[RAW_NONCE_LEN];
	size_t n;

	if (forced[0]) {
		memcpy(out, forced, strlen(forced) + 1);
		return true;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	n = scram_b64_encode(raw, sizeof(raw), out, NONCE_MAX);
	out[n] = '\0';
	return n > 0;
}

void scram_force_nonce(char dst[NONCE_MAX + 1], const char *nonce)
{
	size_t n = strlen(nonce);

	if (n > NONCE_MAX || !scram_printable(nonce, n)) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, nonce, n + 1);
}

/* AuthMessage (RFC 5802 §3) of the three parts into out[AUTH_MESSAGE_MAX]; its length. */
size_t scram_auth_message(char *out, const char *cfb, size_t cfb_len, const char *sf, size_t sf_len,
			  const char *cfwp, size_t cfwp_len)
{
	size_t o = 0;

	memcpy(out + o, cfb, cfb_len);
	o += cfb_len;
	out[o++] = ',';
	memcpy(out + o, sf, sf_len);
	o += sf_len;
	out[o++] = ',';
	memcpy(out + o, cfwp, cfwp_len);
	o += cfwp_len;
	return o;
}
