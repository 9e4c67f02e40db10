/*
 * What the files of the key type change share (docs/architecture.md §4.9):
 * the change as read from the catalog (keychange_catalog.c) and turned into
 * steps (keychange_plan.c). The public interface is keychange.h.
 */
#ifndef PGVALVE_COORDINATOR_KEYCHANGE_INTERNAL_H
#define PGVALVE_COORDINATOR_KEYCHANGE_INTERNAL_H

#include <stdbool.h>

#include "db.h"
#include "plan.h"

#define KC_MAX_TABLES 64
#define KC_MAX_COLS 8
#define KC_MAX_INDEXES 32
#define KC_REASONS 2048

/* A column that becomes bigint. */
struct kc_col {
	char name[PLAN_NAME_MAX];
	int attnum;
	char type[16]; /* smallint, integer, bigint */
	bool not_null;
	char *default_expr; /* pg_get_expr of its default, or NULL */
	bool shadow;        /* false: already bigint (a referencing column), only its foreign key moves */
	char shadow_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX], check_name[PLAN_NAME_MAX];
	char check_old_name[PLAN_NAME_MAX]; /* the swap back's NOT NULL check on the old column */
};

/* An index that contains a changed column: built again on the shadow columns. */
struct kc_index {
	char name[PLAN_NAME_MAX], new_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX];
	bool primary;
	char *create_sql;
};

struct kc_table {
	char oid[16];
	struct qname q;                      /* schema always filled */
	char display[4 * PLAN_NAME_MAX + 8]; /* oid::regclass: qualified only when not visible */
	struct kc_col cols[KC_MAX_COLS];
	int n_cols;
	struct kc_index idx[KC_MAX_INDEXES];
	int n_idx;
	long long rows;
	/* Its enabled row-level UPDATE triggers with no column list: the backfill fires them ("" none). */
	char update_triggers[256];
};

/* A foreign key that references the key: dropped at the swap, its copy from the shadow column renamed. */
struct kc_fk {
	int table, col; /* in kc.tables / its cols */
	char name[PLAN_NAME_MAX], new_name[PLAN_NAME_MAX], old_name[PLAN_NAME_MAX];
	char tail[256]; /* MATCH, ON UPDATE, ON DELETE, DEFERRABLE */
};

struct kc {
	int input;
	struct kc_table t[KC_MAX_TABLES]; /* t[0]: the key's table */
	int n_t;
	char pk[PLAN_NAME_MAX];
	struct qname seq; /* the sequence its default draws from ("" none) */
	bool seq_widen;   /* the sequence is not bigint yet */
	struct kc_fk fk[KC_MAX_TABLES];
	int n_fk;
	char reasons[KC_REASONS]; /* why it is refused ("" when it is not) */
};

/* What one ALTER COLUMN … TYPE bigint names, from the catalog. */
struct kc_req_info {
	char oid[16];
	int attnum; /* 0: no such column (or table) */
	bool key;   /* the only column of its table's primary key */
	char ref_oid[16];
	int ref_attnum; /* a single-column foreign key from it references this column (0: none) */
	char ref_name[3 * PLAN_NAME_MAX + 8];
	int folded_into; /* the request of the key it references, or -1 */
};

/* Adds a reason the change is refused to k->reasons ("; " between them). */
__attribute__((format(printf, 2, 3))) void keychange_catalog_refuse(struct kc *k, const char *fmt, ...);

/* What request 'q' names; false when the catalog could not be read. */
bool keychange_catalog_read_req(PGconn *c, const struct plan_keychange_req *q, struct kc_req_info *ri,
				struct db_error *err);

/*
 * Everything the change of key request 'i' involves, into 'k' (zeroed by
 * the caller): the key, the foreign keys referencing it with their columns,
 * indexes, dependents, publications, names taken. Reasons to refuse go to
 * k->reasons. False when the catalog could not be read.
 */
bool keychange_catalog_read_change(PGconn *c, const struct plan *p, int i, const struct kc_req_info *ri,
				   struct kc *k, struct db_error *err);

/* Frees what 'k' holds. */
void keychange_catalog_free(struct kc *k);

#endif
