/*
 * SCRAM-SHA-256, server end and client end (see scram.h). Parsing follows
 * RFC 5802 §7's grammar as PostgreSQL applies it (src/backend/libpq/
 * auth-scram.c, src/interfaces/libpq/fe-auth-scram.c): every message is a
 * bounded byte string read with a cursor that never passes its end, base64
 * is strict, and a step out of order ends the exchange. The crypto is
 * OpenSSL 3's; comparisons of secrets are constant-time.
 */
#include "pgvalve/scram.h"

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

#define CBIND_TYPE "tls-server-end-point"
#define RAW_NONCE_LEN 18 /* as PostgreSQL: 24 base64 characters */
#define NONCE_MAX 64     /* our own nonce, forced ones included */
#define GS2_MAX 32       /* "p=tls-server-end-point,," and its kin */
/* client-first-bare + ',' + server-first + ',' + client-final-without-proof */
#define AUTH_MESSAGE_MAX (3 * SCRAM_MESSAGE_MAX + 2)

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

/* The encoded length of n bytes (a constant expression for constant n). */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

/* Encodes src[n] into out[cap]; returns the length written, or 0 if it does not fit. */
static size_t b64_encode(const unsigned char *src, size_t n, char *out, size_t cap)
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
static bool b64_decode(const char *src, size_t n, unsigned char *out, size_t cap, size_t *out_len)
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

static bool hmac_sha256(const unsigned char *key, size_t key_len, const void *data, size_t len,
			unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	if (key_len > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) != NULL && n == SCRAM_KEY_LEN;
}

static bool sha256(const void *data, size_t len, unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int n = 0;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SCRAM_KEY_LEN;
}

/* ---- verifiers ---- */

static bool parse_iterations(const char *s, size_t n, int *out)
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
	if (!parse_iterations(p, (size_t)(colon - p), &v.iterations) ||
	    !b64_decode(colon + 1, (size_t)(dollar - colon - 1), v.salt, sizeof(v.salt), &v.salt_len) ||
	    !b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), v.stored_key, sizeof(v.stored_key), &n) ||
	    n != SCRAM_KEY_LEN ||
	    !b64_decode(colon2 + 1, (size_t)(end - colon2 - 1), v.server_key, sizeof(v.server_key), &n) ||
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
	if (!hmac_sha256(secret, SCRAM_KEY_LEN, username, strlen(username), h))
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
		hmac_sha256(salted, SCRAM_KEY_LEN, "Client Key", 10, client_key) &&
		sha256(client_key, SCRAM_KEY_LEN, out->stored_key) &&
		hmac_sha256(salted, SCRAM_KEY_LEN, "Server Key", 10, out->server_key);
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

	n = b64_encode(v->salt, v->salt_len, salt, sizeof(salt) - 1);
	salt[n] = '\0';
	n = b64_encode(v->stored_key, SCRAM_KEY_LEN, sk, sizeof(sk) - 1);
	sk[n] = '\0';
	n = b64_encode(v->server_key, SCRAM_KEY_LEN, srv, sizeof(srv) - 1);
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

/* A read position in one message; every read checks 'end'. */
struct cursor {
	const char *p;
	const char *end;
};

static bool at_end(const struct cursor *c)
{
	return c->p >= c->end;
}

/* Consumes 'ch' if it is next. */
static bool take_char(struct cursor *c, char ch)
{
	if (at_end(c) || *c->p != ch)
		return false;
	c->p++;
	return true;
}

/* Consumes "<attr>=" if it is next. */
static bool take_attr(struct cursor *c, char attr)
{
	if (c->end - c->p < 2 || c->p[0] != attr || c->p[1] != '=')
		return false;
	c->p += 2;
	return true;
}

/* The value up to the next ',' or the end (not consumed); *len may be 0. */
static const char *take_value(struct cursor *c, size_t *len)
{
	const char *start = c->p;
	const char *comma = memchr(c->p, ',', (size_t)(c->end - c->p));

	c->p = comma ? comma : c->end;
	*len = (size_t)(c->p - start);
	return start;
}

