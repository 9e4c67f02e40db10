/*
 * TLS 1.3 records after the handshake (RFC 8446 §5), for connections whose
 * SSL object was freed once the handshake finished (docs/architecture.md
 * §3.10). Owns the wire format, the AEAD calls and the post-handshake
 * messages; conn.c owns when a connection uses it. Each thread keeps up to
 * 64 keyed cipher contexts, for the keys it used last, so a busy
 * connection's records are not re-keyed, and the memory is per thread, not
 * per connection. The AEAD is called through its provider's own functions,
 * not EVP (below). Records are sealed and read in per-thread scratch
 * buffers: a connection holds a buffer only while a record is half sent or
 * half read.
 */
#include "tls_record.h"

#include <errno.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/provider.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Record content types, RFC 8446 §5.1. */
enum {
	CT_ALERT = 21,
	CT_HANDSHAKE = 22,
	CT_APPLICATION_DATA = 23,
};

/* Post-handshake messages, §4.6. */
enum {
	HS_NEW_SESSION_TICKET = 4,
	HS_KEY_UPDATE = 24,
};

/* Alerts, §6. */
enum {
	ALERT_CLOSE_NOTIFY = 0,
	ALERT_UNEXPECTED_MESSAGE = 10,
	ALERT_BAD_RECORD_MAC = 20,
	ALERT_RECORD_OVERFLOW = 22,
	ALERT_DECODE_ERROR = 50,
	ALERT_USER_CANCELED = 90,
};

#define TAG_LEN 16

/* ---- ciphers, fetched once; the thread's context --------------------------- */

/*
 * A suite's AEAD, called through the functions its provider exports
 * (provider-cipher(7)), found from the cipher EVP fetched, so the provider
 * is the one configuration picks. Per record OpenSSL 3.0's EVP layer adds to
 * these calls an IV length query and the tag's ctrl-to-parameter
 * translation, each a parameter lookup by name: 36% of the instructions of a
 * small record (docs/benchmarks.md, "TLS against a TLS-terminating floor").
 * A suite whose provider lacks one of them is not handled here: the
 * connection keeps OpenSSL's record layer.
 */
struct aead_impl {
	void *provctx;
	OSSL_FUNC_cipher_newctx_fn *newctx;
	OSSL_FUNC_cipher_freectx_fn *freectx;
	OSSL_FUNC_cipher_encrypt_init_fn *einit;
	OSSL_FUNC_cipher_decrypt_init_fn *dinit;
	OSSL_FUNC_cipher_update_fn *update;
	OSSL_FUNC_cipher_final_fn *final;
	OSSL_FUNC_cipher_get_ctx_params_fn *get_params;
	OSSL_FUNC_cipher_set_ctx_params_fn *set_params;
};

static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *cipher_aes128, *cipher_aes256, *cipher_chacha;
static struct aead_impl impl_aes128, impl_aes256, impl_chacha;
static EVP_KDF *kdf_hkdf;
static atomic_uint_fast64_t next_key_id = 1;

/*
 * The thread's keyed contexts, least recently used evicted. Keying a
 * context costs about as much as sealing a small record (bench/tls_rekey);
 * 64 of them (~1.0-1.2 KiB each) cover 16 busy sessions per worker with TLS
 * on both legs (four keys each); past that, records are re-keyed as before.
 */
#define CTX_CACHE 64

struct ctx_slot {
	void *ctx;                    /* the provider's context, NULL until first used */
	const struct aead_impl *impl; /* whose context it is, NULL: none */
	uint64_t key_id;              /* the key it holds, 0: none */
	uint64_t used;                /* tick of its last record */
};

static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static _Thread_local struct ctx_slot *thread_slots;
static _Thread_local uint64_t thread_tick;
static _Thread_local char thread_error[160];
/* Where records are sealed, and read when the connection holds no partial one. */
static _Thread_local uint8_t thread_tx[TLS_RECORD_HEADER + TLS_RECORD_PLAIN_MAX + 1 + 16];
static _Thread_local uint8_t thread_rx[TLS_RECORD_BUF];

