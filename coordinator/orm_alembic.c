/*
 * The statements of a migration that are the ORM's own bookkeeping (see
 * orm.h). `alembic upgrade A:B --sql` writes, around each revision's DDL,
 * `CREATE TABLE alembic_version …` (from the base), then
 * `INSERT INTO alembic_version (version_num) VALUES ('r1')` or
 * `UPDATE alembic_version SET version_num='r2' WHERE
 * alembic_version.version_num = 'r1'`. Those are taken out of the
 * migration's statements — the rules never see them — and what they say
 * (where the file starts, the revision it ends at) is applied at commit by
 * orm.c, in the journal's `committed` transaction. Prisma's checksum is the
 * plan's: SHA-256 of the one file.
 */
#define _GNU_SOURCE /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm.h"
#include "pgvalve/pgtree.h"

#define ALEMBIC_TABLE "alembic_version"
#define ALEMBIC_REVISION_MAX 32 /* version_num VARCHAR(32) */

/* The string of an A_Const node ({"A_Const": {"sval": {"sval": "…"}}}), NULL otherwise. */
static const char *const_string(const cJSON *node)
{
	return pgtree_str(pgtree_get(pgtree_node(node, "A_Const"), "sval"), "sval");
}

/* What one alembic_version statement does. */
struct alembic_step {
	enum { ALEMBIC_CREATE, ALEMBIC_INSERT, ALEMBIC_UPDATE, ALEMBIC_OTHER } kind;
	const char *from; /* UPDATE: the WHERE's revision */
	const char *to;   /* INSERT, UPDATE: the revision set */
};

/* Reads statement 'stmt' (a parsed statement's node); false when it does not touch alembic_version. */
static bool alembic_step(const cJSON *stmt, struct alembic_step *out)
{
	const char *kind = pgtree_kind(stmt);
	const cJSON *s = kind ? pgtree_get(stmt, kind) : NULL;
	const cJSON *rel = pgtree_get(s, "relation");
	const cJSON *where = pgtree_node(pgtree_get(s, "whereClause"), "A_Expr");
	const cJSON *values;

	memset(out, 0, sizeof(*out));
	if (!pgtree_str_is(rel, "relname", ALEMBIC_TABLE))
		return false;
	out->kind = ALEMBIC_OTHER;
	if (strcmp(kind, "CreateStmt") == 0) {
		out->kind = ALEMBIC_CREATE;
	} else if (strcmp(kind, "InsertStmt") == 0) {
		values = pgtree_get(pgtree_node(pgtree_get(s, "selectStmt"), "SelectStmt"), "valuesLists");
		if (pgtree_list_len(values) == 1) {
			const cJSON *items = pgtree_get(pgtree_node(pgtree_list_at(values, 0), "List"),
							"items");

			out->to = pgtree_list_len(items) == 1 ? const_string(pgtree_list_at(items, 0)) : NULL;
			out->kind = out->to ? ALEMBIC_INSERT : ALEMBIC_OTHER;
		}
	} else if (strcmp(kind, "UpdateStmt") == 0 && pgtree_list_len(pgtree_get(s, "targetList")) == 1 &&
		   where) {
		const cJSON *target = pgtree_node(pgtree_list_at(pgtree_get(s, "targetList"), 0),
						  "ResTarget");

		out->to = pgtree_str_is(target, "name", "version_num")
			? const_string(pgtree_get(target, "val"))
			: NULL;
		out->from = const_string(pgtree_get(where, "rexpr"));
		out->kind = out->to && out->from ? ALEMBIC_UPDATE : ALEMBIC_OTHER;
	}
	return true;
}

/* Drops input 'i' from the plan. */
static void drop_input(struct plan *p, int i)
{
	free(p->inputs[i].file);
	free(p->inputs[i].text);
	memmove(&p->inputs[i], &p->inputs[i + 1], (size_t)(p->n_inputs - i - 1) * sizeof(p->inputs[0]));
	p->n_inputs--;
}