/* RFC 5802's printable: 0x21..0x7e but ','. */
static bool printable(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return false;
	return true;
}

/* An extension attribute: ',' ALPHA '=' value. Consumes it. */
static bool skip_extension(struct cursor *c)
{
	size_t n;

	if (!take_char(c, ','))
		return false;
	if (c->end - c->p < 2 ||
	    !((c->p[0] >= 'a' && c->p[0] <= 'z') || (c->p[0] >= 'A' && c->p[0] <= 'Z')) || c->p[1] != '=')
		return false;
	c->p += 2;
	(void)take_value(c, &n);
	return true;
}

/* Whole messages only: at most SCRAM_MESSAGE_MAX bytes, no NUL inside. */
static bool message_ok(const char *msg, size_t len)
{
	return msg != NULL && len > 0 && len <= SCRAM_MESSAGE_MAX && memchr(msg, '\0', len) == NULL;
}

/* A fresh nonce: 'forced' if set, else RAW_NONCE_LEN random bytes in base64. */
static bool make_nonce(const char *forced, char out[NONCE_MAX + 1])
{
	unsigned char raw[RAW_NONCE_LEN];
	size_t n;

	if (forced[0]) {
		memcpy(out, forced, strlen(forced) + 1);
		return true;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return false;
	n = b64_encode(raw, sizeof(raw), out, NONCE_MAX);
	out[n] = '\0';
	return n > 0;
}

static void force_nonce(char dst[NONCE_MAX + 1], const char *nonce)
{
	size_t n = strlen(nonce);

	if (n > NONCE_MAX || !printable(nonce, n)) {
		dst[0] = '\0';
		return;
	}
	memcpy(dst, nonce, n + 1);
}

/* AuthMessage (RFC 5802 §3) of the three parts into out[AUTH_MESSAGE_MAX]; its length. */
static size_t auth_message(char *out, const char *cfb, size_t cfb_len, const char *sf, size_t sf_len,
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
	force_nonce(s->forced_nonce, nonce);
}

static enum scram_result server_fail(struct scram_server *s, enum scram_result r)
{
	s->state = SERVER_ERROR;
	OPENSSL_cleanse(s->client_key, sizeof(s->client_key));
	return r;
}

/* The gs2 header: cbind flag, then an empty authzid. Checks the flag against what was offered. */
static bool server_read_gs2(struct scram_server *s, struct cursor *c)
{
	const char *start = c->p;

	if (at_end(c))
		return false;
	switch (*c->p) {
	case 'p': {
		size_t n;
		const char *name;

		/* Channel binding asked for: only with -PLUS, and only of the one type PostgreSQL has. */
		if (!s->plus)
			return false;
		c->p++;
		if (!take_char(c, '='))
			return false;
		name = take_value(c, &n);
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
	if (!take_char(c, ',') || !take_char(c, ','))
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
	struct cursor c = { msg, msg + len };
	char our_nonce[NONCE_MAX + 1];
	const char *bare, *cnonce;
	size_t n, cnonce_len;
	int w;

	if (s->state != SERVER_START || !mechanism || !message_ok(msg, len))
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
	if (take_attr(&c, 'm') || !take_attr(&c, 'n'))
		return server_fail(s, SCRAM_MALFORMED);
	(void)take_value(&c, &n); /* the username: PostgreSQL uses the startup packet's */
	if (!take_char(&c, ',') || !take_attr(&c, 'r'))
		return server_fail(s, SCRAM_MALFORMED);
	cnonce = take_value(&c, &cnonce_len);
	if (!printable(cnonce, cnonce_len))
		return server_fail(s, SCRAM_MALFORMED);
	while (!at_end(&c))
		if (!skip_extension(&c))
			return server_fail(s, SCRAM_MALFORMED);
	s->cfb_len = (size_t)(c.end - bare);
	memcpy(s->cfb, bare, s->cfb_len);

	if (!make_nonce(s->forced_nonce, our_nonce))
		return server_fail(s, SCRAM_FAILED);
	{
		char salt[B64_LEN(SCRAM_SALT_MAX) + 1];

		n = b64_encode(s->v.salt, s->v.salt_len, salt, sizeof(salt) - 1);
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

	if (!b64_decode(b64, n, got, sizeof(got), &got_len))
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
	struct cursor c = { msg, msg + len };
	unsigned char proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], key_hash[SCRAM_KEY_LEN];
	char am[AUTH_MESSAGE_MAX];
	const char *v, *proof_at;
	size_t n, proof_len, am_len;
	bool ok;

	if (s->state != SERVER_FIRST_SENT || !message_ok(msg, len))
		return server_fail(s, SCRAM_MALFORMED);
	if (!take_attr(&c, 'c'))
		return server_fail(s, SCRAM_MALFORMED);
	v = take_value(&c, &n);
	if (!server_cbind_matches(s, v, n))
		return server_fail(s, SCRAM_MALFORMED);
	if (!take_char(&c, ',') || !take_attr(&c, 'r'))
		return server_fail(s, SCRAM_MALFORMED);
	v = take_value(&c, &n);
	/* The nonce must be this exchange's: a replayed client-final carries another one. */
	if (n != s->nonce_len || memcmp(v, s->sf + 2, n) != 0)
		return server_fail(s, SCRAM_MALFORMED);
	for (;;) {
		if (c.end - c.p >= 3 && memcmp(c.p, ",p=", 3) == 0)
			break;
		if (!skip_extension(&c))
			return server_fail(s, SCRAM_MALFORMED);
	}
	proof_at = c.p; /* client-final-message-without-proof ends here */
	c.p += 3;
	v = take_value(&c, &n);
	if (!at_end(&c) || !b64_decode(v, n, proof, sizeof(proof), &proof_len) ||
	    proof_len != SCRAM_KEY_LEN) {
		OPENSSL_cleanse(proof, sizeof(proof));
		return server_fail(s, SCRAM_MALFORMED);
	}

	am_len = auth_message(am, s->cfb, s->cfb_len, s->sf, s->sf_len, msg, (size_t)(proof_at - msg));
	/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); then H(ClientKey) must be StoredKey. */
	ok = hmac_sha256(s->v.stored_key, SCRAM_KEY_LEN, am, am_len, sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		s->client_key[i] = proof[i] ^ sig[i];
	ok = ok && sha256(s->client_key, SCRAM_KEY_LEN, key_hash) &&
		CRYPTO_memcmp(key_hash, s->v.stored_key, SCRAM_KEY_LEN) == 0 && !s->v.doomed;
	OPENSSL_cleanse(proof, sizeof(proof));
	OPENSSL_cleanse(key_hash, sizeof(key_hash));
	if (!ok) {
		OPENSSL_cleanse(sig, sizeof(sig));
		return server_fail(s, SCRAM_FAILED);
	}
	/* server-final-message: v=ServerSignature. */
	if (cap < 2 + B64_LEN(SCRAM_KEY_LEN) ||
	    !hmac_sha256(s->v.server_key, SCRAM_KEY_LEN, am, am_len, sig)) {
		OPENSSL_cleanse(sig, sizeof(sig));
		return server_fail(s, SCRAM_FAILED);
	}
	out[0] = 'v';
	out[1] = '=';
	*out_len = 2 + b64_encode(sig, SCRAM_KEY_LEN, out + 2, cap - 2);
	OPENSSL_cleanse(sig, sizeof(sig));
	s->state = SERVER_DONE;
	return SCRAM_DONE;
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
	force_nonce(c->forced_nonce, nonce);
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
	if (!make_nonce(c->forced_nonce, c->nonce))
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
	struct cursor cur = { msg, msg + len };
	unsigned char salt[SCRAM_SALT_MAX], proof[SCRAM_KEY_LEN], cbind_input[GS2_MAX + SCRAM_CBIND_MAX];
	char cfwp[SCRAM_MESSAGE_MAX], am[AUTH_MESSAGE_MAX];
	const char *nonce, *v;
	size_t nonce_len, our_len = strlen(c->nonce), salt_len, n, gs2_len, cfwp_len, am_len, o;
	int iterations, w;
	bool ok;

	if (c->state != CLIENT_FIRST_SENT || !message_ok(msg, len))
		return client_fail(c, SCRAM_MALFORMED);
	if (take_attr(&cur, 'm') || !take_attr(&cur, 'r'))
		return client_fail(c, SCRAM_MALFORMED);
	nonce = take_value(&cur, &nonce_len);
	/* The server's nonce extends ours by at least one character. */
	if (nonce_len <= our_len || memcmp(nonce, c->nonce, our_len) != 0 || !printable(nonce, nonce_len))
		return client_fail(c, SCRAM_MALFORMED);
	if (!take_char(&cur, ',') || !take_attr(&cur, 's'))
		return client_fail(c, SCRAM_MALFORMED);
	v = take_value(&cur, &n);
	if (!b64_decode(v, n, salt, sizeof(salt), &salt_len))
		return client_fail(c, SCRAM_MALFORMED);
	if (!take_char(&cur, ',') || !take_attr(&cur, 'i'))
		return client_fail(c, SCRAM_MALFORMED);
	v = take_value(&cur, &n);
	if (!parse_iterations(v, n, &iterations) || !at_end(&cur))
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
	o = 2 + b64_encode(cbind_input, n, cfwp + 2, sizeof(cfwp) - 2);
	w = snprintf(cfwp + o, sizeof(cfwp) - o, ",r=%.*s", (int)nonce_len, nonce);
	if (w < 0 || (size_t)w >= sizeof(cfwp) - o)
		return client_fail(c, SCRAM_MALFORMED);
	cfwp_len = o + (size_t)w;

	am_len = auth_message(am, c->cfb, c->cfb_len, msg, len, cfwp, cfwp_len);
	/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage). */
	ok = hmac_sha256(c->v.stored_key, SCRAM_KEY_LEN, am, am_len, proof) &&
		hmac_sha256(c->v.server_key, SCRAM_KEY_LEN, am, am_len, c->server_signature);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] ^= c->client_key[i];
	if (!ok || cap < cfwp_len + 3 + B64_LEN(SCRAM_KEY_LEN)) {
		OPENSSL_cleanse(proof, sizeof(proof));
		return client_fail(c, ok ? SCRAM_MALFORMED : SCRAM_FAILED);
	}
	memcpy(out, cfwp, cfwp_len);
	memcpy(out + cfwp_len, ",p=", 3);
	*out_len = cfwp_len + 3 + b64_encode(proof, SCRAM_KEY_LEN, out + cfwp_len + 3, cap - cfwp_len - 3);
	OPENSSL_cleanse(proof, sizeof(proof));
	c->state = CLIENT_FINAL_SENT;
	return SCRAM_CONTINUE;
}

enum scram_result scram_client_verify(struct scram_client *c, const char *msg, size_t len)
{
	struct cursor cur = { msg, msg + len };
	unsigned char sig[SCRAM_KEY_LEN];
	const char *v;
	size_t n, sig_len;

	if (c->state != CLIENT_FINAL_SENT || !message_ok(msg, len))
		return client_fail(c, SCRAM_MALFORMED);
	if (take_attr(&cur, 'e'))
		return client_fail(c, SCRAM_FAILED); /* server-error */
	if (!take_attr(&cur, 'v'))
		return client_fail(c, SCRAM_MALFORMED);
	v = take_value(&cur, &n);
	if (!at_end(&cur) || !b64_decode(v, n, sig, sizeof(sig), &sig_len) || sig_len != SCRAM_KEY_LEN)
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
