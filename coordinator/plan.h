/*
 * A migration plan (docs/architecture.md, input): the input statements, what each one
 * asks for (a constraint added, dropped or replaced; an index), and the safe
 * steps that carry it out, each with its phase, its SQL (every identifier
 * quoted), the lock it takes and the hold it needs. Built by rules.c from
 * input.c's statements; read by every command. Pure data: no database here.
 */
#ifndef PGVALVE_COORDINATOR_PLAN_H
#define PGVALVE_COORDINATOR_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#define PLAN_NAME_MAX 64    /* NAMEDATALEN */
#define PLAN_MAX_COLUMNS 32 /* INDEX_MAX_KEYS */
#define PLAN_CHECK_FUNCTIONS_MAX 256

/* A table (or index) name as PostgreSQL folds it. schema "": unqualified (search_path). */
struct qname {
	char schema[PLAN_NAME_MAX];
	char name[PLAN_NAME_MAX];
};

/* One statement of the input, as written. */
struct plan_input {
	int line; /* 1-based line of its first character in its file */
	char *file;
	char *text; /* the statement's text, trimmed */
};

enum con_type { CON_FOREIGN_KEY, CON_CHECK, CON_NOT_NULL, CON_UNIQUE, CON_PRIMARY_KEY };

/* A constraint the migration adds. */
struct plan_constraint {
	enum con_type type;
	struct qname table;
	char name[PLAN_NAME_MAX]; /* given, or generated as PostgreSQL would */
	int n_columns;            /* FK, UNIQUE, PK: the key; NOT NULL: the column */
	char columns[PLAN_MAX_COLUMNS][PLAN_NAME_MAX];
	/* FOREIGN KEY */
	struct qname ref_table;
	int n_ref_columns; /* 0: the referenced table's primary key */
	char ref_columns[PLAN_MAX_COLUMNS][PLAN_NAME_MAX];
	char *fk_tail; /* generated: MATCH, ON DELETE/UPDATE, DEFERRABLE ("" if none) */
	/* CHECK (and NOT NULL's helper check): the expression, verified to parse as it did */
	char *check_expr;
	bool replaces; /* a DROP of the same name comes first: a replacement */
	int input;     /* index in plan.inputs */
};

/* A constraint the migration drops (also the first half of a replacement). */
struct plan_drop {
	struct qname table;
	char name[PLAN_NAME_MAX];
	bool if_exists;
	int input;
};

enum plan_phase {
	PHASE_PREPARE,  /* no hold: CREATE INDEX CONCURRENTLY */
	PHASE_CUTOVER,  /* one transaction under holds: ADD … NOT VALID, DROP, ADD … USING INDEX */
	PHASE_VALIDATE, /* no hold: VALIDATE CONSTRAINT, one transaction each */
	PHASE_FINALIZE, /* under holds: SET NOT NULL, drop the helper CHECK */
};

enum plan_lock {
	LOCK_NONE,
	LOCK_SHARE_UPDATE_EXCLUSIVE, /* VALIDATE, CREATE INDEX CONCURRENTLY */
	LOCK_SHARE_ROW_EXCLUSIVE,    /* ADD FOREIGN KEY (both tables) */
	LOCK_ACCESS_EXCLUSIVE,       /* ADD CHECK, DROP CONSTRAINT, SET NOT NULL, USING INDEX */
};

enum plan_hold { HOLD_NONE_NEEDED, HOLD_WRITES_NEEDED, HOLD_ALL_NEEDED };

enum step_kind {
	STEP_CREATE_INDEX,      /* CREATE [UNIQUE] INDEX CONCURRENTLY (retried if left invalid) */
	STEP_ADD_NOT_VALID,     /* ALTER TABLE … ADD CONSTRAINT … NOT VALID */
	STEP_ADD_USING_INDEX,   /* ALTER TABLE … ADD CONSTRAINT … UNIQUE/PRIMARY KEY USING INDEX */
	STEP_DROP_CONSTRAINT,   /* ALTER TABLE … DROP CONSTRAINT */
	STEP_VALIDATE,          /* ALTER TABLE … VALIDATE CONSTRAINT */
	STEP_SET_NOT_NULL,      /* ALTER TABLE … ALTER COLUMN … SET NOT NULL */
	STEP_DROP_HELPER_CHECK, /* the CHECK (c IS NOT NULL) that proved SET NOT NULL */
	STEP_UNSAFE,            /* --allow-unsafe: as written, under a writes hold and lock_timeout */
	STEP_CREATE_OBJECT,     /* CREATE TABLE/SEQUENCE/TYPE/VIEW/FUNCTION, COMMENT ON: as written */
	STEP_ALTER,             /* a brief metadata-only ALTER TABLE (ADD COLUMN, DROP COLUMN, RENAME …) */
	STEP_INSERT_ROWS,       /* INSERT … VALUES of constants (an ORM's version row): in the cutover */
	/* the online key type change (keychange.h) */
	STEP_KEYCHANGE_SHADOW,   /* a table's bigint shadow columns and the trigger that fills them */
	STEP_KEYCHANGE_BACKFILL, /* the shadow columns filled in batches (sql: one batch, $1/$2 ctid bounds) */
	STEP_KEYCHANGE_SWAP,     /* one table's part of the swap, all in the finalize transaction */
};
#define STEP_KIND_LAST STEP_KEYCHANGE_SWAP

