/*
 * pgvalve audit: the foreign-key graph of a database (docs/architecture.md,
 * the audit command) and what is wrong with it. This header holds the data
 * every audit module shares — the graph as read from the catalog
 * (audit_catalog.c), what the graph algorithms compute over it
 * (audit_graph.c), the findings (audit_findings.c), the suggested foreign
 * keys (audit_suggest.c) — and the entry points of the outputs
 * (audit_json.c, audit_text.c, audit_draw.c). The graph is plain data: the
 * algorithms and outputs never talk to the database, so unit tests build
 * graphs by hand.
 */
#ifndef PGVALVE_COORDINATOR_AUDIT_H
#define PGVALVE_COORDINATOR_AUDIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

#include "db.h"

#define AUDIT_NAME_MAX 64 /* NAMEDATALEN */

/* A table: a node. Partitions are not nodes: their rows count toward their root. */
struct audit_table {
	unsigned oid;
	char *schema;    /* as stored (unquoted) */
	char *name;      /* as stored (unquoted) */
	char *display;   /* quote_ident(schema).quote_ident(name): "public.orders", public."Orders" */
	long long rows;  /* estimated (reltuples, partitions summed); 0 when never analyzed */
	long long bytes; /* relpages * block_size: an estimate that takes no lock */
	bool has_pk;
	bool partitioned;
	bool in_scope; /* in the chosen schemas (a table outside them is only an FK's other end) */
	char *pk_type; /* the type of a one-column primary key, else NULL */
};

/* pg_constraint.confdeltype / confupdtype */
enum audit_action { ACT_NO_ACTION, ACT_RESTRICT, ACT_CASCADE, ACT_SET_NULL, ACT_SET_DEFAULT };

/* A foreign key: an edge from the referencing table to the referenced one. */
struct audit_fk {
	char *name;
	int from, to; /* indexes in graph.tables */
	int n_columns;
	char **columns, **ref_columns;
	char **types, **ref_types; /* format_type() of each column, the same length */
	enum audit_action on_delete, on_update;
	bool deferrable, deferred, validated;
	bool indexed;           /* a valid index's leading columns are exactly the FK's columns */
	bool match_full;        /* MATCH FULL (else SIMPLE) */
	bool ref_is_constraint; /* the referenced columns are a PRIMARY KEY or UNIQUE constraint */
};

/* A unique key (PRIMARY KEY, UNIQUE constraint or unique index) of one column, for suggestions. */
struct audit_key {
	int table;
	char *column;
	char *type;
	bool primary;
};

/* A column that might be a foreign key, for suggestions. */
struct audit_column {
	int table;
	char *name;
	char *type;
	bool indexed; /* leads a valid index */
	bool in_fk;   /* already one of a foreign key's referencing columns */
};

struct audit_graph {
	struct audit_table *tables;
	int n_tables;
	struct audit_fk *fks;
	int n_fks;
	/* Read with --suggest only. */
	struct audit_key *keys;
	int n_keys;
	struct audit_column *columns;
	int n_columns;
	/* "c<schema>\x1f<name>" of every constraint and "r<schema>\x1f<name>" of every relation in scope's schemas, sorted */
	char **constraint_names;
	int n_constraint_names;
	/* Schemas left out of the default scope because the role has no USAGE on them. */
	char **unreadable;
	int n_unreadable;
};

/* ---- the algorithms (audit_graph.c): pure, on any graph ---- */

struct audit_list {
	int *v;
	int n;
};

struct audit_analysis {
	int *scc;                  /* per table: its strongly connected component */
	struct audit_list *cycles; /* components of ≥ 2 tables, and self-referencing tables */
	int n_cycles;
	struct audit_list *chains; /* the longest chains: each table references the next */
	int n_chains;
	struct audit_list *reach; /* per table: what ON DELETE CASCADE from it reaches, BFS order */
	long long *reach_rows;    /* per table: estimated rows those tables hold */
};

/* At most this many longest chains are listed. */
#define AUDIT_MAX_CHAINS 5

void audit_analyze(const struct audit_graph *g, struct audit_analysis *a);
void audit_analysis_free(struct audit_analysis *a, int n_tables);

/*
 * Keeps only what the tables marked in 'seeds' reach (following foreign keys
 * to the tables they reference) and what reaches them (the tables that
 * reference them, transitively): 'keep' per table, filled by the call.
 */
void audit_impact(const struct audit_graph *g, const bool *seeds, bool *keep);

/* Removes the tables not in 'keep' and every foreign key touching one (indexes renumbered). */
void audit_graph_restrict(struct audit_graph *g, const bool *keep);

void audit_graph_free(struct audit_graph *g);

const char *audit_action_name(enum audit_action a); /* "no action", "cascade", ... */
const char *audit_action_sql(enum audit_action a);  /* "NO ACTION", "CASCADE", ... */

/* ---- reading the catalog (audit_catalog.c) ---- */

struct audit_scope {
	char **schemas; /* NULL/0: every schema but the system ones and pgvalve's journal */
	int n_schemas;
	bool suggest; /* also read columns, keys and constraint names */
};

