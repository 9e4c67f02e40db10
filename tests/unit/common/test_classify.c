/*
 * Unit tests for common/classify.c, written against the contract in
 * include/pgvalve/classify.h and docs/architecture.md ("classification"):
 * which tables a SQL string reads and writes, the flags (unknown,
 * transaction control, DDL), name folding and truncation, the fail-closed
 * cases, hostile input, and the matching rules of classify_access_to().
 * Every SQL string is handed over in a malloc'd buffer of exactly its
 * length with no NUL after it, so the Asan build catches a read past
 * 'len'. The suite runs on one thread with a 16 MiB stack, as the proxy's
 * workers do; inputs that could exhaust even that run in a forked copy of
 * it, so a crash fails one test, not all.
 *
 * Table cases report every disagreement (SQL, expected, actual) before the
 * test fails, so one run lists them all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pgvalve/classify.h"

#define U CLASSIFY_UNKNOWN
#define TX CLASSIFY_TX_CONTROL
#define DDL CLASSIFY_DDL
#define ALL_FLAGS (CLASSIFY_UNKNOWN | CLASSIFY_TX_CONTROL | CLASSIFY_DDL)

/*
 * The access a case expects. R: read, and not written. W: written; whether
 * the written table is also reported as read is not fixed by the contract
 * and a hold does not care. RW: both read and written.
 */
enum want_access { R = 1, W = 2, RW = 3 };

struct want_ref {
	const char *schema; /* "" when unqualified */
	const char *name;   /* NULL ends the list */
	enum want_access access;
};

#define MAX_WANT 8
#define REF(n, a)        \
	{                \
		"", n, a \
	}
#define QREF(s, n, a)   \
	{               \
		s, n, a \
	}

/*
 * One statement case. 'flags' is exact except for the bits in 'any', which
 * the contract leaves open for that statement (whether COPY, TRUNCATE or
 * LOCK count as "a utility statement on a table", whether SET TRANSACTION
 * is transaction control). When 'flags' has
 * CLASSIFY_UNKNOWN only that bit is checked: a hold treats the statement as
 * touching everything, so its refs do not matter. 'or_unknown' accepts
 * CLASSIFY_UNKNOWN besides the exact answer, for statements the contract
 * lets the classifier give up on. The refs must match as a set: no table
 * missing, none extra, each (schema, name) once.
 */
struct scase {
	const char *sql;
	size_t len; /* 0: strlen(sql) */
	unsigned flags;
	unsigned any;
	bool or_unknown;
	struct want_ref refs[MAX_WANT];
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
/* A literal with NULs in it: its length is the array's, not strlen's. */
#define BYTES(s) .sql = s, .len = sizeof(s) - 1

static const struct classify_options dflt = { .parse_max_bytes = 65536 };
static const struct classify_options raised = { .parse_max_bytes = 16u << 20 };
static const struct classify_options scs_off = {
	.parse_max_bytes = 65536,
	.standard_conforming_strings_off = true,
};

static int n_cases; /* statement cases checked, reported at the end */

/* Allocation in a test or a forked child: there is nothing to recover. */
static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

/* The concatenation of the NULL-terminated string arguments, malloc'd. */
static char *cat(const char *first, ...)
{
	va_list ap;
	size_t len = 0;
	char *s, *p;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		len += strlen(a);
	va_end(ap);
	p = s = xmalloc(len + 1);
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		memcpy(p, a, strlen(a));
		p += strlen(a);
	}
	va_end(ap);
	*p = '\0';
	return s;
}

/* 'unit' n times, malloc'd. */
static char *repeat(const char *unit, size_t n)
{
	size_t u = strlen(unit);
	char *s = xmalloc(u * n + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(s + i * u, unit, u);
	s[u * n] = '\0';
	return s;
}

/*
 * Classifies exactly len bytes given in a buffer of that size (no NUL after
 * it) into a result filled with junk first, so that nothing the classifier
 * forgets to set can pass for an answer.
 */
static void classify_exact(const char *sql, size_t len, const struct classify_options *o,
			   struct classify_result *out)
{
	char *buf = xmalloc(len);

	memcpy(buf, sql, len);
	memset(out, 0xa5, sizeof(*out));
	classify_sql(buf, len, o, out);
	free(buf);
}

/* What is wrong with the shape of 'r' whatever the SQL was, or NULL. */
static const char *malformed(const struct classify_result *r)
{
	if (r->n_refs < 0 || r->n_refs > CLASSIFY_MAX_REFS)
		return "n_refs out of range";
	if (r->flags & ~(unsigned)ALL_FLAGS)
		return "undefined flag bits set";
	if ((r->flags & U) && (!r->unknown_reason || !r->unknown_reason[0]))
		return "unknown without a reason";
	for (int i = 0; i < r->n_refs; i++) {
		const struct classify_ref *f = &r->refs[i];

		if (!memchr(f->schema, '\0', sizeof(f->schema)) || !memchr(f->name, '\0', sizeof(f->name)))
			return "a name not NUL-terminated within CLASSIFY_NAME_MAX";
		if (!f->name[0])
			return "an empty table name";
		if (f->access == 0 || (f->access & ~(CLASSIFY_READ | CLASSIFY_WRITE)))
			return "access neither read nor write";
		if (r->flags & U)
			continue;
		for (int j = 0; j < i; j++)
			if (!strcmp(r->refs[j].schema, f->schema) && !strcmp(r->refs[j].name, f->name))
				return "the same table listed twice";
	}
	return NULL;
}

static bool access_ok(uint8_t got, enum want_access w)
{
	switch (w) {
	case R:
		return got == CLASSIFY_READ;
	case W:
		return (got & CLASSIFY_WRITE) && !(got & ~(CLASSIFY_READ | CLASSIFY_WRITE));
	case RW:
		return got == (CLASSIFY_READ | CLASSIFY_WRITE);
	}
	return false;
}

static bool matches(const struct scase *c, const struct classify_result *r)
{
	int n = 0;

	if (c->flags & U)
		return r->flags & U;
	if (r->flags & U)
		return c->or_unknown;
	if ((r->flags & ~c->any) != (c->flags & ~c->any))
		return false;
	while (n < MAX_WANT && c->refs[n].name)
		n++;
	if (r->n_refs != n)
		return false;
	for (int i = 0; i < n; i++) {
		int j;

		for (j = 0; j < r->n_refs; j++)
			if (!strcmp(r->refs[j].schema, c->refs[i].schema) &&
			    !strcmp(r->refs[j].name, c->refs[i].name))
				break;
		if (j == r->n_refs || !access_ok(r->refs[j].access, c->refs[i].access))
			return false;
	}
	return true;
}

/* Printing of mismatches. Each returns a static buffer: one at a time. */

static void put_escaped(char *out, size_t cap, const char *s, size_t len, size_t shown)
{
	size_t o = 0;

	for (size_t i = 0; i < len && i < shown && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
	}
	if (len > shown)
		snprintf(out + o, cap - o, "... (%zu bytes)", len);
	else
		out[o] = '\0';
}

static const char *show_sql(const char *sql, size_t len)
{
	static char buf[1024];

	put_escaped(buf, sizeof(buf), sql, len, 160);
	return buf;
}

static void put_flags(char *out, size_t cap, unsigned f)
{
	snprintf(out, cap, "%s%s%s%s", f & U ? "UNKNOWN " : "", f & TX ? "TX_CONTROL " : "",
		 f & DDL ? "DDL " : "", f & ALL_FLAGS ? "" : "0 ");
}

static const char *access_name(unsigned a)
{
	static const char *names[] = { "-", "R", "W", "RW" };

	return a < 4 ? names[a] : "?";
}

static const char *show_want(const struct scase *c)
{
	static char buf[2048];
	size_t o;

	put_flags(buf, sizeof(buf), c->flags);
	o = strlen(buf);
	if (c->any)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "(DDL/TX open: %#x) ", c->any);
	if (c->flags & U)
		return buf;
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "{");
	for (int i = 0; i < MAX_WANT && c->refs[i].name; i++) {
		char n[160];

		put_escaped(n, sizeof(n), c->refs[i].name, strlen(c->refs[i].name), 70);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s%s%s:%s", i ? ", " : "",
				      c->refs[i].schema, c->refs[i].schema[0] ? "." : "", n,
				      c->refs[i].access == W ? "W(+R ok)" : access_name(c->refs[i].access));
	}
	snprintf(buf + o, sizeof(buf) - o, "}%s", c->or_unknown ? " or UNKNOWN" : "");
	return buf;
}

