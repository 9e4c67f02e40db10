/*
 * What the files of the rewrite rules share, and nothing else should use:
 * rules.c (dispatch by statement, the plan being built, CREATE INDEX, DROP
 * and VALIDATE CONSTRAINT, --allow-unsafe), rules_constraint.c (ADD FOREIGN
 * KEY, CHECK, UNIQUE, PRIMARY KEY, and SET NOT NULL's helper CHECK),
 * rules_table.c (new objects, brief ALTER TABLE forms, refusals with a
 * recipe), rules_set.c (SET lines), rules_volatility.c (what a default
 * calls) and rules_cut.c (foreign keys cut out of a statement).
 * The public interface is rules.h.
 */
#ifndef PGVALVE_COORDINATOR_RULES_INTERNAL_H
#define PGVALVE_COORDINATOR_RULES_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgvalve/pgtree.h"
#include "plan.h"
#include "rules.h"
#include "strbuf.h"

enum rules_outcome {
	RULE_DONE,
	RULE_UNSUPPORTED, /* no rule covers it: c->why says what; refused, or run as written */
	RULE_FAILED,      /* a rule covers it but cannot rewrite it faithfully: err is set */
};

#define RULES_MAX_RENAMES 16   /* table renames one file may make */
#define RULES_MAX_FUNCTIONS 64 /* functions one file creates that the rules remember */

/* One rules_plan() call, at one statement. */
struct rules_ctx {
	struct plan *p;
	const struct rules_options *opt;
	struct input_error *err;
	int input;       /* the statement being planned */
	const char *sql; /* its text */
	size_t len;
	int cap_constraints, cap_drops, cap_steps;
	char why[256];    /* RULE_UNSUPPORTED: what no rule covers, or why it is refused */
	char recipe[512]; /* RULE_UNSUPPORTED from rules_refuse(): the safe recipe ("" otherwise) */
	int cap_refusals;
	char search_path[PLAN_NAME_MAX]; /* SET search_path's first schema ("": none set) */
	char search_list[512];           /* the whole list, quoted: "a", "b" */
	/* ALTER TABLE … RENAME TO earlier in the file: a later statement naming either name is refused */
	struct rules_rename {
		struct qname from, to;
		int line;
	} renames[RULES_MAX_RENAMES];
	int n_renames;
	int renamed_new, renamed_old; /* 1 + the rename whose new / old name this statement names; 0 none */
	/* CREATE FUNCTION earlier in the file: a default calling one is judged by what the file says */
	struct rules_function {
		char name[PLAN_NAME_MAX];
		bool is_volatile;
	} functions[RULES_MAX_FUNCTIONS];
	int n_functions;
};

/* The table an ALTER TABLE names, and whether ONLY kept it from recursing to children. */
struct rules_target {
	struct qname table;
	bool only;
};

/* A step to add. */
struct rules_step {
	enum step_kind kind;
	enum plan_phase phase;
	enum plan_lock lock;
	enum plan_hold hold;
	const struct qname *table;
	const struct qname *other; /* NULL: none */
	const struct qname *index; /* NULL: none */
	int constraint, drop;
};

/* RULE_UNSUPPORTED, with what no rule covers in c->why. */
/* rules_set.c: a SET statement of the file (VariableSetStmt 'node'). */
enum rules_outcome rules_set(struct rules_ctx *c, const cJSON *node);

/*
 * rules_set.c: whether SelectStmt 'node' is SELECT set_config('search_path',
 * VALUE, false), as pg_dump writes it; '*value' then points at VALUE.
 */
bool rules_set_config_search_path(const cJSON *node, const char **value);

/*
 * rules_volatility.c: the functions default expression 'n' calls — the first
 * volatile one into 'volatile_fn' (left "" when none), those whose
 * volatility only pg_proc knows into 'unknown' (comma-separated, for the
 * preflight). False when 'unknown' overflows or a call cannot be read.
 */
bool rules_default_calls(const struct rules_ctx *c, const cJSON *n, char volatile_fn[PLAN_NAME_MAX],
			 char *unknown, size_t cap);

__attribute__((format(printf, 2, 3))) enum rules_outcome rules_unsupported(struct rules_ctx *c,
									   const char *fmt, ...);

/*
 * RULE_UNSUPPORTED for a statement a rule recognizes as unsafe (it rewrites
 * or scans a table under a strong lock): c->why says why, c->recipe the safe
 * way. Refused, or with --allow-unsafe run as written.
 */
__attribute__((format(printf, 3, 4))) enum rules_outcome rules_refuse(struct rules_ctx *c, const char *recipe,
								      const char *fmt, ...);

/* RULE_FAILED, with c->err set to the statement's file and line and the message. */
__attribute__((format(printf, 2, 3))) enum rules_outcome rules_failed(struct rules_ctx *c, const char *fmt,
								      ...);

/*
 * Parses one statement: its node ({"AlterTableStmt": {...}}) inside *doc,
 * which the caller deletes. NULL with 'msg' set when it does not parse, is
 * not exactly one statement, or nests deeper than cJSON reads.
 */
const cJSON *rules_parse_one(const char *sql, cJSON **doc, char *msg, size_t cap);

/* A list of String nodes (column names) into names[]; false past PLAN_MAX_COLUMNS or on another node. */
bool rules_name_list(const cJSON *list, char names[][PLAN_NAME_MAX], int *n);

