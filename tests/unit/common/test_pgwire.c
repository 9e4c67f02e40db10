/*
 * Unit tests for common/pgwire.c: message headers, startup packets,
 * ErrorResponse parsing and building, SASL mechanism removal and
 * ParameterStatus. Every parser is fed copies of exactly the bytes under
 * test (malloc'd to size), so the Asan build catches any read past them.
 * Socket-level behaviour belongs to the integration tests, not here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgvalve/pgwire.h"
#include "unit_assert.h"

/* A message under construction. */
struct msg {
	uint8_t b[16384];
	size_t len;
};

static void put_u8(struct msg *m, uint8_t v)
{
	assert_true(m->len + 1 <= sizeof(m->b));
	m->b[m->len++] = v;
}

static void put_u32(struct msg *m, uint32_t v)
{
	assert_true(m->len + 4 <= sizeof(m->b));
	pgwire_put_u32(m->b + m->len, v);
	m->len += 4;
}

static void put_bytes(struct msg *m, const void *p, size_t n)
{
	assert_true(m->len + n <= sizeof(m->b));
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

/* Appends s and its NUL. */
static void put_str(struct msg *m, const char *s)
{
	put_bytes(m, s, strlen(s) + 1);
}

/* Starts an untyped startup packet: a length patched by startup_end(), then 'code'. */
static void startup_begin(struct msg *m, uint32_t code)
{
	m->len = 0;
	put_u32(m, 0);
	put_u32(m, code);
}

static void startup_end(struct msg *m)
{
	pgwire_put_u32(m->b, (uint32_t)m->len);
}

/* A malloc'd copy of exactly n bytes, so that an over-read is an ASan error. */
static uint8_t *exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	assert_non_null(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* True if s is a NUL-terminated string lying entirely inside [base, base+n). */
static bool str_inside(const char *s, const uint8_t *base, size_t n)
{
	const uint8_t *u = (const uint8_t *)s;

	return u >= base && u < base + n && memchr(u, 0, (size_t)(base + n - u)) != NULL;
}

/* ------------------------------------------------------------------ headers */

static enum pgwire_result header_of(const struct msg *m, size_t avail, uint32_t max, struct pgwire_header *h)
{
	uint8_t *c = exact(m->b, avail);
	enum pgwire_result r = pgwire_read_header(c, avail, max, h);

	free(c);
	return r;
}

static void test_header_incomplete_below_five_bytes(void **state)
{
	struct msg m = { .len = 0 };
	struct pgwire_header h;

	(void)state;
	put_u8(&m, 'Q');
	put_u32(&m, 13);
	put_bytes(&m, "SELECT 1", 9);
	for (size_t avail = 0; avail < PGWIRE_HEADER_LEN; avail++)
		assert_int_equal(header_of(&m, avail, 1 << 20, &h), PGWIRE_INCOMPLETE);
	assert_int_equal(header_of(&m, PGWIRE_HEADER_LEN, 1 << 20, &h), PGWIRE_OK);
	assert_int_equal(h.type, 'Q');
	assert_int_equal(h.len, 13);
	assert_int_equal(pgwire_body_len(&h), 9);
}

static void test_header_length_below_four_is_error(void **state)
{
	struct pgwire_header h;

	(void)state;
	for (uint32_t len = 0; len < 4; len++) {
		struct msg m = { .len = 0 };

		put_u8(&m, 'S');
		put_u32(&m, len);
		assert_int_equal(header_of(&m, m.len, 1 << 20, &h), PGWIRE_ERROR);
	}
}

static void test_header_length_four_is_empty_body(void **state)
{
	struct msg m = { .len = 0 };
	struct pgwire_header h;

	(void)state;
	put_u8(&m, 'S'); /* Sync: the smallest valid message */
	put_u32(&m, 4);
	assert_int_equal(header_of(&m, m.len, 1 << 20, &h), PGWIRE_OK);
	assert_int_equal(h.type, 'S');
	assert_int_equal(h.len, 4);
	assert_int_equal(pgwire_body_len(&h), 0);
}

static void test_header_max_length(void **state)
{
	const uint32_t max = 1024;
	struct pgwire_header h;
	struct msg m = { .len = 0 };

	(void)state;
	put_u8(&m, 'Q');
	put_u32(&m, max);
	assert_int_equal(header_of(&m, m.len, max, &h), PGWIRE_OK);
	assert_int_equal(h.len, max);

	pgwire_put_u32(m.b + 1, max + 1);
	assert_int_equal(header_of(&m, m.len, max, &h), PGWIRE_ERROR);

	pgwire_put_u32(m.b + 1, UINT32_MAX);
	assert_int_equal(header_of(&m, m.len, max, &h), PGWIRE_ERROR);
	/* The field is a signed Int32: a "negative" length is malformed whatever the limit. */
	assert_int_equal(header_of(&m, m.len, UINT32_MAX, &h), PGWIRE_ERROR);
	pgwire_put_u32(m.b + 1, (uint32_t)INT32_MAX + 1);
	assert_int_equal(header_of(&m, m.len, UINT32_MAX, &h), PGWIRE_ERROR);
	pgwire_put_u32(m.b + 1, INT32_MAX);
	assert_int_equal(header_of(&m, m.len, UINT32_MAX, &h), PGWIRE_OK);
	assert_int_equal(h.len, INT32_MAX);
}

/* Every byte of the length is significant and big-endian (network order). */
static void test_header_length_is_big_endian(void **state)
{
	static const uint32_t lens[] = { 0x00000104, 0x00010004, 0x01000004, 0x7f000004 };
	struct pgwire_header h;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct msg m = { .len = 0 };

		put_u8(&m, 0xff);
		put_u32(&m, lens[i]);
		assert_int_equal(header_of(&m, m.len, UINT32_MAX, &h), PGWIRE_OK);
		assert_int_equal(h.type, 0xff);
		assert_int_equal(h.len, lens[i]);
		assert_int_equal(header_of(&m, m.len, lens[i] - 1, &h), PGWIRE_ERROR);
	}
}

/*
 * A stream of messages cut at every byte: the framer finds exactly the
 * messages that are complete in the prefix and never one more.
 */
static void test_header_stream_cut_at_every_byte(void **state)
{
	struct {
		uint8_t type;
		const char *body;
		size_t body_len;
	} msgs[] = {
		{ 'Q', "SELECT 1", 9 },
		{ 'P', "\0SELECT $1\0\0", 13 },
		{ 'S', "", 0 },
		{ 'X', "", 0 },
	};
	size_t ends[4];
	struct msg m = { .len = 0 };

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		put_u8(&m, msgs[i].type);
		put_u32(&m, (uint32_t)(4 + msgs[i].body_len));
		put_bytes(&m, msgs[i].body, msgs[i].body_len);
		ends[i] = m.len;
	}
	for (size_t k = 0; k <= m.len; k++) {
		uint8_t *c = exact(m.b, k);
		size_t pos = 0, found = 0, want = 0;

		for (;;) {
			struct pgwire_header h;
			enum pgwire_result r = pgwire_read_header(c + pos, k - pos, 1 << 20, &h);

			if (k - pos < PGWIRE_HEADER_LEN) {
				assert_int_equal(r, PGWIRE_INCOMPLETE);
				break;
			}
			assert_int_equal(r, PGWIRE_OK);
			assert_int_equal(h.type, msgs[found].type);
			assert_int_equal(pgwire_body_len(&h), msgs[found].body_len);
			if (pos + 1 + h.len > k)
				break; /* header complete, body not yet */
			pos += 1 + h.len;
			found++;
		}
		while (want < 4 && ends[want] <= k)
			want++;
		assert_int_equal(found, want);
		assert_int_equal(pos, want ? ends[want - 1] : 0);
		free(c);
	}
}

