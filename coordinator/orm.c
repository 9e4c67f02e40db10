/*
 * ORM bookkeeping (see orm.h): each tool's table as the tool creates it,
 * the row it keeps for an applied migration, the check that refuses a
 * migration it records already, and the commit that writes the row in the
 * journal's `committed` transaction. Values go as parameters; the table
 * and column names are fixed here, nothing from the file is pasted in.
 */
#include "orm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "quote.h"
#include "report.h"
#include "strbuf.h"
#include "xalloc.h"

#define MAX_COLUMNS 10
#define MAX_PARAMS 6
#define MAX_CREATE 3

/*
 * One tool: its table, the statements that create it as the tool does
 * (Prisma's schema engine, Django 3.2's MigrationRecorder with
 * DEFAULT_AUTO_FIELD = BigAutoField, Flyway's PostgreSQL createMetaDataTable
 * script, golang-migrate's postgres driver, Alembic's MigrationContext),
 * and the columns of its row: value expressions whose $N is the record's
 * parameter N (orm_params), and where STARTED stands for when the migration
 * started (the journal's started_at, a timestamp the server printed).
 */
struct tool {
	const char *name;
	const char *table; /* unquoted, as the tool names it; resolved by search_path as the tool does */
	const char *create[MAX_CREATE];
	const char *columns[MAX_COLUMNS];
	const char *values[MAX_COLUMNS];
};

static const struct tool tools[] = {
	[ORM_PRISMA] = { "prisma",
			 "_prisma_migrations",
			 { "CREATE TABLE \"_prisma_migrations\" ("
			   "\"id\" VARCHAR(36) PRIMARY KEY NOT NULL, "
			   "\"checksum\" VARCHAR(64) NOT NULL, "
			   "\"finished_at\" TIMESTAMPTZ, "
			   "\"migration_name\" VARCHAR(255) NOT NULL, "
			   "\"logs\" TEXT, "
			   "\"rolled_back_at\" TIMESTAMPTZ, "
			   "\"started_at\" TIMESTAMPTZ NOT NULL DEFAULT now(), "
			   "\"applied_steps_count\" INTEGER NOT NULL DEFAULT 0)" },
			 { "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at",
			   "started_at", "applied_steps_count" },
			 { "gen_random_uuid()::text", "$1", "clock_timestamp()", "$2", "NULL", "NULL",
			   "STARTED::timestamptz", "1" } },
	[ORM_DJANGO] = { "django",
			 "django_migrations",
			 { "CREATE TABLE \"django_migrations\" (\"id\" bigserial NOT NULL PRIMARY KEY, "
			   "\"app\" varchar(255) NOT NULL, \"name\" varchar(255) NOT NULL, "
			   "\"applied\" timestamp with time zone NOT NULL)" },
			 { "app", "name", "applied" },
			 { "$1", "$2", "now()" } },
	[ORM_FLYWAY] = { "flyway",
			 "flyway_schema_history",
			 { "CREATE TABLE \"flyway_schema_history\" ("
			   "\"installed_rank\" INT NOT NULL, "
			   "\"version\" VARCHAR(50), "
			   "\"description\" VARCHAR(200) NOT NULL, "
			   "\"type\" VARCHAR(20) NOT NULL, "
			   "\"script\" VARCHAR(1000) NOT NULL, "
			   "\"checksum\" INTEGER, "
			   "\"installed_by\" VARCHAR(100) NOT NULL, "
			   "\"installed_on\" TIMESTAMP NOT NULL DEFAULT now(), "
			   "\"execution_time\" INTEGER NOT NULL, "
			   "\"success\" BOOLEAN NOT NULL)",
			   "ALTER TABLE \"flyway_schema_history\" ADD CONSTRAINT "
			   "\"flyway_schema_history_pk\" "
			   "PRIMARY KEY (\"installed_rank\")",
			   "CREATE INDEX \"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" "
			   "(\"success\")" },
			 { "installed_rank", "version", "description", "type", "script", "checksum",
			   "installed_by", "execution_time", "success" },
			 { "(SELECT coalesce(max(\"installed_rank\"), 0) + 1 FROM \"flyway_schema_history\")",
			   "$1", "$2", "'SQL'", "$3", "$4::int", "current_user",
			   "greatest(0, round(extract(epoch FROM clock_timestamp() - STARTED::timestamptz) * "
			   "1000))::int",
			   "true" } },
	[ORM_GOLANG_MIGRATE] = { "golang-migrate",
				 "schema_migrations",
				 { "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (version bigint not "
				   "null primary "
				   "key, dirty boolean not null)" },
				 { "version", "dirty" },
				 { "$1::bigint", "false" } },
	[ORM_ALEMBIC] = { "alembic",
			  "alembic_version",
			  { "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
			    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))" },
			  { "version_num" },
			  { "$1" } },
};

