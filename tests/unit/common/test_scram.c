/*
 * Unit tests for common/scram.c: RFC 7677's example exchange on the server
 * end, fixed vectors for the client end in each channel-binding mode, both
 * ends against each other, and the hostile inputs the proxy must refuse
 * (downgrade, another certificate's binding data, a wrong or replayed nonce,
 * a proof that is not base64, absurd iteration counts, a truncated
 * server-final, oversized messages).
 *
 * The vectors other than RFC 7677's were computed independently with
 * Python's hashlib/hmac/base64 (salt b"pgvalve-salt-16b", 4096 iterations,
 * password "correct horse", client nonce "clientnonce0123456789AB", server
 * nonce "servernonce/+xyz", channel-binding data bytes(range(32))):
 *
 *   sp = hashlib.pbkdf2_hmac('sha256', pw, salt, 4096)
 *   ck = hmac(sp, b'Client Key'); sk = sha256(ck); svk = hmac(sp, b'Server Key')
 *   cfb = 'n=,r=' + cn;  sf = 'r=%s%s,s=%s,i=4096' % (cn, sn, b64(salt))
 *   cfwp = 'c=%s,r=%s%s' % (b64(gs2 + cbind), cn, sn)
 *   am = cfb + ',' + sf + ',' + cfwp
 *   proof = ck XOR hmac(sk, am);  server-final = 'v=' + b64(hmac(svk, am))
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pgvalve/scram.h"

#define RFC_VERIFIER                                                                                \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define VEC_VERIFIER                                                                                \
	"SCRAM-SHA-256$4096:cGd2YWx2ZS1zYWx0LTE2Yg==$n4gQ2oXYecVVaQXYZ2QpeEeTzChqcrBbkz1SWTmvkNE=:" \
	"iRkmwdvp5oDi/GqE70n4e6ucnMTBZ6Zvc/eobnMxldM="
#define VEC_CNONCE "clientnonce0123456789AB"
#define VEC_SNONCE "servernonce/+xyz"
#define VEC_SERVER_FIRST "r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096"

static const unsigned char vec_client_key[SCRAM_KEY_LEN] = {
	0x4b, 0xd5, 0x6d, 0xc1, 0xd1, 0x3c, 0x4d, 0x88, 0xce, 0x6e, 0xa5, 0xbf, 0x4e, 0xa2, 0x1e, 0x82,
	0x38, 0x38, 0xb2, 0x96, 0x6b, 0x5e, 0x8a, 0x3a, 0xb0, 0x5d, 0x77, 0x81, 0x08, 0x91, 0x15, 0x3e,
};

/* One vector per gs2 flag: what our client sends and what the server answers. */
struct vector {
	const char *gs2;
	const char *client_first;
	const char *client_final;
	const char *server_final;
};

static const struct vector vectors[] = {
	{ "n", "n,,n=,r=" VEC_CNONCE,
	  "c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
	  "v=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6IbIY=" },
	{ "y", "y,,n=,r=" VEC_CNONCE,
	  "c=eSws,r=" VEC_CNONCE VEC_SNONCE ",p=VyGp2BPGXzz2XjvuR6b7XpctMvD2P2m2gM4q4zRzut4=",
	  "v=l6hWtWaiGPvM3Sl1bPv4nTUFD1q1h+JH6EwwxS7R1uA=" },
	{ "p", "p=tls-server-end-point,,n=,r=" VEC_CNONCE,
	  "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,r=" VEC_CNONCE
		  VEC_SNONCE ",p=eObePWLAr2IiyRcrW3CIJl4RVI+Iq0JM76jjT6hLC6k=",
	  "v=XkQehRwnua4xcI3Ek/gZAilp31uZOqe3eXOXkCZlEg0=" },
};

static const char mechs_plain[] = SCRAM_MECH "\0";
static const char mechs_plus[] = SCRAM_MECH_PLUS "\0" SCRAM_MECH "\0";

static unsigned char cbind_a[32], cbind_b[32];

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 32; i++) {
		cbind_a[i] = (unsigned char)i;
		cbind_b[i] = (unsigned char)(i + 1);
	}
	return 0;
}

static struct scram_verifier parse_verifier(const char *text)
{
	struct scram_verifier v;

	assert_true(scram_verifier_parse(text, &v));
	return v;
}

static void assert_msg(const char *got, size_t len, const char *want)
{
	if (len != strlen(want) || memcmp(got, want, len) != 0)
		fail_msg("expected \"%s\", got \"%.*s\"", want, (int)len, got);
}

/* ---- verifiers ---- */

static void test_verifier_from_password_matches_rfc(void **state)
{
	struct scram_verifier v, parsed = parse_verifier(RFC_VERIFIER);
	static const unsigned char salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
					      0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
	char text[256];

	(void)state;
	assert_true(scram_verifier_from_password("pencil", salt, sizeof(salt), 4096, &v, NULL));
	assert_true(scram_verifier_format(&v, text, sizeof(text)));
	assert_string_equal(text, RFC_VERIFIER);
	assert_int_equal(parsed.iterations, 4096);
	assert_int_equal(parsed.salt_len, 16);
	assert_memory_equal(parsed.stored_key, v.stored_key, SCRAM_KEY_LEN);
	assert_false(scram_verifier_format(&v, text, 20));
}