/* ------------------------------------------------------------------ startup */

static enum pgwire_result startup_of(const struct msg *m, size_t avail, struct pgwire_startup *s,
				     const char **why)
{
	uint8_t *c = exact(m->b, avail);
	enum pgwire_result r = pgwire_parse_startup(c, avail, s, why);

	free(c); /* callers here look only at non-pointer fields */
	return r;
}

static void make_v3(struct msg *m, uint32_t proto, const char *const *kv)
{
	startup_begin(m, proto);
	for (; kv && *kv; kv++)
		put_str(m, *kv);
	put_u8(m, 0);
	startup_end(m);
}

static void test_startup_ssl_request(void **state)
{
	struct msg m;
	struct pgwire_startup s;
	const char *why = "unset";

	(void)state;
	startup_begin(&m, PGWIRE_SSL_REQUEST);
	startup_end(&m);
	assert_int_equal(m.len, 8);
	for (size_t k = 0; k < 8; k++)
		assert_int_equal(startup_of(&m, k, &s, &why), PGWIRE_INCOMPLETE);
	assert_int_equal(startup_of(&m, 8, &s, &why), PGWIRE_OK);
	assert_null(why);
	assert_int_equal(s.kind, PGWIRE_STARTUP_SSL);
	assert_int_equal(s.len, 8);
	assert_int_equal(s.code, PGWIRE_SSL_REQUEST);

	/* A client may pipeline its TLS ClientHello; only the 8 bytes are the request. */
	put_bytes(&m, "\x16\x03\x01\x02\x00", 5);
	assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_OK);
	assert_int_equal(s.kind, PGWIRE_STARTUP_SSL);
	assert_int_equal(s.len, 8);
}