struct plan_step {
	int seq; /* 1-based, in execution order */
	enum step_kind kind;
	enum plan_phase phase;
	char *sql;          /* every identifier quoted */
	struct qname table; /* the table the step alters */
	struct qname other; /* FK: the referenced table, which is locked too ("" otherwise) */
	struct qname index; /* CREATE_INDEX: the index it builds (retried if left invalid);
				      ADD_USING_INDEX: the index it attaches ("" otherwise) */
	enum plan_lock lock;
	enum plan_hold hold;
	int constraint; /* index in plan.constraints, or -1 */
	int drop;       /* index in plan.drops, or -1 */
	int input;      /* index in plan.inputs it comes from */
	/* the preflight refuses the step unless 'table' is empty (ADD COLUMN … NOT NULL without a
	   default) */
	bool needs_empty;
	/* ADD COLUMN … DEFAULT: functions it calls, comma-separated, that the preflight refuses when
	   pg_proc says they are volatile or does not know them ("" none) */
	char check_functions[PLAN_CHECK_FUNCTIONS_MAX];
	/* ALTER COLUMN … TYPE text / varchar(n): the column, which the preflight refuses unless it is
	   varchar or text no longer than check_type_length (-1: no limit) ("" none) */
	char check_type_column[PLAN_NAME_MAX];
	int check_type_length;
};

/* A statement the rules refuse: where, why, and the safe way to get the same result. */
struct plan_refusal {
	int input;    /* index in plan.inputs */
	char *why;    /* "no rule covers …", "a volatile default rewrites the table …" */
	char *recipe; /* the safe recipe, or the forms pgvalve supports */
};

/* ALTER COLUMN … TYPE bigint as a file writes it: resolved against the catalog by keychange_plan.c. */
struct plan_keychange_req {
	struct qname table;
	char column[PLAN_NAME_MAX];
	int input;
};

struct plan {
	char *name;        /* the first file's base name */
	char checksum[65]; /* sha256 of the inputs, hex */
	struct plan_input *inputs;
	int n_inputs;
	struct plan_constraint *constraints;
	int n_constraints;
	struct plan_drop *drops;
	int n_drops;
	struct plan_step *steps;
	int n_steps;
	/* notes for people: "validated inline: rewritten to NOT VALID + VALIDATE", ... */
	char **notes;
	int n_notes;
	/* the tables the migration creates (before the cutover): nothing to check in them yet */
	struct qname *created;
	int n_created;
	/* every statement rules_plan() refused, in file order (none when it returned true) */
	struct plan_refusal *refusals;
	int n_refusals;
	/* ALTER COLUMN … TYPE bigint statements (keychange.h): no steps until keychange_resolve() */
	struct plan_keychange_req *keychange_reqs;
	int n_keychange_reqs;
	/* per key change: how to swap it back (JSON text, keychange_plan.c), kept in the journal's plan */
	char **keychange_undo;
	int n_keychange_undo;
};

void plan_free(struct plan *p);

/* Names for people, the JSON plan and the journal (the journal's lock names: plan_lock_key). */
const char *plan_phase_name(enum plan_phase p);
const char *plan_lock_name(enum plan_lock l); /* "SHARE ROW EXCLUSIVE": people, the JSON plan */
const char *plan_hold_name(enum plan_hold h); /* "none", "writes", "all": also the admin API's modes */
const char *plan_step_kind_name(enum step_kind k);
const char *con_type_name(enum con_type t);
/* The journal's name of a lock: "none", "share_update_exclusive", "share_row_exclusive", "access_exclusive". */
const char *plan_lock_key(enum plan_lock l);
/* The names back (as the journal stores them); false for an unknown name. */
bool plan_phase_parse(const char *name, enum plan_phase *out);
bool plan_step_kind_parse(const char *name, enum step_kind *out);
bool plan_lock_parse(const char *key, enum plan_lock *out);
bool plan_hold_parse(const char *name, enum plan_hold *out);

/*
 * The pg_locks modes (pg_locks.mode: "RowExclusiveLock", ...) that 'l'
 * conflicts with, comma-separated ("" for LOCK_NONE): a statement taking
 * 'l' waits for a granted lock in one of them.
 */
const char *plan_lock_conflicts(enum plan_lock l);

/* The plan as JSON (plan --format json, and the journal's copy). The caller deletes it. */
struct cJSON *plan_to_json(const struct plan *p);

/* "schema.name" or "name", each part quoted when PostgreSQL would need it (for people). */
void qname_format(const struct qname *q, char *out, size_t cap);

#endif
