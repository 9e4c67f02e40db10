/*
 * md5 password authentication from stored hashes (see md5_auth.h). The
 * digests are OpenSSL's; the comparison of a client's answer is
 * constant-time and the intermediate strings are wiped.
 */
#include "pgvalve/md5_auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

static const char hex_digits[] = "0123456789abcdef";

/* "md5" + hex(md5(a[alen] + b[blen])) into out[MD5_AUTH_LEN + 1]. */
static bool md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[MD5_AUTH_LEN + 1])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
		EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, digest, &n) == 1 && n == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return false;
	memcpy(out, "md5", 3);
	for (unsigned int i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex_digits[digest[i] >> 4];
		out[4 + 2 * i] = hex_digits[digest[i] & 15];
	}
	out[MD5_AUTH_LEN] = '\0';
	OPENSSL_cleanse(digest, sizeof(digest));
	return true;
}

bool md5_auth_is_hash(const char *text)
{
	if (strncmp(text, "md5", 3) != 0 || strlen(text) != MD5_AUTH_LEN)
		return false;
	for (size_t i = 3; i < MD5_AUTH_LEN; i++)
		if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
			return false;
	return true;
}

bool md5_auth_response(const char *stored, const unsigned char salt[MD5_AUTH_SALT_LEN],
		       char out[MD5_AUTH_LEN + 1])
{
	if (!md5_auth_is_hash(stored))
		return false;
	/* What libpq sends: md5 over the stored hash's hex digits (without "md5") and the salt. */
	return md5_hex(stored + 3, MD5_AUTH_LEN - 3, salt, MD5_AUTH_SALT_LEN, out);
}

bool md5_auth_check(const char *stored, const unsigned char salt[MD5_AUTH_SALT_LEN], const char *resp,
		    size_t resp_len)
{
	char want[MD5_AUTH_LEN + 1];
	bool ok;

	if (resp_len != MD5_AUTH_LEN || !md5_auth_response(stored, salt, want))
		return false;
	ok = CRYPTO_memcmp(want, resp, MD5_AUTH_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

bool md5_auth_hash(const char *password, const char *username, char out[MD5_AUTH_LEN + 1])
{
	return md5_hex(password, strlen(password), username, strlen(username), out);
}
