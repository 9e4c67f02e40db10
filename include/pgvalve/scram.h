/*
 * SCRAM-SHA-256 as PostgreSQL speaks it (RFC 5802, RFC 7677,
 * https://www.postgresql.org/docs/15/sasl-authentication.html), both ends:
 *
 *   - the server end, for the client leg when the proxy terminates
 *     authentication: verifies a client's proof against a stored verifier and
 *     recovers the client's ClientKey from it;
 *   - the client end, for the server leg: logs in with a ClientKey and the
 *     verifier's ServerKey, never with a password (what PgBouncer calls SCRAM
 *     pass-through).
 *
 * Both take whole SASL messages (the payload of SASLInitialResponse,
 * SASLResponse, AuthenticationSASLContinue and AuthenticationSASLFinal; the
 * pgwire framing delivers them complete), never longer than
 * SCRAM_MESSAGE_MAX, and never touch a socket. Every step answers one of the
 * enum scram_result values. Keys are 32 bytes (SHA-256). Secrets (ClientKey,
 * proofs, the keys of a verifier held by an exchange) are wiped with
 * OPENSSL_cleanse when an exchange is freed; nothing here logs.
 *
 * This module owns the mechanism; which verifier a role has, the wire
 * messages around the SASL payloads and the error the client sees belong to
 * the session.
 */
#ifndef PGVALVE_SCRAM_H
#define PGVALVE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#define SCRAM_KEY_LEN 32
#define SCRAM_SALT_MAX 64 /* bytes; PostgreSQL's salts are 16 */
/* A SASL message longer than this is refused (PostgreSQL's are ~150 bytes). */
#define SCRAM_MESSAGE_MAX 1024
/* Iteration counts a server may ask for: PostgreSQL's scram_iterations is 1 and up, 4096 by default. */
#define SCRAM_ITERATIONS_MAX 10000000
#define SCRAM_DEFAULT_ITERATIONS 4096
/* tls-server-end-point data: a certificate hash, at most SHA-512's. */
#define SCRAM_CBIND_MAX 64

#define SCRAM_MECH "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS "SCRAM-SHA-256-PLUS"

enum scram_result {
	SCRAM_CONTINUE,  /* step done; 'out' holds the next message; the exchange is not over */
	SCRAM_DONE,      /* authenticated (server end: send 'out' as AuthenticationSASLFinal) */
	SCRAM_MALFORMED, /* a message breaks the protocol: wrong syntax, nonce, flag, order (08P01) */
	SCRAM_FAILED,    /* authentication failed: wrong proof, unknown role, bad server signature (28P01) */
	SCRAM_STALE,     /* client end: the server's salt or iteration count is not the verifier's */
};

/* "continue", "done", "malformed", "failed", "stale". */
const char *scram_result_name(enum scram_result r);

/* A stored verifier: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. */
struct scram_verifier {
	int iterations;
	size_t salt_len;
	unsigned char salt[SCRAM_SALT_MAX];
	unsigned char stored_key[SCRAM_KEY_LEN];
	unsigned char server_key[SCRAM_KEY_LEN];
	bool doomed; /* a mock for a role without one: every proof fails */
};

/*
 * Parses 'text' (NUL-terminated) into *out. False if it is not a well-formed
 * SCRAM-SHA-256 verifier (base64 strict, keys exactly 32 bytes, 1 to
 * SCRAM_ITERATIONS_MAX iterations, 1 to SCRAM_SALT_MAX bytes of salt).
 */
bool scram_verifier_parse(const char *text, struct scram_verifier *out) __attribute__((warn_unused_result));

/*
 * A verifier for a role that has none (unknown, no password, md5 where SCRAM
 * was chosen): the exchange runs to its end and fails there, as PostgreSQL's
 * mock authentication does, so the answer never tells whether the role
 * exists. The salt is derived from 'secret' (random per process) and the
 * name, so one name always gets the same salt.
 */
void scram_verifier_mock(const char *username, const unsigned char secret[SCRAM_KEY_LEN],
			 struct scram_verifier *out);

/*
 * Derives the verifier from a password (already SASLprep'd; ASCII passwords
 * are unchanged by it) as PostgreSQL does: SaltedPassword =
 * PBKDF2-HMAC-SHA-256(password, salt, iterations); client_key_out (unless
 * NULL) gets the ClientKey. For tests and tools; the proxy never has
 * passwords. False on a crypto failure or bad arguments.
 */