static void test_startup_gssenc_request(void **state)
{
	struct msg m;
	struct pgwire_startup s;
	const char *why;

	(void)state;
	startup_begin(&m, PGWIRE_GSSENC_REQUEST);
	startup_end(&m);
	assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_OK);
	assert_int_equal(s.kind, PGWIRE_STARTUP_GSSENC);
	assert_int_equal(s.len, 8);
	assert_int_equal(s.code, PGWIRE_GSSENC_REQUEST);
}

static void test_startup_encryption_request_wrong_length(void **state)
{
	static const uint32_t codes[] = { PGWIRE_SSL_REQUEST, PGWIRE_GSSENC_REQUEST };
	static const uint32_t lens[] = { 9, 12, 16, 100 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		for (size_t j = 0; j < 4; j++) {
			struct msg m;
			struct pgwire_startup s;
			const char *why;

			startup_begin(&m, codes[i]);
			while (m.len < lens[j])
				put_u8(&m, 0);
			startup_end(&m);
			assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_ERROR);
			assert_contains(why, "invalid length of encryption request");
		}
	}
}

static void test_startup_cancel_request(void **state)
{
	struct msg m;
	struct pgwire_startup s;
	const char *why;

	(void)state;
	startup_begin(&m, PGWIRE_CANCEL_REQUEST);
	put_u32(&m, 4242);
	put_u32(&m, 0xdeadbeef);
	startup_end(&m);
	assert_int_equal(m.len, PGWIRE_CANCEL_LEN);
	for (size_t k = 0; k < PGWIRE_CANCEL_LEN; k++)
		assert_int_equal(startup_of(&m, k, &s, &why), PGWIRE_INCOMPLETE);
	assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_OK);
	assert_null(why);
	assert_int_equal(s.kind, PGWIRE_STARTUP_CANCEL);
	assert_int_equal(s.len, 16);
	assert_int_equal(s.cancel_pid, 4242);
	assert_int_equal(s.cancel_key, 0xdeadbeef);
}

static void test_startup_cancel_request_wrong_length(void **state)
{
	static const uint32_t lens[] = { 8, 12, 15, 17, 20, 200 };

	(void)state;
	for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why;

		startup_begin(&m, PGWIRE_CANCEL_REQUEST);
		while (m.len < lens[j])
			put_u8(&m, 1);
		startup_end(&m);
		/* The length alone is enough to refuse, before the rest has arrived. */
		assert_int_equal(startup_of(&m, 8, &s, &why), PGWIRE_ERROR);
		assert_contains(why, "invalid length of cancel request");
		assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_ERROR);
		assert_contains(why, "invalid length of cancel request");
	}
}

static void test_startup_v3_all_fields(void **state)
{
	static const char *const kv[] = {
		"user", "app", "database", "shop", "application_name", "psql", "client_encoding", "UTF8", NULL
	};
	struct msg m;
	struct pgwire_startup s;
	const char *why = "unset";
	uint8_t *c;

	(void)state;
	make_v3(&m, 3u << 16, kv);
	c = exact(m.b, m.len);
	assert_int_equal(pgwire_parse_startup(c, m.len, &s, &why), PGWIRE_OK);
	assert_null(why);
	assert_int_equal(s.kind, PGWIRE_STARTUP_V3);
	assert_int_equal(s.len, m.len);
	assert_int_equal(s.code, 196608);
	assert_string_equal(s.user, "app");
	assert_string_equal(s.database, "shop");
	assert_string_equal(s.application_name, "psql");
	/* Strings point into the packet itself. */
	assert_true(str_inside(s.user, c, m.len));
	assert_true(str_inside(s.database, c, m.len));
	assert_true(str_inside(s.application_name, c, m.len));
	free(c);
}

static void test_startup_v3_database_defaults_to_user(void **state)
{
	static const char *const only_user[] = { "user", "app", NULL };
	static const char *const empty_db[] = { "database", "", "user", "app", NULL };
	const char *const *cases[] = { only_user, empty_db };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why;
		uint8_t *c;

		make_v3(&m, 3u << 16, cases[i]);
		c = exact(m.b, m.len);
		assert_int_equal(pgwire_parse_startup(c, m.len, &s, &why), PGWIRE_OK);
		assert_string_equal(s.user, "app");
		assert_string_equal(s.database, "app");
		assert_null(s.application_name);
		free(c);
	}
}

static void test_startup_v3_missing_or_empty_user(void **state)
{
	static const char *const no_user[] = { "database", "shop", NULL };
	static const char *const empty_user[] = { "user", "", "database", "shop", NULL };
	static const char *const nothing[] = { NULL };
	const char *const *cases[] = { no_user, empty_user, nothing };

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why;

		make_v3(&m, 3u << 16, cases[i]);
		assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_ERROR);
		assert_contains(why, "no PostgreSQL user name specified");
	}
}