static const char *show_result(const struct classify_result *r)
{
	static char buf[8192];
	size_t o;

	put_flags(buf, sizeof(buf), r->flags);
	o = strlen(buf);
	if (r->flags & U)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "(\"%s\") ",
				      r->unknown_reason ? r->unknown_reason : "(null)");
	if (r->n_refs < 0 || r->n_refs > CLASSIFY_MAX_REFS) {
		snprintf(buf + o, sizeof(buf) - o, "n_refs=%d", r->n_refs);
		return buf;
	}
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "{");
	for (int i = 0; i < r->n_refs && o + 200 < sizeof(buf); i++) {
		const struct classify_ref *f = &r->refs[i];
		char s[160], n[160];

		put_escaped(s, sizeof(s), f->schema, strnlen(f->schema, sizeof(f->schema)), 70);
		put_escaped(n, sizeof(n), f->name, strnlen(f->name, sizeof(f->name)), 70);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s%s%s:%s", i ? ", " : "", s,
				      s[0] ? "." : "", n, access_name(f->access));
	}
	snprintf(buf + o, sizeof(buf) - o, "}");
	return buf;
}

/*
 * Classifies 'sql' and compares with 'c', printing any disagreement.
 * Uses no cmocka assertion, so that it can run in a forked child.
 */
static bool check_sql(const struct scase *c, const char *sql, size_t len, const struct classify_options *o)
{
	struct classify_result r;
	const char *bad;

	n_cases++;
	classify_exact(sql, len, o, &r);
	bad = malformed(&r);
	if (!bad && matches(c, &r))
		return true;
	print_error("MISMATCH  sql:      %s\n"
		    "          expected: %s\n"
		    "          actual:   %s%s%s\n",
		    show_sql(sql, len), show_want(c), show_result(&r), bad ? "  -- " : "", bad ? bad : "");
	return false;
}

static bool check_case(const struct scase *c, const struct classify_options *o)
{
	return check_sql(c, c->sql, c->len ? c->len : strlen(c->sql), o);
}

static void run_cases(const char *what, const struct scase *cases, size_t n, const struct classify_options *o)
{
	int bad = 0;

	for (size_t i = 0; i < n; i++)
		if (!check_case(&cases[i], o))
			bad++;
	if (bad)
		fail_msg("%s: %d of %zu statements classified against the contract", what, bad, n);
}

#define RUN(cases, o) run_cases(__func__, cases, N(cases), o)

/* ---- Reads ---- */

static void test_select(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT 1" },
		{ .sql = "SELECT" },
		{ .sql = "VALUES (1), (2)" },
		{ .sql = "SELECT 'DELETE FROM t'" },
		{ .sql = "SELECT * FROM t", .refs = { REF("t", R) } },
		{ .sql = "SELECT a, b FROM t WHERE c = 1 ORDER BY a LIMIT 10", .refs = { REF("t", R) } },
		{ .sql = "SELECT t.a FROM t WHERE t.b = $1", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM ONLY t", .refs = { REF("t", R) } },
		{ .sql = "TABLE t", .refs = { REF("t", R) } },
		{ .sql = "SELECT x.a FROM t AS x(a, b)", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t TABLESAMPLE SYSTEM (10)", .refs = { REF("t", R) } },
		/* a view is named like a table and held like one */
		{ .sql = "SELECT * FROM active_users_view", .refs = { REF("active_users_view", R) } },
		{ .sql = "SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c USING (id) CROSS JOIN s.d",
		  .refs = { REF("a", R), REF("b", R), REF("c", R), QREF("s", "d", R) } },
		{ .sql = "SELECT * FROM a NATURAL FULL JOIN (b JOIN c ON true)",
		  .refs = { REF("a", R), REF("b", R), REF("c", R) } },
		{ .sql = "SELECT * FROM a WHERE id IN (SELECT id FROM b) AND EXISTS (SELECT 1 FROM c WHERE "
			 "c.x = a.x)",
		  .refs = { REF("a", R), REF("b", R), REF("c", R) } },
		{ .sql = "SELECT (SELECT max(x) FROM b), lower((SELECT name FROM c LIMIT 1)), ARRAY(SELECT "
			 "id FROM d) FROM a",
		  .refs = { REF("a", R), REF("b", R), REF("c", R), REF("d", R) } },
		{ .sql = "SELECT * FROM (SELECT * FROM (SELECT * FROM t) x) y", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.id = a.id) l",
		  .refs = { REF("a", R), REF("b", R) } },
		{ .sql = "SELECT id FROM a UNION SELECT id FROM b INTERSECT SELECT id FROM c EXCEPT ALL "
			 "SELECT id FROM d",
		  .refs = { REF("a", R), REF("b", R), REF("c", R), REF("d", R) } },
		{ .sql = "SELECT x, count(*) FROM a GROUP BY x HAVING count(*) > (SELECT count(*) FROM b) "
			 "ORDER BY (SELECT 1 FROM c LIMIT 1)",
		  .refs = { REF("a", R), REF("b", R), REF("c", R) } },
		{ .sql = "SELECT CASE WHEN EXISTS (SELECT 1 FROM b) THEN 1 ELSE 0 END FROM a WHERE x = ANY "
			 "(SELECT x FROM c)",
		  .refs = { REF("a", R), REF("b", R), REF("c", R) } },
		{ .sql = "SELECT * FROM generate_series(1, 3) AS g(n) JOIN t ON t.id = g.n",
		  .refs = { REF("t", R) } },
	};

	RUN(cases, &dflt);
}

/* FOR UPDATE/SHARE takes ROW SHARE, which does not conflict with SHARE ROW EXCLUSIVE. */
static void test_select_for_update(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT * FROM t WHERE id = 1 FOR UPDATE", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t FOR SHARE", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t FOR NO KEY UPDATE NOWAIT", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t FOR KEY SHARE SKIP LOCKED", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)",
		  .refs = { REF("t", R), REF("u", R) } },
		/* "OF x" names the alias, not a table */
		{ .sql = "SELECT * FROM t x JOIN u y ON x.id = y.id FOR UPDATE OF x",
		  .refs = { REF("t", R), REF("u", R) } },
	};

	RUN(cases, &dflt);
}

/* ---- Writes ---- */

static void test_insert(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "INSERT INTO t VALUES (1)", .refs = { REF("t", W) } },
		{ .sql = "INSERT INTO t (a, b) VALUES (1, 2), (3, 4) RETURNING id, a",
		  .refs = { REF("t", W) } },
		{ .sql = "INSERT INTO t DEFAULT VALUES", .refs = { REF("t", W) } },
		{ .sql = "INSERT INTO t SELECT * FROM u WHERE u.x > 0",
		  .refs = { REF("t", W), REF("u", R) } },
		{ .sql = "INSERT INTO t (a) SELECT a FROM u JOIN v USING (id)",
		  .refs = { REF("t", W), REF("u", R), REF("v", R) } },
		{ .sql = "INSERT INTO t VALUES ((SELECT max(id) FROM u) + 1)",
		  .refs = { REF("t", W), REF("u", R) } },
		{ .sql = "INSERT INTO t WITH c AS (SELECT * FROM u) SELECT * FROM c",
		  .refs = { REF("t", W), REF("u", R) } },
		{ .sql = "INSERT INTO t SELECT * FROM t", .refs = { REF("t", RW) } },
		/* "excluded" is the proposed row, not a table */
		{ .sql = "INSERT INTO t VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET b = excluded.b",
		  .refs = { REF("t", W) } },
		{ .sql = "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", .refs = { REF("t", W) } },
		{ .sql = "INSERT INTO s.t AS x VALUES (1) ON CONFLICT ON CONSTRAINT t_pkey DO UPDATE "
			 "SET a = x.a + 1 WHERE x.a < (SELECT max(a) FROM u) RETURNING *",
		  .refs = { QREF("s", "t", W), REF("u", R) } },
	};

	RUN(cases, &dflt);
}