bool scram_verifier_from_password(const char *password, const unsigned char *salt, size_t salt_len,
				  int iterations, struct scram_verifier *out,
				  unsigned char client_key_out[SCRAM_KEY_LEN])
	__attribute__((warn_unused_result));

/* The verifier's text form into out[cap]. False if it does not fit. */
bool scram_verifier_format(const struct scram_verifier *v, char *out, size_t cap)
	__attribute__((warn_unused_result));

/* Wipes a verifier (its keys are secrets). */
void scram_verifier_clear(struct scram_verifier *v);

/*
 * The channel-binding data for type tls-server-end-point (RFC 5929 §4.1):
 * the hash of the DER certificate with its signature's hash algorithm,
 * SHA-256 where that is MD5 or SHA-1. The server end binds to the proxy's own
 * certificate; the client end to the certificate the server presented.
 * out[SCRAM_CBIND_MAX], *out_len set. False if the algorithm is unknown (as
 * for Ed25519 certificates: no channel binding then).
 */
bool scram_cert_endpoint_hash(X509 *cert, unsigned char out[SCRAM_CBIND_MAX], size_t *out_len)
	__attribute__((warn_unused_result));

/* ---- Server end (the client leg) ---- */

/*
 * The body of a SASLInitialResponse (the 'p' message answering
 * AuthenticationSASL): the mechanism name, NUL-terminated, then Int32 the
 * length of the client-first-message (-1: none) and its bytes. *mechanism
 * and *msg point into 'body'. CONTINUE, or MALFORMED when the body is cut
 * short or runs on, the length is negative or disagrees with the body, or
 * the message is missing or longer than SCRAM_MESSAGE_MAX (SCRAM always
 * sends one).
 */
enum scram_result scram_parse_initial_response(const char *body, size_t len, const char **mechanism,
					       const char **msg, size_t *msg_len)
	__attribute__((warn_unused_result));

struct scram_server;

/*
 * An exchange against 'v' (copied). 'cbind' is the tls-server-end-point
 * data of the proxy's certificate when the client leg is TLS, NULL (and
 * cbind_len 0) when it is not or when scram_cert_endpoint_hash() cannot
 * hash that certificate: it decides whether SCRAM-SHA-256-PLUS is offered
 * (and whether a client's 'y' is a downgrade). NULL on allocation failure
 * or a cbind_len of 0 or over SCRAM_CBIND_MAX with a non-NULL 'cbind'.
 */
struct scram_server *scram_server_new(const struct scram_verifier *v, const unsigned char *cbind,
				      size_t cbind_len) __attribute__((warn_unused_result));

/*
 * The mechanism list for AuthenticationSASL: "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
 * when channel binding is possible, "SCRAM-SHA-256\0\0" when not; *len
 * counts every byte, the final NUL included.
 */
const char *scram_server_mechanisms(const struct scram_server *s, size_t *len);

/*
 * The client's SASLInitialResponse: the mechanism it chose and its
 * client-first-message. CONTINUE with server-first-message in out[cap]
 * (*out_len bytes, not NUL-terminated; cap >= SCRAM_MESSAGE_MAX always
 * suffices), or MALFORMED: an unknown mechanism or one not offered, a gs2
 * flag that contradicts the mechanism, 'y' when -PLUS was offered (a
 * downgrade: PostgreSQL's "channel binding negotiation error"), an authzid,
 * a mandatory extension, a nonce that is not printable, a message over
 * SCRAM_MESSAGE_MAX. The username in the message is ignored, as PostgreSQL
 * ignores it: the role is the startup packet's.
 */
enum scram_result scram_server_first(struct scram_server *s, const char *mechanism, const char *msg,
				     size_t len, char *out, size_t cap, size_t *out_len)
	__attribute__((warn_unused_result));

/*
 * The client's SASLResponse (client-final-message). DONE with
 * server-final-message (v=ServerSignature) in out[cap]; FAILED when the
 * proof is wrong or the verifier is a mock; MALFORMED when the channel
 * binding data is not the gs2 header and certificate hash expected, the
 * nonce is not this exchange's, the proof is not 32 bytes of base64, or
 * this step comes out of order (a replayed client-final after DONE).
 */