/*
 * Reads the graph in one read-only transaction of a handful of catalog
 * queries, under a short lock_timeout and statement_timeout. False with
 * 'err' filled; a schema that does not exist or that the role cannot use is
 * such an error, naming it.
 */
bool audit_read(PGconn *c, const struct audit_scope *scope, struct audit_graph *g, struct db_error *err)
	__attribute__((warn_unused_result));

/* ---- findings (audit_findings.c) ---- */

enum audit_severity { SEV_INFO, SEV_WARNING, SEV_ERROR };

struct audit_finding {
	char kind[24];
	enum audit_severity severity;
	int table;        /* index in graph.tables, or -1 */
	char *constraint; /* NULL when not about one */
	char *message;
	char *hint;
	long long count; /* orphans: rows counted; -1 not counted (timed out, or not that kind) */
	char **samples;  /* orphans: a few key values, as text */
	int n_samples;
};

struct audit_findings {
	struct audit_finding *v;
	int n, cap;
	int by_severity[3];
};

/* Thresholds: a cascade is reported as fan-out from this many tables or estimated rows. */
#define AUDIT_FANOUT_TABLES 3
#define AUDIT_FANOUT_ROWS 100000LL

/* Every finding the graph and analysis show (orphans come from audit_orphans()). */
void audit_findings_build(const struct audit_graph *g, const struct audit_analysis *a,
			  struct audit_findings *f);

/* Appends one (the strings are copied); returns it. */
struct audit_finding *audit_finding_add(struct audit_findings *f, const char *kind, enum audit_severity sev,
					int table, const char *constraint, const char *hint, const char *fmt,
					...) __attribute__((format(printf, 7, 8)));

/* Sorts by severity (errors first), then kind, then table: the order people read them in. */
void audit_findings_sort(struct audit_findings *f, const struct audit_graph *g);

void audit_findings_free(struct audit_findings *f);

const char *audit_severity_name(enum audit_severity s);

/* ---- suggestions (audit_suggest.c) ---- */

struct audit_suggestion {
	int table, column;               /* column: index in graph.columns */
	int ref_table, key;              /* key: index in graph.keys */
	int score;                       /* higher first */
	char name[AUDIT_NAME_MAX];       /* the constraint name PostgreSQL would choose */
	char *sql;                       /* ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY …; */
	char index_name[AUDIT_NAME_MAX]; /* "" when an index already leads with the column */
	char *index_sql;                 /* CREATE INDEX … ON … (column); or NULL */
	long long orphans;               /* -1: not counted */
	bool orphans_timed_out;
};

struct audit_suggestions {
	struct audit_suggestion *v;
	int n;
};

/*
 * Columns that look like foreign keys without one (<name>_id, <name>Id,
 * <name>_uuid naming a table by singular or plural, same type as that
 * table's one-column primary or unique key), ranked. A column that names a
 * table whose matching column has no unique key adds a missing_unique
 * finding instead.
 */
void audit_suggest(const struct audit_graph *g, struct audit_suggestions *s, struct audit_findings *f);
void audit_suggestions_free(struct audit_suggestions *s);

/*
 * PostgreSQL's name for a new foreign key (ChooseConstraintName with
 * makeObjectName): <table>_<col>[_<col>...]_fkey in 63 bytes, the longer of
 * table and column part shortened first without splitting a UTF-8
 * character; "fkey1", "fkey2"... when 'taken' says the name exists. With
 * label "idx" it is the name CREATE INDEX would choose (ChooseRelationName).
 */
void audit_object_name(const char *table, const char *const *columns, int n_columns, const char *label,
		       bool (*taken)(const char *name, void *arg), void *arg, char out[AUDIT_NAME_MAX]);
#define audit_fk_name(table, columns, n, taken, arg, out) \
	audit_object_name(table, columns, n, "fkey", taken, arg, out)

/* ---- orphans (audit_orphans.c) ---- */

/*
 * Counts, for every foreign key not yet validated and every suggestion, the
 * rows that reference nothing, with a few samples, each count under its
 * own statement_timeout (ms) and a short lock_timeout; a count that times
 * out or cannot get its lock is a finding that says so. Adds an orphans
 * finding per key with orphans. False only when the connection is gone.
 */
bool audit_orphans(PGconn *c, const struct audit_graph *g, struct audit_suggestions *s,
		   struct audit_findings *f, int timeout_ms, struct db_error *err)
	__attribute__((warn_unused_result));

/* ---- outputs ---- */

struct audit_report {
	const struct audit_graph *g;
	const struct audit_analysis *a;
	const struct audit_findings *f;
	const struct audit_suggestions *s; /* NULL without --suggest */
	const char *scope;                 /* "schema public", "3 schemas", for the summary */
};

cJSON *audit_to_json(const struct audit_report *r);             /* audit_json.c */
void audit_print_text(FILE *out, const struct audit_report *r); /* audit_text.c */
void audit_print_dot(FILE *out, const struct audit_report *r);  /* audit_draw.c */
void audit_print_mermaid(FILE *out, const struct audit_report *r);
void audit_print_sql(FILE *out, const struct audit_report *r);

/* "12 kB", "1.2 MB": sizes for people. */
void audit_format_bytes(long long bytes, char *out, size_t cap);

#endif
