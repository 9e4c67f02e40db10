/*
 * The names PostgreSQL would choose for what a migration creates without
 * naming it — a constraint, the index behind a UNIQUE or PRIMARY KEY — so
 * that the steps pgvalve generates create exactly the names the statement as
 * written would have (src/backend/commands/indexcmds.c and
 * src/backend/catalog/pg_constraint.c: makeObjectName, ChooseConstraintName,
 * ChooseRelationName, Choose*NameAddition), and the audit's suggested keys
 * the names ADD CONSTRAINT would give them. names_choose() sees only the
 * plan's own names; a clash with a name already in the database is the
 * preflight's to find.
 */
#ifndef PGVALVE_COORDINATOR_NAMES_H
#define PGVALVE_COORDINATOR_NAMES_H

#include <stdbool.h>

#include "plan.h"

/*
 * makeObjectName(): name1[_name2][_label] (name2 and label may be NULL) in
 * NAMEDATALEN - 1 bytes, shortening the longer of name1 and name2 first and
 * never the label, and never cutting a UTF-8 character (a UTF-8 server
 * encoding is assumed).
 */
void names_make_object(char out[PLAN_NAME_MAX], const char *name1, const char *name2, const char *label);

/*
 * ChooseForeignKeyConstraintNameAddition() and ChooseIndexNameAddition()
 * (the same): the column names joined by '_', stopping once NAMEDATALEN
 * bytes are reached.
 */
void names_addition(char cols[][PLAN_NAME_MAX], int n, char out[2 * PLAN_NAME_MAX]);

/* names_addition() for columns given as a list of strings (the audit's suggestions). */
void names_addition_list(const char *const *cols, int n, char out[2 * PLAN_NAME_MAX]);

/*
 * ChooseConstraintName() (ChooseRelationName() for an index: labels "key"
 * and "pkey"): the first of table_name2_label, ..._label1, ..._label2, ...
 * that plan 'p' does not already use in the table's schema — as a
 * constraint name, and for an index also as an index name.
 */
void names_choose(const struct plan *p, const struct qname *table, const char *name2, const char *label,
		  char out[PLAN_NAME_MAX]);

/*
 * The choosing behind names_choose(), for a caller that knows which names
 * are in use some other way: the first of table_name2_label,
 * ..._label1, ..._label2, ... that 'taken' (NULL: none is) says is free.
 */
void names_choose_unused(const char *table, const char *name2, const char *label,
			 bool (*taken)(const char *name, void *arg), void *arg, char out[PLAN_NAME_MAX]);

#endif
