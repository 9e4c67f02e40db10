/*
 * What the SCRAM modules share (scram.c: base64, crypto, verifiers and the
 * message cursor; scram_server.c: the server end; scram_client.c: the client
 * end). Private to common/: the public interface is pgvalve/scram.h.
 */
#ifndef PGVALVE_COMMON_SCRAM_INTERNAL_H
#define PGVALVE_COMMON_SCRAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgvalve/scram.h"

#define CBIND_TYPE "tls-server-end-point"
#define RAW_NONCE_LEN 18 /* as PostgreSQL: 24 base64 characters */
#define NONCE_MAX 64     /* our own nonce, forced ones included */
#define GS2_MAX 32       /* "p=tls-server-end-point,," and its kin */
/* client-first-bare + ',' + server-first + ',' + client-final-without-proof */
#define AUTH_MESSAGE_MAX (3 * SCRAM_MESSAGE_MAX + 2)

/* The encoded length of n bytes (a constant expression for constant n). */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

/* A read position in one message; every read checks 'end'. */
struct scram_cursor {
	const char *p;
	const char *end;
};

/* Encodes src[n] into out[cap]; returns the length written, or 0 if it does not fit. */
size_t scram_b64_encode(const unsigned char *src, size_t n, char *out, size_t cap);

/*
 * Decodes src[n] into out[cap]: *out_len bytes. False unless 'src' is whole
 * groups of four alphabet characters, '=' only as the last one or two, the
 * unused bits before '=' zero, and the result fits.
 */
bool scram_b64_decode(const char *src, size_t n, unsigned char *out, size_t cap, size_t *out_len);

bool scram_hmac_sha256(const unsigned char *key, size_t key_len, const void *data, size_t len,
		       unsigned char out[SCRAM_KEY_LEN]);

bool scram_sha256(const void *data, size_t len, unsigned char out[SCRAM_KEY_LEN]);

bool scram_parse_iterations(const char *s, size_t n, int *out);

bool scram_at_end(const struct scram_cursor *c);

/* Consumes 'ch' if it is next. */
bool scram_take_char(struct scram_cursor *c, char ch);

/* Consumes "<attr>=" if it is next. */
bool scram_take_attr(struct scram_cursor *c, char attr);

/* The value up to the next ',' or the end (not consumed); *len may be 0. */
const char *scram_take_value(struct scram_cursor *c, size_t *len);

/* RFC 5802's printable: 0x21..0x7e but ','. */
bool scram_printable(const char *s, size_t n);

/* An extension attribute: ',' ALPHA '=' value. Consumes it. */
bool scram_skip_extension(struct scram_cursor *c);

/* Whole messages only: at most SCRAM_MESSAGE_MAX bytes, no NUL inside. */
bool scram_message_ok(const char *msg, size_t len);

/* A fresh nonce: 'forced' if set, else RAW_NONCE_LEN random bytes in base64. */
bool scram_make_nonce(const char *forced, char out[NONCE_MAX + 1]);

void scram_force_nonce(char dst[NONCE_MAX + 1], const char *nonce);

/* AuthMessage (RFC 5802 §3) of the three parts into out[AUTH_MESSAGE_MAX]; its length. */
size_t scram_auth_message(char *out, const char *cfb, size_t cfb_len, const char *sf, size_t sf_len,
			  const char *cfwp, size_t cfwp_len);

#endif