/* A RangeVar into a qname (resolved: rules_resolve); false for a three-part name (database.schema.table). */
bool rules_range_var(struct rules_ctx *c, const cJSON *rv, struct qname *q);

/* Notes in c->renamed_new / renamed_old when 'q' is a table an earlier RENAME TO renamed (either name). */
void rules_note_renamed(struct rules_ctx *c, const struct qname *q);

/* A qname with no schema gets SET search_path's first schema, when the file set one. */
void rules_resolve(const struct rules_ctx *c, struct qname *q);

/* Whether two names are the same (schema and name). */
bool rules_qname_eq(const struct qname *a, const struct qname *b);

/* The statement's text, at most 120 bytes on one line ("…" when cut); 'out' holds 124. */
void rules_excerpt(const char *sql, char out[124]);

/* rules_table.c: CREATE TABLE and the other new objects, COMMENT ON, SET, the brief ALTER TABLE forms, refusals. */
/* Whether this plan creates table 'q' (rules_table.c). */
bool rules_created(const struct plan *p, const struct qname *q);

/* rules_cut.c: cutting foreign keys out of a statement run as written. */
#define RULES_MAX_CUT 32 /* foreign keys cut out of one statement */

/* One span of a statement's text to cut: [start, end). */
struct rules_cut {
	size_t start, end;
};

/* A whole table element (a CREATE TABLE constraint) at 'loc', with the comma that separates it. */
struct rules_cut rules_cut_table_element(const char *sql, size_t len, size_t loc);

/* 'sql' without the cuts, trailing white space trimmed; NULL when cuts overlap. The caller frees it. */
char *rules_cut_apply(const char *sql, size_t len, struct rules_cut *cuts, int n);

/* Whether 'sql' parses to exactly 'want' (a statement: {"<kind>": {…}}), positions aside. */
bool rules_cut_reads_as(const char *sql, const cJSON *want);

/*
 * The REFERENCES constraints of a ColumnDef ('col', its fields) to tables
 * other than 'self' and those the file creates: each pushed to ks[] as a
 * table constraint (with the DEFERRABLE / INITIALLY DEFERRED the parser
 * keeps apart; the caller deletes them), its span to cuts[], and removed
 * from 'copy' (the same ColumnDef in the tree to compare with). False past
 * RULES_MAX_CUT or without a position.
 */
bool rules_cut_column_fks(struct rules_ctx *c, const cJSON *col, cJSON *copy, const struct qname *self,
			  cJSON *ks[], struct rules_cut cuts[], int *n);

/* Adds the keys cut out of a statement on 'table' (deleting ks[]): NOT VALID at cutover, then VALIDATE. */
enum rules_outcome rules_cut_add_fks(struct rules_ctx *c, const struct qname *table, cJSON *ks[], int n);

/* *handled false when rules_table.c has no rule for a statement of this kind; 'stmt': {"<kind>": {…}}. */
enum rules_outcome rules_table_statement(struct rules_ctx *c, const char *kind, const cJSON *stmt,
					 bool *handled);
/*
 * An ALTER TABLE ('stmt': {"AlterTableStmt": …}) whose subcommands change
 * columns; *handled false when none does (the constraint rules take it).
 */
enum rules_outcome rules_table_alter(struct rules_ctx *c, const struct rules_target *t, const cJSON *stmt,
				     bool *handled);
/* Whether an earlier cutover step of this plan alters 'table': its new indexes are built after the cutover. */
bool rules_table_altered_at_cutover(const struct rules_ctx *c, const struct qname *table);

/* The earlier drop of 'name' on 'table' in this plan, or -1. */
int rules_dropped_before(const struct plan *p, const struct qname *table, const char *name);

/* Adds a constraint (taking its fk_tail and check_expr); returns its index. */
int rules_push_constraint(struct rules_ctx *c, struct plan_constraint *k);

/* Adds a step running 'sql', which it takes. */
void rules_push_step(struct rules_ctx *c, const struct rules_step *s, char *sql);

/* ALTER TABLE [ONLY] t VALIDATE CONSTRAINT c: no hold (SHARE UPDATE EXCLUSIVE lets reads and writes run). */
void rules_push_validate(struct rules_ctx *c, const struct rules_target *t, const char *name,
			 const struct qname *other, int constraint);

/* "schema"."name" (or "name" unqualified). */
void rules_put_qname(struct strbuf *b, const struct qname *q);

/* ("a", "b") */
void rules_put_columns(struct strbuf *b, char cols[][PLAN_NAME_MAX], int n);

/* "ALTER TABLE [ONLY] t " */
void rules_put_alter(struct strbuf *b, const struct rules_target *t);

/* The ALTER TABLE … ADD CONSTRAINT and SET NOT NULL rules (rules_constraint.c); 'con' is a Constraint's fields. */
enum rules_outcome rules_foreign_key(struct rules_ctx *c, const struct rules_target *t, const cJSON *con);
enum rules_outcome rules_check(struct rules_ctx *c, const struct rules_target *t, const cJSON *con);
enum rules_outcome rules_unique(struct rules_ctx *c, const struct rules_target *t, const cJSON *con,
				bool primary);
enum rules_outcome rules_not_null(struct rules_ctx *c, const struct rules_target *t, const char *column);

/* keychange.c: ALTER COLUMN … TYPE bigint (keychange_wants), recorded for keychange_resolve(). */
enum rules_outcome keychange_rule(struct rules_ctx *c, const struct rules_target *t, const char *column);

#endif
