/*
 * libpg_query's own scanner as a reference for the tests of common/sqllex.c
 * (unit) and of the parse-cache key (fuzz): the tokens pg_query_scan finds,
 * decoded from its ScanResult protobuf (field 2: ScanToken {1 start, 2 end,
 * 4 token}). Header-only: each test program is its own binary.
 */
#ifndef PGVALVE_TESTS_PG_SCAN_H
#define PGVALVE_TESTS_PG_SCAN_H

#include <pg_query.h>
#include <stddef.h>
#include <stdint.h>

/* pg_query.proto's Token numbers for the literal tokens. */
enum {
	PG_SCAN_FCONST = 260,
	PG_SCAN_SCONST = 261,
	PG_SCAN_BCONST = 263,
	PG_SCAN_XCONST = 264,
	PG_SCAN_ICONST = 266
};

struct pg_scan_token {
	size_t start, end;
	int token;
};

static inline uint64_t pg_scan_varint(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;

	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	return v;
}

/*
 * The tokens of the NUL-terminated 'text' into toks[max]. Returns how many;
 * -1 when the scanner reports an error; -2 when the answer does not decode
 * or holds more than 'max' tokens (a test's own mistake: callers assert).
 */
static inline long pg_scan_tokens(const char *text, struct pg_scan_token *toks, size_t max)
{
	PgQueryScanResult r = pg_query_scan(text);
	const uint8_t *p, *end;
	long n = 0;

	if (r.error) {
		pg_query_free_scan_result(r);
		return -1;
	}
	p = (const uint8_t *)r.pbuf.data;
	end = p ? p + r.pbuf.len : p;
	while (p && p < end) {
		uint64_t tag = pg_scan_varint(&p, end), len;
		const uint8_t *m, *m_end;

		if ((tag & 7) == 0) {
			pg_scan_varint(&p, end);
			continue;
		}
		len = pg_scan_varint(&p, end);
		if ((tag & 7) != 2 || len > (uint64_t)(end - p)) {
			n = -2;
			break;
		}
		m = p;
		m_end = p + len;
		p = m_end;
		if (tag >> 3 != 2)
			continue;
		if ((size_t)n >= max) {
			n = -2;
			break;
		}
		toks[n] = (struct pg_scan_token){ 0 };
		while (m < m_end) {
			uint64_t key = pg_scan_varint(&m, m_end), v = pg_scan_varint(&m, m_end);

			if (key >> 3 == 1)
				toks[n].start = v;
			else if (key >> 3 == 2)
				toks[n].end = v;
			else if (key >> 3 == 4)
				toks[n].token = (int)v;
		}
		n++;
	}
	pg_query_free_scan_result(r);
	return n;
}

#endif
