/*
 * libFuzzer target for common/pgwire.c. Each input is read five ways: as a
 * stream of typed messages (each complete body handed to the parser for its
 * type), as a startup packet, as an ErrorResponse / ParameterStatus body, as
 * an AuthenticationSASL body (mechanism removal on a copy), and as three
 * strings for pgwire_build_error(), whose output must parse back to them.
 * Every parser gets a malloc'd copy of exactly the bytes in play, so ASan
 * sees any read past them; every invariant is a FUZZ_CHECK, which aborts
 * whatever NDEBUG says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/pgwire.h"
#include "fuzz_check.h"

#define STREAM_MAX_LEN (1u << 16) /* the stream's header limit; anything above is an error */
#define PLUS "SCRAM-SHA-256-PLUS"

/* A malloc'd copy of exactly n bytes (never NULL, even for n == 0). */
static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	FUZZ_CHECK(c != NULL);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* s must be a NUL-terminated string lying wholly inside [p, p+n). */
static void check_inside(const char *s, const uint8_t *p, size_t n)
{
	const uint8_t *u = (const uint8_t *)s;

	FUZZ_CHECK(u >= p && u < p + n);
	FUZZ_CHECK(memchr(u, 0, (size_t)(p + n - u)) != NULL);
}

/* ------------------------------------------------------------ ErrorResponse */

static void check_error_body(const uint8_t *body, size_t len)
{
	uint8_t *c = copy_exact(body, len);
	struct pgwire_error e, half;
	const char *f[6];
	bool any = pgwire_parse_error(c, len, &e), any_half;
	int set = 0;

	f[0] = e.severity, f[1] = e.sqlstate, f[2] = e.message;
	f[3] = e.schema, f[4] = e.table, f[5] = e.constraint;
	for (int i = 0; i < 6; i++) {
		if (f[i]) {
			check_inside(f[i], c, len);
			set++;
		}
	}
	if (!any)
		FUZZ_CHECK(set == 0);

	/* A prefix holds a subset of the fields: what it reports, the whole also reports. */
	any_half = pgwire_parse_error(c, len / 2, &half);
	FUZZ_CHECK(!any_half || any);
	FUZZ_CHECK(!half.severity || e.severity);
	FUZZ_CHECK(!half.sqlstate || e.sqlstate);
	FUZZ_CHECK(!half.message || e.message);
	FUZZ_CHECK(!half.schema || e.schema);
	FUZZ_CHECK(!half.table || e.table);
	FUZZ_CHECK(!half.constraint || e.constraint);
	free(c);
}

/* ---------------------------------------------------------- ParameterStatus */

static void check_parameter_status(const uint8_t *body, size_t len)
{
	uint8_t *c = copy_exact(body, len);
	const char *name = NULL, *value = NULL;

	if (pgwire_parse_parameter_status(c, len, &name, &value)) {
		check_inside(name, c, len);
		check_inside(value, c, len);
		FUZZ_CHECK(value == name + strlen(name) + 1);
	}
	free(c);
}

/* --------------------------------------------------------------- SASL list */

/*
 * Removal of 'mech' from a copy of 'body': the result is the body unchanged,
 * or the body without one list entry equal to mech, in an AuthenticationSASL
 * message, at a name boundary.
 */
static void check_sasl_removal(const uint8_t *body, size_t len, const char *mech)
{
	size_t mlen = strlen(mech) + 1; /* the entry with its NUL */
	uint8_t *c = copy_exact(body, len);
	size_t n = pgwire_sasl_remove_mechanism(c, len, mech);
	bool found = false;

	FUZZ_CHECK(n <= len);
	if (n == len) {
		FUZZ_CHECK(len == 0 || memcmp(c, body, len) == 0);
		free(c);
		return;
	}
	FUZZ_CHECK(len >= 5 && pgwire_get_u32(body) == PGWIRE_AUTH_SASL);
	FUZZ_CHECK(n + mlen == len);
	for (size_t o = 4; o + mlen <= len && !found; o++) {
		found = (o == 4 || body[o - 1] == 0) && memcmp(body + o, mech, mlen) == 0 &&
			memcmp(c, body, o) == 0 && memcmp(c + o, body + o + mlen, len - o - mlen) == 0;
	}
	FUZZ_CHECK(found);
	free(c);
}