bool orm_tool_parse(const char *name, enum orm_tool *out)
{
	for (int t = ORM_PRISMA; t <= ORM_ALEMBIC; t++) {
		if (strcmp(name, tools[t].name) == 0) {
			*out = (enum orm_tool)t;
			return true;
		}
	}
	return false;
}

const char *orm_tool_name(enum orm_tool t)
{
	return t == ORM_NONE ? "none" : tools[t].name;
}

const char *orm_table(enum orm_tool t)
{
	return t == ORM_NONE ? "" : tools[t].table;
}

/* The record's parameters, $1 first; returns how many. */
static int orm_params(const struct orm_record *r, char flyway_sum[16], const char *params[MAX_PARAMS])
{
	switch (r->tool) {
	case ORM_PRISMA:
		params[0] = r->checksum;
		params[1] = r->name;
		return 2;
	case ORM_DJANGO:
		params[0] = r->app;
		params[1] = r->migration;
		return 2;
	case ORM_FLYWAY:
		snprintf(flyway_sum, 16, "%d", (int)r->flyway_checksum);
		params[0] = r->version;
		params[1] = r->description;
		params[2] = r->script;
		params[3] = flyway_sum;
		return 4;
	case ORM_GOLANG_MIGRATE:
		params[0] = r->version;
		return 1;
	case ORM_ALEMBIC:
		params[0] = r->revision;
		return 1;
	case ORM_NONE:
		break;
	}
	return 0;
}

/* ---- the check ------------------------------------------------------------- */

bool orm_check(PGconn *c, const struct orm_record *r, bool *refused, bool *table_exists, char *why,
	       size_t whylen, const char **hint, struct db_error *err)
{
	const char *tp[1] = { tools[r->tool].table };
	PGresult *q;

	*refused = false;
	*hint = NULL;
	why[0] = '\0';
	q = db_query(c, "SELECT to_regclass(quote_ident($1)) IS NOT NULL", 1, tp, err);
	if (!q)
		return false;
	*table_exists = strcmp(db_value(q, 0, 0, "f"), "t") == 0;
	PQclear(q);
	if (!*table_exists)
		return true;
	switch (r->tool) {
	case ORM_PRISMA: {
		const char *p[1] = { r->name };

		q = db_query(
			c,
			"SELECT count(*) FILTER (WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL), "
			"count(*) FILTER (WHERE finished_at IS NULL AND rolled_back_at IS NULL) "
			"FROM \"_prisma_migrations\" WHERE migration_name = $1",
			1, p, err);
		if (!q)
			return false;
		if (atoi(db_value(q, 0, 0, "0")) > 0) {
			*refused = true;
			snprintf(why, whylen, "Prisma records migration %s as applied (_prisma_migrations)",
				 r->name);
		} else if (atoi(db_value(q, 0, 1, "0")) > 0) {
			*refused = true;
			snprintf(why, whylen,
				 "Prisma records a failed attempt at migration %s (_prisma_migrations)",
				 r->name);
			*hint = "resolve it first: prisma migrate resolve --rolled-back NAME";
		}
		break;
	}
	case ORM_DJANGO: {
		const char *p[2] = { r->app, r->migration };

		q = db_query(c, "SELECT count(*) FROM \"django_migrations\" WHERE app = $1 AND name = $2", 2,
			     p, err);
		if (!q)
			return false;
		if (atoi(db_value(q, 0, 0, "0")) > 0) {
			*refused = true;
			snprintf(why, whylen, "Django records migration %s as applied (django_migrations)",
				 r->name);
		}
		break;
	}
	case ORM_FLYWAY: {
		const char *p[1] = { r->version };

		q = db_query(c,
			     "SELECT success FROM \"flyway_schema_history\" WHERE version = $1 "
			     "ORDER BY installed_rank DESC LIMIT 1",
			     1, p, err);
		if (!q)
			return false;
		if (PQntuples(q) == 1) {
			bool ok = strcmp(PQgetvalue(q, 0, 0), "t") == 0;

			*refused = true;
			snprintf(why, whylen, "Flyway records version %s as %s (flyway_schema_history)",
				 r->version, ok ? "applied" : "failed");
			if (!ok)
				*hint = "flyway repair removes the failed entry";
		}
		break;
	}
	case ORM_GOLANG_MIGRATE:
		q = db_query(c, "SELECT version, dirty FROM \"schema_migrations\" LIMIT 1", 0, NULL, err);
		if (!q)
			return false;
		if (PQntuples(q) == 1 && strcmp(PQgetvalue(q, 0, 1), "t") == 0) {
			*refused = true;
			snprintf(why, whylen, "golang-migrate's schema_migrations is dirty at version %s",
				 PQgetvalue(q, 0, 0));
			*hint = "see what that version left, then `migrate force VERSION`";
		} else if (PQntuples(q) == 1 &&
			   strtoll(PQgetvalue(q, 0, 0), NULL, 10) >= strtoll(r->version, NULL, 10)) {
			*refused = true;
			snprintf(why, whylen,
				 "golang-migrate's schema_migrations is at version %s: version %s counts as "
				 "applied",
				 PQgetvalue(q, 0, 0), r->version);
		}
		break;
	case ORM_ALEMBIC: {
		int n;
		bool at_from = false;

		q = db_query(c, "SELECT version_num FROM alembic_version ORDER BY 1", 0, NULL, err);
		if (!q)
			return false;
		n = PQntuples(q);
		for (int i = 0; i < n; i++) {
			if (strcmp(PQgetvalue(q, i, 0), r->revision) == 0) {
				*refused = true;
				snprintf(why, whylen,
					 "Alembic records revision %s as current (alembic_version)",
					 r->revision);
			}
			at_from = at_from || strcmp(PQgetvalue(q, i, 0), r->from_revision) == 0;
		}
		if (*refused)
			break;
		if (r->from_known && r->from_revision[0] && !at_from) {
			*refused = true;
			snprintf(why, whylen,
				 "the file upgrades from revision %s, but alembic_version holds %s",
				 r->from_revision, n ? PQgetvalue(q, 0, 0) : "no revision");
			*hint = "generate the file from the database's revision: alembic upgrade CURRENT:REV "
				"--sql";
		} else if (r->from_known && !r->from_revision[0] && n > 0) {
			*refused = true;
			snprintf(why, whylen, "the file upgrades from the base, but alembic_version holds %s",
				 PQgetvalue(q, 0, 0));
			*hint = "generate the file from the database's revision: alembic upgrade CURRENT:REV "
				"--sql";
		} else if (!r->from_known && n > 1) {
			*refused = true;
			snprintf(
				why, whylen,
				"alembic_version holds %d heads: --orm-name alone cannot say which one moves",
				n);
			*hint = "apply what `alembic upgrade FROM:REV --sql` writes instead";
		}
		break;
	}
	case ORM_NONE:
		break;
	}
	PQclear(q);
	return true;
}

