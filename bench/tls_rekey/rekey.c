/*
 * What proxy/tls_record.c's choice of one EVP_CIPHER_CTX per worker costs:
 * sealing one TLS 1.3 record (AAD 5 bytes, payload N, tag 16) with
 *   same-key  the context already holds the key: only the nonce is set
 *   re-key    the context is keyed again for every record (another
 *             connection's record came in between), cipher given: OpenSSL
 *             3 frees and re-allocates the provider's context each time
 *   key-only  keyed again for every record with the cipher left NULL: the
 *             provider's context is kept, only the key schedule is redone
 *   new-ctx   a context allocated, keyed and freed for every record (what
 *             keeping no context at all, or one per connection created
 *             while data moves, would cost)
 * for the three suites, at 100 bytes (a pgbench -S message) and 16 KiB, in
 * this thread's CPU time per record (the host is shared), and the heap
 * bytes a keyed context holds (what one per connection direction would cost).
 * Not part of the CMake build; see docs/benchmarks.md for the command:
 *   cc -O2 -o /tmp/rekey bench/tls_rekey/rekey.c -lcrypto && /tmp/rekey
 */
#include <malloc.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: the host is shared */
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static unsigned char buf[16384 + 64], key[32], nonce[12], hdr[5], tag[16];

enum { SAME_KEY, REKEY, KEY_ONLY };

static void seal(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, int how, size_t n)
{
	int len;

	EVP_CipherInit_ex(ctx, how == REKEY ? cipher : NULL, NULL, how != SAME_KEY ? key : NULL, nonce, 1);
	EVP_CipherUpdate(ctx, NULL, &len, hdr, 5);
	EVP_CipherUpdate(ctx, buf, &len, buf, (int)n);
	EVP_CipherFinal_ex(ctx, buf + len, &len);
	EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
	nonce[11]++;
}

int main(void)
{
	static const char *names[] = { "AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305" };
	static const size_t sizes[] = { 100, 16384 };

	printf("| suite | record | same-key ns | re-key ns | key-only ns | new-ctx ns | keyed context bytes "
	       "|\n"
	       "|---|---|---|---|---|---|---|\n");
	for (int s = 0; s < 3; s++) {
		EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, names[s], NULL);

		for (int z = 0; z < 2; z++) {
			int iters = sizes[z] > 1000 ? 20000 : 400000;
			EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
			double t0, same, rekey, keyonly, fresh;
			EVP_CIPHER_CTX *probe[64];
			size_t heap0 = mallinfo2().uordblks, bytes;

			/* Many at once: malloc's per-thread cache of freed chunks counts as in use. */
			for (int i = 0; i < 64; i++) {
				probe[i] = EVP_CIPHER_CTX_new();
				seal(probe[i], cipher, REKEY, 1);
			}
			bytes = (mallinfo2().uordblks - heap0) / 64;
			for (int i = 0; i < 64; i++)
				EVP_CIPHER_CTX_free(probe[i]);
			seal(ctx, cipher, REKEY, sizes[z]);
			t0 = now_ns();
			for (int i = 0; i < iters; i++)
				seal(ctx, cipher, SAME_KEY, sizes[z]);
			same = (now_ns() - t0) / iters;
			t0 = now_ns();
			for (int i = 0; i < iters; i++) {
				key[0] = (unsigned char)i; /* another key each time */
				seal(ctx, cipher, REKEY, sizes[z]);
			}
			rekey = (now_ns() - t0) / iters;
			t0 = now_ns();
			for (int i = 0; i < iters; i++) {
				key[0] = (unsigned char)i;
				seal(ctx, cipher, KEY_ONLY, sizes[z]);
			}
			keyonly = (now_ns() - t0) / iters;
			t0 = now_ns();
			for (int i = 0; i < iters; i++) {
				EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

				seal(c, cipher, REKEY, sizes[z]);
				EVP_CIPHER_CTX_free(c);
			}
			fresh = (now_ns() - t0) / iters;
			printf("| %s | %zu B | %.0f | %.0f | %.0f | %.0f | %zu |\n", names[s], sizes[z], same,
			       rekey, keyonly, fresh, bytes);
			EVP_CIPHER_CTX_free(ctx);
		}
		EVP_CIPHER_free(cipher);
	}
	return 0;
}