/* One alembic_version statement into r (chained on what came before); false with 'err' filled. */
static bool take_step(struct orm_record *r, const struct alembic_step *st, const struct plan_input *in,
		      bool *seen, struct input_error *err)
{
	const char *to = st->to;

	if (st->kind == ALEMBIC_CREATE)
		return true;
	if (st->kind == ALEMBIC_OTHER) {
		input_error_set(
			err, in->file, in->line,
			"--orm alembic: pgvalve applies upgrades; this statement on alembic_version is "
			"not one `alembic upgrade --sql` writes (a downgrade or a merge): %.200s",
			in->text);
		return false;
	}
	if (strlen(to) > ALEMBIC_REVISION_MAX || (st->from && strlen(st->from) > ALEMBIC_REVISION_MAX)) {
		input_error_set(err, in->file, in->line, "--orm alembic: a revision longer than %d bytes",
				ALEMBIC_REVISION_MAX);
		return false;
	}
	if (!*seen) {
		snprintf(r->from_revision, sizeof(r->from_revision), "%s", st->from ? st->from : "");
		r->from_known = true;
	} else if (!st->from || strcmp(st->from, r->name) != 0) {
		input_error_set(err, in->file, in->line,
				"--orm alembic: this step starts from %s%s%s, but the one before ended at "
				"revision %s: pgvalve records one line of revisions",
				st->from ? "revision " : "the base", st->from ? st->from : "", "", r->name);
		return false;
	}
	*seen = true;
	snprintf(r->name, sizeof(r->name), "%s", to);
	return true;
}

static bool alembic_take(struct orm_record *r, struct plan *p, struct input_error *err)
{
	char given[sizeof(r->revision)];
	bool seen = false;
	int taken = 0;

	snprintf(given, sizeof(given), "%s", r->revision);
	for (int i = 0; i < p->n_inputs;) {
		const struct plan_input *in = &p->inputs[i];
		struct pgtree_error perr;
		struct alembic_step st;
		cJSON *tree;
		bool mine;

		if (!strcasestr(in->text, ALEMBIC_TABLE)) {
			i++;
			continue;
		}
		tree = pgtree_parse(in->text, &perr);
		mine = tree && pgtree_list_len(pgtree_stmts(tree)) == 1 &&
			alembic_step(pgtree_get(pgtree_list_at(pgtree_stmts(tree), 0), "stmt"), &st);
		if (mine && !take_step(r, &st, in, &seen, err)) {
			cJSON_Delete(tree);
			return false;
		}
		cJSON_Delete(tree);
		if (!mine) {
			i++;
			continue;
		}
		drop_input(p, i);
		taken++;
	}
	if (seen && given[0] && strcmp(given, r->name) != 0) {
		input_error_set(err, NULL, 0,
				"--orm-name %s: the file's alembic_version statements upgrade to revision %s",
				given, r->name);
		return false;
	}
	if (!seen && !given[0]) {
		input_error_set(
			err, NULL, 0,
			"--orm alembic: no revision to record: give --orm-name REVISION, or apply what "
			"`alembic upgrade REV --sql` writes (its UPDATE alembic_version names it)");
		return false;
	}
	if (!seen && strlen(given) > ALEMBIC_REVISION_MAX) {
		input_error_set(err, NULL, 0, "--orm-name: an Alembic revision is at most %d bytes",
				ALEMBIC_REVISION_MAX);
		return false;
	}
	if (seen) /* every revision taken was checked to be at most ALEMBIC_REVISION_MAX bytes */
		snprintf(r->revision, sizeof(r->revision), "%.*s", ALEMBIC_REVISION_MAX, r->name);
	else
		snprintf(r->name, sizeof(r->name), "%s", given);
	if (taken)
		input_note(p,
			   "%d alembic_version statement(s) taken out of the migration: the revision (%s) "
			   "is written when the migration commits, in the same transaction",
			   taken, r->revision);
	return true;
}

bool orm_take_statements(struct orm_record *r, struct plan *p, struct input_error *err)
{
	switch (r->tool) {
	case ORM_PRISMA:
		snprintf(r->checksum, sizeof(r->checksum), "%s", p->checksum);
		return true;
	case ORM_ALEMBIC:
		return alembic_take(r, p, err);
	default:
		return true;
	}
}
