/*
 * What a migration's tables are tied to, for pgvalve plan: for each existing
 * table the plan alters or locks, the foreign keys that reference it and
 * what a cascade from it reaches (the audit's graph, docs/architecture.md,
 * the audit command). Read-only, like the audit.
 */
#ifndef PGVALVE_COORDINATOR_AUDIT_IMPACT_H
#define PGVALVE_COORDINATOR_AUDIT_IMPACT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "audit.h"
#include "plan.h"

struct audit_impact {
	struct audit_graph g;
	struct audit_analysis a;
	bool analyzed;
	int *tables; /* the plan's existing tables, as indexes in g.tables, in plan order */
	int n_tables;
};

/* Reads the graph and finds the plan's tables in it. False with 'err' filled. */
bool audit_impact_read(PGconn *c, const struct plan *p, struct audit_impact *imp, struct db_error *err)
	__attribute__((warn_unused_result));

/* [{"table", "rows", "referenced_by": [{"constraint", "from", "columns", "on_delete", "validated",
 *   "indexed"}], "cascade_reach": [...], "cascade_rows"}] */
cJSON *audit_impact_to_json(const struct audit_impact *imp);

void audit_impact_print(FILE *out, const struct audit_impact *imp);

void audit_impact_free(struct audit_impact *imp);

#endif
