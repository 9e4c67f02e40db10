/*
 * ORM bookkeeping (docs/architecture.md §4.8): with `--orm TOOL`, a migration
 * pgvalve applies is recorded in the ORM's own table — Prisma's
 * _prisma_migrations, Django's django_migrations, Flyway's
 * flyway_schema_history, golang-migrate's schema_migrations, Alembic's
 * alembic_version — in the transaction that marks it committed in the
 * journal, so the ORM's next deploy does not run it again. A migration the
 * ORM records as applied already is refused before anything changes. The
 * ORM's table is created as the ORM creates it when it is missing.
 *
 * orm.c: what each tool's record is, the check and the commit;
 * orm_names.c: the record's names and checksums from the file and
 * --orm-name; orm_alembic.c: the alembic_version statements that
 * `alembic upgrade --sql` writes, taken out of the migration.
 */
#ifndef PGVALVE_COORDINATOR_ORM_H
#define PGVALVE_COORDINATOR_ORM_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "input.h"
#include "options.h"
#include "plan.h"

enum orm_tool { ORM_NONE, ORM_PRISMA, ORM_DJANGO, ORM_FLYWAY, ORM_GOLANG_MIGRATE, ORM_ALEMBIC };

#define ORM_NAME_MAX 256

/* What the ORM's record of one migration holds (the fields its tool uses). */
struct orm_record {
	enum orm_tool tool;
	char name[ORM_NAME_MAX]; /* for people: how the ORM names the migration */
	/* prisma: migration_name = the migration's directory; checksum = SHA-256 hex of migration.sql */
	/* django: app and migration name (--orm-name app.0002_name) */
	char app[ORM_NAME_MAX];
	char migration[ORM_NAME_MAX];
	char checksum[65];
	/* flyway: version ("1.2"), description, script (the file name), CRC-32 as Flyway computes it */
	char version[64]; /* also golang-migrate's version (digits) */
	char description[ORM_NAME_MAX];
	char script[ORM_NAME_MAX];
	int32_t flyway_checksum;
	/* alembic: the revision, and the one the file upgrades from (its UPDATE's WHERE) */
	char revision[64];
	char from_revision[64];
	bool from_known; /* the file said where it starts: from_revision, or "" for the base */
};

/* "prisma" … "alembic" → the tool; false for anything else. */
bool orm_tool_parse(const char *name, enum orm_tool *out);
const char *orm_tool_name(enum orm_tool t);
/* The ORM's table: "_prisma_migrations", "django_migrations", … */
const char *orm_table(enum orm_tool t);
/* The tools, for an error message: "prisma, django, flyway, golang-migrate or alembic". */
#define ORM_TOOLS "prisma, django, flyway, golang-migrate or alembic"

/*
 * The record's names (and Flyway's checksum) from o->orm, o->orm_name and
 * the one file in o->args (orm_names.c). False with 'err' filled when they
 * cannot be derived (a usage error: exit 2). With no --orm, r->tool is
 * ORM_NONE and true is returned.
 */
bool orm_derive(struct orm_record *r, const struct options *o, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * After input_load(): Prisma's checksum from the plan's (one file's)
 * checksum, and for Alembic the alembic_version statements taken out of
 * p->inputs (orm_alembic.c) with the revision they set. False with 'err'
 * filled when the statements contradict themselves or --orm-name, or a
 * revision is nowhere to be found.
 */
bool orm_take_statements(struct orm_record *r, struct plan *p, struct input_error *err)
	__attribute__((warn_unused_result));

/*
 * Whether the ORM's records refuse this migration: *refused true with 'why'
 * and 'hint' filled when the ORM records it as applied already (or records
 * a state its next deploy would stop at). '*table_exists' says whether the
 * ORM's table is there. False (and 'err') when the database cannot be read.
 */
bool orm_check(PGconn *c, const struct orm_record *r, bool *refused, bool *table_exists, char *why,
	       size_t whylen, const char **hint, struct db_error *err) __attribute__((warn_unused_result));

/*
 * Commits migration 'id': one transaction that creates the ORM's table if
 * it is missing, writes the record, and runs 'journal_sql' (the journal's
 * `committed`). False (rolled back, 'err' filled) when it could not.
 */
bool orm_commit(PGconn *c, const struct orm_record *r, int64_t id, const char *journal_sql,
		struct db_error *err) __attribute__((warn_unused_result));

/* The record as the journal keeps it (options' "orm") and back; NULL / false when none. */
cJSON *orm_to_json(const struct orm_record *r);
bool orm_from_json(struct orm_record *r, const cJSON *json);

/*
 * What apply will write, for plan: {"tool", "table", "creates_table",
 * "row": {column: value or SQL expression}}, and the same for people.
 */
cJSON *orm_plan_json(const struct orm_record *r, bool table_exists);
void orm_plan_print(const struct orm_record *r, bool table_exists);

#endif