static void test_verifier_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"md5d3b0f5a3e9b8f6b0c1c5e0e2b8a1f9c2",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
		"SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g*==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		/* StoredKey one byte short */
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g==:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		/* trailing garbage after ServerKey */
		"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x",
		"SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
		"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	};
	struct scram_verifier v;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (scram_verifier_parse(bad[i], &v))
			fail_msg("accepted \"%s\"", bad[i]);
}

static void test_mock_verifier_is_stable_per_name(void **state)
{
	unsigned char secret[SCRAM_KEY_LEN] = { 1, 2, 3 };
	struct scram_verifier a, b, c;

	(void)state;
	scram_verifier_mock("ghost", secret, &a);
	scram_verifier_mock("ghost", secret, &b);
	scram_verifier_mock("casper", secret, &c);
	assert_true(a.doomed);
	assert_int_equal(a.iterations, SCRAM_DEFAULT_ITERATIONS);
	assert_memory_equal(a.salt, b.salt, a.salt_len);
	assert_memory_not_equal(a.salt, c.salt, a.salt_len);
}

/* ---- server end ---- */

/* RFC 7677 §3: the server end answers the RFC's client exactly as the RFC's server does. */
static void test_server_rfc7677(void **state)
{
	static const unsigned char rfc_client_key[SCRAM_KEY_LEN] = {
		0xa6, 0x0f, 0xc9, 0x23, 0xd6, 0x7e, 0x86, 0x44, 0xa9, 0x2d, 0x16,
		0xb9, 0x6e, 0xda, 0x5e, 0xf4, 0x65, 0x6b, 0x0c, 0x72, 0x5c, 0x48,
		0x43, 0x74, 0xbe, 0x25, 0x53, 0x55, 0x76, 0x99, 0x6e, 0x8b,
	};
	static const char client_first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	static const char client_final[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="
					   "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
	struct scram_verifier v = parse_verifier(RFC_VERIFIER);
	struct scram_server *s = scram_server_new(&v, NULL, 0);
	unsigned char key[SCRAM_KEY_LEN];
	char out[SCRAM_MESSAGE_MAX];
	size_t n;

	(void)state;
	assert_non_null(s);
	assert_null(scram_server_mechanism(s));
	assert_false(scram_server_client_key(s, key));
	scram_server_force_nonce(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
	assert_int_equal(
		scram_server_first(s, SCRAM_MECH, client_first, strlen(client_first), out, sizeof(out), &n),
		SCRAM_CONTINUE);
	assert_msg(out, n,
		   "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
	assert_string_equal(scram_server_mechanism(s), SCRAM_MECH);
	assert_int_equal(scram_server_final(s, client_final, strlen(client_final), out, sizeof(out), &n),
			 SCRAM_DONE);
	assert_msg(out, n, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	assert_true(scram_server_client_key(s, key));
	assert_memory_equal(key, rfc_client_key, SCRAM_KEY_LEN);
	scram_server_free(s);
}

/* Our Python vectors, server end: 'n' and 'y' without TLS, 'p' on TLS bound to cbind_a. */
static void test_server_vectors(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *t = &vectors[i];
		bool plus = t->gs2[0] == 'p';
		struct scram_server *s = scram_server_new(&v, plus ? cbind_a : NULL, plus ? 32 : 0);
		unsigned char key[SCRAM_KEY_LEN];
		char out[SCRAM_MESSAGE_MAX];
		size_t n;

		scram_server_force_nonce(s, VEC_SNONCE);
		assert_int_equal(scram_server_first(s, plus ? SCRAM_MECH_PLUS : SCRAM_MECH, t->client_first,
						    strlen(t->client_first), out, sizeof(out), &n),
				 SCRAM_CONTINUE);
		assert_msg(out, n, VEC_SERVER_FIRST);
		assert_int_equal(
			scram_server_final(s, t->client_final, strlen(t->client_final), out, sizeof(out), &n),
			SCRAM_DONE);
		assert_msg(out, n, t->server_final);
		assert_true(scram_server_client_key(s, key));
		assert_memory_equal(key, vec_client_key, SCRAM_KEY_LEN);
		scram_server_free(s);
	}
}

static void test_server_mechanisms(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	struct scram_server *plain = scram_server_new(&v, NULL, 0), *tls = scram_server_new(&v, cbind_a, 32);
	const char *m;
	size_t n;

	(void)state;
	m = scram_server_mechanisms(plain, &n);
	assert_int_equal(n, sizeof(mechs_plain));
	assert_memory_equal(m, mechs_plain, n);
	m = scram_server_mechanisms(tls, &n);
	assert_int_equal(n, sizeof(mechs_plus));
	assert_memory_equal(m, mechs_plus, n);
	assert_null(scram_server_new(&v, cbind_a, SCRAM_CBIND_MAX + 1));
	assert_null(scram_server_new(&v, cbind_a, 0));
	scram_server_free(plain);
	scram_server_free(tls);
	scram_server_free(NULL);
}

/* scram_server_first() on one message, expecting 'want'. */
static void server_first_is(bool tls, const char *mech, const char *msg, enum scram_result want)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	struct scram_server *s = scram_server_new(&v, tls ? cbind_a : NULL, tls ? 32 : 0);
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	enum scram_result r = scram_server_first(s, mech, msg, strlen(msg), out, sizeof(out), &n);

	if (r != want)
		fail_msg("\"%s\" (%s, tls %d): expected %s, got %s", msg, mech, tls, scram_result_name(want),
			 scram_result_name(r));
	scram_server_free(s);
}

static void test_server_gs2_rules(void **state)
{
	(void)state;
	/* As PostgreSQL: 'y' is fine only when -PLUS was not offered. */
	server_first_is(false, SCRAM_MECH, "y,,n=,r=abc", SCRAM_CONTINUE);
	server_first_is(true, SCRAM_MECH, "y,,n=,r=abc", SCRAM_MALFORMED); /* downgrade */
	server_first_is(true, SCRAM_MECH, "n,,n=,r=abc", SCRAM_CONTINUE);  /* a client without support */
	server_first_is(true, SCRAM_MECH_PLUS, "p=tls-server-end-point,,n=,r=abc", SCRAM_CONTINUE);
	server_first_is(true, SCRAM_MECH_PLUS, "n,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(true, SCRAM_MECH_PLUS, "y,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(true, SCRAM_MECH, "p=tls-server-end-point,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(true, SCRAM_MECH_PLUS, "p=tls-unique,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH_PLUS, "p=tls-server-end-point,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, "SCRAM-SHA-1", "n,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, "", "n,,n=,r=abc", SCRAM_MALFORMED);
	/* authzid, mandatory extensions, missing parts, bad nonces */
	server_first_is(false, SCRAM_MECH, "n,a=bob,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,m=ext,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=,r=", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=,r=a b", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=,r=ab\x01", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,r=abc", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "x,,n=,r=abc", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=,r=abc,", SCRAM_MALFORMED);
	server_first_is(false, SCRAM_MECH, "n,,n=,r=abc,x=ext", SCRAM_CONTINUE);  /* optional extension */
	server_first_is(false, SCRAM_MECH, "n,,n=someone,r=abc", SCRAM_CONTINUE); /* the name is ignored */
}

static void test_server_refuses_oversized(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	size_t big = 10u << 20;
	char *msg = malloc(big);
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	struct scram_server *s;

	(void)state;
	assert_non_null(msg);
	memcpy(msg, "n,,n=,r=", 8);
	memset(msg + 8, 'a', big - 8);
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, msg, big, out, sizeof(out), &n), SCRAM_MALFORMED);
	scram_server_free(s);
	/* Just over the cap, and a nonce so long the answer would not fit it. */
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, msg, SCRAM_MESSAGE_MAX + 1, out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_server_free(s);
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, msg, SCRAM_MESSAGE_MAX, out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_server_free(s);
	free(msg);
}

static void test_parse_initial_response(void **state)
{
	static const char good[] = "SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc";
	static const char none[] = "SCRAM-SHA-256\0\xff\xff\xff\xff";
	static const char longer[] = "SCRAM-SHA-256\0\0\0\0\x0cn,,n=,r=abc";
	static const char shorter[] = "SCRAM-SHA-256\0\0\0\0\x0an,,n=,r=abc";
	static const char huge[] = "SCRAM-SHA-256\0\0\x98\x96\x80n,,n=,r=abc"; /* 10 MB announced */
	static const char cut[] = "SCRAM-SHA-256\0\0\0";
	static const char no_name[] = "\0\0\0\0\x0bn,,n=,r=abc";
	const char *mech, *msg;
	size_t n;

	(void)state;
	assert_int_equal(scram_parse_initial_response(good, sizeof(good) - 1, &mech, &msg, &n),
			 SCRAM_CONTINUE);
	assert_string_equal(mech, SCRAM_MECH);
	assert_int_equal(n, 11);
	assert_memory_equal(msg, "n,,n=,r=abc", 11);
#define REFUSED(b) \
	assert_int_equal(scram_parse_initial_response(b, sizeof(b) - 1, &mech, &msg, &n), SCRAM_MALFORMED)
	REFUSED(none);
	REFUSED(longer);
	REFUSED(shorter);
	REFUSED(huge);
	REFUSED(cut);
	REFUSED(no_name);
	REFUSED("SCRAM-SHA-256");
#undef REFUSED
	assert_int_equal(scram_parse_initial_response("", 0, &mech, &msg, &n), SCRAM_MALFORMED);
}

/* A server end past its first step on vector 'i' (without TLS unless it is 'p'). */
static struct scram_server *server_after_first(size_t i)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	const struct vector *t = &vectors[i];
	bool plus = t->gs2[0] == 'p';
	struct scram_server *s = scram_server_new(&v, plus ? cbind_a : NULL, plus ? 32 : 0);
	char out[SCRAM_MESSAGE_MAX];
	size_t n;

	scram_server_force_nonce(s, VEC_SNONCE);
	assert_int_equal(scram_server_first(s, plus ? SCRAM_MECH_PLUS : SCRAM_MECH, t->client_first,
					    strlen(t->client_first), out, sizeof(out), &n),
			 SCRAM_CONTINUE);
	return s;
}