/* Layout errors: the packet's bytes do not end in exactly one closing NUL. */
static void test_startup_v3_bad_layout(void **state)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "missing terminator", "user\0app\0", 9 },
		{ "unterminated value", "user\0ap", 7 },
		{ "unterminated name", "user\0app\0datab", 14 },
		{ "name without value", "user\0app\0database\0", 18 },
		{ "bytes after the terminator", "user\0app\0\0junk", 14 },
		{ "two terminators", "user\0app\0\0\0", 11 },
		{ "no parameters at all", "", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why = NULL;

		startup_begin(&m, 3u << 16);
		put_bytes(&m, cases[i].bytes, cases[i].len);
		startup_end(&m);
		if (startup_of(&m, m.len, &s, &why) != PGWIRE_ERROR)
			fail_msg("%s: accepted", cases[i].what);
		assert_contains(why, "invalid startup packet layout");
	}
}

static void test_startup_length_out_of_range(void **state)
{
	static const uint32_t lens[] = { 0, 1, 4, 7, PGWIRE_STARTUP_MAX + 1, 0x7fffffff, UINT32_MAX };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why;

		startup_begin(&m, 3u << 16);
		pgwire_put_u32(m.b, lens[i]);
		/* Refused from the 8 bytes alone: nothing waits for a bogus length. */
		assert_int_equal(startup_of(&m, 8, &s, &why), PGWIRE_ERROR);
		assert_contains(why, "invalid length of startup packet");
	}
}

static void test_startup_exact_max_length(void **state)
{
	struct msg m;
	struct pgwire_startup s;
	const char *why;
	char pad[PGWIRE_STARTUP_MAX];
	size_t fixed = 8 + sizeof("user") + sizeof("app") + sizeof("options") + 1 + 1;
	uint8_t *c;

	(void)state;
	memset(pad, 'x', sizeof(pad));
	pad[PGWIRE_STARTUP_MAX - fixed] = '\0';
	startup_begin(&m, 3u << 16);
	put_str(&m, "user");
	put_str(&m, "app");
	put_str(&m, "options");
	put_str(&m, pad);
	put_u8(&m, 0);
	startup_end(&m);
	assert_int_equal(m.len, PGWIRE_STARTUP_MAX);
	c = exact(m.b, m.len);
	assert_int_equal(pgwire_parse_startup(c, m.len, &s, &why), PGWIRE_OK);
	assert_string_equal(s.user, "app");
	free(c);
}

static void test_startup_protocol_versions(void **state)
{
	static const char *const kv[] = { "user", "app", NULL };
	static const struct {
		uint32_t code;
		enum pgwire_result want;
	} cases[] = {
		{ 3u << 16 | 0, PGWIRE_OK },          { 3u << 16 | 2, PGWIRE_OK }, /* 3.2 (PostgreSQL 18) */
		{ 2u << 16 | 0, PGWIRE_ERROR },                                    /* protocol 2 is gone */
		{ 1u << 16 | 0, PGWIRE_ERROR },       { 4u << 16 | 0, PGWIRE_ERROR }, { 0, PGWIRE_ERROR },
		{ 1234u << 16 | 5677, PGWIRE_ERROR }, /* unknown negotiation code */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msg m;
		struct pgwire_startup s;
		const char *why = NULL;
		enum pgwire_result r;

		make_v3(&m, cases[i].code, kv);
		r = startup_of(&m, m.len, &s, &why);
		if (r != cases[i].want)
			fail_msg("protocol %u.%u: got %d, want %d", cases[i].code >> 16,
				 cases[i].code & 0xffff, r, cases[i].want);
		if (r == PGWIRE_OK) {
			assert_int_equal(s.code, cases[i].code);
		} else {
			assert_contains(why, "unsupported frontend protocol");
			/* Refused as soon as the version is known. */
			assert_int_equal(startup_of(&m, 8, &s, &why), PGWIRE_ERROR);
		}
	}
}

static void test_startup_v3_incomplete_at_every_prefix(void **state)
{
	static const char *const kv[] = { "user", "app", "database", "shop", NULL };
	struct msg m;

	(void)state;
	make_v3(&m, 3u << 16, kv);
	for (size_t k = 0; k < m.len; k++) {
		struct pgwire_startup s;
		const char *why = "unset";

		if (startup_of(&m, k, &s, &why) != PGWIRE_INCOMPLETE)
			fail_msg("prefix of %zu of %zu bytes: not incomplete", k, m.len);
		assert_null(why);
	}
}

/* Bytes after the packet (a pipelined Query) are not part of it. */
static void test_startup_v3_followed_by_more_bytes(void **state)
{
	static const char *const kv[] = { "user", "app", NULL };
	struct msg m;
	struct pgwire_startup s;
	const char *why;
	size_t packet_len;

	(void)state;
	make_v3(&m, 3u << 16, kv);
	packet_len = m.len;
	put_u8(&m, 'Q');
	put_u32(&m, 13);
	put_bytes(&m, "SELECT 1", 9);
	assert_int_equal(startup_of(&m, m.len, &s, &why), PGWIRE_OK);
	assert_int_equal(s.len, packet_len);
}

