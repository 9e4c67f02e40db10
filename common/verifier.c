/*
 * Verifier kinds and the auth_file reader (see verifier.h). The file is read
 * once, checked whole, and kept as an array sorted by name, so a lookup is a
 * binary search and a reload builds a new list beside the old one.
 */
#include "pgvalve/verifier.h"

#include "pgvalve/md5_auth.h"
#include "pgvalve/scram.h"
#include "pgvalve/secret.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

enum verifier_kind verifier_classify(const char *text)
{
	struct scram_verifier v;

	if (!text || !text[0])
		return VERIFIER_NONE;
	if (strncmp(text, "SCRAM-SHA-256$", 14) == 0) {
		if (!scram_verifier_parse(text, &v))
			return VERIFIER_INVALID;
		scram_verifier_clear(&v);
		return VERIFIER_SCRAM;
	}
	if (md5_auth_is_hash(text))
		return VERIFIER_MD5;
	/* PostgreSQL takes "md5" + 32 characters as an md5 hash only if they are hex. */
	if (strncmp(text, "md5", 3) == 0 && strlen(text) == MD5_AUTH_LEN)
		return VERIFIER_INVALID;
	return VERIFIER_PLAIN;
}

const char *verifier_kind_name(enum verifier_kind k)
{
	switch (k) {
	case VERIFIER_NONE:
		return "none";
	case VERIFIER_SCRAM:
		return "SCRAM-SHA-256";
	case VERIFIER_MD5:
		return "md5";
	case VERIFIER_INVALID:
		return "invalid";
	case VERIFIER_PLAIN:
		return "plain text";
	}
	return "?";
}

struct verifier_entry {
	char *name;
	char *secret;
	int line;
};

struct verifier_list {
	struct verifier_entry *entries; /* sorted by name */
	size_t n;
};

static void list_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void list_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * A double-quoted field at *p (before 'end', on one line) into a malloc'd
 * string of its exact size, '""' read as '"'. *p moves past the closing
 * quote. NULL with *why set when malformed or over 'max' bytes, or on
 * allocation failure.
 */
static char *read_quoted(const char **p, const char *end, size_t max, const char **why)
{
	const char *s = *p, *q;
	char *out;
	size_t n = 0;

	if (s >= end || *s != '"') {
		*why = "expected a double-quoted field";
		return NULL;
	}
	/* First pass: where it ends and how long it is. */
	for (q = s + 1;; q++) {
		if (q >= end || *q == '\n') {
			*why = "unterminated double-quoted field";
			return NULL;
		}
		if (*q == '"') {
			if (q + 1 < end && q[1] == '"')
				q++; /* a doubled quote stands for one */
			else
				break;
		}
		if (++n > max) {
			*why = "field too long";
			return NULL;
		}
	}
	out = malloc(n + 1);
	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	n = 0;
	for (s++; s < q; s++) {
		out[n++] = *s;
		if (*s == '"')
			s++;
	}
	out[n] = '\0';
	*p = q + 1;
	return out;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct verifier_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

struct verifier_list *verifier_list_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct verifier_list *l = calloc(1, sizeof(*l));
	const char *p = text, *end = text + len;
	size_t cap = 0;
	int line = 0;

	if (!l) {
		list_fail(err, errlen, "out of memory");
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		list_fail(err, errlen, "holds a NUL byte");
		goto fail;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;
		const char *why = NULL;
		struct verifier_entry e = { NULL, NULL, ++line };

		while (p < line_end && blank(*p))
			p++;
		if (p == line_end || *p == ';' || *p == '#') {
			p = eol ? eol + 1 : end;
			continue;
		}
		e.name = read_quoted(&p, line_end, VERIFIER_NAME_MAX, &why);
		if (e.name && !e.name[0])
			why = "empty name";
		if (e.name && !why) {
			if (p >= line_end || !blank(*p))
				why = "expected blanks between the name and the password";
			while (p < line_end && blank(*p))
				p++;
		}
		if (!why)
			e.secret = read_quoted(&p, line_end, VERIFIER_SECRET_MAX, &why);
		if (why) {
			list_fail(err, errlen, "line %d: %s", line, why);
			free(e.name);
			goto fail;
		}
		if (l->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct verifier_entry *ne = realloc(l->entries, ncap * sizeof(*ne));

			if (!ne) {
				list_fail(err, errlen, "out of memory");
				free(e.name);
				secret_free(e.secret);
				goto fail;
			}
			l->entries = ne;
			cap = ncap;
		}
		l->entries[l->n++] = e;
		p = eol ? eol + 1 : end; /* what follows the second field is PgBouncer's business */
	}
	if (l->n > 1)
		qsort(l->entries, l->n, sizeof(*l->entries), entry_cmp);
	for (size_t i = 1; i < l->n; i++) {
		if (strcmp(l->entries[i - 1].name, l->entries[i].name) == 0) {
			list_fail(err, errlen, "line %d: \"%.64s\" given twice (first on line %d)",
				  l->entries[i].line, l->entries[i].name, l->entries[i - 1].line);
			goto fail;
		}
	}
	return l;
fail:
	verifier_list_free(l);
	return NULL;
}

struct verifier_list *verifier_list_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct verifier_list *l;
	char msg[256];
	char *text;
	long size;

	if (!f) {
		list_fail(err, errlen, "cannot open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || size > VERIFIER_FILE_MAX ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		list_fail(err, errlen, "\"%s\": unreadable or larger than %d MiB", path,
			  VERIFIER_FILE_MAX >> 20);
		return NULL;
	}
	text = malloc((size_t)size + 1);
	if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
		free(text);
		fclose(f);
		list_fail(err, errlen, "cannot read \"%s\"", path);
		return NULL;
	}
	fclose(f);
	l = verifier_list_parse(text, (size_t)size, msg, sizeof(msg));
	OPENSSL_cleanse(text, (size_t)size);
	free(text);
	if (!l)
		list_fail(err, errlen, "\"%s\": %s", path, msg);
	return l;
}

const char *verifier_list_peek(const struct verifier_list *l, const char *name)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, l->entries[mid].name);

		if (c == 0)
			return l->entries[mid].secret;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t verifier_list_count(const struct verifier_list *l)
{
	return l->n;
}

void verifier_list_free(struct verifier_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->entries[i].name);
		secret_free(l->entries[i].secret);
	}
	free(l->entries);
	free(l);
}