static void server_final_is(size_t i, const char *msg, enum scram_result want)
{
	struct scram_server *s = server_after_first(i);
	unsigned char key[SCRAM_KEY_LEN];
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	enum scram_result r = scram_server_final(s, msg, strlen(msg), out, sizeof(out), &n);

	if (r != want)
		fail_msg("\"%s\": expected %s, got %s", msg, scram_result_name(want), scram_result_name(r));
	assert_int_equal(scram_server_client_key(s, key), want == SCRAM_DONE);
	scram_server_free(s);
}

static void test_server_final_hostile(void **state)
{
	(void)state;
	/* The good message, then each part spoiled. */
	server_final_is(0, vectors[0].client_final, SCRAM_DONE);
	/* wrong proof (one character changed): authentication fails */
	server_final_is(0,
			"c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=1qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
			SCRAM_FAILED);
	/* a proof that is not base64, or not 32 bytes */
	server_final_is(0, "c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I",
			SCRAM_MALFORMED);
	server_final_is(0,
			"c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92W!eyr0niMYphRHNT2iAswlSkYw/+I=",
			SCRAM_MALFORMED);
	server_final_is(0, "c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=AAAA", SCRAM_MALFORMED);
	server_final_is(0, "c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=", SCRAM_MALFORMED);
	/* a wrong nonce: another server part, ours cut short, the client's alone */
	server_final_is(
		0, "c=biws,r=" VEC_CNONCE "servernonce/+xyZ,p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
		SCRAM_MALFORMED);
	server_final_is(
		0, "c=biws,r=" VEC_CNONCE "servernonce/+xy,p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
		SCRAM_MALFORMED);
	server_final_is(
		0, "c=biws,r=" VEC_CNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=", SCRAM_MALFORMED);
	/* channel binding data that is not the gs2 header the client sent */
	server_final_is(0,
			"c=eSws,r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
			SCRAM_MALFORMED);
	/* missing parts, extra after the proof */
	server_final_is(0, "r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=",
			SCRAM_MALFORMED);
	server_final_is(0, "c=biws,r=" VEC_CNONCE VEC_SNONCE, SCRAM_MALFORMED);
	server_final_is(
		0, "c=biws,r=" VEC_CNONCE VEC_SNONCE ",p=0qtAtEWC/U2A92Weeyr0niMYphRHNT2iAswlSkYw/+I=,x=1",
		SCRAM_MALFORMED);
	server_final_is(0, "c=biws", SCRAM_MALFORMED);
	/* -PLUS: binding data for another certificate */
	server_final_is(2, vectors[2].client_final, SCRAM_DONE);
	server_final_is(
		2,
		"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=,r=" VEC_CNONCE
			VEC_SNONCE ",p=eObePWLAr2IiyRcrW3CIJl4RVI+Iq0JM76jjT6hLC6k=",
		SCRAM_MALFORMED);
	/* -PLUS: the bare header without the certificate's hash */
	server_final_is(2,
			"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=" VEC_CNONCE VEC_SNONCE
			",p=eObePWLAr2IiyRcrW3CIJl4RVI+Iq0JM76jjT6hLC6k=",
			SCRAM_MALFORMED);
}

static void test_server_replay_and_order(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	const char *final = vectors[0].client_final;
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	struct scram_server *s;

	(void)state;
	/* The same client-final twice in one exchange. */
	s = server_after_first(0);
	assert_int_equal(scram_server_final(s, final, strlen(final), out, sizeof(out), &n), SCRAM_DONE);
	assert_int_equal(scram_server_final(s, final, strlen(final), out, sizeof(out), &n), SCRAM_MALFORMED);
	scram_server_free(s);
	/* A recorded client-final against a new exchange (a fresh, random server nonce). */
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, vectors[0].client_first,
					    strlen(vectors[0].client_first), out, sizeof(out), &n),
			 SCRAM_CONTINUE);
	assert_int_equal(scram_server_final(s, final, strlen(final), out, sizeof(out), &n), SCRAM_MALFORMED);
	scram_server_free(s);
	/* client-final first; client-first twice; after a failure nothing more. */
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_final(s, final, strlen(final), out, sizeof(out), &n), SCRAM_MALFORMED);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, vectors[0].client_first,
					    strlen(vectors[0].client_first), out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_server_free(s);
	s = server_after_first(0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, vectors[0].client_first,
					    strlen(vectors[0].client_first), out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_server_free(s);
}