/* ----------------------------------------------------------- ErrorResponse */

static void test_error_parse_all_fields(void **state)
{
	struct msg m = { .len = 0 };
	struct pgwire_error e;
	uint8_t *c;

	(void)state;
	put_str(&m, "SERREUR"); /* localized */
	put_str(&m, "VERROR");  /* untranslated: wins */
	put_str(&m, "C23505");
	put_str(&m, "Mduplicate key value violates unique constraint \"orders_pkey\"");
	put_str(&m, "DKey (id)=(1) already exists.");
	put_str(&m, "spublic");
	put_str(&m, "torders");
	put_str(&m, "norders_pkey");
	put_str(&m, "Fnbtinsert.c");
	put_str(&m, "L664");
	put_u8(&m, 0);
	c = exact(m.b, m.len);
	assert_true(pgwire_parse_error(c, m.len, &e));
	assert_string_equal(e.severity, "ERROR");
	assert_string_equal(e.sqlstate, "23505");
	assert_string_equal(e.message, "duplicate key value violates unique constraint \"orders_pkey\"");
	assert_string_equal(e.schema, "public");
	assert_string_equal(e.table, "orders");
	assert_string_equal(e.constraint, "orders_pkey");
	assert_true(str_inside(e.message, c, m.len));
	free(c);
}

static void test_error_parse_severity_order(void **state)
{
	struct msg m = { .len = 0 };
	struct pgwire_error e;

	(void)state;
	/* V before S: the untranslated one still wins. */
	put_str(&m, "VFATAL");
	put_str(&m, "SFATAL_LOCALIZED");
	put_u8(&m, 0);
	assert_true(pgwire_parse_error(m.b, m.len, &e));
	assert_string_equal(e.severity, "FATAL");

	/* Servers before 9.6 send only S. */
	m.len = 0;
	put_str(&m, "SWARNING");
	put_str(&m, "C01000");
	put_u8(&m, 0);
	assert_true(pgwire_parse_error(m.b, m.len, &e));
	assert_string_equal(e.severity, "WARNING");
	assert_string_equal(e.sqlstate, "01000");
	assert_null(e.message);
	assert_null(e.table);
}

/*
 * The proxy may see only the start of a long ErrorResponse: every prefix
 * yields exactly the fields it holds completely, and none that are cut off.
 */
static void test_error_parse_truncated_prefix_keeps_complete_fields(void **state)
{
	static const char *const fields[] = { "SERROR",
					      "VERROR",
					      "C23503",
					      "Minsert violates fk",
					      "spublic",
					      "tline_items",
					      "nline_items_order_fk" };
	const size_t n = sizeof(fields) / sizeof(fields[0]);
	size_t end[7];
	struct msg m = { .len = 0 };

	(void)state;
	for (size_t i = 0; i < n; i++) {
		put_str(&m, fields[i]);
		end[i] = m.len;
	}
	put_u8(&m, 0);
	for (size_t k = 0; k <= m.len; k++) {
		uint8_t *c = exact(m.b, k);
		struct pgwire_error e;
		bool any = pgwire_parse_error(c, k, &e);
		const char *got[7] = { e.severity, e.severity, e.sqlstate,  e.message,
				       e.schema,   e.table,    e.constraint };

		assert_int_equal(any, k >= end[0]);
		for (size_t i = 0; i < n; i++) {
			if (k >= end[i]) {
				if (got[i] == NULL || strcmp(got[i], fields[i] + 1) != 0)
					fail_msg("prefix %zu: field %c lost", k, fields[i][0]);
			} else if (i != 1 && got[i] != NULL) { /* V shares S's slot */
				fail_msg("prefix %zu: cut-off field %c reported", k, fields[i][0]);
			}
		}
		free(c);
	}
}

static void test_error_parse_no_fields(void **state)
{
	struct pgwire_error e;
	uint8_t *c = exact("\0", 1);

	(void)state;
	assert_false(pgwire_parse_error(c, 1, &e));
	assert_null(e.severity);
	assert_null(e.message);
	assert_false(pgwire_parse_error(c, 0, &e));
	free(c);

	/* One field cut off before its NUL: nothing complete. */
	c = exact("C2350", 5);
	assert_false(pgwire_parse_error(c, 5, &e));
	assert_null(e.sqlstate);
	free(c);

	/* A lone field type byte. */
	c = exact("M", 1);
	assert_false(pgwire_parse_error(c, 1, &e));
	free(c);
}

/* No closing NUL after the last field: the complete fields still count. */
static void test_error_parse_non_terminated(void **state)
{
	static const char body[] = "C57P01\0Mterminating connection due to administrator command";
	struct pgwire_error e;
	uint8_t *c = exact(body, sizeof(body)); /* includes the message's NUL, no terminator */

	(void)state;
	assert_true(pgwire_parse_error(c, sizeof(body), &e));
	assert_string_equal(e.sqlstate, "57P01");
	assert_string_equal(e.message, "terminating connection due to administrator command");
	free(c);
}

