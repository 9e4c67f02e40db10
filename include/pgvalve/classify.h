/*
 * SQL classification (docs/architecture.md, "classification"): which tables a SQL string reads and
 * writes, as far as table locks are concerned. "Write" means the statement
 * takes a lock that conflicts with SHARE ROW EXCLUSIVE: INSERT, UPDATE,
 * DELETE, MERGE, COPY FROM, TRUNCATE, data-modifying CTEs, DDL on the table.
 * SELECT ... FOR UPDATE/SHARE is a read (ROW SHARE does not conflict).
 *
 * It fails closed: whatever it cannot judge sets CLASSIFY_UNKNOWN, which a
 * hold treats as touching every held table in every mode. Parsing uses
 * libpg_query through pgvalve/pgtree.h, which recurses without a depth
 * limit: call this only on threads with stacks of CLASSIFY_STACK_BYTES, and
 * only on a fixed set of threads (libpg_query leaks one pthread key per
 * thread that ever parsed).
 */
#ifndef PGVALVE_CLASSIFY_H
#define PGVALVE_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * libpg_query's tree-to-JSON step recurses once per nesting level, about
 * 134 bytes of stack a level; an expression nests at most one level per two
 * bytes of SQL. So no text longer than CLASSIFY_PARSE_MAX_LIMIT is parsed
 * (whatever parse_max_bytes says), and parsing threads get
 * CLASSIFY_STACK_BYTES: 64 MiB for at most ~17 MiB of need.
 */
#define CLASSIFY_PARSE_MAX_LIMIT (256 * 1024)
#define CLASSIFY_STACK_BYTES (64u << 20)

#define CLASSIFY_NAME_MAX 64 /* NAMEDATALEN: longer identifiers are truncated by PostgreSQL too */
#define CLASSIFY_MAX_REFS 64 /* more distinct tables than this: CLASSIFY_UNKNOWN */

enum classify_access {
	CLASSIFY_READ = 1 << 0,
	CLASSIFY_WRITE = 1 << 1,
};

enum classify_flag {
	CLASSIFY_UNKNOWN = 1 << 0,    /* could touch any table: fail closed */
	CLASSIFY_TX_CONTROL = 1 << 1, /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ... */
	CLASSIFY_DDL = 1 << 2,        /* a utility statement on a table */
};

/* One table a statement refers to. Names are as PostgreSQL folds them. */
struct classify_ref {
	char schema[CLASSIFY_NAME_MAX]; /* "" when unqualified (matches the name in any schema) */
	char name[CLASSIFY_NAME_MAX];
	uint8_t access; /* enum classify_access bits */
};

struct classify_result {
	unsigned flags;             /* enum classify_flag bits */
	const char *unknown_reason; /* static text when CLASSIFY_UNKNOWN */
	int n_refs;
	struct classify_ref refs[CLASSIFY_MAX_REFS];
};

struct classify_options {
	size_t parse_max_bytes; /* longer SQL is not parsed: unknown (capped at CLASSIFY_PARSE_MAX_LIMIT) */
	bool standard_conforming_strings_off; /* the session's setting: 'off' means unknown */
};

/*
 * Classifies 'len' bytes of SQL (need not be NUL-terminated; a NUL inside
 * ends it, as the server would). A multi-statement string yields the union.
 * Never fails: anything it cannot judge comes back as CLASSIFY_UNKNOWN.
 */
void classify_sql(const char *sql, size_t len, const struct classify_options *opt,
		  struct classify_result *out);

/* Whether 'name' (lower case, unqualified) is a function built into PostgreSQL. */
bool classify_is_builtin_function(const char *name);

/*
 * The access 'r' has to schema.name ("" schema: unqualified). An
 * unqualified name on either side matches the name in any schema.
 */
uint8_t classify_access_to(const struct classify_result *r, const char *schema, const char *name);

#endif