static void check_sasl(const uint8_t *body, size_t len)
{
	check_sasl_removal(body, len, PLUS);
	check_sasl_removal(body, len, "SCRAM-SHA-256");
	check_sasl_removal(body, len, "");
}

/* ------------------------------------------------------------------ stream */

static void check_body(uint8_t type, const uint8_t *body, size_t len)
{
	switch (type) {
	case PGWIRE_MSG_ERROR:
	case 'N': /* NoticeResponse has the same fields */
		check_error_body(body, len);
		break;
	case PGWIRE_MSG_PARAMETER_STATUS:
		check_parameter_status(body, len);
		break;
	case PGWIRE_MSG_AUTH:
		check_sasl(body, len);
		break;
	default:
		break;
	}
}

static void check_stream(const uint8_t *data, size_t size)
{
	size_t pos = 0;

	while (pos < size) {
		size_t avail = size - pos, hlen = avail < PGWIRE_HEADER_LEN ? avail : PGWIRE_HEADER_LEN;
		uint8_t *c = copy_exact(data + pos, hlen);
		struct pgwire_header h, h5;
		enum pgwire_result r = pgwire_read_header(data + pos, avail, STREAM_MAX_LEN, &h);

		/* The header alone decides: its bytes by themselves give the same answer. */
		FUZZ_CHECK(pgwire_read_header(c, hlen, STREAM_MAX_LEN, &h5) == r);
		free(c);
		if (r == PGWIRE_INCOMPLETE) {
			FUZZ_CHECK(avail < PGWIRE_HEADER_LEN);
			return;
		}
		FUZZ_CHECK(avail >= PGWIRE_HEADER_LEN);
		if (r == PGWIRE_ERROR) {
			uint32_t len = pgwire_get_u32(data + pos + 1);

			FUZZ_CHECK(len < 4 || len > STREAM_MAX_LEN);
			return;
		}
		FUZZ_CHECK(r == PGWIRE_OK);
		FUZZ_CHECK(h.type == data[pos] && h.len == pgwire_get_u32(data + pos + 1));
		FUZZ_CHECK(h.len >= 4 && h.len <= STREAM_MAX_LEN);
		FUZZ_CHECK(h5.type == h.type && h5.len == h.len);
		if (avail - PGWIRE_HEADER_LEN < pgwire_body_len(&h))
			return; /* body not all here yet */
		check_body(h.type, data + pos + PGWIRE_HEADER_LEN, pgwire_body_len(&h));
		pos += 1 + h.len;
	}
}

/* ----------------------------------------------------------------- startup */

static enum pgwire_result startup_prefix(const uint8_t *data, size_t k)
{
	uint8_t *c = copy_exact(data, k);
	struct pgwire_startup s;
	const char *why;
	enum pgwire_result r = pgwire_parse_startup(c, k, &s, &why);

	free(c);
	return r;
}

static void check_startup(const uint8_t *data, size_t size)
{
	uint8_t *c = copy_exact(data, size);
	struct pgwire_startup s;
	const char *why = "unset";
	enum pgwire_result r = pgwire_parse_startup(c, size, &s, &why);

	switch (r) {
	case PGWIRE_INCOMPLETE:
		FUZZ_CHECK(why == NULL);
		FUZZ_CHECK(size < 8 || size < pgwire_get_u32(c));
		break;
	case PGWIRE_ERROR:
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		/* No prefix of a refused packet is ever accepted. */
		if (size > 8)
			FUZZ_CHECK(startup_prefix(data, 8) != PGWIRE_OK);
		break;
	case PGWIRE_OK:
		FUZZ_CHECK(why == NULL);
		FUZZ_CHECK(s.len >= 8 && s.len <= size && s.len <= PGWIRE_STARTUP_MAX);
		FUZZ_CHECK(s.len == pgwire_get_u32(c) && s.code == pgwire_get_u32(c + 4));
		switch (s.kind) {
		case PGWIRE_STARTUP_SSL:
			FUZZ_CHECK(s.code == PGWIRE_SSL_REQUEST && s.len == 8);
			break;
		case PGWIRE_STARTUP_GSSENC:
			FUZZ_CHECK(s.code == PGWIRE_GSSENC_REQUEST && s.len == 8);
			break;
		case PGWIRE_STARTUP_CANCEL:
			FUZZ_CHECK(s.code == PGWIRE_CANCEL_REQUEST && s.len == PGWIRE_CANCEL_LEN);
			FUZZ_CHECK(s.cancel_pid == pgwire_get_u32(c + 8));
			FUZZ_CHECK(s.cancel_key == pgwire_get_u32(c + 12));
			break;
		case PGWIRE_STARTUP_V3:
			FUZZ_CHECK(s.code >> 16 == PGWIRE_PROTO_MAJOR_V3);
			FUZZ_CHECK(c[s.len - 1] == 0);
			FUZZ_CHECK(s.user != NULL && s.user[0] != '\0');
			check_inside(s.user, c, s.len);
			FUZZ_CHECK(s.database != NULL && s.database[0] != '\0');
			check_inside(s.database, c, s.len);
			if (s.application_name)
				check_inside(s.application_name, c, s.len);
			break;
		default:
			FUZZ_CHECK(!"unknown startup kind");
		}
		/* Every proper prefix of an accepted packet is merely incomplete. */
		FUZZ_CHECK(startup_prefix(data, 0) == PGWIRE_INCOMPLETE);
		FUZZ_CHECK(startup_prefix(data, 7) == PGWIRE_INCOMPLETE);
		if (s.len > 8) {
			FUZZ_CHECK(startup_prefix(data, 8) == PGWIRE_INCOMPLETE);
			FUZZ_CHECK(startup_prefix(data, s.len / 2 > 8 ? s.len / 2 : 8) == PGWIRE_INCOMPLETE);
			FUZZ_CHECK(startup_prefix(data, s.len - 1) == PGWIRE_INCOMPLETE);
		}
		break;
	default:
		FUZZ_CHECK(!"unknown result");
	}
	free(c);
}