static void test_error_build_exact_bytes(void **state)
{
	static const uint8_t want[] = "E\0\0\0\x2c" /* 44: the length counts itself, not the type */
				      "SFATAL\0VFATAL\0C08P01\0Mmessage too long\0";
	uint8_t out[128];
	size_t need;

	(void)state;
	memset(out, 0xaa, sizeof(out));
	need = pgwire_build_error(out, sizeof(out), "FATAL", "08P01", "message too long");
	assert_int_equal(need, sizeof(want)); /* sizeof counts the final terminator */
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(out[need], 0xaa);
}

static void test_error_build_cap_too_small_writes_nothing(void **state)
{
	uint8_t out[256];
	size_t need = pgwire_build_error(NULL, 0, "ERROR", "53300", "too many clients");

	(void)state;
	assert_int_equal(need, 1 + 4 + 7 + 7 + 7 + 18 + 1);
	for (size_t cap = 0; cap < need; cap++) {
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(pgwire_build_error(out, cap, "ERROR", "53300", "too many clients"), need);
		for (size_t i = 0; i < sizeof(out); i++) {
			if (out[i] != 0xaa)
				fail_msg("cap %zu: byte %zu written", cap, i);
		}
	}
	assert_int_equal(pgwire_build_error(out, need, "ERROR", "53300", "too many clients"), need);
	assert_int_equal(out[0], 'E');
}

/* What the proxy writes, the proxy (and a client) reads back. */
static void test_error_build_round_trip(void **state)
{
	static const struct {
		const char *severity, *sqlstate, *message;
	} cases[] = {
		{ "FATAL", "08P01", "invalid frontend message type 0" },
		{ "ERROR", "57014", "canceling statement due to pgvalve hold on \"public.orders\"" },
		{ "FATAL", "53300", "" },
		{ "ERROR", "XX000", "multi\nline\tmessage with \"quotes\" and \xc3\xa9" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t need = pgwire_build_error(NULL, 0, cases[i].severity, cases[i].sqlstate,
						 cases[i].message);
		uint8_t *out = malloc(need);
		struct pgwire_header h;
		struct pgwire_error e;

		assert_non_null(out);
		assert_int_equal(
			pgwire_build_error(out, need, cases[i].severity, cases[i].sqlstate, cases[i].message),
			need);
		assert_int_equal(pgwire_read_header(out, need, 1 << 20, &h), PGWIRE_OK);
		assert_int_equal(h.type, PGWIRE_MSG_ERROR);
		assert_int_equal(1 + h.len, need);
		assert_int_equal(out[need - 1], 0); /* the field list terminator */
		assert_true(pgwire_parse_error(out + PGWIRE_HEADER_LEN, pgwire_body_len(&h), &e));
		assert_string_equal(e.severity, cases[i].severity);
		assert_string_equal(e.sqlstate, cases[i].sqlstate);
		assert_string_equal(e.message, cases[i].message);
		assert_null(e.table);
		free(out);
	}
}

static void test_error_build_long_message_truncated_at_1000(void **state)
{
	static const size_t lens[] = { 999, 1000, 1001, 5000 };

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *msg = malloc(lens[i] + 1);
		size_t need, want_len = lens[i] < 1000 ? lens[i] : 1000;
		uint8_t *out;
		struct pgwire_error e;

		assert_non_null(msg);
		memset(msg, 'm', lens[i]);
		msg[lens[i]] = '\0';
		need = pgwire_build_error(NULL, 0, "ERROR", "54000", msg);
		assert_int_equal(need, 1 + 4 + 7 + 7 + 7 + (1 + want_len + 1) + 1);
		out = malloc(need);
		assert_non_null(out);
		assert_int_equal(pgwire_build_error(out, need, "ERROR", "54000", msg), need);
		assert_true(pgwire_parse_error(out + 5, need - 5, &e));
		assert_int_equal(strlen(e.message), want_len);
		assert_memory_equal(e.message, msg, want_len);
		assert_string_equal(e.sqlstate, "54000");
		free(out);
		free(msg);
	}
}

/* ---------------------------------------------------------------- SASL list */

#define PLUS "SCRAM-SHA-256-PLUS"

static void sasl_body(struct msg *m, uint32_t code, const char *list, size_t list_len)
{
	m->len = 0;
	put_u32(m, code);
	put_bytes(m, list, list_len);
}

/* Runs the removal on an exact-size copy; returns the new length, copies the result to 'after'. */
static size_t sasl_remove(const struct msg *m, struct msg *after)
{
	uint8_t *c = exact(m->b, m->len);
	size_t n = pgwire_sasl_remove_mechanism(c, m->len, PLUS);

	assert_true(n <= m->len);
	after->len = 0;
	put_bytes(after, c, n);
	free(c);
	return n;
}

