/*
 * The plan's names for people and its cleanup (see plan.h). Building a
 * plan is rules.c's business.
 */
#include "plan.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *plan_phase_name(enum plan_phase p)
{
	static const char *const names[] = { "prepare", "cutover", "validate", "finalize" };

	return names[p];
}

const char *plan_lock_name(enum plan_lock l)
{
	static const char *const names[] = { "none", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE",
					     "ACCESS EXCLUSIVE" };

	return names[l];
}

const char *plan_hold_name(enum plan_hold h)
{
	static const char *const names[] = { "none", "writes", "all" };

	return names[h];
}

const char *plan_step_kind_name(enum step_kind k)
{
	static const char *const names[] = { "create_index", "add_not_valid", "add_using_index",
					     "drop_constraint", "validate", "set_not_null",
					     "drop_helper_check", "unsafe" };

	return names[k];
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
	free(p->inputs);
	free(p->constraints);
	free(p->drops);
	free(p->steps);
	free(p->notes);
	free(p->name);
	memset(p, 0, sizeof(*p));
}