/* ------------------------------------------------------------ build, parse */

/* Takes the next NUL-terminated (or input-terminated) string from *p as a malloc'd copy. */
static char *take_string(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
	size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);

	FUZZ_CHECK(s != NULL);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += nul ? n + 1 : n;
	return s;
}

static void check_build_round_trip(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	char *sev = take_string(&p, end), *state = take_string(&p, end), *msg = take_string(&p, end);
	size_t ml = strnlen(msg, 1000);
	size_t want = 1 + 4 + 2 * (strlen(sev) + 2) + (strlen(state) + 2) + (ml + 2) + 1;
	size_t need = pgwire_build_error(NULL, 0, sev, state, msg);
	uint8_t *out, *small;
	struct pgwire_header h;
	struct pgwire_error e;

	FUZZ_CHECK(need == want);

	/* One byte short: returns the size, touches nothing. */
	small = malloc(need);
	FUZZ_CHECK(small != NULL);
	memset(small, 0x5a, need);
	FUZZ_CHECK(pgwire_build_error(small, need - 1, sev, state, msg) == need);
	for (size_t i = 0; i < need; i++)
		FUZZ_CHECK(small[i] == 0x5a);
	free(small);

	out = malloc(need);
	FUZZ_CHECK(out != NULL);
	FUZZ_CHECK(pgwire_build_error(out, need, sev, state, msg) == need);
	FUZZ_CHECK(pgwire_read_header(out, need, UINT32_MAX, &h) == PGWIRE_OK);
	FUZZ_CHECK(h.type == PGWIRE_MSG_ERROR && (size_t)h.len + 1 == need);
	FUZZ_CHECK(out[need - 1] == 0);
	FUZZ_CHECK(pgwire_parse_error(out + PGWIRE_HEADER_LEN, pgwire_body_len(&h), &e));
	FUZZ_CHECK(e.severity && strcmp(e.severity, sev) == 0);
	FUZZ_CHECK(e.sqlstate && strcmp(e.sqlstate, state) == 0);
	FUZZ_CHECK(e.message && strlen(e.message) == ml && memcmp(e.message, msg, ml) == 0);
	FUZZ_CHECK(!e.schema && !e.table && !e.constraint);
	free(out);
	free(sev);
	free(state);
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_stream(data, size);
	check_startup(data, size);
	check_error_body(data, size);
	check_parameter_status(data, size);
	check_sasl(data, size);
	/* The same bytes as the mechanism list of an AuthenticationSASL message. */
	{
		uint8_t *sasl = malloc(size + 4);

		FUZZ_CHECK(sasl != NULL);
		pgwire_put_u32(sasl, PGWIRE_AUTH_SASL);
		if (size)
			memcpy(sasl + 4, data, size);
		check_sasl(sasl, size + 4);
		free(sasl);
	}
	check_build_round_trip(data, size);
	return 0;
}