static void test_update_delete(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "UPDATE t SET a = 1 WHERE id = 2", .refs = { REF("t", W) } },
		{ .sql = "UPDATE t SET a = o.a FROM other o WHERE o.id = t.id",
		  .refs = { REF("t", W), REF("other", R) } },
		{ .sql = "UPDATE ONLY s.t SET a = (SELECT max(b) FROM u) WHERE id IN (SELECT id FROM v) "
			 "RETURNING *",
		  .refs = { QREF("s", "t", W), REF("u", R), REF("v", R) } },
		{ .sql = "UPDATE t SET (a, b) = (SELECT x, y FROM u WHERE u.id = t.id)",
		  .refs = { REF("t", W), REF("u", R) } },
		{ .sql = "UPDATE t SET a = 1 WHERE CURRENT OF c", .refs = { REF("t", W) } },
		{ .sql = "UPDATE active_users_view SET a = 1", .refs = { REF("active_users_view", W) } },
		{ .sql = "DELETE FROM t", .refs = { REF("t", W) } },
		{ .sql = "DELETE FROM t WHERE id = $1 RETURNING *", .refs = { REF("t", W) } },
		{ .sql = "DELETE FROM t USING u WHERE t.id = u.id", .refs = { REF("t", W), REF("u", R) } },
		{ .sql = "DELETE FROM ONLY s.t AS x USING u, v WHERE x.id = u.id AND u.k = v.k RETURNING x.*",
		  .refs = { QREF("s", "t", W), REF("u", R), REF("v", R) } },
		{ .sql = "DELETE FROM t WHERE id IN (SELECT id FROM u)",
		  .refs = { REF("t", W), REF("u", R) } },
	};

	RUN(cases, &dflt);
}

static void test_merge(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a "
			 "WHEN NOT MATCHED THEN INSERT (id, a) VALUES (s.id, s.a)",
		  .refs = { REF("t", W), REF("s", R) } },
		{ .sql = "MERGE INTO app.t AS x USING (SELECT * FROM u JOIN v USING (id)) AS src ON x.id = "
			 "src.id "
			 "WHEN MATCHED AND src.del THEN DELETE WHEN MATCHED THEN DO NOTHING",
		  .refs = { QREF("app", "t", W), REF("u", R), REF("v", R) } },
		{ .sql = "MERGE INTO t USING s.u ON t.id = u.id WHEN NOT MATCHED THEN INSERT VALUES (u.id)",
		  .refs = { REF("t", W), QREF("s", "u", R) } },
		/* the source is a CTE: what it reads is read, its name is no table */
		{ .sql = "WITH src AS (SELECT * FROM u) MERGE INTO t USING src ON t.id = src.id "
			 "WHEN NOT MATCHED THEN INSERT VALUES (src.id)",
		  .refs = { REF("t", W), REF("u", R) } },
	};

	RUN(cases, &dflt);
}

/* Whether COPY and TRUNCATE also set CLASSIFY_DDL the header leaves open. */
static void test_copy_truncate(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "COPY t FROM STDIN", .any = DDL, .refs = { REF("t", W) } },
		{ .sql = "COPY s.t (a, b) FROM STDIN WITH (FORMAT csv, HEADER true)",
		  .any = DDL,
		  .refs = { QREF("s", "t", W) } },
		{ .sql = "COPY t FROM STDIN WHERE a > 0", .any = DDL, .refs = { REF("t", W) } },
		{ .sql = "COPY t FROM PROGRAM 'gunzip < /tmp/t.gz'", .any = DDL, .refs = { REF("t", W) } },
		{ .sql = "COPY t TO PROGRAM 'gzip > /tmp/t.gz'", .any = DDL, .refs = { REF("t", R) } },
		{ .sql = "COPY t TO STDOUT", .any = DDL, .refs = { REF("t", R) } },
		{ .sql = "COPY t (a) TO STDOUT (FORMAT binary)", .any = DDL, .refs = { REF("t", R) } },
		{ .sql = "COPY (SELECT * FROM a JOIN b ON a.id = b.id) TO STDOUT",
		  .any = DDL,
		  .refs = { REF("a", R), REF("b", R) } },
		{ .sql = "COPY (DELETE FROM t RETURNING *) TO STDOUT", .any = DDL, .refs = { REF("t", W) } },
		{ .sql = "COPY (SELECT my_func()) TO STDOUT", .flags = U },
		{ .sql = "TRUNCATE a, b", .any = DDL, .refs = { REF("a", W), REF("b", W) } },
		{ .sql = "TRUNCATE TABLE ONLY s.a RESTART IDENTITY CASCADE",
		  .any = DDL,
		  .refs = { QREF("s", "a", W) } },
		{ .sql = "TRUNCATE t; SELECT * FROM t", .any = DDL, .refs = { REF("t", RW) } },
	};

	RUN(cases, &dflt);
}

/* Data-modifying CTEs, and CTE names, which are not tables within their scope only. */
static void test_ctes(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "WITH d AS (DELETE FROM a RETURNING *) SELECT * FROM d", .refs = { REF("a", W) } },
		{ .sql = "WITH u AS (UPDATE a SET x = 1 RETURNING id) INSERT INTO b SELECT id FROM u",
		  .refs = { REF("a", W), REF("b", W) } },
		{ .sql = "WITH i AS (INSERT INTO a VALUES (1) RETURNING id) SELECT * FROM i JOIN b USING "
			 "(id)",
		  .refs = { REF("a", W), REF("b", R) } },
		{ .sql = "WITH d AS (DELETE FROM a WHERE id IN (SELECT id FROM b) RETURNING id) "
			 "DELETE FROM c WHERE id IN (SELECT id FROM d)",
		  .refs = { REF("a", W), REF("b", R), REF("c", W) } },
		{ .sql = "WITH c AS (SELECT * FROM a) SELECT * FROM c", .refs = { REF("a", R) } },
		{ .sql = "WITH c AS MATERIALIZED (SELECT * FROM a FOR UPDATE) SELECT * FROM c",
		  .refs = { REF("a", R) } },
		{ .sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT "
			 "* FROM r" },
		/* the target of a DML statement is always a table, never a CTE */
		{ .sql = "WITH t AS (SELECT 1 AS x) DELETE FROM t", .refs = { REF("t", W) } },
		{ .sql = "WITH t AS (SELECT 1 AS x) INSERT INTO t SELECT x FROM t", .refs = { REF("t", W) } },
		{ .sql = "WITH t AS (SELECT 1 AS x) UPDATE t SET x = 2", .refs = { REF("t", W) } },
		/* a qualified name is never a CTE */
		{ .sql = "WITH t AS (SELECT 1 AS x) SELECT * FROM public.t",
		  .refs = { QREF("public", "t", R) } },
		/* a non-recursive CTE does not see itself, nor a later sibling */
		{ .sql = "WITH a AS (SELECT * FROM a) SELECT * FROM a", .refs = { REF("a", R) } },
		{ .sql = "WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b",
		  .refs = { REF("a", R) } },
		/* a CTE name does not leak out of its query or statement */
		{ .sql = "SELECT * FROM x, (WITH x AS (SELECT 1) SELECT * FROM x) s",
		  .refs = { REF("x", R) } },
		{ .sql = "WITH a AS (SELECT 1) SELECT * FROM a; SELECT * FROM a", .refs = { REF("a", R) } },
	};

	RUN(cases, &dflt);
}

/* ---- Names ---- */

static void test_names(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT * FROM \"MixedCase\"", .refs = { REF("MixedCase", R) } },
		{ .sql = "SELECT * FROM MixedCase", .refs = { REF("mixedcase", R) } },
		{ .sql = "SELECT * FROM \"t\"", .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM s.t", .refs = { QREF("s", "t", R) } },
		{ .sql = "SELECT * FROM \"S\".\"T\"", .refs = { QREF("S", "T", R) } },
		{ .sql = "SELECT * FROM MySchema.MyTable", .refs = { QREF("myschema", "mytable", R) } },
		{ .sql = "SELECT * FROM \"my table\"", .refs = { REF("my table", R) } },
		{ .sql = "SELECT * FROM \"a\"\"b\"", .refs = { REF("a\"b", R) } },
		{ .sql = "SELECT * FROM \"select\"", .refs = { REF("select", R) } },
		{ .sql = "SELECT * FROM U&\"\\0074ab\"", .refs = { REF("tab", R) } },
		/* PostgreSQL folds ASCII letters only in a multibyte encoding */
		{ .sql = "SELECT * FROM \xc3\x84RGER", .refs = { REF("\xc3\x84rger", R) } },
		{ .sql = "INSERT INTO \"Orders\" VALUES (1)", .refs = { REF("Orders", W) } },
		{ .sql = "UPDATE Public.Orders SET a = 1", .refs = { QREF("public", "orders", W) } },
		/* quotes and semicolons inside a quoted name are part of it */
		{ .sql = "SELECT * FROM \"a';DELETE FROM t;--\"", .refs = { REF("a';DELETE FROM t;--", R) } },
	};

	RUN(cases, &dflt);
}