/* ---- the commit ------------------------------------------------------------ */

/*
 * INSERT INTO table (columns) VALUES (values): the row, its parameters as
 * orm_params() numbers them, STARTED as 'started' (quoted here).
 */
static char *insert_sql(PGconn *c, const struct tool *t, const char *started)
{
	struct strbuf b = { 0 };
	char lit[128];

	quote_literal(lit, sizeof(lit), started);
	strbuf_put(&b, "INSERT INTO ");
	quote_append_ident(&b, t->table);
	strbuf_put(&b, " (");
	for (int i = 0; i < MAX_COLUMNS && t->columns[i]; i++) {
		strbuf_put(&b, i ? ", " : "");
		quote_append_ident(&b, t->columns[i]);
	}
	strbuf_put(&b, ") VALUES (");
	for (int i = 0; i < MAX_COLUMNS && t->values[i]; i++) {
		const char *v = t->values[i], *at = strstr(v, "STARTED");

		strbuf_put(&b, i ? ", " : "");
		if (strcmp(v, "gen_random_uuid()::text") == 0 && PQserverVersion(c) < 130000)
			v = "md5(random()::text || clock_timestamp()::text)::uuid::text"; /* before PostgreSQL 13 */
		if (at) {
			strbuf_putn(&b, v, (size_t)(at - v));
			strbuf_put(&b, lit);
			strbuf_put(&b, at + strlen("STARTED"));
		} else {
			strbuf_put(&b, v);
		}
	}
	strbuf_put(&b, ")");
	return strbuf_take(&b);
}

/* Runs 'sql' with 'params'; '*rows' (if not NULL) the rows it touched. */
static bool run(PGconn *c, const char *sql, const char *const *params, int n, long *rows,
		struct db_error *err)
{
	PGresult *q = db_query(c, sql, n, params, err);

	if (!q)
		return false;
	if (rows)
		*rows = atol(PQcmdTuples(q));
	PQclear(q);
	return true;
}

/*
 * Alembic: a file that starts from a revision moves that head; --orm-name
 * alone moves the one head there is. False when nothing moved ('*moved'
 * false: the row is inserted instead) or when the file's head is gone.
 */
