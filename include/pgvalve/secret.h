/*
 * Secrets in memory (verifiers, passwords, what a lookup returned): a
 * NUL-terminated secret is wiped before its memory goes back to the
 * allocator, so a later allocation or a core file does not show it.
 */
#ifndef PGVALVE_SECRET_H
#define PGVALVE_SECRET_H

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* Wipes and frees 's' (NULL: nothing). */
static inline void secret_free(char *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

#endif
