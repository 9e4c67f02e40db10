/*
 * Relations found by name (see catalog.h). Read-only: one catalog query
 * per lookup, the name as parameters.
 */
#include "catalog.h"

#include <stdio.h>
#include <string.h>

enum catalog_lookup catalog_relation(PGconn *c, const struct qname *q, struct catalog_relation *out,
				     struct db_error *err)
{
	const char *params[2] = { q->schema, q->name };
	PGresult *r = db_query(c,
			       "SELECT r.oid, r.oid::regclass::text, r.relkind FROM pg_catalog.pg_class r "
			       "WHERE r.oid = " CATALOG_RELATION_OID_SQL("$1", "$2"),
			       2, params, err);
	enum catalog_lookup found;

	if (!r)
		return CATALOG_ERROR;
	found = PQntuples(r) == 1 ? CATALOG_FOUND : CATALOG_MISSING;
	if (found == CATALOG_FOUND) {
		snprintf(out->oid, sizeof(out->oid), "%s", PQgetvalue(r, 0, 0));
		snprintf(out->regclass, sizeof(out->regclass), "%s", PQgetvalue(r, 0, 1));
		out->relkind = PQgetvalue(r, 0, 2)[0];
	}
	PQclear(r);
	return found;
}
