/*
 * Names as PostgreSQL chooses them (see names.h).
 */
#include "names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The longest prefix of s of at most n bytes that does not split a UTF-8 character (pg_mbcliplen). */
static size_t clip_utf8(const char *s, size_t n)
{
	if (n >= strlen(s))
		return strlen(s);
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

void names_make_object(char out[PLAN_NAME_MAX], const char *name1, const char *name2, const char *label)
{
	size_t overhead = (name2 ? 1 : 0) + (label ? strlen(label) + 1 : 0);
	size_t avail = PLAN_NAME_MAX - 1 - overhead;
	size_t n1 = strlen(name1), n2 = name2 ? strlen(name2) : 0;

	while (n1 + n2 > avail) {
		if (n1 > n2)
			n1--;
		else
			n2--;
	}
	n1 = clip_utf8(name1, n1);
	n2 = name2 ? clip_utf8(name2, n2) : 0;
	snprintf(out, PLAN_NAME_MAX, "%.*s%s%.*s%s%s", (int)n1, name1, name2 ? "_" : "", (int)n2,
		 name2 ? name2 : "", label ? "_" : "", label ? label : "");
}

/* The one loop behind both forms of addition: cols[i] from 'list' when it is set, else from 'array'. */
static void addition(const char *const *list, char array[][PLAN_NAME_MAX], int n, char out[2 * PLAN_NAME_MAX])
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len < PLAN_NAME_MAX; i++) {
		if (len > 0)
			out[len++] = '_';
		len += (size_t)snprintf(out + len, PLAN_NAME_MAX, "%s", list ? list[i] : array[i]);
	}
}

void names_addition(char cols[][PLAN_NAME_MAX], int n, char out[2 * PLAN_NAME_MAX])
{
	addition(NULL, cols, n, out);
}

void names_addition_list(const char *const *cols, int n, char out[2 * PLAN_NAME_MAX])
{
	addition(cols, NULL, n, out);
}

void names_choose_unused(const char *table, const char *name2, const char *label,
			 bool (*taken)(const char *name, void *arg), void *arg, char out[PLAN_NAME_MAX])
{
	char modlabel[PLAN_NAME_MAX];

	snprintf(modlabel, sizeof(modlabel), "%s", label);
	for (int pass = 1;; pass++) {
		names_make_object(out, table, name2, modlabel);
		if (!taken || !taken(out, arg))
			return;
		snprintf(modlabel, sizeof(modlabel), "%s%d", label, pass);
	}
}

/* Where names_choose() looks for names in use: plan 'p', in one schema, indexes too or not. */
struct plan_names {
	const struct plan *p;
	const char *schema;
	bool indexes;
};

/*
 * Whether the plan already adds a constraint named 'name' in the schema (or,
 * with 'indexes', builds an index of that name: an index is a relation, and
 * ChooseRelationName() looks at both where ChooseConstraintName() looks at
 * constraints only).
 */
static bool plan_name_taken(const char *name, void *arg)
{
	const struct plan_names *c = arg;

	for (int i = 0; i < c->p->n_constraints; i++)
		if (strcmp(c->p->constraints[i].table.schema, c->schema) == 0 &&
		    strcmp(c->p->constraints[i].name, name) == 0)
			return true;
	for (int i = 0; c->indexes && i < c->p->n_steps; i++)
		if (strcmp(c->p->steps[i].index.schema, c->schema) == 0 &&
		    strcmp(c->p->steps[i].index.name, name) == 0)
			return true;
	return false;
}

void names_choose(const struct plan *p, const struct qname *table, const char *name2, const char *label,
		  char out[PLAN_NAME_MAX])
{
	struct plan_names c = { p, table->schema, strcmp(label, "key") == 0 || strcmp(label, "pkey") == 0 };

	names_choose_unused(table->name, name2, label, plan_name_taken, &c, out);
}