static void test_sasl_plus_removed(void **state)
{
	static const char first[] = PLUS "\0SCRAM-SHA-256\0"; /* as PostgreSQL sends it */
	static const char last[] = "SCRAM-SHA-256\0" PLUS "\0";
	static const char want[] = "SCRAM-SHA-256\0";
	const char *lists[] = { first, last };
	struct msg m, after, expect;

	(void)state;
	sasl_body(&expect, PGWIRE_AUTH_SASL, want, sizeof(want));
	for (size_t i = 0; i < 2; i++) {
		sasl_body(&m, PGWIRE_AUTH_SASL, lists[i], sizeof(first));
		assert_int_equal(sasl_remove(&m, &after), m.len - sizeof(PLUS));
		assert_int_equal(after.len, expect.len);
		assert_memory_equal(after.b, expect.b, expect.len);
	}
}

static void test_sasl_plus_absent_unchanged(void **state)
{
	static const char *const lists[] = {
		"SCRAM-SHA-256\0", PLUS "X\0SCRAM-SHA-256\0", /* longer name with PLUS as prefix */
		"SCRAM-SHA-256-PLU\0",                        /* shorter */
		"scram-sha-256-plus\0",                       /* names are case-sensitive */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct msg m, after;
		size_t list_len = 0;

		/* each list is names joined by NULs, closed by an empty name */
		while (lists[i][list_len] != 0 || lists[i][list_len + 1] != 0)
			list_len++;
		sasl_body(&m, PGWIRE_AUTH_SASL, lists[i], list_len + 2);
		assert_int_equal(sasl_remove(&m, &after), m.len);
		assert_memory_equal(after.b, m.b, m.len);
	}
}

static void test_sasl_only_mechanism(void **state)
{
	struct msg m, after;

	(void)state;
	sasl_body(&m, PGWIRE_AUTH_SASL, PLUS "\0", sizeof(PLUS) + 1);
	assert_int_equal(sasl_remove(&m, &after), 5);
	assert_int_equal(pgwire_get_u32(after.b), PGWIRE_AUTH_SASL);
	assert_int_equal(after.b[4], 0); /* an empty list, still well-formed */
}

static void test_sasl_malformed_unchanged(void **state)
{
	static const struct {
		const char *what;
		const char *list;
		size_t len;
	} cases[] = {
		{ "no list at all", "", 0 },
		{ "unterminated first name", "SCRAM-SHA-256", 13 },
		{ "unterminated PLUS", PLUS, sizeof(PLUS) - 1 },
		{ "PLUS only as the tail of a longer name", "SCRAM-SHA-256\0SCRAM" PLUS "\0", 14 + 5 + 19 },
		{ "PLUS after the closing empty name", "SCRAM-SHA-256\0\0" PLUS "\0", 15 + 19 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msg m, after;

		sasl_body(&m, PGWIRE_AUTH_SASL, cases[i].list, cases[i].len);
		if (sasl_remove(&m, &after) != m.len)
			fail_msg("%s: length changed", cases[i].what);
		assert_memory_equal(after.b, m.b, m.len);
	}

	/* Shorter than the auth code itself. */
	{
		uint8_t b[3] = { 0, 0, 0 };

		assert_int_equal(pgwire_sasl_remove_mechanism(b, 3, PLUS), 3);
		assert_int_equal(pgwire_sasl_remove_mechanism(b, 0, PLUS), 0);
	}
}

/*
 * The header's contract: a malformed body comes back unchanged. Here the
 * list is broken only after the PLUS entry (no closing empty name).
 */
static void test_sasl_malformed_after_plus_unchanged(void **state)
{
	static const char *const lists[] = {
		PLUS "\0SCRAM-SHA-256",   /* last name unterminated */
		PLUS "\0SCRAM-SHA-256\0", /* no closing empty name */
	};
	static const size_t lens[] = { 19 + 13, 19 + 14 };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct msg m, after;

		sasl_body(&m, PGWIRE_AUTH_SASL, lists[i], lens[i]);
		if (sasl_remove(&m, &after) != m.len)
			fail_msg("list %zu: malformed SASL body was rewritten", i);
	}
}

static void test_sasl_other_auth_codes_unchanged(void **state)
{
	static const uint32_t codes[] = { PGWIRE_AUTH_OK, 3 /* cleartext */, 5 /* md5 */,
					  11 /* SASLContinue */, 12 /* SASLFinal */ };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct msg m, after;

		/* A body that would match if the code were ignored. */
		sasl_body(&m, codes[i], PLUS "\0SCRAM-SHA-256\0", 19 + 15);
		assert_int_equal(sasl_remove(&m, &after), m.len);
		assert_memory_equal(after.b, m.b, m.len);
	}
	{
		struct msg m, after;

		sasl_body(&m, PGWIRE_AUTH_OK, "", 0); /* AuthenticationOk: 4 bytes */
		assert_int_equal(sasl_remove(&m, &after), 4);
	}
}