enum scram_result scram_server_final(struct scram_server *s, const char *msg, size_t len, char *out,
				     size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/*
 * After scram_server_final() answered FAILED for a proof that does not match
 * the verifier: checks the same client-final-message 'msg' once more
 * against 'v', the role's verifier fetched again (the one the exchange began
 * with may be stale: the password was changed). Only a verifier with the
 * salt and iteration count the client was sent can judge the proof, which the
 * client computed from them: any other gets FAILED (the client must log in
 * again). Otherwise 'v' replaces the exchange's verifier and the answer is
 * scram_server_final()'s. MALFORMED when the exchange did not end in a wrong
 * proof.
 */
enum scram_result scram_server_recheck(struct scram_server *s, const struct scram_verifier *v,
				       const char *msg, size_t len, char *out, size_t cap, size_t *out_len)
	__attribute__((warn_unused_result));

/* After DONE: the client's ClientKey (a secret: wipe the copy when done). False before. */
bool scram_server_client_key(const struct scram_server *s, unsigned char out[SCRAM_KEY_LEN])
	__attribute__((warn_unused_result));

/* The mechanism the client chose, once scram_server_first() succeeded; NULL before. */
const char *scram_server_mechanism(const struct scram_server *s);

/* Wipes and frees; NULL is fine. */
void scram_server_free(struct scram_server *s);

/* ---- Client end (the server leg) ---- */

struct scram_client;

/*
 * An exchange logging in with 'client_key' and v's ServerKey; v's salt and
 * iterations are what the server must announce (else SCRAM_STALE: the
 * password changed since the verifier was fetched). 'cbind' is the
 * tls-server-end-point data of the server's certificate when the server leg
 * is TLS, else NULL — NULL too when scram_cert_endpoint_hash() cannot hash
 * that certificate: the client then says 'n' (no channel binding), which a
 * server accepts, where 'y' would be taken for a downgrade. Both copied.
 * NULL on allocation failure.
 */
struct scram_client *scram_client_new(const unsigned char client_key[SCRAM_KEY_LEN],
				      const struct scram_verifier *v, const unsigned char *cbind,
				      size_t cbind_len) __attribute__((warn_unused_result));

/*
 * Chooses the mechanism from AuthenticationSASL's list ('mechs', mechs_len
 * bytes: NUL-terminated names, then an empty one) and writes the
 * client-first-message into out[cap]; *mechanism points at a static name
 * for SASLInitialResponse. SCRAM-SHA-256-PLUS with "p=tls-server-end-point"
 * when the server offers it and the leg is TLS; else SCRAM-SHA-256 with 'y'
 * on TLS (so a server that did offer -PLUS, stripped by someone in between,
 * refuses) or 'n' without. CONTINUE, or MALFORMED when the list is not
 * terminated or names no SCRAM-SHA-256.
 */
enum scram_result scram_client_first(struct scram_client *c, const char *mechs, size_t mechs_len,
				     const char **mechanism, char *out, size_t cap, size_t *out_len)
	__attribute__((warn_unused_result));

/*
 * The server's server-first-message (AuthenticationSASLContinue). CONTINUE
 * with client-final-message (the proof) in out[cap]; MALFORMED when the
 * nonce does not extend ours, the salt is not base64, the iteration count is
 * outside 1..SCRAM_ITERATIONS_MAX or anything else is off; STALE when salt
 * or iterations differ from the verifier's (no proof is sent then).
 */
enum scram_result scram_client_final(struct scram_client *c, const char *msg, size_t len, char *out,
				     size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/*
 * The server's server-final-message (AuthenticationSASLFinal). DONE when
 * its ServerSignature is right (compared in constant time): this really is a
 * server that knows the verifier. FAILED on a wrong signature or "e=...";
 * MALFORMED on anything else, a truncated message included.
 */
enum scram_result scram_client_verify(struct scram_client *c, const char *msg, size_t len)
	__attribute__((warn_unused_result));

/* The mechanism chosen by scram_client_first(); NULL before. */
const char *scram_client_mechanism(const struct scram_client *c);

/* Wipes and frees; NULL is fine. */
void scram_client_free(struct scram_client *c);

/*
 * Tests and fuzzing only: the nonce the next first step uses instead of a
 * random one (printable, no ',', at most 64 characters; copied).
 */
void scram_server_force_nonce(struct scram_server *s, const char *nonce);
void scram_client_force_nonce(struct scram_client *c, const char *nonce);

#endif