/* ---- Multi-statement strings: the union ---- */

static void test_multi_statement(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT * FROM t; DELETE FROM t", .refs = { REF("t", RW) } },
		{ .sql = "DELETE FROM t; SELECT * FROM t", .refs = { REF("t", RW) } },
		{ .sql = "SELECT * FROM t; DELETE FROM T", .refs = { REF("t", RW) } },
		{ .sql = "SELECT * FROM \"T\"; DELETE FROM t", .refs = { REF("T", R), REF("t", W) } },
		{ .sql = "SELECT * FROM t; SELECT * FROM s.t", .refs = { REF("t", R), QREF("s", "t", R) } },
		{ .sql = "SELECT * FROM a; INSERT INTO b VALUES (1); UPDATE s.c SET x = 1",
		  .refs = { REF("a", R), REF("b", W), QREF("s", "c", W) } },
		{ .sql = "SELECT * FROM t;;; SELECT * FROM u;", .refs = { REF("t", R), REF("u", R) } },
		{ .sql = "SELECT 1; SELECT * FROM t", .refs = { REF("t", R) } },
		{ .sql = "BEGIN; UPDATE t SET a = 1; COMMIT", .flags = TX, .refs = { REF("t", W) } },
		{ .sql = "SELECT * FROM t; CALL p()", .flags = U },
	};

	RUN(cases, &dflt);
}

/* ---- Utility statements ---- */

static void test_ddl(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
		  .flags = DDL,
		  .refs = { REF("t", W) } },
		/* a foreign key takes SHARE ROW EXCLUSIVE on the referenced table too */
		{ .sql = "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES p (id)",
		  .flags = DDL,
		  .refs = { REF("t", W), REF("p", W) } },
		{ .sql = "ALTER TABLE s.t ADD CONSTRAINT fk FOREIGN KEY (pid) REFERENCES s.p (id) NOT VALID",
		  .flags = DDL,
		  .refs = { QREF("s", "t", W), QREF("s", "p", W) } },
		{ .sql = "ALTER TABLE t VALIDATE CONSTRAINT c", .flags = DDL, .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE t DROP CONSTRAINT c", .flags = DDL, .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE ONLY t ALTER COLUMN a SET NOT NULL",
		  .flags = DDL,
		  .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i",
		  .flags = DDL,
		  .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE t ALTER COLUMN a TYPE bigint USING a::bigint",
		  .flags = DDL,
		  .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE t RENAME TO u", .flags = DDL, .refs = { REF("t", W) } },
		{ .sql = "ALTER TABLE s.t RENAME COLUMN a TO b", .flags = DDL, .refs = { QREF("s", "t", W) } },
		{ .sql = "CREATE INDEX ON t (a)", .flags = DDL, .refs = { REF("t", W) } },
		{ .sql = "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t USING btree (lower(a)) "
			 "WHERE b IS NOT NULL",
		  .flags = DDL,
		  .refs = { QREF("s", "t", W) } },
		{ .sql = "DROP TABLE t", .flags = DDL, .refs = { REF("t", W) } },
		{ .sql = "DROP TABLE IF EXISTS s.t, u CASCADE",
		  .flags = DDL,
		  .refs = { QREF("s", "t", W), REF("u", W) } },
		{ .sql = "DROP TABLE \"T\"", .flags = DDL, .refs = { REF("T", W) } },
		{ .sql = "BEGIN; ALTER TABLE t ADD COLUMN c int; COMMIT",
		  .flags = TX | DDL,
		  .refs = { REF("t", W) } },
		/* DDL that calls a user function runs it */
		{ .sql = "CREATE INDEX ON t (my_func(a))", .flags = U },
		{ .sql = "ALTER TABLE t ADD CONSTRAINT c CHECK (my_check(a))", .flags = U },
		{ .sql = "ALTER TABLE t ADD COLUMN c int DEFAULT my_func()", .flags = U },
	};

	RUN(cases, &dflt);
}

/*
 * Other utility statements on tables: the classifier may give up on them,
 * but if it answers, the answer must cover the lock. DROP INDEX locks the
 * index's table, which its text does not name: only UNKNOWN is right.
 */