static void test_server_mock_fails_at_the_end(void **state)
{
	unsigned char secret[SCRAM_KEY_LEN] = { 7 };
	struct scram_verifier v;
	struct scram_server *s;
	char out[SCRAM_MESSAGE_MAX];
	size_t n;

	(void)state;
	scram_verifier_mock("nobody", secret, &v);
	s = scram_server_new(&v, NULL, 0);
	assert_int_equal(scram_server_first(s, SCRAM_MECH, "n,,n=,r=abc", 11, out, sizeof(out), &n),
			 SCRAM_CONTINUE);
	/* A mock even with its own keys: every proof fails. */
	{
		struct scram_verifier real = parse_verifier(VEC_VERIFIER);
		struct scram_server *m;

		real.doomed = true;
		m = scram_server_new(&real, NULL, 0);
		scram_server_force_nonce(m, VEC_SNONCE);
		assert_int_equal(scram_server_first(m, SCRAM_MECH, vectors[0].client_first,
						    strlen(vectors[0].client_first), out, sizeof(out), &n),
				 SCRAM_CONTINUE);
		assert_int_equal(scram_server_final(m, vectors[0].client_final,
						    strlen(vectors[0].client_final), out, sizeof(out), &n),
				 SCRAM_FAILED);
		scram_server_free(m);
	}
	scram_server_free(s);
}

