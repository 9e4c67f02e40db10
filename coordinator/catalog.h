/*
 * Relations found by name, the one way the coordinator finds them: a
 * schema-qualified name in that schema, an unqualified one as search_path
 * finds it (the visible relation of that name), as PostgreSQL resolves a
 * name in a statement. Names come from a plan (struct qname, already folded
 * as PostgreSQL folds them) and always travel as parameters.
 */
#ifndef PGVALVE_COORDINATOR_CATALOG_H
#define PGVALVE_COORDINATOR_CATALOG_H

#include "db.h"
#include "plan.h"

/*
 * The same lookup as an SQL expression, for a query that resolves names it
 * reads itself (the journal's copy of the plan): the oid of relation 'name'
 * in schema 'schema' ("" for unqualified), or NULL. Both arguments are SQL
 * expressions of type text given as string literals ("$1", "(c ->> 'x')");
 * 'schema' appears twice in the result. Its own aliases are catalog_c and
 * catalog_ns, so the expressions may name the enclosing query's.
 */
#define CATALOG_RELATION_OID_SQL(schema, name)                                                   \
	"(SELECT catalog_c.oid FROM pg_catalog.pg_class catalog_c JOIN pg_catalog.pg_namespace " \
	"catalog_ns ON catalog_ns.oid = catalog_c.relnamespace WHERE catalog_c.relname = " name  \
	" AND CASE WHEN " schema " = '' THEN pg_catalog.pg_table_is_visible(catalog_c.oid) "     \
	"ELSE catalog_ns.nspname = " schema " END)"

struct catalog_relation {
	char oid[16];                         /* decimal: a parameter for "$n::oid" */
	char regclass[4 * PLAN_NAME_MAX + 8]; /* oid::regclass::text: quoted, qualified if not visible */
	char relkind;                         /* pg_class.relkind: 'r', 'p' tables, 'i' an index, ... */
};

enum catalog_lookup {
	CATALOG_FOUND,
	CATALOG_MISSING, /* no relation of that name (as search_path finds it, when unqualified) */
	CATALOG_ERROR,   /* the query failed: 'err' says why */
};

/* Looks 'q' up; 'out' is filled when found. */
enum catalog_lookup catalog_relation(PGconn *c, const struct qname *q, struct catalog_relation *out,
				     struct db_error *err) __attribute__((warn_unused_result));

#endif