static bool alembic_move(PGconn *c, const struct orm_record *r, bool *moved, struct db_error *err)
{
	const char *p[2] = { r->revision, r->from_revision };
	long rows = 0;

	*moved = false;
	if (r->from_known && !r->from_revision[0])
		return true; /* from the base: an INSERT */
	if (!(r->from_known ? run(c, "UPDATE alembic_version SET version_num = $1 WHERE version_num = $2", p,
				  2, &rows, err)
			    : run(c, "UPDATE alembic_version SET version_num = $1", p, 1, &rows, err)))
		return false;
	*moved = rows == 1;
	if (rows > 1 || (r->from_known && rows != 1)) {
		err->sqlstate[0] = '\0';
		snprintf(err->msg, sizeof(err->msg), "alembic_version changed meanwhile: %ld row(s) held %s",
			 rows, r->from_known ? r->from_revision : "a revision");
		return false;
	}
	return true;
}

/* Writes the record; the transaction is open and the table exists and is locked. */
static bool write_record(PGconn *c, const struct orm_record *r, const char *started, struct db_error *err)
{
	const char *params[MAX_PARAMS];
	char flyway_sum[16], *sql;
	int n = orm_params(r, flyway_sum, params);
	bool ok, moved = false;

	if (r->tool == ORM_GOLANG_MIGRATE && !run(c, "DELETE FROM \"schema_migrations\"", NULL, 0, NULL, err))
		return false; /* one row: the version the database is at (golang-migrate's SetVersion) */
	if (r->tool == ORM_ALEMBIC && (!alembic_move(c, r, &moved, err) || moved))
		return moved;
	sql = insert_sql(c, &tools[r->tool], started);
	ok = run(c, sql, params, n, NULL, err);
	free(sql);
	return ok;
}

bool orm_commit(PGconn *c, const struct orm_record *r, int64_t id, const char *journal_sql,
		struct db_error *err)
{
	struct journal_migration m = { 0 };
	char why[512], lock[160], table[80];
	const char *hint;
	bool found = false, refused, exists, ok = false;

	if (!journal_read_migration(c, id, &m, &found, err))
		return false;
	if (!found) {
		err->sqlstate[0] = '\0';
		snprintf(err->msg, sizeof(err->msg), "migration %lld is not in the journal", (long long)id);
		return false;
	}
	if (!db_exec(c, "BEGIN", err) || !orm_check(c, r, &refused, &exists, why, sizeof(why), &hint, err))
		goto fail;
	for (int i = 0; !exists && i < MAX_CREATE && tools[r->tool].create[i]; i++)
		if (!db_exec(c, tools[r->tool].create[i], err))
			goto fail;
	/* One writer of the ORM's table at a time (its own deploys lock it, or write one row): look again under the lock. */
	quote_ident(table, sizeof(table), tools[r->tool].table);
	snprintf(lock, sizeof(lock), "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", table);
	if (!db_exec(c, lock, err) || !orm_check(c, r, &refused, &exists, why, sizeof(why), &hint, err))
		goto fail;
	if (refused)
		report_warning("the ORM's record changed while the migration ran: not written", why);
	else if (!write_record(c, r, m.started_at, err))
		goto fail;
	if (!db_exec(c, journal_sql, err) || !db_exec(c, "COMMIT", err))
		goto fail;
	ok = true;
	goto done;
fail:
	db_rollback(c);
done:
	journal_migration_free(&m);
	return ok;
}

/* ---- the journal's copy ---------------------------------------------------- */

cJSON *orm_to_json(const struct orm_record *r)
{
	cJSON *j;

	if (r->tool == ORM_NONE)
		return NULL;
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "tool", tools[r->tool].name);
	cJSON_AddStringToObject(j, "name", r->name);
	cJSON_AddStringToObject(j, "app", r->app);
	cJSON_AddStringToObject(j, "migration", r->migration);
	cJSON_AddStringToObject(j, "checksum", r->checksum);
	cJSON_AddStringToObject(j, "version", r->version);
	cJSON_AddStringToObject(j, "description", r->description);
	cJSON_AddStringToObject(j, "script", r->script);
	cJSON_AddNumberToObject(j, "flyway_checksum", r->flyway_checksum);
	cJSON_AddStringToObject(j, "revision", r->revision);
	cJSON_AddStringToObject(j, "from_revision", r->from_revision);
	cJSON_AddBoolToObject(j, "from_known", r->from_known);
	return j;
}

static void get_string(const cJSON *j, const char *key, char *out, size_t cap)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