static void test_other_utility(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "LOCK TABLE t", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		{ .sql = "LOCK TABLE s.t IN ACCESS EXCLUSIVE MODE",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { QREF("s", "t", W) } },
		{ .sql = "CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { REF("t", W) } },
		{ .sql = "REFRESH MATERIALIZED VIEW mv",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { REF("mv", W) } },
		{ .sql = "VACUUM FULL t", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		{ .sql = "CLUSTER t USING i", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		{ .sql = "REINDEX TABLE t", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		{ .sql = "DECLARE c CURSOR FOR SELECT * FROM t", .or_unknown = true, .refs = { REF("t", R) } },
		{ .sql = "DEALLOCATE ALL", .or_unknown = true },
		{ .sql = "LOCK TABLE t IN ROW EXCLUSIVE MODE",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { REF("t", W) } },
		{ .sql = "LOCK TABLE t IN ACCESS SHARE MODE",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { REF("t", R) } },
		{ .sql = "CREATE TABLE c (id int, pid int REFERENCES p (id))",
		  .flags = DDL,
		  .refs = { REF("c", W), REF("p", W) } },
		{ .sql = "CREATE VIEW v AS SELECT * FROM t",
		  .flags = DDL,
		  .refs = { REF("v", W), REF("t", R) } },
		{ .sql = "CREATE TABLE x AS SELECT my_func()", .flags = U },
		{ .sql = "ALTER TABLE t ALTER COLUMN a SET DEFAULT my_func()", .flags = U },
		/* these name the table as a plain name list, and lock it */
		{ .sql = "COMMENT ON TABLE t IS 'x'",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { REF("t", W) } },
		{ .sql = "DROP TRIGGER trg ON t", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		{ .sql = "DROP POLICY p ON s.t",
		  .any = DDL,
		  .or_unknown = true,
		  .refs = { QREF("s", "t", W) } },
		{ .sql = "DROP RULE r ON t", .any = DDL, .or_unknown = true, .refs = { REF("t", W) } },
		/* these lock tables their text does not name */
		{ .sql = "DROP INDEX i", .flags = U },
		{ .sql = "DROP INDEX CONCURRENTLY s.i", .flags = U },
		{ .sql = "REINDEX INDEX i", .flags = U },
		{ .sql = "REINDEX SCHEMA app", .flags = U },
		{ .sql = "CLUSTER", .flags = U },
		{ .sql = "VACUUM", .flags = U },
		{ .sql = "VACUUM FULL", .flags = U },
		{ .sql = "ANALYZE", .flags = U },
	};

	RUN(cases, &dflt);
}

static void test_tx_control(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "BEGIN", .flags = TX },
		{ .sql = "BEGIN ISOLATION LEVEL SERIALIZABLE", .flags = TX },
		{ .sql = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", .flags = TX },
		{ .sql = "COMMIT", .flags = TX },
		{ .sql = "END", .flags = TX },
		{ .sql = "COMMIT AND CHAIN", .flags = TX },
		{ .sql = "ROLLBACK", .flags = TX },
		{ .sql = "ABORT", .flags = TX },
		{ .sql = "SAVEPOINT sp", .flags = TX },
		{ .sql = "RELEASE SAVEPOINT sp", .flags = TX },
		{ .sql = "RELEASE sp", .flags = TX },
		{ .sql = "ROLLBACK TO SAVEPOINT sp", .flags = TX },
		{ .sql = "PREPARE TRANSACTION 'x'", .flags = TX },
		{ .sql = "COMMIT PREPARED 'x'", .flags = TX },
		{ .sql = "ROLLBACK PREPARED 'x'", .flags = TX },
		{ .sql = "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", .any = TX },
	};

	RUN(cases, &dflt);
}

static void test_session_commands(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SET search_path TO app, public" },
		{ .sql = "SET LOCAL statement_timeout = '5s'" },
		{ .sql = "RESET ALL" },
		{ .sql = "SHOW search_path" },
		{ .sql = "SHOW ALL" },
		{ .sql = "LISTEN ch" },
		{ .sql = "UNLISTEN *" },
		{ .sql = "NOTIFY ch, 'payload'" },
		{ .sql = "DISCARD ALL" },
		{ .sql = "DISCARD PLANS" },
		/*
		 * The server parses a whole Query string before running any of
		 * it: the SET applies from the next message on, so here 'a\' is
		 * a string and the DELETE is real.
		 */
		{ .sql = "SET standard_conforming_strings = off; SELECT 'a\\'; DELETE FROM t; --'",
		  .refs = { REF("t", W) } },
	};

	RUN(cases, &dflt);
}

/* ---- Functions ---- */

static void test_functions(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT lower(name), count(*), now(), nextval('s') FROM t",
		  .refs = { REF("t", R) } },
		{ .sql = "SELECT jsonb_build_object('a', 1), coalesce(NULL, 1), greatest(1, 2), nullif(1, "
			 "2)" },
		{ .sql = "SELECT LOWER('A'), Count(*) FROM t", .refs = { REF("t", R) } },
		{ .sql = "SELECT \"lower\"('A')" },
		{ .sql = "SELECT pg_catalog.lower('A')" },
		/* SQL-syntax forms the grammar turns into pg_catalog calls */
		{ .sql = "SELECT extract(year FROM now()), substring(name FROM 1 FOR 2), trim(both FROM "
			 "name), "
			 "position('a' IN name), overlay(name PLACING 'x' FROM 1), now() AT TIME ZONE 'UTC' "
			 "FROM t",
		  .refs = { REF("t", R) } },
		{ .sql = "SELECT row_number() OVER (ORDER BY a), sum(b) FILTER (WHERE b > 0) FROM t",
		  .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM generate_series(1, 10) AS g, unnest(ARRAY[1, 2]) AS u" },
		{ .sql = "SELECT CAST(a AS text), a::int, current_user, current_timestamp FROM t",
		  .refs = { REF("t", R) } },
		{ .sql = "SELECT my_func FROM t", .refs = { REF("t", R) } }, /* a column, not a call */
		{ .sql = "SELECT my_func(1)", .flags = U },
		{ .sql = "SELECT app.f()", .flags = U },
		{ .sql = "SELECT public.lower('A')", .flags = U },
		{ .sql = "SELECT \"LOWER\"('A')", .flags = U },
		{ .sql = "SELECT \"pg_catalog.lower\"('A')", .flags = U },
		{ .sql = "SELECT * FROM t WHERE my_func(a)", .flags = U },
		{ .sql = "SELECT lower(my_func(a)) FROM t", .flags = U },
		{ .sql = "SELECT * FROM t ORDER BY my_func(a)", .flags = U },
		{ .sql = "SELECT * FROM my_srf()", .flags = U },
		{ .sql = "SELECT * FROM t WHERE a IN (SELECT my_func(b) FROM u)", .flags = U },
		{ .sql = "SELECT my_agg(a) FROM t", .flags = U },
		{ .sql = "UPDATE t SET a = my_func(a)", .flags = U },
		{ .sql = "INSERT INTO t VALUES (my_func())", .flags = U },
		{ .sql = "SELECT * FROM t; SELECT my_func()", .flags = U },
		/* an operator named in a schema other than pg_catalog is a user function */
		{ .sql = "SELECT a OPERATOR(pg_catalog.+) b FROM t", .refs = { REF("t", R) } },
		{ .sql = "SELECT a OPERATOR(app.===) b FROM t", .flags = U },
	};

	RUN(cases, &dflt);
}

/* CALL, DO, EXECUTE run what the text does not show; PREPARE and EXPLAIN show it. */
static void test_indirect(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "CALL p()", .flags = U },
		{ .sql = "CALL app.p(1, 'x')", .flags = U },
		{ .sql = "DO $$BEGIN DELETE FROM t; END$$", .flags = U },
		{ .sql = "DO LANGUAGE plpgsql $body$ BEGIN PERFORM 1; END $body$", .flags = U },
		{ .sql = "EXECUTE stmt", .flags = U },
		{ .sql = "EXECUTE stmt (1, 'x')", .flags = U },
		{ .sql = "PREPARE s AS INSERT INTO t VALUES ($1)", .refs = { REF("t", W) } },
		{ .sql = "PREPARE s (int) AS SELECT * FROM t WHERE id = $1", .refs = { REF("t", R) } },
		{ .sql = "PREPARE s AS SELECT my_func()", .flags = U },
		{ .sql = "EXPLAIN SELECT * FROM t", .refs = { REF("t", R) } },
		{ .sql = "EXPLAIN ANALYZE DELETE FROM t", .refs = { REF("t", W) } },
		{ .sql = "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 FROM u WHERE u.id = t.id",
		  .refs = { REF("t", W), REF("u", R) } },
		/* planning alone takes the target's ROW EXCLUSIVE lock */
		{ .sql = "EXPLAIN INSERT INTO t VALUES (1)", .refs = { REF("t", W) } },
		{ .sql = "EXPLAIN ANALYZE SELECT my_func()", .flags = U },
	};

	RUN(cases, &dflt);
}

/* ---- Text that is not a statement ---- */

static void test_parse_errors(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELEC 1", .flags = U },
		{ .sql = "SELECT * FROM", .flags = U },
		{ .sql = "SELECT 1; DELETE FROM", .flags = U },
		{ .sql = "DELETE t", .flags = U },
		{ .sql = "SELECT 'abc", .flags = U },
		{ .sql = "SELECT $$abc", .flags = U },
		{ .sql = "SELECT 1 /* unterminated", .flags = U },
		{ .sql = "SELECT * FROM \"\"", .flags = U },
		{ .sql = "SELECT (1", .flags = U },
		{ .sql = "INSERT INTO t VALUES (1", .flags = U },
		{ .sql = "SELECT * FROM t WHERE", .flags = U },
		{ .sql = "\x01\x02\x03", .flags = U },
	};

	RUN(cases, &dflt);
}

static void test_empty(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "" },
		{ .sql = "   \n\t  " },
		{ .sql = "-- only a comment" },
		{ .sql = "/* c */" },
		{ .sql = "/* a /* nested */ still a comment */" },
		{ .sql = ";" },
		{ .sql = " ; ; " },
		{ .sql = "-- c\n;" },
	};

	RUN(cases, &dflt);
}

/* The classifier splits statements as the server does: quotes, escapes, comments. */
static void test_quoting_tricks(void **state)
{
	static const struct scase cases[] = {
		/* E'\'' is a quote inside the string: one statement */
		{ .sql = "SELECT E'\\'; DELETE FROM t; --'" },
		{ .sql = "SELECT E'\\x27; DELETE FROM t; --'" },
		/* with standard_conforming_strings on, 'a\' ends at the second quote */
		{ .sql = "SELECT 'a\\'; DELETE FROM t; --'", .refs = { REF("t", W) } },
		{ .sql = "SELECT E'\\\\'; DELETE FROM t; --'", .refs = { REF("t", W) } },
		{ .sql = "SELECT 'a'';DELETE FROM t;--'" },
		{ .sql = "SELECT U&'\\0027; DELETE FROM t; --'" },
		{ .sql = "SELECT $$'; DELETE FROM t; --$$" },
		{ .sql = "SELECT $a$ $$; DELETE FROM t; $$ $a$" },
		{ .sql = "SELECT 1 -- ; DELETE FROM t" },
		{ .sql = "SELECT 1 /* ; DELETE FROM t */" },
		{ .sql = "/* /* */ DELETE FROM t; */ SELECT 1" },
		{ .sql = "SELECT 1 --\n; DELETE FROM t", .refs = { REF("t", W) } },
		{ .sql = "SELECT 1 -- x\r; DELETE FROM t", .refs = { REF("t", W) } },
		{ .sql = "SELECT \"a';DELETE FROM t;--\" FROM u", .refs = { REF("u", R) } },
	};

	RUN(cases, &dflt);
}