/* ---- client end ---- */

static void test_client_vectors(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *t = &vectors[i];
		bool tls = t->gs2[0] != 'n', plus = t->gs2[0] == 'p';
		struct scram_client *c = scram_client_new(vec_client_key, &v, tls ? cbind_a : NULL,
							  tls ? 32 : 0);
		const char *mech = NULL;
		char out[SCRAM_MESSAGE_MAX];
		size_t n;

		scram_client_force_nonce(c, VEC_CNONCE);
		assert_null(scram_client_mechanism(c));
		assert_int_equal(scram_client_first(c, plus ? mechs_plus : mechs_plain,
						    plus ? sizeof(mechs_plus) : sizeof(mechs_plain), &mech,
						    out, sizeof(out), &n),
				 SCRAM_CONTINUE);
		assert_string_equal(mech, plus ? SCRAM_MECH_PLUS : SCRAM_MECH);
		assert_string_equal(scram_client_mechanism(c), mech);
		assert_msg(out, n, t->client_first);
		assert_int_equal(scram_client_final(c, VEC_SERVER_FIRST, strlen(VEC_SERVER_FIRST), out,
						    sizeof(out), &n),
				 SCRAM_CONTINUE);
		assert_msg(out, n, t->client_final);
		assert_int_equal(scram_client_verify(c, t->server_final, strlen(t->server_final)),
				 SCRAM_DONE);
		scram_client_free(c);
	}
	scram_client_free(NULL);
}

/* A client end past its first step (vector 0: no TLS). */
static struct scram_client *client_after_first(void)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	struct scram_client *c = scram_client_new(vec_client_key, &v, NULL, 0);
	const char *mech;
	char out[SCRAM_MESSAGE_MAX];
	size_t n;

	scram_client_force_nonce(c, VEC_CNONCE);
	assert_int_equal(scram_client_first(c, mechs_plain, sizeof(mechs_plain), &mech, out, sizeof(out), &n),
			 SCRAM_CONTINUE);
	return c;
}

static void client_final_is(const char *server_first, enum scram_result want)
{
	struct scram_client *c = client_after_first();
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	enum scram_result r = scram_client_final(c, server_first, strlen(server_first), out, sizeof(out), &n);

	if (r != want)
		fail_msg("\"%s\": expected %s, got %s", server_first, scram_result_name(want),
			 scram_result_name(r));
	scram_client_free(c);
}

static void test_client_server_first_hostile(void **state)
{
	(void)state;
	client_final_is(VEC_SERVER_FIRST, SCRAM_CONTINUE);
	/* absurd iteration counts */
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=0", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=-4096", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=2147483648",
			SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=99999999999999999999",
			SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096x", SCRAM_MALFORMED);
	/* a sane count or salt other than the verifier's: the password changed */
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=8192", SCRAM_STALE);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", SCRAM_STALE);
	/* nonces that do not extend ours */
	client_final_is("r=" VEC_CNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096", SCRAM_MALFORMED);
	client_final_is("r=Xlientnonce0123456789ABserver,s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096", SCRAM_MALFORMED);
	client_final_is("r=clientnonce,s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096", SCRAM_MALFORMED);
	/* salt not base64, empty, too long */
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg=,i=4096", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=,i=4096", SCRAM_MALFORMED);
	client_final_is(
		"r=" VEC_CNONCE VEC_SNONCE
		",s=QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB,"
		"i=4096",
		SCRAM_MALFORMED);
	/* order, mandatory extension, garbage at the end, truncation */
	client_final_is("s=cGd2YWx2ZS1zYWx0LTE2Yg==,r=" VEC_CNONCE VEC_SNONCE ",i=4096", SCRAM_MALFORMED);
	client_final_is("m=x,r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==,i=4096", SCRAM_MALFORMED);
	client_final_is(VEC_SERVER_FIRST ",x=1", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE ",s=cGd2YWx2ZS1zYWx0LTE2Yg==", SCRAM_MALFORMED);
	client_final_is("r=" VEC_CNONCE VEC_SNONCE, SCRAM_MALFORMED);
}