bool orm_from_json(struct orm_record *r, const cJSON *j)
{
	const cJSON *tool = cJSON_GetObjectItemCaseSensitive(j, "tool");
	const cJSON *sum = cJSON_GetObjectItemCaseSensitive(j, "flyway_checksum");

	memset(r, 0, sizeof(*r));
	if (!cJSON_IsString(tool) || !orm_tool_parse(tool->valuestring, &r->tool))
		return false;
	get_string(j, "name", r->name, sizeof(r->name));
	get_string(j, "app", r->app, sizeof(r->app));
	get_string(j, "migration", r->migration, sizeof(r->migration));
	get_string(j, "checksum", r->checksum, sizeof(r->checksum));
	get_string(j, "version", r->version, sizeof(r->version));
	get_string(j, "description", r->description, sizeof(r->description));
	get_string(j, "script", r->script, sizeof(r->script));
	get_string(j, "revision", r->revision, sizeof(r->revision));
	get_string(j, "from_revision", r->from_revision, sizeof(r->from_revision));
	r->flyway_checksum = cJSON_IsNumber(sum) ? (int32_t)sum->valuedouble : 0;
	r->from_known = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "from_known"));
	return true;
}

/* ---- what plan shows ------------------------------------------------------- */

/* Column i's value for people: a parameter's value quoted, or the SQL expression. */
static void row_value(const struct orm_record *r, int i, char *out, size_t cap)
{
	const char *params[MAX_PARAMS], *v = tools[r->tool].values[i];
	char flyway_sum[16];
	int n = orm_params(r, flyway_sum, params);

	if (v[0] == '$' && v[1] >= '1' && v[1] - '1' < n) {
		quote_literal(out, cap, params[v[1] - '1']);
		if (strchr(v, ':'))
			snprintf(out + strlen(out), cap - strlen(out), "%s", strchr(v, ':'));
	} else if (strstr(v, "STARTED")) {
		snprintf(out, cap, "%s",
			 strstr(v, "extract") ? "milliseconds since apply started" : "when apply started");
	} else if (strstr(v, "uuid")) {
		snprintf(out, cap, "a new UUID");
	} else {
		snprintf(out, cap, "%s", v);
	}
}

/* What happens besides the INSERT, for people ("" when nothing). */
static const char *row_effect(const struct orm_record *r)
{
	if (r->tool == ORM_GOLANG_MIGRATE)
		return "replacing the row there is (golang-migrate keeps one: the version the database is "
		       "at)";
	if (r->tool == ORM_ALEMBIC && r->from_known && r->from_revision[0])
		return "moving the head from the file's starting revision";
	if (r->tool == ORM_ALEMBIC && !r->from_known)
		return "replacing the revision there is, if any";
	return "";
}

cJSON *orm_plan_json(const struct orm_record *r, bool table_exists)
{
	cJSON *j, *row;
	char value[600];

	if (r->tool == ORM_NONE)
		return cJSON_CreateNull();
	j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "tool", tools[r->tool].name);
	cJSON_AddStringToObject(j, "table", tools[r->tool].table);
	cJSON_AddStringToObject(j, "migration", r->name);
	cJSON_AddBoolToObject(j, "creates_table", !table_exists);
	if (r->tool == ORM_ALEMBIC)
		cJSON_AddStringToObject(j, "from_revision", r->from_known ? r->from_revision : NULL);
	row = cJSON_AddObjectToObject(j, "row");
	for (int i = 0; i < MAX_COLUMNS && tools[r->tool].columns[i]; i++) {
		row_value(r, i, value, sizeof(value));
		cJSON_AddStringToObject(row, tools[r->tool].columns[i], value);
	}
	cJSON_AddStringToObject(j, "effect", row_effect(r));
	return j;
}

void orm_plan_print(const struct orm_record *r, bool table_exists)
{
	char value[600];

	if (r->tool == ORM_NONE)
		return;
	printf("\nORM bookkeeping (%s): in the transaction that marks the migration committed, %s gets "
	       "the row of %s%s%s:\n",
	       tools[r->tool].name, tools[r->tool].table, r->name, row_effect(r)[0] ? ", " : "",
	       row_effect(r));
	for (int i = 0; i < MAX_COLUMNS && tools[r->tool].columns[i]; i++) {
		row_value(r, i, value, sizeof(value));
		printf("    %-20s %s\n", tools[r->tool].columns[i], value);
	}
	if (!table_exists)
		printf("  %s does not exist yet: it is created then, as %s creates it.\n",
		       tools[r->tool].table, tools[r->tool].name);
	printf("  Nothing is written if the migration rolls back.\n");
}
