/*
 * The names an ORM's record of a migration holds, from the file's path and
 * --orm-name (see orm.h), and Flyway's checksum of the file. Each tool
 * names a migration its own way:
 *   prisma          prisma/migrations/<name>/migration.sql → <name>
 *   django          --orm-name app.0002_name (sqlmigrate output carries no name)
 *   flyway          V<version>__<description>.sql (version "1_2" is "1.2", "_" in the description a space)
 *   golang-migrate  <version>_<name>.up.<ext> → version
 *   alembic         --orm-name REVISION, or the statements `alembic upgrade --sql` writes (orm_alembic.c)
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm.h"
#include "xalloc.h"

/* The part of 'path' after its last '/'. */
static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* Copies s[0..n) into out (cap bytes); false when it does not fit. */
static bool copy(char *out, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	return true;
}

/* Prisma: the directory that holds migration.sql, or --orm-name. */
static bool prisma_name(struct orm_record *r, const char *file, const char *given, char *err, size_t errlen)
{
	char *real;
	const char *dir;
	size_t n;

	if (given)
		return copy(r->name, sizeof(r->name), given, strlen(given)) ||
			(snprintf(err, errlen, "--orm-name: longer than %d bytes", ORM_NAME_MAX - 1), false);
	if (strcmp(base_name(file), "migration.sql") != 0) {
		snprintf(err, errlen,
			 "--orm prisma: cannot tell the migration's name from \"%s\": Prisma keeps each "
			 "migration as <name>/migration.sql; give --orm-name NAME",
			 file);
		return false;
	}
	real = realpath(file, NULL);
	if (!real) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return false;
	}
	*strrchr(real, '/') = '\0'; /* realpath gives an absolute path: there is a '/' */
	dir = base_name(real);
	n = strlen(dir);
	if (n == 0 || n >= sizeof(r->name)) {
		snprintf(err, errlen,
			 "--orm prisma: \"%s\" is not in a migration's directory; give --orm-name NAME",
			 file);
		free(real);
		return false;
	}
	copy(r->name, sizeof(r->name), dir, n);
	free(real);
	return true;
}

/* Django: --orm-name app.name, both parts non-empty. */
static bool django_name(struct orm_record *r, const char *given, char *err, size_t errlen)
{
	const char *dot = given ? strchr(given, '.') : NULL;

	if (!dot || dot == given || !dot[1] || !copy(r->app, sizeof(r->app), given, (size_t)(dot - given)) ||
	    !copy(r->migration, sizeof(r->migration), dot + 1, strlen(dot + 1))) {
		snprintf(err, errlen,
			 "--orm django needs --orm-name APP.MIGRATION (e.g. shop.0002_order_customer): "
			 "sqlmigrate's output does not say which migration it is%s%s%s",
			 given ? ", and \"" : "", given ? given : "", given ? "\" is not of that form" : "");
		return false;
	}
	return copy(r->name, sizeof(r->name), given, strlen(given)); /* orm_derive checked its length */
}

/*
 * Flyway: V<version>__<description>.sql, the version digits separated by '.'
 * or '_' (stored with '.'), '_' in the description stored as a space.
 */
static bool flyway_name(struct orm_record *r, const char *script, char *err, size_t errlen)
{
	const char *sep = strstr(script, "__"), *desc;
	size_t vlen, dlen;
	bool ok = script[0] == 'V' && sep && ends_with(script, ".sql");

	if (ok) {
		vlen = (size_t)(sep - script - 1);
		desc = sep + 2;
		dlen = strlen(desc) - 4;
		/* flyway_schema_history: version VARCHAR(50), description VARCHAR(200), script VARCHAR(1000) */
		ok = vlen > 0 && vlen <= 50 && dlen > 0 && dlen <= 200 &&
			copy(r->script, sizeof(r->script), script, strlen(script));
	}
	for (size_t i = 0; ok && i < vlen; i++) {
		char ch = script[1 + i];
		bool separator = ch == '.' || ch == '_';

		/* digits, single separators between them */
		ok = isdigit((unsigned char)ch) ||
			(separator && i > 0 && i + 1 < vlen && isdigit((unsigned char)script[i]));
		r->version[i] = ch == '_' ? '.' : ch;
	}
	if (!ok) {
		snprintf(err, errlen,
			 "--orm flyway: \"%s\" is not a versioned Flyway migration "
			 "(V<version>__<description>.sql, e.g. V2_1__add_order_fk.sql); rename it or give "
			 "--orm-name V<version>__<description>.sql",
			 script);
		return false;
	}
	r->version[vlen] = '\0';
	for (size_t i = 0; i < dlen; i++)
		r->description[i] = desc[i] == '_' ? ' ' : desc[i];
	r->description[dlen] = '\0';
	snprintf(r->name, sizeof(r->name), "%s", r->script);
	return true;
}