static void client_verify_is(const char *server_final, enum scram_result want)
{
	struct scram_client *c = client_after_first();
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	enum scram_result r;

	assert_int_equal(
		scram_client_final(c, VEC_SERVER_FIRST, strlen(VEC_SERVER_FIRST), out, sizeof(out), &n),
		SCRAM_CONTINUE);
	r = scram_client_verify(c, server_final, strlen(server_final));
	if (r != want)
		fail_msg("\"%s\": expected %s, got %s", server_final, scram_result_name(want),
			 scram_result_name(r));
	/* Whatever happened, the exchange is over. */
	assert_int_equal(scram_client_verify(c, vectors[0].server_final, strlen(vectors[0].server_final)),
			 SCRAM_MALFORMED);
	scram_client_free(c);
}

static void test_client_server_final_hostile(void **state)
{
	(void)state;
	client_verify_is(vectors[0].server_final, SCRAM_DONE);
	/* another server's signature (vector 1's) */
	client_verify_is(vectors[1].server_final, SCRAM_FAILED);
	client_verify_is("e=invalid-proof", SCRAM_FAILED);
	/* the right signature in non-canonical base64 (bits after the last byte set) */
	client_verify_is("v=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6IbIZ=", SCRAM_MALFORMED);
	/* truncated */
	client_verify_is("v=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6IbIY", SCRAM_MALFORMED);
	client_verify_is("v=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6I", SCRAM_MALFORMED);
	client_verify_is("v=", SCRAM_MALFORMED);
	client_verify_is("v", SCRAM_MALFORMED);
	client_verify_is("v=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6IbIY=,x=1", SCRAM_MALFORMED);
	client_verify_is("x=vexAd1cBm4eYQM728IpJGjlrxnFy4F2r9VcfOj6IbIY=", SCRAM_MALFORMED);
}