/* With standard_conforming_strings off, even harmless text is unknown. */
static void test_scs_off(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT 1", .flags = U },
		{ .sql = "SELECT * FROM t", .flags = U },
		{ .sql = "BEGIN", .flags = U },
		{ .sql = "SELECT E'\\'; DELETE FROM t; --'", .flags = U },
		{ .sql = "SELECT 'a\\'; DELETE FROM t; --'", .flags = U },
	};

	RUN(cases, &scs_off);
}

/* A NUL ends the SQL, as it does on the server; nothing past 'len' is read. */
static void test_nul_and_len(void **state)
{
	static const struct scase cases[] = {
		{ BYTES("SELECT * FROM a\0; DELETE FROM b"), .refs = { REF("a", R) } },
		{ BYTES("\0DELETE FROM b") },
		{ BYTES("SELECT * FROM a\0 garbage ((( '"), .refs = { REF("a", R) } },
		{ BYTES("DELETE FROM a\0\0\0"), .refs = { REF("a", W) } },
		{ BYTES("SELECT * FROM\0 a"), .flags = U },
		{ .sql = "SELECT * FROM a; DELETE FROM b", .len = 15, .refs = { REF("a", R) } },
		{ .sql = "SELECT * FROM abc", .len = 15, .refs = { REF("a", R) } },
	};
	const struct scase zero = { .sql = "DELETE FROM t" };

	RUN(cases, &dflt);
	assert_true(check_sql(&zero, zero.sql, 0, &dflt));
}

/* Whatever the bytes, the call returns a well-formed answer that misses no write. */
static void test_invalid_utf8(void **state)
{
	static const struct scase cases[] = {
		{ .sql = "SELECT * FROM t\xff\xfe", .or_unknown = true, .refs = { REF("t\xff\xfe", R) } },
		{ .sql = "DELETE FROM \xed\xa0\x80x",
		  .or_unknown = true,
		  .refs = { REF("\xed\xa0\x80x", W) } },
		{ .sql = "SELECT '\xff\xfe\x80' FROM t", .or_unknown = true, .refs = { REF("t", R) } },
		{ .sql = "SELECT * FROM t WHERE a = '\xc3'; DELETE FROM u",
		  .or_unknown = true,
		  .refs = { REF("t", R), REF("u", W) } },
		{ .sql = "SELECT * FROM t WHERE a = E'\xe2\x82'; DELETE FROM u",
		  .or_unknown = true,
		  .refs = { REF("t", R), REF("u", W) } },
		{ .sql = "SELECT \"\xc3\" FROM t; DELETE FROM u",
		  .or_unknown = true,
		  .refs = { REF("t", R), REF("u", W) } },
	};
	/* a broken multibyte character where PostgreSQL truncates names */
	static const char *const tails[] = { "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xff", "\xc3\xa9\xc3" };
	char *a62 = repeat("a", 62);
	int bad = 0;

	RUN(cases, &dflt);
	for (size_t i = 0; i < N(tails); i++) {
		char *sql = cat("DELETE FROM ", a62, tails[i], "bbbb", NULL);
		struct classify_result r;
		const char *why;

		classify_exact(sql, strlen(sql), &dflt, &r);
		why = malformed(&r);
		if (!why && !(r.flags & U) &&
		    (r.n_refs != 1 || !(r.refs[0].access & CLASSIFY_WRITE) ||
		     strncmp(r.refs[0].name, a62, 62) != 0))
			why = "not the one written table";
		if (why) {
			print_error("MISMATCH  sql: %s\n          actual: %s -- %s\n",
				    show_sql(sql, strlen(sql)), show_result(&r), why);
			bad++;
		}
		free(sql);
	}
	free(a62);
	if (bad)
		fail_msg("%d truncations at a broken character went wrong", bad);
}

/* ---- Limits ---- */

static void test_parse_max_bytes(void **state)
{
	const struct classify_options small = { .parse_max_bytes = 1000 };
	const char *head = "SELECT * FROM t WHERE a = '";
	char *pad = repeat("x", 1000 - strlen(head) - 1);
	char *sql = cat(head, pad, "'", " ", NULL); /* 1001 bytes */
	const struct scase fits = { .sql = sql, .len = 1000, .refs = { REF("t", R) } };
	const struct scase over = { .sql = "", .flags = U };
	char *big = repeat("SELECT 1; ", 6554); /* 65540 bytes */

	assert_int_equal(strlen(sql), 1001);
	assert_true(check_sql(&fits, sql, 1000, &small));
	sql[999] = ' ';
	sql[1000] = '\'';
	assert_true(check_sql(&over, sql, 1001, &small));
	assert_true(check_sql(&over, big, strlen(big), &dflt));
	free(big);
	free(pad);
	free(sql);
}

/* 'n' distinct tables t0..t(n-1), in one statement or one statement each. */
static char *many_tables(int n, bool separate, const char *schema)
{
	size_t cap = (size_t)n * 40 + 64, o = 0;
	char *s = xmalloc(cap);

	o += (size_t)snprintf(s + o, cap - o, "SELECT * FROM ");
	for (int i = 0; i < n; i++) {
		const char *sep = i == 0 ? "" : separate ? "; SELECT * FROM " : ", ";

		o += (size_t)snprintf(s + o, cap - o, "%s%s%st%d", sep, schema ? schema : "",
				      schema ? "." : "", i);
	}
	return s;
}

static bool has_ref(const struct classify_result *r, const char *schema, const char *name, uint8_t access)
{
	for (int i = 0; i < r->n_refs; i++)
		if (!strcmp(r->refs[i].schema, schema) && !strcmp(r->refs[i].name, name))
			return r->refs[i].access == access;
	return false;
}

static void test_max_refs(void **state)
{
	struct classify_result r;
	char name[16];
	char *sql, *a, *b;
	const struct scase unknown = { .sql = "", .flags = U };
	const struct scase one_t = { .sql = "", .refs = { REF("t", R) } };

	/* exactly CLASSIFY_MAX_REFS: all of them, read */
	sql = many_tables(CLASSIFY_MAX_REFS, false, NULL);
	classify_exact(sql, strlen(sql), &dflt, &r);
	n_cases++;
	assert_null(malformed(&r));
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_refs, CLASSIFY_MAX_REFS);
	for (int i = 0; i < CLASSIFY_MAX_REFS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_true(has_ref(&r, "", name, CLASSIFY_READ));
	}
	free(sql);

	/* s.tN and tN are distinct: 32 + 32 fit */
	a = many_tables(CLASSIFY_MAX_REFS / 2, false, "s");
	b = many_tables(CLASSIFY_MAX_REFS / 2, false, NULL);
	sql = cat(a, "; ", b, NULL);
	classify_exact(sql, strlen(sql), &dflt, &r);
	n_cases++;
	assert_null(malformed(&r));
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_refs, CLASSIFY_MAX_REFS);
	assert_true(has_ref(&r, "s", "t0", CLASSIFY_READ));
	assert_true(has_ref(&r, "", "t0", CLASSIFY_READ));
	free(sql);
	free(a);
	free(b);

	/* one more: unknown, in one statement or across several */
	sql = many_tables(CLASSIFY_MAX_REFS + 1, false, NULL);
	assert_true(check_sql(&unknown, sql, strlen(sql), &dflt));
	free(sql);
	sql = many_tables(CLASSIFY_MAX_REFS + 1, true, NULL);
	assert_true(check_sql(&unknown, sql, strlen(sql), &dflt));
	free(sql);
	sql = many_tables(500, true, "s");
	assert_true(check_sql(&unknown, sql, strlen(sql), &dflt));
	free(sql);

	/* the same table a thousand times is one table */
	sql = repeat("SELECT * FROM t; ", 1000);
	assert_true(check_sql(&one_t, sql, strlen(sql), &dflt));
	free(sql);
}