/* Whether 'name' is one of 'names', the provider's "A:B:C" list. */
static bool names_have(const char *names, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = names; p; p = strchr(p, ':')) {
		if (*p == ':')
			p++;
		if (strncasecmp(p, name, n) == 0 && (p[n] == ':' || p[n] == '\0'))
			return true;
	}
	return false;
}

/* Fills 'impl' with the provider functions of 'cipher'; false leaves it empty. */
static bool impl_resolve(const EVP_CIPHER *cipher, struct aead_impl *impl)
{
	OSSL_PROVIDER *prov = cipher ? (OSSL_PROVIDER *)EVP_CIPHER_get0_provider(cipher) : NULL;
	const OSSL_ALGORITHM *algs, *a;
	struct aead_impl got = { 0 };
	int no_store = 0;

	if (!prov || !(algs = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_store)))
		return false;
	for (a = algs; a->algorithm_names; a++)
		if (names_have(a->algorithm_names, EVP_CIPHER_get0_name(cipher)))
			break;
	for (const OSSL_DISPATCH *d = a->implementation; d && d->function_id; d++) {
		switch (d->function_id) {
		case OSSL_FUNC_CIPHER_NEWCTX:
			got.newctx = OSSL_FUNC_cipher_newctx(d);
			break;
		case OSSL_FUNC_CIPHER_FREECTX:
			got.freectx = OSSL_FUNC_cipher_freectx(d);
			break;
		case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
			got.einit = OSSL_FUNC_cipher_encrypt_init(d);
			break;
		case OSSL_FUNC_CIPHER_DECRYPT_INIT:
			got.dinit = OSSL_FUNC_cipher_decrypt_init(d);
			break;
		case OSSL_FUNC_CIPHER_UPDATE:
			got.update = OSSL_FUNC_cipher_update(d);
			break;
		case OSSL_FUNC_CIPHER_FINAL:
			got.final = OSSL_FUNC_cipher_final(d);
			break;
		case OSSL_FUNC_CIPHER_GET_CTX_PARAMS:
			got.get_params = OSSL_FUNC_cipher_get_ctx_params(d);
			break;
		case OSSL_FUNC_CIPHER_SET_CTX_PARAMS:
			got.set_params = OSSL_FUNC_cipher_set_ctx_params(d);
			break;
		}
	}
	/* The functions stay valid while the provider is loaded: the fetched cipher keeps it. */
	OSSL_PROVIDER_unquery_operation(prov, OSSL_OP_CIPHER, algs);
	if (!got.newctx || !got.freectx || !got.einit || !got.dinit || !got.update || !got.final ||
	    !got.get_params || !got.set_params)
		return false;
	got.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
	*impl = got;
	return true;
}

