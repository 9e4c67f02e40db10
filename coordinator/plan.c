/*
 * The plan's names for people and its cleanup (see plan.h). Building a
 * plan is rules.c's business.
 */
#include "plan.h"

#include <cjson/cJSON.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *plan_phase_name(enum plan_phase p)
{
	static const char *const names[] = { "prepare", "cutover", "validate", "finalize" };

	return names[p];
}

/*
 * The locks a step takes, one row each: the name people and the JSON plan
 * see, the journal's name for it, and the pg_locks modes it conflicts with
 * (https://www.postgresql.org/docs/15/explicit-locking.html#TABLE-LOCK-COMPATIBILITY).
 * Each conflict set holds the one above it: the stronger enum is the stronger lock.
 */
static const struct {
	const char *name;
	const char *key;
	const char *conflicts;
} lock_table[] = {
	[LOCK_NONE] = { "none", "none", "" },
	[LOCK_SHARE_UPDATE_EXCLUSIVE] = { "SHARE UPDATE EXCLUSIVE", "share_update_exclusive",
					  "ShareUpdateExclusiveLock,ShareLock,ShareRowExclusiveLock,"
					  "ExclusiveLock,AccessExclusiveLock" },
	[LOCK_SHARE_ROW_EXCLUSIVE] = { "SHARE ROW EXCLUSIVE", "share_row_exclusive",
				       "RowExclusiveLock,ShareUpdateExclusiveLock,ShareLock,"
				       "ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock" },
	[LOCK_ACCESS_EXCLUSIVE] = { "ACCESS EXCLUSIVE", "access_exclusive",
				    "AccessShareLock,RowShareLock,RowExclusiveLock,ShareUpdateExclusiveLock,"
				    "ShareLock,ShareRowExclusiveLock,ExclusiveLock,AccessExclusiveLock" },
};

/* The holds a step needs: one name, for people, the JSON plan, the journal and the admin API. */
static const char *const hold_names[] = {
	[HOLD_NONE_NEEDED] = "none",
	[HOLD_WRITES_NEEDED] = "writes",
	[HOLD_ALL_NEEDED] = "all",
};

const char *plan_lock_name(enum plan_lock l)
{
	return lock_table[l].name;
}

const char *plan_lock_key(enum plan_lock l)
{
	return lock_table[l].key;
}

const char *plan_lock_conflicts(enum plan_lock l)
{
	return lock_table[l].conflicts;
}

bool plan_lock_parse(const char *key, enum plan_lock *out)
{
	for (size_t i = 0; i < sizeof(lock_table) / sizeof(lock_table[0]); i++) {
		if (strcmp(key, lock_table[i].key) == 0) {
			*out = (enum plan_lock)i;
			return true;
		}
	}
	return false;
}

const char *plan_hold_name(enum plan_hold h)
{
	return hold_names[h];
}

bool plan_hold_parse(const char *name, enum plan_hold *out)
{
	for (size_t i = 0; i < sizeof(hold_names) / sizeof(hold_names[0]); i++) {
		if (strcmp(name, hold_names[i]) == 0) {
			*out = (enum plan_hold)i;
			return true;
		}
	}
	return false;
}

const char *plan_step_kind_name(enum step_kind k)
{
	static const char *const names[] = {
		"create_index",       "add_not_valid", "add_using_index",   "drop_constraint",
		"validate",           "set_not_null",  "drop_helper_check", "unsafe",
		"create_object",      "alter",         "insert_rows",       "keychange_shadow",
		"keychange_backfill", "keychange_swap"
	};

	return names[k];
}

bool plan_phase_parse(const char *name, enum plan_phase *out)
{
	for (int i = PHASE_PREPARE; i <= PHASE_FINALIZE; i++) {
		if (strcmp(name, plan_phase_name((enum plan_phase)i)) == 0) {
			*out = (enum plan_phase)i;
			return true;
		}
	}
	return false;
}

bool plan_step_kind_parse(const char *name, enum step_kind *out)
{
	for (int i = STEP_CREATE_INDEX; i <= STEP_KIND_LAST; i++) {
		if (strcmp(name, plan_step_kind_name((enum step_kind)i)) == 0) {
			*out = (enum step_kind)i;
			return true;
		}
	}
	return false;
}

const char *con_type_name(enum con_type t)
{
	static const char *const names[] = { "foreign key", "check", "not null", "unique", "primary key" };

	return names[t];
}