/* Names longer than NAMEDATALEN - 1 bytes are cut as PostgreSQL cuts them. */
static void test_long_identifiers(void **state)
{
	char *a63 = repeat("a", 63), *a100 = repeat("a", 100), *a10k = repeat("a", 10000);
	char *A63 = repeat("A", 63), *A100 = repeat("A", 100);
	char *s63 = repeat("s", 63), *s80 = repeat("s", 80), *t63 = repeat("t", 63), *t90 = repeat("t", 90);
	char *e31 = repeat("\xc3\xa9", 31), *e40 = repeat("\xc3\xa9", 40);
	char *a64 = repeat("a", 64);
	struct {
		char *sql;
		struct scase want;
	} cases[] = {
		{ cat("SELECT * FROM ", a63, NULL), { .refs = { REF(a63, R) } } },
		{ cat("SELECT * FROM ", a64, NULL), { .refs = { REF(a63, R) } } },
		{ cat("SELECT * FROM ", a100, NULL), { .refs = { REF(a63, R) } } },
		{ cat("SELECT * FROM ", a10k, NULL), { .refs = { REF(a63, R) } } },
		{ cat("SELECT * FROM \"", A100, "\"", NULL), { .refs = { REF(A63, R) } } },
		{ cat("DELETE FROM ", A100, NULL), { .refs = { REF(a63, W) } } },
		{ cat("SELECT * FROM ", s80, ".", t90, NULL), { .refs = { QREF(s63, t63, R) } } },
		{ cat("SELECT * FROM \"", s80, "\".\"", t90, "\"", NULL), { .refs = { QREF(s63, t63, R) } } },
		/* a two-byte character is not split: 62 bytes are kept */
		{ cat("SELECT * FROM ", e40, NULL), { .refs = { REF(e31, R) } } },
		{ cat("SELECT * FROM \"", e40, "\"", NULL), { .refs = { REF(e31, R) } } },
		/* names equal in their first 63 bytes are the same table */
		{ cat("SELECT * FROM ", a63, "x; DELETE FROM ", a63, "y", NULL),
		  { .refs = { REF(a63, RW) } } },
	};
	char *names[] = { a63, a64, a100, a10k, A63, A100, s63, s80, t63, t90, e31, e40 };
	int bad = 0;

	for (size_t i = 0; i < N(cases); i++) {
		if (!check_sql(&cases[i].want, cases[i].sql, strlen(cases[i].sql), &dflt))
			bad++;
		free(cases[i].sql);
	}
	for (size_t i = 0; i < N(names); i++)
		free(names[i]);
	if (bad)
		fail_msg("%d of %zu long identifiers classified against the contract", bad, N(cases));
}

/* ---- Hostile input, each in a forked copy of this 16 MiB-stack thread ---- */

struct hostile {
	const char *what;
	char *sql;
	size_t len;
	const struct classify_options *opt;
	struct scase want;
};

/*
 * Runs the case in a child so that a crash or a hang fails this test only,
 * and says whether it went right. The child restores default signal
 * handling (cmocka's handlers would resume the suite inside the child) and
 * has 30 s.
 */
static bool run_hostile(const struct hostile *h)
{
	int st;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };

		for (size_t i = 0; i < N(sigs); i++)
			signal(sigs[i], SIG_DFL);
		alarm(30);
		_exit(check_sql(&h->want, h->sql, h->len, h->opt) ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	n_cases++;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return true;
	if (WIFSIGNALED(st))
		print_error("HOSTILE   %s (%zu bytes, parse_max_bytes %zu): killed by signal %d (%s)\n",
			    h->what, h->len, h->opt->parse_max_bytes, WTERMSIG(st), strsignal(WTERMSIG(st)));
	else if (WEXITSTATUS(st) == 3)
		print_error("HOSTILE   %s (%zu bytes, parse_max_bytes %zu): wrong answer\n", h->what, h->len,
			    h->opt->parse_max_bytes);
	else
		print_error("HOSTILE   %s (%zu bytes, parse_max_bytes %zu): child exited %d (sanitizer "
			    "report above?)\n",
			    h->what, h->len, h->opt->parse_max_bytes, WEXITSTATUS(st));
	return false;
}

/*
 * Runs one input at the default limit (it is longer: unknown) and at 16 MiB
 * ('at_16m'); returns how many of the two went wrong.
 */
static int run_hostile_pair(const char *what, char *sql, const struct scase *at_16m)
{
	struct hostile h = {
		.what = what, .sql = sql, .len = strlen(sql), .opt = &dflt, .want = { .sql = "", .flags = U }
	};
	int bad = 0;

	assert_true(h.len > dflt.parse_max_bytes);
	bad += !run_hostile(&h);
	h.opt = &raised;
	h.want = *at_16m;
	bad += !run_hostile(&h);
	free(sql);
	return bad;
}

#define HOSTILE_DONE(bad)                                                              \
	do {                                                                           \
		if (bad)                                                               \
			fail_msg("%s: %d hostile input(s) went wrong", __func__, bad); \
	} while (0)

static void test_hostile_parentheses(void **state)
{
	/* 1 MB: SELECT ((((...1...)))) */
	const size_t n = 500000;
	char *open = repeat("(", n), *close = repeat(")", n);
	const struct scase want = { .sql = "", .or_unknown = true };

	int bad = run_hostile_pair("1 MB of nested parentheses", cat("SELECT ", open, "1", close, NULL),
				   &want);

	free(open);
	free(close);
	HOSTILE_DONE(bad);
}

static void test_hostile_subselects(void **state)
{
	const size_t n = 100000;
	char *open = repeat("SELECT * FROM (", n), *close = repeat(") s", n);
	char *open20 = repeat("SELECT * FROM (", 20), *close20 = repeat(") s", 20);
	const struct scase want = { .sql = "", .or_unknown = true, .refs = { REF("t", R) } };
	const struct scase exact = { .sql = "", .refs = { REF("u", W) } };
	char *sql;
	int bad = run_hostile_pair("100k nested subselects", cat(open, "SELECT * FROM t", close, NULL),
				   &want);

	/* twenty levels is ordinary SQL and must be judged */
	sql = cat("DELETE FROM u WHERE id IN (", open20, "SELECT 1", close20, ")", NULL);
	assert_true(check_sql(&exact, sql, strlen(sql), &dflt));
	free(sql);
	free(open);
	free(close);
	free(open20);
	free(close20);
	HOSTILE_DONE(bad);
}

/*
 * Left-associative chains nest the parse tree as deep as they are long
 * without growing the grammar's stack: a+a+...+a, and UNION chains.
 */
static void test_hostile_long_chains(void **state)
{
	const struct scase want = { .sql = "", .or_unknown = true, .refs = { REF("t", R) } };
	struct hostile h = { .opt = &dflt, .want = want };
	char *terms;
	int bad = 0;

	/* as long as the default limit allows */
	terms = repeat("a+", (dflt.parse_max_bytes - 32) / 2);
	h.what = "a+a+...+a at the default limit";
	h.sql = cat("SELECT ", terms, "a FROM t", NULL);
	h.len = strlen(h.sql);
	assert_true(h.len <= dflt.parse_max_bytes);
	bad += !run_hostile(&h);
	free(h.sql);
	free(terms);

	terms = repeat(" UNION SELECT a FROM t", (dflt.parse_max_bytes - 32) / 22);
	h.what = "UNION chain at the default limit";
	h.sql = cat("SELECT a FROM t", terms, NULL);
	h.len = strlen(h.sql);
	assert_true(h.len <= dflt.parse_max_bytes);
	bad += !run_hostile(&h);
	free(h.sql);
	free(terms);

	/* 1 MB of each, with the limit raised */
	terms = repeat("a+", 500000);
	bad += run_hostile_pair("1 MB of a+a+...+a", cat("SELECT ", terms, "a FROM t", NULL), &want);
	free(terms);
	terms = repeat(" UNION SELECT a FROM t", 1000000 / 22);
	bad += run_hostile_pair("1 MB UNION chain", cat("SELECT a FROM t", terms, NULL), &want);
	free(terms);
	HOSTILE_DONE(bad);
}

static void test_hostile_string_literal(void **state)
{
	/* Just under CLASSIFY_PARSE_MAX_LIMIT: over the default limit; parsed and judged when raised. */
	char *x = repeat("x", CLASSIFY_PARSE_MAX_LIMIT - 64);
	const struct scase want = { .sql = "", .refs = { REF("t", R) } };
	int bad = run_hostile_pair("string literal near the parse cap",
				   cat("SELECT * FROM t WHERE a = '", x, "'", NULL), &want);
	/* 10 MiB: never parsed, whatever parse_max_bytes says (the stack bound in classify.h). */
	char *big = repeat("x", 10u << 20), *sql = cat("SELECT * FROM t WHERE a = '", big, "'", NULL);
	struct classify_result r;

	classify_sql(sql, strlen(sql), &raised, &r);
	assert_true(r.flags & U);
	free(sql);
	free(big);
	free(x);
	HOSTILE_DONE(bad);
}