/* --------------------------------------------------------- ParameterStatus */

static bool param_of(const void *body, size_t len, const char **name, const char **value, uint8_t **keep)
{
	*keep = exact(body, len);
	return pgwire_parse_parameter_status(*keep, len, name, value);
}

static void test_parameter_status_valid(void **state)
{
	static const char body[] = "standard_conforming_strings\0on";
	const char *name = NULL, *value = NULL;
	uint8_t *c;

	(void)state;
	assert_true(param_of(body, sizeof(body), &name, &value, &c));
	assert_string_equal(name, "standard_conforming_strings");
	assert_string_equal(value, "on");
	assert_true(str_inside(name, c, sizeof(body)));
	assert_true(str_inside(value, c, sizeof(body)));
	free(c);

	/* An empty value is a value (e.g. application_name reset). */
	assert_true(param_of("application_name\0", 18, &name, &value, &c));
	assert_string_equal(name, "application_name");
	assert_string_equal(value, "");
	free(c);
}

static void test_parameter_status_malformed(void **state)
{
	static const struct {
		const char *what;
		const char *body;
		size_t len;
	} cases[] = {
		{ "empty", "", 0 },
		{ "name unterminated", "TimeZone", 8 },
		{ "name only", "TimeZone\0", 9 },
		{ "value unterminated", "TimeZone\0UTC", 12 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *name, *value;
		uint8_t *c;

		if (param_of(cases[i].body, cases[i].len, &name, &value, &c))
			fail_msg("%s: accepted", cases[i].what);
		free(c);
	}
}

/* "name\0value\0" is the whole body; libpq treats extra bytes as a protocol error. */
static void test_parameter_status_trailing_bytes(void **state)
{
	const char *name, *value;
	uint8_t *c;
	bool ok;

	(void)state;
	ok = param_of("TimeZone\0UTC\0extra", 19, &name, &value, &c);
	free(c);
	if (ok)
		fail_msg("ParameterStatus with bytes after the value was accepted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_incomplete_below_five_bytes),
		cmocka_unit_test(test_header_length_below_four_is_error),
		cmocka_unit_test(test_header_length_four_is_empty_body),
		cmocka_unit_test(test_header_max_length),
		cmocka_unit_test(test_header_length_is_big_endian),
		cmocka_unit_test(test_header_stream_cut_at_every_byte),
		cmocka_unit_test(test_startup_ssl_request),
		cmocka_unit_test(test_startup_gssenc_request),
		cmocka_unit_test(test_startup_encryption_request_wrong_length),
		cmocka_unit_test(test_startup_cancel_request),
		cmocka_unit_test(test_startup_cancel_request_wrong_length),
		cmocka_unit_test(test_startup_v3_all_fields),
		cmocka_unit_test(test_startup_v3_database_defaults_to_user),
		cmocka_unit_test(test_startup_v3_missing_or_empty_user),
		cmocka_unit_test(test_startup_v3_bad_layout),
		cmocka_unit_test(test_startup_length_out_of_range),
		cmocka_unit_test(test_startup_exact_max_length),
		cmocka_unit_test(test_startup_protocol_versions),
		cmocka_unit_test(test_startup_v3_incomplete_at_every_prefix),
		cmocka_unit_test(test_startup_v3_followed_by_more_bytes),
		cmocka_unit_test(test_error_parse_all_fields),
		cmocka_unit_test(test_error_parse_severity_order),
		cmocka_unit_test(test_error_parse_truncated_prefix_keeps_complete_fields),
		cmocka_unit_test(test_error_parse_no_fields),
		cmocka_unit_test(test_error_parse_non_terminated),
		cmocka_unit_test(test_error_build_exact_bytes),
		cmocka_unit_test(test_error_build_cap_too_small_writes_nothing),
		cmocka_unit_test(test_error_build_round_trip),
		cmocka_unit_test(test_error_build_long_message_truncated_at_1000),
		cmocka_unit_test(test_sasl_plus_removed),
		cmocka_unit_test(test_sasl_plus_absent_unchanged),
		cmocka_unit_test(test_sasl_only_mechanism),
		cmocka_unit_test(test_sasl_malformed_unchanged),
		cmocka_unit_test(test_sasl_malformed_after_plus_unchanged),
		cmocka_unit_test(test_sasl_other_auth_codes_unchanged),
		cmocka_unit_test(test_parameter_status_valid),
		cmocka_unit_test(test_parameter_status_malformed),
		cmocka_unit_test(test_parameter_status_trailing_bytes),
	};

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	return cmocka_run_group_tests_name("common/pgwire", tests, NULL, NULL);
}
