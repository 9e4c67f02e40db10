/*
 * The TLS 1.3 record layer a connection uses once OpenSSL has finished the
 * handshake (docs/architecture.md §3.10): the application traffic keys, the
 * sequence numbers and nothing else while idle; buffers only while a record
 * is half read or half written. Records are protected with OpenSSL's EVP
 * AEAD ciphers (RFC 8446 §5.2, §5.3); post-handshake NewSessionTicket is
 * skipped, KeyUpdate is followed (§4.6.3, §7.2), alerts end the stream.
 */
#ifndef PGVALVE_PROXY_TLS_RECORD_H
#define PGVALVE_PROXY_TLS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	TLS_RECORD_AGAIN = -2,  /* would block: same as CONN_AGAIN */
	TLS_RECORD_FAILED = -1, /* tls_record_error() says why */
};

#define TLS_RECORD_SECRET_MAX 48 /* SHA-384 */
#define TLS_RECORD_KEY_MAX 32
#define TLS_RECORD_IV_LEN 12
#define TLS_RECORD_PLAIN_MAX 16384                               /* 2^14, RFC 8446 §5.1 */
#define TLS_RECORD_HEADER 5                                      /* type, legacy version, length */
#define TLS_RECORD_BODY_MAX (TLS_RECORD_PLAIN_MAX + 256)         /* §5.2 */
#define TLS_RECORD_BUF (TLS_RECORD_HEADER + TLS_RECORD_BODY_MAX) /* one record, read or written */
#define TLS_RECORD_CBIND_MAX 64                                  /* SCRAM_CBIND_MAX */

/* The suites (cipher suite ids, RFC 8446 §B.4) this layer protects records with. */
enum tls_record_suite {
	TLS_SUITE_AES_128_GCM_SHA256 = 0x1301,
	TLS_SUITE_AES_256_GCM_SHA384 = 0x1302,
	TLS_SUITE_CHACHA20_POLY1305_SHA256 = 0x1303,
};

/* One direction's traffic keys. */
struct tls_record_key {
	uint8_t secret[TLS_RECORD_SECRET_MAX]; /* kept for KeyUpdate */
	uint8_t key[TLS_RECORD_KEY_MAX];
	uint8_t iv[TLS_RECORD_IV_LEN];
	uint64_t seq;
	uint64_t id;   /* names this key in the thread's cipher context cache */
	uint32_t slot; /* where in that cache it was last: a hint, checked against id */
};

struct tls_record {
	struct tls_record_key rd, wr;
	uint8_t *in;                   /* NULL unless a record is partly read or its plaintext undelivered */
	uint8_t *out;                  /* NULL unless a sealed record is partly written */
	char *why;                     /* why it failed (malloc'd), repeated by later calls */
	uint32_t in_start, in_end;     /* unprocessed ciphertext in 'in' */
	uint32_t plain_off, plain_len; /* decrypted application data waiting in 'in' */
	uint32_t out_off, out_end;     /* unsent part of 'out' */
	uint32_t out_plain;            /* application bytes that record carries (0: a control record) */
	uint32_t hs_skip;              /* bytes left of a NewSessionTicket spanning records */
	uint16_t suite;
	uint8_t hs_hdr[4]; /* a post-handshake message header split across records */
	uint8_t hs_hdr_len;
	uint8_t cbind_len;
	uint8_t cbind[TLS_RECORD_CBIND_MAX]; /* tls-server-end-point of the server's certificate */
	uint8_t have;                        /* handshake capture: 1 read secret, 2 write secret */
	bool server;                         /* this end is the TLS server */
	bool peer_closed;                    /* close_notify received */
	bool key_update_due;                 /* the peer asked for our KeyUpdate: sent before the next data */
	bool failed;                         /* sticky: nothing more is read or written */
	bool drained;                        /* the latest recv found the socket empty (a short read) */
};

/*
 * Takes one keylog line from the handshake (SSL_CTX_set_keylog_callback):
 * keeps CLIENT_/SERVER_TRAFFIC_SECRET_0 as the read or write secret for an
 * end that is the TLS server if 'server'. Other lines are ignored.
 */
void tls_record_keylog(struct tls_record *r, const char *line, bool server);

/*
 * Derives the keys from the captured secrets (or from the ones given, when
 * non-NULL) for 'suite'. False for a suite this layer does not do or a
 * secret missing; the connection then keeps OpenSSL.
 */
bool tls_record_start(struct tls_record *r, uint16_t suite, bool server, const uint8_t *read_secret,
		      const uint8_t *write_secret) __attribute__((warn_unused_result));

/*
 * Like read(2) on the protected stream: > 0 bytes, 0 end of stream,
 * TLS_RECORD_AGAIN or _FAILED. Delivers the plaintext of every whole record
 * already received, as far as 'len' goes, before it receives more.
 */
long tls_record_read(struct tls_record *r, int fd, void *buf, size_t len);

/* True after a read that left nothing to read without the socket becoming readable again. */
bool tls_record_drained(const struct tls_record *r);

/*
 * Like SSL_write with partial writes: > 0 bytes taken, TLS_RECORD_AGAIN or
 * _FAILED. After AGAIN the caller retries with the same bytes (more may
 * follow them): a record once sealed is owed to the peer.
 */
long tls_record_write(struct tls_record *r, int fd, const void *buf, size_t len);

/* True if a read would return bytes without the socket becoming readable. */
bool tls_record_pending(const struct tls_record *r);

/* Best effort: what is half written, then close_notify; frees the buffers and wipes the keys. */
void tls_record_end(struct tls_record *r, int fd);

/* Why the latest _FAILED on this thread happened, and forgets it; NULL if nothing. */
const char *tls_record_error(void);

/* HKDF-Expand-Label(secret, "key"/"iv") of RFC 8446 §7.3; for the unit test too. */
bool tls_record_derive(uint16_t suite, const uint8_t *secret, uint8_t key[TLS_RECORD_KEY_MAX],
		       uint8_t iv[TLS_RECORD_IV_LEN]) __attribute__((warn_unused_result));

/*
 * Seals one record of inner content type 'type' with the write key into
 * out (TLS_RECORD_BUF bytes at least); returns its length, 0 on failure.
 * For the unit test and the fuzz target, which play the peer.
 */
size_t tls_record_seal(struct tls_record *r, uint8_t type, const uint8_t *p, size_t n, uint8_t *out);

#endif