/* A result is filled in whole on every call, whatever it held before. */
static void test_result_reused(void **state)
{
	struct classify_result r;
	const char *q1 = "SELECT * FROM a, b, c", *q2 = "CALL p()", *q3 = "DELETE FROM d", *q4 = "SELECT 1";

	memset(&r, 0, sizeof(r));
	classify_sql(q1, strlen(q1), &dflt, &r);
	assert_int_equal(r.n_refs, 3);
	classify_sql(q2, strlen(q2), &dflt, &r);
	assert_true(r.flags & U);
	classify_sql(q3, strlen(q3), &dflt, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_refs, 1);
	assert_string_equal(r.refs[0].name, "d");
	assert_true(r.refs[0].access & CLASSIFY_WRITE);
	classify_sql(q4, strlen(q4), &dflt, &r);
	assert_int_equal(r.flags, 0);
	assert_int_equal(r.n_refs, 0);
	n_cases += 4;
}

/* ---- classify_access_to() ---- */

static void add_ref(struct classify_result *r, const char *schema, const char *name, uint8_t access)
{
	struct classify_ref *f = &r->refs[r->n_refs++];

	snprintf(f->schema, sizeof(f->schema), "%s", schema);
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->access = access;
}

static void test_access_to_rules(void **state)
{
	const uint8_t rd = CLASSIFY_READ, wr = CLASSIFY_WRITE, rw = CLASSIFY_READ | CLASSIFY_WRITE;
	struct classify_result r;

	/* an unqualified ref matches the name in any schema */
	memset(&r, 0, sizeof(r));
	add_ref(&r, "", "t", rd);
	add_ref(&r, "s", "u", wr);
	add_ref(&r, "", "MixedCase", rd);
	add_ref(&r, "s", "tab", rd);
	assert_int_equal(classify_access_to(&r, "", "t"), rd);
	assert_int_equal(classify_access_to(&r, "public", "t"), rd);
	assert_int_equal(classify_access_to(&r, "s", "t"), rd);
	/* a qualified ref matches only exactly, or a held table given unqualified */
	assert_int_equal(classify_access_to(&r, "s", "u"), wr);
	assert_int_equal(classify_access_to(&r, "", "u"), wr);
	assert_int_equal(classify_access_to(&r, "public", "u"), 0);
	assert_int_equal(classify_access_to(&r, "x", "u"), 0);
	/* names compare as folded, byte for byte */
	assert_int_equal(classify_access_to(&r, "", "T"), 0);
	assert_int_equal(classify_access_to(&r, "S", "u"), 0);
	assert_int_equal(classify_access_to(&r, "s", "U"), 0);
	assert_int_equal(classify_access_to(&r, "", "MixedCase"), rd);
	assert_int_equal(classify_access_to(&r, "", "mixedcase"), 0);
	/* no prefix matches either way */
	assert_int_equal(classify_access_to(&r, "", "tt"), 0);
	assert_int_equal(classify_access_to(&r, "s", "ta"), 0);
	assert_int_equal(classify_access_to(&r, "s", "table"), 0);
	assert_int_equal(classify_access_to(&r, "ss", "u"), 0);
	assert_int_equal(classify_access_to(&r, "", "nope"), 0);
	assert_int_equal(classify_access_to(&r, "s", "nope"), 0);

	/* several refs to one held table: the union */
	memset(&r, 0, sizeof(r));
	add_ref(&r, "", "t", rd);
	add_ref(&r, "s", "t", wr);
	assert_int_equal(classify_access_to(&r, "s", "t"), rw);
	assert_int_equal(classify_access_to(&r, "x", "t"), rd);
	assert_int_equal(classify_access_to(&r, "", "t"), rw);

	memset(&r, 0, sizeof(r));
	add_ref(&r, "a", "t", rd);
	add_ref(&r, "b", "t", wr);
	assert_int_equal(classify_access_to(&r, "", "t"), rw);
	assert_int_equal(classify_access_to(&r, "a", "t"), rd);
	assert_int_equal(classify_access_to(&r, "b", "t"), wr);
	assert_int_equal(classify_access_to(&r, "c", "t"), 0);

	/* nothing referred to: no access */
	memset(&r, 0, sizeof(r));
	assert_int_equal(classify_access_to(&r, "", "t"), 0);
	assert_int_equal(classify_access_to(&r, "s", "t"), 0);
}

static void test_access_to_from_sql(void **state)
{
	const char *sql =
		"SELECT * FROM t JOIN app.u ON true; DELETE FROM \"Orders\"; UPDATE Items SET a = 1";
	struct classify_result r;

	classify_exact(sql, strlen(sql), &dflt, &r);
	n_cases++;
	assert_null(malformed(&r));
	assert_int_equal(r.flags, 0);
	assert_int_equal(classify_access_to(&r, "public", "t"), CLASSIFY_READ);
	assert_int_equal(classify_access_to(&r, "", "t"), CLASSIFY_READ);
	assert_int_equal(classify_access_to(&r, "app", "u"), CLASSIFY_READ);
	assert_int_equal(classify_access_to(&r, "", "u"), CLASSIFY_READ);
	assert_int_equal(classify_access_to(&r, "public", "u"), 0);
	assert_true(classify_access_to(&r, "", "Orders") & CLASSIFY_WRITE);
	assert_true(classify_access_to(&r, "sales", "Orders") & CLASSIFY_WRITE);
	assert_int_equal(classify_access_to(&r, "", "orders"), 0);
	assert_true(classify_access_to(&r, "", "items") & CLASSIFY_WRITE);
	assert_int_equal(classify_access_to(&r, "", "Items"), 0);
	assert_int_equal(classify_access_to(&r, "", "v"), 0);
}

static void test_builtin_function_names(void **state)
{
	static const char *const builtin[] = {
		"lower", "count",           "now",   "nextval",   "jsonb_build_object", "upper",
		"sum",   "generate_series", "btrim", "date_part", "pg_advisory_lock",
	};
	static const char *const not_builtin[] = {
		"my_func", "", "lowe", "lowerx", "lower ", "jsonb_build_objec", "f",
	};

	for (size_t i = 0; i < N(builtin); i++)
		if (!classify_is_builtin_function(builtin[i]))
			fail_msg("\"%s\" is built into PostgreSQL", builtin[i]);
	for (size_t i = 0; i < N(not_builtin); i++)
		if (classify_is_builtin_function(not_builtin[i]))
			fail_msg("\"%s\" is not built into PostgreSQL", not_builtin[i]);
}

static int suite_rc = 1;

/* The suite's thread: 16 MiB of stack, as classify.h requires and the proxy gives. */
static void *run_suite(void *arg)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_select_for_update),
		cmocka_unit_test(test_insert),
		cmocka_unit_test(test_update_delete),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_copy_truncate),
		cmocka_unit_test(test_ctes),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_multi_statement),
		cmocka_unit_test(test_ddl),
		cmocka_unit_test(test_other_utility),
		cmocka_unit_test(test_tx_control),
		cmocka_unit_test(test_session_commands),
		cmocka_unit_test(test_functions),
		cmocka_unit_test(test_indirect),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_quoting_tricks),
		cmocka_unit_test(test_scs_off),
		cmocka_unit_test(test_nul_and_len),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_parse_max_bytes),
		cmocka_unit_test(test_max_refs),
		cmocka_unit_test(test_long_identifiers),
		cmocka_unit_test(test_hostile_parentheses),
		cmocka_unit_test(test_hostile_subselects),
		cmocka_unit_test(test_hostile_long_chains),
		cmocka_unit_test(test_hostile_string_literal),
		cmocka_unit_test(test_result_reused),
		cmocka_unit_test(test_access_to_rules),
		cmocka_unit_test(test_access_to_from_sql),
		cmocka_unit_test(test_builtin_function_names),
	};

	suite_rc = cmocka_run_group_tests_name("common/classify", tests, NULL, NULL);
	printf("common/classify: %d statement cases checked\n", n_cases);
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	pthread_t th;

	setvbuf(stdout, NULL, _IONBF, 0); /* a sanitizer abort must not swallow the results */
	if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, CLASSIFY_STACK_BYTES) != 0 ||
	    pthread_create(&th, &attr, run_suite, NULL) != 0) {
		fprintf(stderr, "test_classify: cannot start the suite's thread\n");
		return 1;
	}
	pthread_join(th, NULL);
	pthread_attr_destroy(&attr);
	return suite_rc;
}