/* Whether PostgreSQL would print 'name' without quotes: lower-case letters, digits, '_', '$'. */
static bool plain_identifier(const char *name)
{
	if (!*name || !(islower((unsigned char)*name) || *name == '_'))
		return false;
	for (const char *c = name; *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_' || *c == '$'))
			return false;
	return true;
}

static size_t format_part(const char *name, char *out, size_t cap)
{
	size_t n = 0;

	if (plain_identifier(name))
		return (size_t)snprintf(out, cap, "%s", name);
	if (n + 1 < cap)
		out[n] = '"';
	n++;
	for (const char *c = name; *c; c++) {
		if (*c == '"') {
			if (n + 1 < cap)
				out[n] = '"';
			n++;
		}
		if (n + 1 < cap)
			out[n] = *c;
		n++;
	}
	if (n + 1 < cap)
		out[n] = '"';
	n++;
	if (cap)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

void qname_format(const struct qname *q, char *out, size_t cap)
{
	size_t n = 0;

	if (q->schema[0]) {
		n = format_part(q->schema, out, cap);
		if (n + 1 < cap)
			out[n] = '.';
		n++;
	}
	if (n < cap)
		format_part(q->name, out + n, cap - n);
}

static void add_qname(cJSON *o, const char *key, const struct qname *q)
{
	char name[2 * PLAN_NAME_MAX + 8];

	if (!q->name[0])
		return;
	qname_format(q, name, sizeof(name));
	cJSON_AddStringToObject(o, key, name);
}

cJSON *plan_to_json(const struct plan *p)
{
	cJSON *doc = cJSON_CreateObject(), *arr;

	cJSON_AddStringToObject(doc, "name", p->name ? p->name : "");
	cJSON_AddStringToObject(doc, "checksum", p->checksum);
	arr = cJSON_AddArrayToObject(doc, "inputs");
	for (int i = 0; i < p->n_inputs; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "file", p->inputs[i].file ? p->inputs[i].file : "");
		cJSON_AddNumberToObject(o, "line", p->inputs[i].line);
		cJSON_AddStringToObject(o, "text", p->inputs[i].text);
		cJSON_AddItemToArray(arr, o);
	}
	arr = cJSON_AddArrayToObject(doc, "constraints");
	for (int i = 0; i < p->n_constraints; i++) {
		const struct plan_constraint *c = &p->constraints[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "type", con_type_name(c->type));
		add_qname(o, "table", &c->table);
		cJSON_AddStringToObject(o, "name", c->name);
		add_qname(o, "references", &c->ref_table);
		/* Raw names, for the rollback to find things without parsing the formatted ones. */
		cJSON_AddStringToObject(o, "table_schema", c->table.schema);
		cJSON_AddStringToObject(o, "table_name", c->table.name);
		if (c->n_columns > 0)
			cJSON_AddStringToObject(o, "column", c->columns[0]);
		cJSON_AddBoolToObject(o, "replaces", c->replaces);
		cJSON_AddItemToArray(arr, o);
	}
	arr = cJSON_AddArrayToObject(doc, "drops");
	for (int i = 0; i < p->n_drops; i++) {
		cJSON *o = cJSON_CreateObject();

		add_qname(o, "table", &p->drops[i].table);
		cJSON_AddStringToObject(o, "name", p->drops[i].name);
		cJSON_AddItemToArray(arr, o);
	}
	arr = cJSON_AddArrayToObject(doc, "steps");
	for (int i = 0; i < p->n_steps; i++) {
		const struct plan_step *st = &p->steps[i];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddNumberToObject(o, "seq", st->seq);
		cJSON_AddStringToObject(o, "phase", plan_phase_name(st->phase));
		cJSON_AddStringToObject(o, "kind", plan_step_kind_name(st->kind));
		cJSON_AddStringToObject(o, "sql", st->sql ? st->sql : "");
		add_qname(o, "table", &st->table);
		add_qname(o, "also_locks", &st->other);
		cJSON_AddStringToObject(o, "lock", plan_lock_name(st->lock));
		cJSON_AddStringToObject(o, "hold", plan_hold_name(st->hold));
		if (st->input >= 0 && st->input < p->n_inputs)
			cJSON_AddNumberToObject(o, "line", p->inputs[st->input].line);
		cJSON_AddItemToArray(arr, o);
	}
	arr = cJSON_AddArrayToObject(doc, "notes");
	for (int i = 0; i < p->n_notes; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(p->notes[i]));
	arr = cJSON_AddArrayToObject(doc, "refused");
	for (int i = 0; i < p->n_refusals; i++) {
		const struct plan_refusal *r = &p->refusals[i];
		const struct plan_input *in = &p->inputs[r->input];
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "file", in->file ? in->file : "");
		cJSON_AddNumberToObject(o, "line", in->line);
		cJSON_AddStringToObject(o, "statement", in->text);
		cJSON_AddStringToObject(o, "why", r->why);
		cJSON_AddStringToObject(o, "recipe", r->recipe);
		cJSON_AddItemToArray(arr, o);
	}
	if (p->n_keychange_undo) { /* the key type change's swap back (keychange_swap.c reads it) */
		arr = cJSON_AddArrayToObject(doc, "keychange_undo");
		for (int i = 0; i < p->n_keychange_undo; i++)
			cJSON_AddItemToArray(arr, cJSON_Parse(p->keychange_undo[i]));
	}
	return doc;
}

void plan_free(struct plan *p)
{
	for (int i = 0; i < p->n_inputs; i++) {
		free(p->inputs[i].file);
		free(p->inputs[i].text);
	}
	for (int i = 0; i < p->n_constraints; i++) {
		free(p->constraints[i].fk_tail);
		free(p->constraints[i].check_expr);
	}
	for (int i = 0; i < p->n_steps; i++)
		free(p->steps[i].sql);
	for (int i = 0; i < p->n_notes; i++)
		free(p->notes[i]);
	for (int i = 0; i < p->n_refusals; i++) {
		free(p->refusals[i].why);
		free(p->refusals[i].recipe);
	}
	free(p->refusals);
	free(p->keychange_reqs);
	for (int i = 0; i < p->n_keychange_undo; i++)
		free(p->keychange_undo[i]);
	free(p->keychange_undo);
	free(p->created);
	free(p->inputs);
	free(p->constraints);
	free(p->drops);
	free(p->steps);
	free(p->notes);
	free(p->name);
	memset(p, 0, sizeof(*p));
}