/* golang-migrate: <version>_<name>.up.<ext>, or a bare version from --orm-name. */
static bool golang_migrate_name(struct orm_record *r, const char *s, char *err, size_t errlen)
{
	const char *us = strchr(s, '_');
	size_t vlen = all_digits(s, strlen(s)) ? strlen(s) : us ? (size_t)(us - s) : 0;
	char *end;
	unsigned long long v;

	if (vlen == strlen(s) || (all_digits(s, vlen) && strstr(us, ".up."))) {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (vlen > 0 && errno == 0 && v <= (unsigned long long)LLONG_MAX) {
			snprintf(r->version, sizeof(r->version), "%llu", v);
			snprintf(r->name, sizeof(r->name), "%s", s);
			return true;
		}
	}
	if (all_digits(s, vlen) && us && strstr(us, ".down."))
		snprintf(err, errlen,
			 "--orm golang-migrate: \"%s\" is a down migration; pgvalve applies up migrations",
			 s);
	else
		snprintf(err, errlen,
			 "--orm golang-migrate: \"%s\" is not named <version>_<name>.up.sql (a version of at "
			 "most 19 digits); rename it or give --orm-name VERSION",
			 s);
	return false;
}

/* UTF-8 as Flyway's reader decodes it: refuse what it would not read back the same. */
static bool valid_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k = c < 0x80          ? 0
			: (c & 0xe0) == 0xc0 ? 1
			: (c & 0xf0) == 0xe0 ? 2
			: (c & 0xf8) == 0xf0 ? 3
					     : 9;
		uint32_t cp = k == 0 ? c : k == 1 ? c & 0x1fu : k == 2 ? c & 0x0fu : c & 0x07u;

		if (k > 3 || i + k >= n + (k == 0))
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3fu);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* CRC-32 (IEEE 802.3, reflected, as java.util.zip.CRC32), continued from 'crc'. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *s, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= s[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/*
 * Flyway's checksum of a SQL migration: the file read line by line, a
 * byte-order mark dropped from the first line, each line's UTF-8 bytes
 * without its terminator (\n, \r\n or \r) fed to one CRC-32, the result as a
 * signed 32-bit integer. Empty lines add nothing, so it is the CRC-32 of
 * the bytes that are not CR or LF.
 */
static bool flyway_checksum(struct orm_record *r, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	unsigned char *buf;
	size_t len = 0, cap = 1 << 16, start = 0, run;
	uint32_t crc = 0;
	bool ok;

	if (!f) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return false;
	}
	buf = xmalloc(cap);
	while ((run = fread(buf + len, 1, cap - len, f)) > 0) {
		len += run;
		if (len == cap && cap < INPUT_MAX_FILE_BYTES) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		} else if (len == cap) {
			break;
		}
	}
	ok = !ferror(f) && len < INPUT_MAX_FILE_BYTES;
	fclose(f);
	if (!ok || !valid_utf8(buf, len)) {
		snprintf(err, errlen, "--orm flyway: %s: %s", file,
			 ok ? "not valid UTF-8, so Flyway's checksum of it is not defined here"
			    : "cannot read it (or larger than the largest migration pgvalve reads)");
		free(buf);
		return false;
	}
	if (len >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
		start = 3;
	for (size_t i = start; i < len; i = start) {
		for (run = 0; i + run < len && buf[i + run] != '\n' && buf[i + run] != '\r'; run++)
			;
		crc = crc32_update(crc, buf + i, run);
		start = i + run + 1;
	}
	r->flyway_checksum = (int32_t)crc;
	free(buf);
	return true;
}

bool orm_derive(struct orm_record *r, const struct options *o, char *err, size_t errlen)
{
	const char *file, *given = o->orm_name;

	memset(r, 0, sizeof(*r));
	if (!o->orm) {
		if (given) {
			snprintf(err, errlen, "--orm-name needs --orm " ORM_TOOLS);
			return false;
		}
		return true;
	}
	if (!orm_tool_parse(o->orm, &r->tool)) {
		snprintf(err, errlen, "--orm: expected " ORM_TOOLS ", not \"%s\"", o->orm);
		return false;
	}
	if (given && (!given[0] || strlen(given) >= ORM_NAME_MAX)) {
		snprintf(err, errlen, "--orm-name: expected a name of 1 to %d bytes", ORM_NAME_MAX - 1);
		return false;
	}
	if (o->n_args != 1) {
		snprintf(err, errlen, "--orm records one migration: give exactly one file (got %d)",
			 o->n_args);
		return false;
	}
	file = o->args[0];
	switch (r->tool) {
	case ORM_PRISMA:
		return prisma_name(r, file, given, err, errlen);
	case ORM_DJANGO:
		return django_name(r, given, err, errlen);
	case ORM_FLYWAY:
		return flyway_name(r, given ? given : base_name(file), err, errlen) &&
			flyway_checksum(r, file, err, errlen);
	case ORM_GOLANG_MIGRATE:
		return golang_migrate_name(r, given ? given : base_name(file), err, errlen);
	case ORM_ALEMBIC:
		if (given && !copy(r->revision, sizeof(r->revision), given, strlen(given))) {
			snprintf(err, errlen, "--orm-name: an Alembic revision is at most %zu bytes",
				 sizeof(r->revision) - 1);
			return false;
		}
		snprintf(r->name, sizeof(r->name), "%s", r->revision);
		return true;
	case ORM_NONE:
		break;
	}
	return true;
}
