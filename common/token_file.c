/*
 * Bearer tokens from files (see token_file.h). The first line is read in one
 * bounded fread: a token longer than TOKEN_FILE_MAX is refused, not cut, so
 * the proxy and the coordinator never disagree about where it ends.
 */
#include "pgvalve/token_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *token_file_read(const char *path, char *err, size_t errlen)
{
	char buf[TOKEN_FILE_MAX + 3]; /* the token, "\r\n" or one more byte to see it is too long */
	FILE *f = fopen(path, "r");
	size_t n, len;
	char *token;

	if (!f) {
		snprintf(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read \"%s\": %s", path, strerror(errno));
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	len = 0;
	while (len < n && buf[len] != '\n')
		len++;
	if (len > 0 && buf[len - 1] == '\r')
		len--; /* "\r\n", or a last line ending in "\r" */
	if (len > TOKEN_FILE_MAX) {
		snprintf(err, errlen, "\"%s\": the token is longer than %d characters", path, TOKEN_FILE_MAX);
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 0x20 || c == 0x7f) {
			snprintf(err, errlen, "\"%s\": the token holds a control character (byte %zu)", path,
				 i + 1);
			return NULL;
		}
	}
	if (len < TOKEN_FILE_MIN) {
		snprintf(err, errlen, "\"%s\" must hold a token of at least %d characters", path,
			 TOKEN_FILE_MIN);
		return NULL;
	}
	token = malloc(len + 1);
	if (!token) {
		snprintf(err, errlen, "\"%s\": out of memory", path);
		return NULL;
	}
	memcpy(token, buf, len);
	token[len] = '\0';
	return token;
}