static void test_client_mechanism_choice(void **state)
{
	struct scram_verifier v = parse_verifier(VEC_VERIFIER);
	static const char none[] = "SCRAM-SHA-1\0";
	static const char unterminated[] = { 'S', 'C', 'R', 'A', 'M', '-', 'S',
					     'H', 'A', '-', '2', '5', '6', '\0' };
	static const char plus_only[] = SCRAM_MECH_PLUS "\0";
	const char *mech;
	char out[SCRAM_MESSAGE_MAX];
	size_t n;
	struct scram_client *c;

	(void)state;
	/* -PLUS offered but our leg is not TLS: plain SCRAM with 'n' */
	c = scram_client_new(vec_client_key, &v, NULL, 0);
	assert_int_equal(scram_client_first(c, mechs_plus, sizeof(mechs_plus), &mech, out, sizeof(out), &n),
			 SCRAM_CONTINUE);
	assert_string_equal(mech, SCRAM_MECH);
	assert_int_equal(out[0], 'n');
	scram_client_free(c);
	c = scram_client_new(vec_client_key, &v, NULL, 0);
	assert_int_equal(scram_client_first(c, none, sizeof(none), &mech, out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_client_free(c);
	c = scram_client_new(vec_client_key, &v, NULL, 0);
	assert_int_equal(
		scram_client_first(c, unterminated, sizeof(unterminated), &mech, out, sizeof(out), &n),
		SCRAM_MALFORMED);
	scram_client_free(c);
	c = scram_client_new(vec_client_key, &v, cbind_a, 32);
	assert_int_equal(scram_client_first(c, plus_only, sizeof(plus_only), &mech, out, sizeof(out), &n),
			 SCRAM_MALFORMED);
	scram_client_free(c);
	/* out of order */
	c = scram_client_new(vec_client_key, &v, NULL, 0);
	assert_int_equal(
		scram_client_final(c, VEC_SERVER_FIRST, strlen(VEC_SERVER_FIRST), out, sizeof(out), &n),
		SCRAM_MALFORMED);
	scram_client_free(c);
	c = scram_client_new(vec_client_key, &v, NULL, 0);
	assert_int_equal(scram_client_verify(c, vectors[0].server_final, strlen(vectors[0].server_final)),
			 SCRAM_MALFORMED);
	scram_client_free(c);
}

/* ---- both ends ---- */

/*
 * Our client end against our server end, random nonces: 'ctls'/'stls' say
 * whether each end believes the leg is TLS, 'ccb'/'scb' the certificate
 * hashes each sees. Returns the server end's verdict at the last step it
 * reached; *key gets the recovered ClientKey on success.
 */
static enum scram_result exchange(const struct scram_verifier *sv, const unsigned char *client_key,
				  const struct scram_verifier *cv, const unsigned char *ccb,
				  const unsigned char *scb, unsigned char key[SCRAM_KEY_LEN])
{
	struct scram_server *s = scram_server_new(sv, scb, scb ? 32 : 0);
	struct scram_client *c = scram_client_new(client_key, cv, ccb, ccb ? 32 : 0);
	char a[SCRAM_MESSAGE_MAX], b[SCRAM_MESSAGE_MAX];
	size_t an, bn, mn;
	const char *mechs = scram_server_mechanisms(s, &mn), *mech;
	enum scram_result r;

	assert_int_equal(scram_client_first(c, mechs, mn, &mech, a, sizeof(a), &an), SCRAM_CONTINUE);
	r = scram_server_first(s, mech, a, an, b, sizeof(b), &bn);
	if (r != SCRAM_CONTINUE)
		goto out;
	r = scram_client_final(c, b, bn, a, sizeof(a), &an);
	if (r != SCRAM_CONTINUE)
		goto out;
	r = scram_server_final(s, a, an, b, sizeof(b), &bn);
	if (r != SCRAM_DONE)
		goto out;
	assert_int_equal(scram_client_verify(c, b, bn), SCRAM_DONE);
	assert_true(scram_server_client_key(s, key));
out:
	scram_client_free(c);
	scram_server_free(s);
	return r;
}

static void test_both_ends(void **state)
{
	struct scram_verifier v, other;
	unsigned char ck[SCRAM_KEY_LEN], other_ck[SCRAM_KEY_LEN], got[SCRAM_KEY_LEN];
	static const unsigned char salt[16] = "0123456789abcdef";

	(void)state;
	assert_true(scram_verifier_from_password("s3cret", salt, sizeof(salt), 1000, &v, ck));
	assert_true(scram_verifier_from_password("guess", salt, sizeof(salt), 1000, &other, other_ck));
	/* no TLS; TLS with -PLUS; TLS seen by the client only ('y' to a server that offers nothing more) */
	assert_int_equal(exchange(&v, ck, &v, NULL, NULL, got), SCRAM_DONE);
	assert_memory_equal(got, ck, SCRAM_KEY_LEN);
	assert_int_equal(exchange(&v, ck, &v, cbind_a, cbind_a, got), SCRAM_DONE);
	assert_memory_equal(got, ck, SCRAM_KEY_LEN);
	assert_int_equal(exchange(&v, ck, &v, cbind_a, NULL, got), SCRAM_DONE);
	/* the server offers -PLUS, the client has no TLS: plain SCRAM with 'n' */
	assert_int_equal(exchange(&v, ck, &v, NULL, cbind_a, got), SCRAM_DONE);
	/* a man in the middle: the two ends see different certificates */
	assert_int_equal(exchange(&v, ck, &v, cbind_b, cbind_a, got), SCRAM_MALFORMED);
	/* a wrong password */
	assert_int_equal(exchange(&v, other_ck, &other, NULL, NULL, got), SCRAM_FAILED);
	assert_int_equal(exchange(&v, other_ck, &other, cbind_a, cbind_a, got), SCRAM_FAILED);
}

/*
 * scram_server_recheck(): a proof made with a password whose verifier has the
 * same salt and iterations as the one the exchange began with is judged
 * against the refetched verifier; one with another salt, a mock, a second
 * recheck, or a recheck after anything but a wrong proof is refused.
 */
static void test_server_recheck(void **state)
{
	static const unsigned char salt[16] = "0123456789abcdef", salt2[16] = "fedcba9876543210";
	struct scram_verifier old, fresh, other_salt, other_iter, mock;
	unsigned char ck[SCRAM_KEY_LEN], unused[SCRAM_KEY_LEN], got[SCRAM_KEY_LEN];
	char first[SCRAM_MESSAGE_MAX], sfirst[SCRAM_MESSAGE_MAX], final[SCRAM_MESSAGE_MAX],
		out[SCRAM_MESSAGE_MAX];
	size_t n, sn, fn, on;
	const char *mech;

	(void)state;
	assert_true(scram_verifier_from_password("old", salt, sizeof(salt), 1000, &old, unused));
	assert_true(scram_verifier_from_password("new", salt, sizeof(salt), 1000, &fresh, ck));
	assert_true(scram_verifier_from_password("new", salt2, sizeof(salt2), 1000, &other_salt, unused));
	assert_true(scram_verifier_from_password("new", salt, sizeof(salt), 2000, &other_iter, unused));
	scram_verifier_mock("someone", unused, &mock);
	mock.salt_len = old.salt_len;
	memcpy(mock.salt, old.salt, old.salt_len);
	mock.iterations = old.iterations;
	for (int k = 0; k < 5; k++) {
		const struct scram_verifier *refetched[] = { &fresh, &other_salt, &other_iter, &mock,
							     &fresh };
		struct scram_server *s = scram_server_new(&old, NULL, 0);
		struct scram_client *c = scram_client_new(ck, &fresh, NULL, 0);

		assert_non_null(s);
		assert_non_null(c);
		/* before any wrong proof: refused, and the exchange is over */
		if (k == 4) {
			assert_int_equal(scram_server_recheck(s, &fresh, "x", 1, out, sizeof(out), &on),
					 SCRAM_MALFORMED);
			scram_server_free(s);
			scram_client_free(c);
			continue;
		}
		assert_int_equal(scram_client_first(c, mechs_plain, sizeof(mechs_plain), &mech, first,
						    sizeof(first), &n),
				 SCRAM_CONTINUE);
		assert_int_equal(scram_server_first(s, mech, first, n, sfirst, sizeof(sfirst), &sn),
				 SCRAM_CONTINUE);
		assert_int_equal(scram_client_final(c, sfirst, sn, final, sizeof(final), &fn),
				 SCRAM_CONTINUE);
		/* the old verifier does not know the new password */
		assert_int_equal(scram_server_final(s, final, fn, out, sizeof(out), &on), SCRAM_FAILED);
		if (k == 0) {
			assert_int_equal(
				scram_server_recheck(s, refetched[k], final, fn, out, sizeof(out), &on),
				SCRAM_DONE);
			assert_int_equal(scram_client_verify(c, out, on), SCRAM_DONE);
			assert_true(scram_server_client_key(s, got));
			assert_memory_equal(got, ck, SCRAM_KEY_LEN);
		} else {
			assert_int_equal(
				scram_server_recheck(s, refetched[k], final, fn, out, sizeof(out), &on),
				SCRAM_FAILED);
			assert_false(scram_server_client_key(s, got));
		}
		/* once only */
		assert_int_equal(scram_server_recheck(s, &fresh, final, fn, out, sizeof(out), &on),
				 SCRAM_MALFORMED);
		scram_server_free(s);
		scram_client_free(c);
	}
}

/* ---- tls-server-end-point ---- */

static X509 *make_cert(EVP_PKEY *key, const EVP_MD *md)
{
	X509 *x = X509_new();

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"pgvalve", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	assert_true(X509_sign(x, key, md) > 0);
	return x;
}

static void test_cert_endpoint_hash(void **state)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	struct {
		const EVP_MD *sign;
		const EVP_MD *hash;
	} cases[4];
	unsigned char got[SCRAM_CBIND_MAX], want[EVP_MAX_MD_SIZE];

	(void)state;
	assert_non_null(key);
	/* RFC 5929 §4.1: SHA-1 (and MD5) signatures hash with SHA-256; others with their own hash. */
	cases[0].sign = EVP_sha1();
	cases[0].hash = EVP_sha256();
	cases[1].sign = EVP_sha256();
	cases[1].hash = EVP_sha256();
	cases[2].sign = EVP_sha384();
	cases[2].hash = EVP_sha384();
	cases[3].sign = EVP_sha512();
	cases[3].hash = EVP_sha512();
	for (int i = 0; i < 4; i++) {
		X509 *x = make_cert(key, cases[i].sign);
		unsigned int wn = 0;
		size_t gn = 0;

		assert_true(scram_cert_endpoint_hash(x, got, &gn));
		assert_int_equal(X509_digest(x, cases[i].hash, want, &wn), 1);
		assert_int_equal(gn, wn);
		assert_memory_equal(got, want, wn);
		X509_free(x);
	}
	EVP_PKEY_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verifier_from_password_matches_rfc),
		cmocka_unit_test(test_verifier_parse_rejects),
		cmocka_unit_test(test_mock_verifier_is_stable_per_name),
		cmocka_unit_test(test_server_rfc7677),
		cmocka_unit_test(test_server_vectors),
		cmocka_unit_test(test_server_mechanisms),
		cmocka_unit_test(test_server_gs2_rules),
		cmocka_unit_test(test_server_refuses_oversized),
		cmocka_unit_test(test_parse_initial_response),
		cmocka_unit_test(test_server_final_hostile),
		cmocka_unit_test(test_server_replay_and_order),
		cmocka_unit_test(test_server_mock_fails_at_the_end),
		cmocka_unit_test(test_client_vectors),
		cmocka_unit_test(test_client_server_first_hostile),
		cmocka_unit_test(test_client_server_final_hostile),
		cmocka_unit_test(test_client_mechanism_choice),
		cmocka_unit_test(test_both_ends),
		cmocka_unit_test(test_server_recheck),
		cmocka_unit_test(test_cert_endpoint_hash),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