static void fetch_all(void)
{
	/* Explicit fetches: an implicit one per call would look the provider up each time. */
	cipher_aes128 = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	cipher_aes256 = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	cipher_chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
	(void)impl_resolve(cipher_aes128, &impl_aes128);
	(void)impl_resolve(cipher_aes256, &impl_aes256);
	(void)impl_resolve(cipher_chacha, &impl_chacha);
	kdf_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

static void free_thread_slots(void *p)
{
	struct ctx_slot *slots = p;

	for (int i = 0; i < CTX_CACHE; i++)
		if (slots[i].ctx)
			slots[i].impl->freectx(slots[i].ctx);
	free(slots);
}

static void make_thread_key(void)
{
	(void)pthread_key_create(&thread_key, free_thread_slots);
}

/* The suite's AEAD, NULL for a suite not handled here. */
static const struct aead_impl *suite_impl(uint16_t suite)
{
	const struct aead_impl *impl;

	pthread_once(&fetch_once, fetch_all);
	switch (suite) {
	case TLS_SUITE_AES_128_GCM_SHA256:
		impl = &impl_aes128;
		break;
	case TLS_SUITE_AES_256_GCM_SHA384:
		impl = &impl_aes256;
		break;
	case TLS_SUITE_CHACHA20_POLY1305_SHA256:
		impl = &impl_chacha;
		break;
	default:
		return NULL;
	}
	return impl->newctx ? impl : NULL;
}

static size_t suite_key_len(uint16_t suite)
{
	return suite == TLS_SUITE_AES_128_GCM_SHA256 ? 16 : 32;
}

static size_t suite_hash_len(uint16_t suite)
{
	return suite == TLS_SUITE_AES_256_GCM_SHA384 ? 48 : 32;
}

/* Frees a slot's context: its key schedule goes with it (the provider wipes it). */
static void slot_clear(struct ctx_slot *slot)
{
	if (slot->ctx)
		slot->impl->freectx(slot->ctx);
	slot->ctx = NULL;
	slot->impl = NULL;
	slot->key_id = 0;
	slot->used = 0;
}

/*
 * A context keyed with k (its nonce still to be set), from the thread's
 * cache: the one that has it, else the least recently used, keyed again.
 */
static struct ctx_slot *key_ctx(uint16_t suite, struct tls_record_key *k, bool seal)
{
	const struct aead_impl *impl = suite_impl(suite);
	struct ctx_slot *slot;

	if (!impl)
		return NULL;
	if (!thread_slots) {
		pthread_once(&thread_key_once, make_thread_key);
		thread_slots = calloc(CTX_CACHE, sizeof(*thread_slots));
		if (!thread_slots)
			return NULL;
		(void)pthread_setspecific(thread_key, thread_slots);
	}
	thread_tick++;
	if (k->slot >= CTX_CACHE || thread_slots[k->slot].key_id != k->id) {
		uint32_t lru = 0;

		for (uint32_t i = 0; i < CTX_CACHE; i++) {
			if (thread_slots[i].key_id == k->id) {
				lru = i;
				break;
			}
			if (thread_slots[i].used < thread_slots[lru].used)
				lru = i;
		}
		k->slot = lru;
	}
	slot = &thread_slots[k->slot];
	slot->used = thread_tick;
	if (slot->key_id == k->id)
		return slot;
	slot->key_id = 0;
	/* The same cipher: only the key schedule is redone in the provider's context. */
	if (slot->impl != impl) {
		slot_clear(slot);
		if (!(slot->ctx = impl->newctx(impl->provctx)))
			return NULL;
		slot->impl = impl;
		slot->used = thread_tick;
	}
	if (!(seal ? impl->einit : impl->dinit)(slot->ctx, k->key, suite_key_len(suite), NULL, 0, NULL)) {
		slot_clear(slot);
		return NULL;
	}
	slot->key_id = k->id;
	return slot;
}

/* Drops k from the thread's cache, so its key schedule does not outlive it. */
static void key_forget(struct tls_record_key *k)
{
	if (!thread_slots || k->slot >= CTX_CACHE || thread_slots[k->slot].key_id != k->id || k->id == 0)
		return;
	slot_clear(&thread_slots[k->slot]);
}

static long fail(struct tls_record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static long fail(struct tls_record *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(thread_error, sizeof(thread_error), fmt, ap);
	va_end(ap);
	if (r) {
		r->failed = true;
		/* Kept: the failure may be found after bytes read before it were delivered. */
		if (!r->why)
			r->why = strdup(thread_error);
	}
	return TLS_RECORD_FAILED;
}

/* The answer of a connection that failed earlier, with the first reason. */
static long failed_earlier(const struct tls_record *r)
{
	return fail(NULL, "%s", r->why ? r->why : "the TLS connection failed earlier");
}

const char *tls_record_error(void)
{
	static _Thread_local char copy[sizeof(thread_error)];

	if (!thread_error[0])
		return NULL;
	memcpy(copy, thread_error, sizeof(copy));
	thread_error[0] = '\0';
	return copy;
}

/* ---- key schedule, RFC 8446 §7.1 ------------------------------------------- */

/* HKDF-Expand-Label(secret, label, "", out_len). */
static bool expand_label(uint16_t suite, const uint8_t *secret, const char *label, uint8_t *out,
			 size_t out_len)
{
	uint8_t info[2 + 1 + 6 + 32 + 1];
	size_t label_len = strlen(label), hash_len = suite_hash_len(suite);
	OSSL_PARAM params[5];
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF_CTX *kctx;
	bool ok;

	pthread_once(&fetch_once, fetch_all);
	if (!kdf_hkdf || label_len > 32)
		return false;
	info[0] = (uint8_t)(out_len >> 8);
	info[1] = (uint8_t)out_len;
	info[2] = (uint8_t)(6 + label_len);
	memcpy(info + 3, "tls13 ", 6);
	memcpy(info + 9, label, label_len);
	info[9 + label_len] = 0; /* empty context */
	params[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     hash_len == 48 ? "SHA384" : "SHA256", 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, hash_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + label_len);
	params[4] = OSSL_PARAM_construct_end();
	kctx = EVP_KDF_CTX_new(kdf_hkdf);
	ok = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1;
	EVP_KDF_CTX_free(kctx);
	return ok;
}

bool tls_record_derive(uint16_t suite, const uint8_t *secret, uint8_t key[TLS_RECORD_KEY_MAX],
		       uint8_t iv[TLS_RECORD_IV_LEN])
{
	return suite_impl(suite) && expand_label(suite, secret, "key", key, suite_key_len(suite)) &&
		expand_label(suite, secret, "iv", iv, TLS_RECORD_IV_LEN);
}

static bool key_install(uint16_t suite, struct tls_record_key *k, const uint8_t *secret)
{
	key_forget(k);
	if (secret != k->secret)
		memcpy(k->secret, secret, suite_hash_len(suite));
	k->seq = 0;
	k->id = atomic_fetch_add(&next_key_id, 1);
	return tls_record_derive(suite, k->secret, k->key, k->iv);
}

/* §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length). */
static bool key_next(uint16_t suite, struct tls_record_key *k)
{
	uint8_t next[TLS_RECORD_SECRET_MAX];
	bool ok = expand_label(suite, k->secret, "traffic upd", next, suite_hash_len(suite)) &&
		key_install(suite, k, next);

	OPENSSL_cleanse(next, sizeof(next));
	return ok;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

void tls_record_keylog(struct tls_record *r, const char *line, bool server)
{
	static const char client_label[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char server_label[] = "SERVER_TRAFFIC_SECRET_0 ";
	struct tls_record_key *k;
	const char *hex;
	size_t n = 0;
	uint8_t bit;

	if (strncmp(line, client_label, sizeof(client_label) - 1) == 0)
		k = server ? &r->rd : &r->wr;
	else if (strncmp(line, server_label, sizeof(server_label) - 1) == 0)
		k = server ? &r->wr : &r->rd;
	else
		return;
	bit = k == &r->rd ? 1 : 2;
	/* "<label> <client random, 64 hex> <secret hex>" */
	hex = strchr(line + sizeof(client_label) - 1, ' ');
	if (!hex)
		return;
	for (hex++; hex[0] && hex[1] && n < sizeof(k->secret); hex += 2) {
		int hi = hex_value(hex[0]), lo = hex_value(hex[1]);

		if (hi < 0 || lo < 0)
			return;
		k->secret[n++] = (uint8_t)(hi << 4 | lo);
	}
	if (n == 32 || n == 48)
		r->have |= bit;
}

bool tls_record_start(struct tls_record *r, uint16_t suite, bool server, const uint8_t *read_secret,
		      const uint8_t *write_secret)
{
	if (!suite_impl(suite))
		return false;
	if ((!read_secret || !write_secret) && r->have != 3)
		return false;
	r->suite = suite;
	r->server = server;
	return key_install(suite, &r->rd, read_secret ? read_secret : r->rd.secret) &&
		key_install(suite, &r->wr, write_secret ? write_secret : r->wr.secret);
}

/* ---- AEAD, §5.2 and §5.3 ----------------------------------------------------- */

/*
 * Runs the AEAD over one record body in place: 'hdr' is the additional data,
 * 'body' holds n bytes of plaintext (sealing: the tag is appended) or n
 * bytes of ciphertext and tag (opening). The key's sequence number moves on.
 */
static bool aead(uint16_t suite, struct tls_record_key *k, bool seal, const uint8_t hdr[TLS_RECORD_HEADER],
		 uint8_t *body, size_t n)
{
	struct ctx_slot *slot = key_ctx(suite, k, seal);
	uint8_t nonce[TLS_RECORD_IV_LEN];
	size_t text = seal ? n : n - TAG_LEN, len = 0, fin = 0;
	OSSL_PARAM tag[2];

	if (!slot || (!seal && n < TAG_LEN) || k->seq == UINT64_MAX)
		return false;
	memcpy(nonce, k->iv, sizeof(nonce));
	for (int i = 0; i < 8; i++)
		nonce[TLS_RECORD_IV_LEN - 1 - i] ^= (uint8_t)(k->seq >> (8 * i));
	tag[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, body + text, TAG_LEN);
	tag[1] = OSSL_PARAM_construct_end();
	/* What EVP_CipherInit_ex, EVP_CipherUpdate and EVP_CipherFinal_ex pass for a stream cipher. */
	if (!(seal ? slot->impl->einit : slot->impl->dinit)(slot->ctx, NULL, 0, nonce, sizeof(nonce), NULL) ||
	    !slot->impl->update(slot->ctx, NULL, &len, TLS_RECORD_HEADER, hdr, TLS_RECORD_HEADER) ||
	    !slot->impl->update(slot->ctx, body, &len, text, body, text))
		return false;
	if (!seal && !slot->impl->set_params(slot->ctx, tag))
		return false;
	if (!slot->impl->final(slot->ctx, body + len, &fin, 0))
		return false;
	if (seal && !slot->impl->get_params(slot->ctx, tag))
		return false;
	k->seq++;
	return true;
}

size_t tls_record_seal(struct tls_record *r, uint8_t type, const uint8_t *p, size_t n, uint8_t *out)
{
	size_t body = n + 1 + TAG_LEN;

	if (n > TLS_RECORD_PLAIN_MAX)
		return 0;
	out[0] = CT_APPLICATION_DATA;
	out[1] = 0x03;
	out[2] = 0x03;
	out[3] = (uint8_t)(body >> 8);
	out[4] = (uint8_t)body;
	if (p != out + TLS_RECORD_HEADER)
		memmove(out + TLS_RECORD_HEADER, p, n);
	out[TLS_RECORD_HEADER + n] = type;
	if (!aead(r->suite, &r->wr, true, out, out + TLS_RECORD_HEADER, n + 1))
		return 0;
	return TLS_RECORD_HEADER + body;
}

/* ---- writing ------------------------------------------------------------------ */

/* Sends what is left of 'out'. 1 all sent (buffer released), AGAIN, or FAILED. */
static long flush_out(struct tls_record *r, int fd)
{
	while (r->out_off < r->out_end) {
		ssize_t n = send(fd, r->out + r->out_off, r->out_end - r->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return TLS_RECORD_AGAIN;
			r->failed = true;
			return TLS_RECORD_FAILED; /* errno says why */
		}
		r->out_off += (uint32_t)n;
	}
	free(r->out);
	r->out = NULL;
	r->out_off = r->out_end = 0;
	return 1;
}

/*
 * Seals one record in the thread's buffer and sends it; what the socket
 * does not take now is kept in 'out' (allocated here), owed to the peer.
 */
static long send_record(struct tls_record *r, int fd, uint8_t type, const uint8_t *p, size_t n,
			uint32_t plain)
{
	size_t len = tls_record_seal(r, type, p, n, thread_tx), off = 0;

	if (len == 0)
		return fail(r, "cannot seal a TLS record");
	while (off < len) {
		ssize_t k = send(fd, thread_tx + off, len - off, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				r->failed = true;
				return TLS_RECORD_FAILED; /* errno says why */
			}
			r->out = malloc(len - off);
			if (!r->out)
				return fail(r, "out of memory for a TLS record");
			memcpy(r->out, thread_tx + off, len - off);
			r->out_off = 0;
			r->out_end = (uint32_t)(len - off);
			r->out_plain = plain;
			return TLS_RECORD_AGAIN;
		}
		off += (size_t)k;
	}
	return 1;
}

long tls_record_write(struct tls_record *r, int fd, const void *buf, size_t len)
{
	size_t chunk = len < TLS_RECORD_PLAIN_MAX ? len : TLS_RECORD_PLAIN_MAX;
	long rc;

	thread_error[0] = '\0';
	if (r->failed)
		return failed_earlier(r);
	if (r->out) {
		/* The record sealed at an earlier call goes first; it may carry this caller's bytes. */
		rc = flush_out(r, fd);
		if (rc != 1)
			return rc;
		if (r->out_plain) {
			rc = r->out_plain;
			r->out_plain = 0;
			return rc;
		}
	}
	if (r->key_update_due) {
		/* §4.6.3: our KeyUpdate(update_not_requested) before our next application data. */
		static const uint8_t key_update[5] = { HS_KEY_UPDATE, 0, 0, 1, 0 };

		r->key_update_due = false;
		rc = send_record(r, fd, CT_HANDSHAKE, key_update, sizeof(key_update), 0);
		if (!key_next(r->suite, &r->wr))
			return fail(r, "cannot derive the next TLS write key");
		if (rc != 1)
			return rc;
	}
	if (chunk == 0)
		return 0;
	rc = send_record(r, fd, CT_APPLICATION_DATA, buf, chunk, (uint32_t)chunk);
	if (rc != 1)
		return rc;
	r->out_plain = 0;
	return (long)chunk;
}

/* Best effort, never blocking: a fatal alert, unless a record is half sent. */
static void send_alert(struct tls_record *r, int fd, uint8_t desc)
{
	uint8_t rec[TLS_RECORD_HEADER + 2 + 1 + TAG_LEN];
	const uint8_t alert[2] = { desc == ALERT_CLOSE_NOTIFY ? 1 : 2, desc };
	size_t n;

	if (r->out)
		return;
	n = tls_record_seal(r, CT_ALERT, alert, sizeof(alert), rec);
	if (n)
		(void)send(fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Fails the connection for a protocol violation: the peer is told (§6.2), the caller logs why. */
static long violation(struct tls_record *r, int fd, uint8_t alert, const char *why)
{
	if (!r->failed)
		send_alert(r, fd, alert);
	return fail(r, "%s", why);
}

/* ---- reading ------------------------------------------------------------------ */

/* The post-handshake messages in one record's handshake content (§4.6). */
static long handshake_content(struct tls_record *r, int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (r->hs_skip > 0) {
			size_t k = n < r->hs_skip ? n : r->hs_skip;

			r->hs_skip -= (uint32_t)k;
			p += k;
			n -= k;
			continue;
		}
		if (r->hs_hdr_len < 4) {
			r->hs_hdr[r->hs_hdr_len++] = *p++;
			n--;
			if (r->hs_hdr_len < 4)
				continue;
		}
		uint32_t len = (uint32_t)r->hs_hdr[1] << 16 | (uint32_t)r->hs_hdr[2] << 8 | r->hs_hdr[3];

		switch (r->hs_hdr[0]) {
		case HS_NEW_SESSION_TICKET:
			/* Resumption is not offered onwards: the ticket is skipped, however it is split. */
			if (r->server)
				return violation(r, fd, ALERT_UNEXPECTED_MESSAGE,
						 "TLS peer sent a NewSessionTicket to a server");
			r->hs_skip = len;
			r->hs_hdr_len = 0;
			break;
		case HS_KEY_UPDATE:
			if (len != 1)
				return violation(r, fd, ALERT_DECODE_ERROR, "malformed TLS KeyUpdate");
			if (n == 0)
				return violation(r, fd, ALERT_UNEXPECTED_MESSAGE,
						 "TLS KeyUpdate split across records");
			/* §5.1: a key change must be at a record boundary. */
			if (n != 1 || *p > 1)
				return violation(r, fd,
						 n != 1 ? ALERT_UNEXPECTED_MESSAGE : ALERT_DECODE_ERROR,
						 "malformed TLS KeyUpdate");
			if (*p == 1)
				r->key_update_due = true;
			if (!key_next(r->suite, &r->rd))
				return fail(r, "cannot derive the next TLS read key");
			r->hs_hdr_len = 0;
			n = 0;
			break;
		default:
			return violation(r, fd, ALERT_UNEXPECTED_MESSAGE,
					 "TLS peer sent an unexpected post-handshake message");
		}
	}
	return 1;
}

/*
 * Opens the record at in_start if it is whole: 1 done (application data may
 * now wait in plain_*), 0 need more bytes, 2 close_notify, or FAILED.
 */
static long open_record(struct tls_record *r, int fd)
{
	uint8_t *rec = r->in + r->in_start;
	uint32_t avail = r->in_end - r->in_start, body, inner;
	uint8_t type;

	if (avail < TLS_RECORD_HEADER)
		return 0;
	body = (uint32_t)rec[3] << 8 | rec[4];
	/* §5.1: after the handshake every record is protected application_data; version ignored. */
	if (rec[0] != CT_APPLICATION_DATA)
		return violation(r, fd, ALERT_UNEXPECTED_MESSAGE, "TLS record of an unexpected type");
	if (body > TLS_RECORD_BODY_MAX)
		return violation(r, fd, ALERT_RECORD_OVERFLOW, "TLS record too long");
	if (body < 1 + TAG_LEN)
		return violation(r, fd, ALERT_DECODE_ERROR, "TLS record too short");
	if (avail < TLS_RECORD_HEADER + body)
		return 0;
	if (!aead(r->suite, &r->rd, false, rec, rec + TLS_RECORD_HEADER, body))
		return violation(r, fd, ALERT_BAD_RECORD_MAC,
				 "TLS record failed authentication (bad record MAC)");
	r->in_start += TLS_RECORD_HEADER + body;
	/* §5.4: the content type is the last non-zero byte; zeros after it are padding. */
	inner = body - TAG_LEN;
	while (inner > 0 && rec[TLS_RECORD_HEADER + inner - 1] == 0)
		inner--;
	if (inner == 0)
		return violation(r, fd, ALERT_UNEXPECTED_MESSAGE, "TLS record without a content type");
	type = rec[TLS_RECORD_HEADER + --inner];
	if (inner > TLS_RECORD_PLAIN_MAX)
		return violation(r, fd, ALERT_RECORD_OVERFLOW, "TLS record plaintext too long");
	if (type != CT_HANDSHAKE && (r->hs_hdr_len || r->hs_skip))
		return violation(r, fd, ALERT_UNEXPECTED_MESSAGE,
				 "TLS handshake message interrupted by another record type");
	switch (type) {
	case CT_APPLICATION_DATA:
		r->plain_off = (uint32_t)(rec + TLS_RECORD_HEADER - r->in);
		r->plain_len = inner;
		return 1;
	case CT_HANDSHAKE:
		if (inner == 0)
			return violation(r, fd, ALERT_UNEXPECTED_MESSAGE, "empty TLS handshake record");
		return handshake_content(r, fd, rec + TLS_RECORD_HEADER, inner);
	case CT_ALERT:
		if (inner != 2)
			return violation(r, fd, ALERT_DECODE_ERROR, "malformed TLS alert");
		if (rec[TLS_RECORD_HEADER + 1] == ALERT_CLOSE_NOTIFY) {
			r->peer_closed = true;
			return 2;
		}
		if (rec[TLS_RECORD_HEADER + 1] == ALERT_USER_CANCELED)
			return 1;
		return fail(r, "TLS alert %u received from the peer", rec[TLS_RECORD_HEADER + 1]);
	default:
		return violation(r, fd, ALERT_UNEXPECTED_MESSAGE, "TLS record of an unexpected content type");
	}
}

/*
 * After a read: the input buffer is given back when nothing in it waits; what
 * waits in the thread's buffer (a partial record, undelivered plaintext) moves
 * to one of the connection's own.
 */
static long in_settle(struct tls_record *r, long rc)
{
	uint32_t from = r->plain_len ? r->plain_off : r->in_start;

	if (r->failed) /* nothing more is read */
		r->plain_len = r->in_start = r->in_end = 0;
	if (r->plain_len == 0 && r->in_start == r->in_end) {
		if (r->in != thread_rx)
			free(r->in);
		r->in = NULL;
		r->in_start = r->in_end = 0;
	} else if (r->in == thread_rx) {
		r->in = malloc(TLS_RECORD_BUF);
		if (!r->in)
			return fail(r, "out of memory for a TLS record");
		memcpy(r->in, thread_rx + from, r->in_end - from);
		r->plain_off -= r->plain_len ? from : 0;
		r->in_start -= from;
		r->in_end -= from;
	}
	return rc;
}

/* A whole record waits in the input buffer, or a header open_record() refuses without its body. */
static bool whole_record(const struct tls_record *r)
{
	const uint8_t *rec = r->in + r->in_start;
	uint32_t avail = r->in_end - r->in_start, body;

	if (avail < TLS_RECORD_HEADER)
		return false;
	body = (uint32_t)rec[3] << 8 | rec[4];
	return avail >= TLS_RECORD_HEADER + body || rec[0] != CT_APPLICATION_DATA ||
		body > TLS_RECORD_BODY_MAX || body < 1 + TAG_LEN;
}

/* tls_record_read with r->in set: the plaintext of the whole records the latest recv completed. */
static long read_records(struct tls_record *r, int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	for (;;) {
		long rc;
		ssize_t n;

		if (r->plain_len > 0) {
			size_t k = len - got < r->plain_len ? len - got : r->plain_len;

			memcpy(buf + got, r->in + r->plain_off, k);
			r->plain_off += (uint32_t)k;
			r->plain_len -= (uint32_t)k;
			got += k;
			if (got == len)
				return (long)got;
		}
		if (r->peer_closed)
			return (long)got;
		if (whole_record(r)) {
			rc = open_record(r, fd);
			if (rc < 0)
				return got ? (long)got
					   : rc; /* the failure is sticky: the next read says why */
			if (rc == 2)
				return (long)got;
			continue;
		}
		/* Bytes delivered: the next recv is the caller's call (it may know the socket is drained). */
		if (got > 0)
			return (long)got;
		if (r->in_start > 0) {
			/* A partial record moves to the front, where it has room to complete. */
			memmove(r->in, r->in + r->in_start, r->in_end - r->in_start);
			r->in_end -= r->in_start;
			r->in_start = 0;
		}
		n = recv(fd, r->in + r->in_end, TLS_RECORD_BUF - r->in_end, 0);
		if (n > 0) {
			r->drained = (size_t)n < TLS_RECORD_BUF - r->in_end;
			r->in_end += (uint32_t)n;
			continue;
		}
		r->drained = false;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return TLS_RECORD_AGAIN;
		if ((n == 0 || errno == ECONNRESET) && r->in_end == r->in_start) {
			/* Closed without close_notify at a record boundary: end of stream, as conn.c takes OpenSSL's. */
			return 0;
		}
		if (n == 0)
			return fail(r, "TLS peer closed the connection in the middle of a record");
		r->failed = true;
		return TLS_RECORD_FAILED; /* errno says why */
	}
}

long tls_record_read(struct tls_record *r, int fd, void *buf, size_t len)
{
	thread_error[0] = '\0'; /* a reason left over from another connection is not this one's */
	if (r->failed)
		return failed_earlier(r);
	if (!r->in)
		r->in = thread_rx; /* borrowed for this call: in_settle gives it back */
	return in_settle(r, read_records(r, fd, buf, len));
}

bool tls_record_drained(const struct tls_record *r)
{
	return r->drained && r->plain_len == 0 && !(r->in && whole_record(r));
}

bool tls_record_pending(const struct tls_record *r)
{
	if (r->failed)
		return false;
	return r->plain_len > 0 || (r->in && whole_record(r));
}

void tls_record_end(struct tls_record *r, int fd)
{
	if (fd >= 0 && !r->failed && (!r->out || flush_out(r, fd) == 1))
		send_alert(r, fd, ALERT_CLOSE_NOTIFY);
	key_forget(&r->rd);
	key_forget(&r->wr);
	free(r->in);
	free(r->out);
	free(r->why);
	OPENSSL_cleanse(r, sizeof(*r));
	r->in = r->out = NULL;
	r->why = NULL;
}
