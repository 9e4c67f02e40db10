/*
 * The key type change's steps (docs/architecture.md §4.9), from what
 * keychange_catalog.c read: shadow columns and their trigger, the backfill,
 * the indexes, the new foreign keys and NOT NULL checks, and the swap — each
 * with its lock and hold — plus how to take the swap back (kept in the
 * journal's plan), the notes, and the refusals. Nothing here changes the
 * database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "keychange.h"
#include "keychange_internal.h"
#include "quote.h"
#include "strbuf.h"
#include "xalloc.h"

static void push_refusal(struct plan *p, int input, char *why, char *recipe)
{
	p->refusals = xrealloc(p->refusals, sizeof(*p->refusals) * (size_t)(p->n_refusals + 1));
	p->refusals[p->n_refusals++] = (struct plan_refusal){ .input = input, .why = why, .recipe = recipe };
}

static void push_step(struct plan *p, struct plan_step s)
{
	p->steps = xrealloc(p->steps, sizeof(*p->steps) * (size_t)(p->n_steps + 1));
	p->steps[p->n_steps] = s;
	p->steps[p->n_steps].seq = p->n_steps + 1;
	p->n_steps++;
}

/* ---- the steps ------------------------------------------------------------------ */

static void put_table(struct strbuf *b, const struct kc_table *t)
{
	quote_append_qname(b, t->q.schema, t->q.name);
}

static void put_function(struct strbuf *b, const struct kc_table *t)
{
	char name[32];

	snprintf(name, sizeof(name), "keychange_%s", t->oid);
	quote_append_qname(b, "pgvalve", name);
}

/*
 * CREATE [OR REPLACE] FUNCTION of t's trigger: before the swap each shadow
 * column copies its old column; after it ('reversed') each old column copies
 * the new one, NULL when the value no longer fits the old type.
 */
static void put_trigger_function(struct strbuf *b, const struct kc_table *t, bool reversed, bool replace)
{
	struct strbuf body = { 0 };
	char *text, *lit;
	size_t n;

	strbuf_put(&body, "BEGIN");
	for (int i = 0; i < t->n_cols; i++) {
		const struct kc_col *cc = &t->cols[i];

		if (!cc->shadow)
			continue;
		strbuf_put(&body, " NEW.");
		quote_append_ident(&body, reversed ? cc->old_name : cc->shadow_name);
		strbuf_put(&body, " := ");
		if (reversed) {
			strbuf_put(&body, "CASE WHEN NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body,
				   strcmp(cc->type, "smallint") == 0
					   ? " BETWEEN -32768 AND 32767 THEN NEW."
					   : " BETWEEN -2147483648 AND 2147483647 THEN NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body, " END;");
		} else {
			strbuf_put(&body, "NEW.");
			quote_append_ident(&body, cc->name);
			strbuf_put(&body, ";");
		}
	}
	strbuf_put(&body, " RETURN NEW; END");
	text = strbuf_take(&body);
	n = quote_literal(NULL, 0, text);
	lit = xmalloc(n + 1);
	quote_literal(lit, n + 1, text);
	strbuf_put(b, replace ? "CREATE OR REPLACE FUNCTION " : "CREATE FUNCTION ");
	put_function(b, t);
	strbuf_put(b, "() RETURNS trigger LANGUAGE plpgsql AS ");
	strbuf_put(b, lit);
	free(lit);
	free(text);
}

static void put_alter(struct strbuf *b, const struct kc_table *t)
{
	strbuf_put(b, "ALTER TABLE ");
	put_table(b, t);
	strbuf_put(b, " ");
}

static bool has_shadow(const struct kc_table *t)
{
	for (int i = 0; i < t->n_cols; i++)
		if (t->cols[i].shadow)
			return true;
	return false;
}

static struct plan_step step_of(const struct kc *k, enum step_kind kind, enum plan_phase phase,
				const struct kc_table *t, const struct kc_table *other, enum plan_lock lock,
				enum plan_hold hold, char *sql)
{
	struct plan_step s = { .kind = kind,
			       .phase = phase,
			       .sql = sql,
			       .table = t->q,
			       .lock = lock,
			       .hold = hold,
			       .constraint = -1,
			       .drop = -1,
			       .input = k->input };

	if (other && other != t)
		s.other = other->q;
	return s;
}

/* Prepare: per table, its shadow columns with their trigger, then the backfill, then the indexes. */
static void push_prepare(struct plan *p, const struct kc *k)
{
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];
		struct strbuf b = { 0 };
		bool first = true;

		if (!has_shadow(t))
			continue;
		put_trigger_function(&b, t, false, false);
		strbuf_put(&b, "; ");
		put_alter(&b, t);
		for (int i = 0; i < t->n_cols; i++) {
			const struct kc_col *cc = &t->cols[i];

			if (!cc->shadow)
				continue;
			strbuf_put(&b, first ? "ADD COLUMN " : ", ADD COLUMN ");
			first = false;
			quote_append_ident(&b, cc->shadow_name);
			strbuf_put(&b, " bigint");
			if (cc->check_name[0]) {
				strbuf_put(&b, ", ADD CONSTRAINT ");
				quote_append_ident(&b, cc->check_name);
				strbuf_put(&b, " CHECK (");
				quote_append_ident(&b, cc->shadow_name);
				strbuf_put(&b, " IS NOT NULL) NOT VALID");
			}
		}
		strbuf_put(&b, "; CREATE TRIGGER ");
		quote_append_ident(&b, KEYCHANGE_TRIGGER);
		strbuf_put(&b, " BEFORE INSERT OR UPDATE ON ");
		put_table(&b, t);
		strbuf_put(&b, " FOR EACH ROW EXECUTE FUNCTION ");
		put_function(&b, t);
		strbuf_put(&b, "()");
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SHADOW, PHASE_PREPARE, t, NULL, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));

		/* one batch: the rows in a range of pages whose shadow columns differ */
		strbuf_put(&b, "UPDATE ");
		put_table(&b, t);
		first = true;
		for (int i = 0; i < t->n_cols; i++) {
			if (!t->cols[i].shadow)
				continue;
			strbuf_put(&b, first ? " SET " : ", ");
			first = false;
			quote_append_ident(&b, t->cols[i].shadow_name);
			strbuf_put(&b, " = ");
			quote_append_ident(&b, t->cols[i].name);
		}
		strbuf_put(&b, " WHERE ctid >= $1::tid AND ctid < $2::tid AND (");
		first = true;
		for (int i = 0; i < t->n_cols; i++) {
			if (!t->cols[i].shadow)
				continue;
			strbuf_put(&b, first ? "" : " OR ");
			first = false;
			quote_append_ident(&b, t->cols[i].shadow_name);
			strbuf_put(&b, " IS DISTINCT FROM ");
			quote_append_ident(&b, t->cols[i].name);
		}
		strbuf_put(&b, ")");
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_BACKFILL, PHASE_PREPARE, t, NULL, LOCK_NONE,
				  HOLD_NONE_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_idx; i++) {
			struct plan_step s = step_of(k, STEP_CREATE_INDEX, PHASE_PREPARE, t, NULL, LOCK_NONE,
						     HOLD_NONE_NEEDED, xstrdup(t->idx[i].create_sql));

			snprintf(s.index.schema, sizeof(s.index.schema), "%s", t->q.schema);
			snprintf(s.index.name, sizeof(s.index.name), "%s", t->idx[i].new_name);
			push_step(p, s);
		}
	}
}

/* Cutover and validate: the foreign keys from the shadow columns, then every new constraint validated. */
static void push_constraints(struct plan *p, const struct kc *k)
{
	const struct kc_table *key = &k->t[0];
	const struct kc_col *kcol = &key->cols[0];

	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_fk *f = &k->fk[i];
		const struct kc_table *t = &k->t[f->table];
		const struct kc_col *cc = &t->cols[f->col];
		struct strbuf b = { 0 };

		put_alter(&b, t);
		strbuf_put(&b, "ADD CONSTRAINT ");
		quote_append_ident(&b, f->new_name);
		strbuf_put(&b, " FOREIGN KEY (");
		quote_append_ident(&b, cc->shadow ? cc->shadow_name : cc->name);
		strbuf_put(&b, ") REFERENCES ");
		put_table(&b, key);
		strbuf_put(&b, " (");
		quote_append_ident(&b, kcol->shadow_name);
		strbuf_put(&b, ") ");
		strbuf_put(&b, f->tail);
		strbuf_put(&b, " NOT VALID");
		push_step(p,
			  step_of(k, STEP_ADD_NOT_VALID, PHASE_CUTOVER, t, key, LOCK_SHARE_ROW_EXCLUSIVE,
				  HOLD_WRITES_NEEDED, strbuf_take(&b)));
		put_alter(&b, t);
		strbuf_put(&b, "VALIDATE CONSTRAINT ");
		quote_append_ident(&b, f->new_name);
		push_step(p,
			  step_of(k, STEP_VALIDATE, PHASE_VALIDATE, t, key, LOCK_SHARE_UPDATE_EXCLUSIVE,
				  HOLD_NONE_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_cols; i++) {
			struct strbuf b = { 0 };

			if (!t->cols[i].check_name[0])
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "VALIDATE CONSTRAINT ");
			quote_append_ident(&b, t->cols[i].check_name);
			push_step(p,
				  step_of(k, STEP_VALIDATE, PHASE_VALIDATE, t, NULL,
					  LOCK_SHARE_UPDATE_EXCLUSIVE, HOLD_NONE_NEEDED, strbuf_take(&b)));
		}
	}
}

/*
 * One table's columns swapped: NOT NULL from the validated check, default
 * moved, renamed. Forward (the swap) the shadow column becomes the column
 * and the column is kept as *_pgvalve_old; back (a rollback after the swap)
 * the old column becomes the column again and the column goes back to being
 * the shadow.
 */
static void put_swap_columns(struct strbuf *b, const struct kc_table *t, bool back)
{
	for (int i = 0; i < t->n_cols; i++) {
		const struct kc_col *cc = &t->cols[i];
		const char *becomes = back ? cc->old_name : cc->shadow_name;
		const char *kept_as = back ? cc->shadow_name : cc->old_name;

		if (!cc->shadow)
			continue;
		if (cc->not_null) {
			/* SET NOT NULL first: the validated CHECK spares it the scan; then the check goes */
			put_alter(b, t);
			strbuf_put(b, "ALTER COLUMN ");
			quote_append_ident(b, becomes);
			strbuf_put(b, " SET NOT NULL; ");
			put_alter(b, t);
			strbuf_put(b, "DROP CONSTRAINT ");
			quote_append_ident(b, back ? cc->check_old_name : cc->check_name);
			strbuf_put(b, ", ALTER COLUMN ");
			quote_append_ident(b, cc->name);
			strbuf_put(b, " DROP NOT NULL; ");
		}
		if (cc->default_expr) {
			put_alter(b, t);
			strbuf_put(b, "ALTER COLUMN ");
			quote_append_ident(b, cc->name);
			strbuf_put(b, " DROP DEFAULT, ALTER COLUMN ");
			quote_append_ident(b, becomes);
			strbuf_put(b, " SET DEFAULT ");
			strbuf_put(b, cc->default_expr); /* the server's own deparse of the default */
			strbuf_put(b, "; ");
		}
		put_alter(b, t);
		strbuf_put(b, "RENAME COLUMN ");
		quote_append_ident(b, cc->name);
		strbuf_put(b, " TO ");
		quote_append_ident(b, kept_as);
		strbuf_put(b, "; ");
		put_alter(b, t);
		strbuf_put(b, "RENAME COLUMN ");
		quote_append_ident(b, becomes);
		strbuf_put(b, " TO ");
		quote_append_ident(b, cc->name);
		strbuf_put(b, "; ");
	}
	for (int i = 0; i < t->n_idx; i++) {
		const struct kc_index *x = &t->idx[i];

		if (x->primary)
			continue;
		strbuf_put(b, "ALTER INDEX ");
		quote_append_qname(b, t->q.schema, x->name);
		strbuf_put(b, " RENAME TO ");
		quote_append_ident(b, back ? x->new_name : x->old_name);
		strbuf_put(b, "; ALTER INDEX ");
		quote_append_qname(b, t->q.schema, back ? x->old_name : x->new_name);
		strbuf_put(b, " RENAME TO ");
		quote_append_ident(b, x->name);
		strbuf_put(b, "; ");
	}
}

/*
 * The swap (finalize, one transaction under an all hold): the old foreign
 * keys dropped; the key's table swapped (sequence AS bigint, primary key on
 * the new column USING its index, sequence owned by it); each referencing
 * table swapped and its new foreign key given the old name; every trigger
 * reversed so the old columns keep following.
 */
static void push_swap(struct plan *p, const struct kc *k, bool back)
{
	const struct kc_table *key = &k->t[0];

	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_table *t = &k->t[k->fk[i].table];
		struct strbuf b = { 0 };

		put_alter(&b, t);
		strbuf_put(&b, "DROP CONSTRAINT ");
		quote_append_ident(&b, k->fk[i].name);
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, key, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));
	}
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];
		struct strbuf b = { 0 };

		if (ti == 0) {
			const struct kc_index *pk = NULL;

			for (int i = 0; i < t->n_idx; i++)
				if (t->idx[i].primary)
					pk = &t->idx[i];
			if (k->seq_widen) {
				strbuf_put(&b, "ALTER SEQUENCE ");
				quote_append_qname(&b, k->seq.schema, k->seq.name);
				strbuf_put(&b, " AS ");
				strbuf_put(&b, back ? t->cols[0].type : "bigint");
				strbuf_put(&b, "; ");
			}
			put_alter(&b, t);
			strbuf_put(&b, "DROP CONSTRAINT ");
			quote_append_ident(&b, k->pk);
			strbuf_put(&b, "; ");
			put_swap_columns(&b, t, back);
			put_alter(&b, t);
			strbuf_put(&b, "ADD CONSTRAINT ");
			quote_append_ident(&b, k->pk);
			strbuf_put(&b, " PRIMARY KEY USING INDEX ");
			quote_append_ident(&b, pk ? (back ? pk->old_name : pk->new_name) : "");
			strbuf_put(&b, "; ");
			if (k->seq.name[0]) {
				strbuf_put(&b, "ALTER SEQUENCE ");
				quote_append_qname(&b, k->seq.schema, k->seq.name);
				strbuf_put(&b, " OWNED BY ");
				quote_append_qname(&b, t->q.schema, t->q.name);
				strbuf_put(&b, ".");
				quote_append_ident(&b, t->cols[0].name);
				strbuf_put(&b, "; ");
			}
		} else {
			put_swap_columns(&b, t, back);
		}
		for (int i = 0; i < k->n_fk; i++) {
			if (k->fk[i].table != ti)
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "RENAME CONSTRAINT ");
			quote_append_ident(&b, back ? k->fk[i].old_name : k->fk[i].new_name);
			strbuf_put(&b, " TO ");
			quote_append_ident(&b, k->fk[i].name);
			strbuf_put(&b, "; ");
		}
		if (has_shadow(t))
			put_trigger_function(&b, t, !back, true);
		else if (b.len > 2)
			b.s[b.len -= 2] = '\0'; /* the last "; " */
		push_step(p,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, ti ? key : NULL,
				  LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, strbuf_take(&b)));
	}
}

/* ---- the swap back ------------------------------------------------------------------ */

/* Steps as JSON statements: [{"sql", "schema", "table", "other_schema", "other"}]; frees their SQL. */
static cJSON *statements_json(struct plan *tmp)
{
	cJSON *arr = cJSON_CreateArray();

	for (int i = 0; i < tmp->n_steps; i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "sql", tmp->steps[i].sql);
		cJSON_AddStringToObject(o, "schema", tmp->steps[i].table.schema);
		cJSON_AddStringToObject(o, "table", tmp->steps[i].table.name);
		cJSON_AddStringToObject(o, "other_schema", tmp->steps[i].other.schema);
		cJSON_AddStringToObject(o, "other", tmp->steps[i].other.name);
		cJSON_AddItemToArray(arr, o);
		free(tmp->steps[i].sql);
	}
	free(tmp->steps);
	memset(tmp, 0, sizeof(*tmp));
	return arr;
}

/*
 * How to take the swap back (a rollback after it): "check" counts rows
 * whose value the old columns cannot hold; "indexes" ([drop, create]) the
 * old key's unique index, built concurrently; "held" the old columns' NOT
 * NULL checks and foreign keys NOT VALID (each drops a leftover of an
 * interrupted rollback first); "validate" them; "swap" the swap mirrored.
 */
static char *undo_json(const struct kc *k)
{
	const struct kc_table *key = &k->t[0];
	const struct kc_col *kcol = &key->cols[0];
	const struct kc_index *pk = NULL;
	cJSON *u = cJSON_CreateObject(), *arr, *pair;
	struct strbuf b = { 0 };
	struct plan tmp = { 0 };
	char *text;

	for (int i = 0; i < key->n_idx; i++)
		if (key->idx[i].primary)
			pk = &key->idx[i];
	strbuf_put(&b, "SELECT 0");
	for (int ti = 0; ti < k->n_t; ti++)
		for (int i = 0; i < k->t[ti].n_cols; i++) {
			const struct kc_col *cc = &k->t[ti].cols[i];

			if (!cc->shadow)
				continue;
			strbuf_put(&b, " + (SELECT count(*) FROM ");
			put_table(&b, &k->t[ti]);
			strbuf_put(&b, " WHERE ");
			quote_append_ident(&b, cc->old_name);
			strbuf_put(&b, " IS NULL AND ");
			quote_append_ident(&b, cc->name);
			strbuf_put(&b, " IS NOT NULL)");
		}
	text = strbuf_take(&b);
	cJSON_AddStringToObject(u, "check", text);
	free(text);
	arr = cJSON_AddArrayToObject(u, "indexes");
	pair = cJSON_CreateArray();
	strbuf_put(&b, "DROP INDEX CONCURRENTLY IF EXISTS ");
	quote_append_qname(&b, key->q.schema, pk ? pk->old_name : "");
	text = strbuf_take(&b);
	cJSON_AddItemToArray(pair, cJSON_CreateString(text));
	free(text);
	strbuf_put(&b, "CREATE UNIQUE INDEX CONCURRENTLY ");
	quote_append_ident(&b, pk ? pk->old_name : "");
	strbuf_put(&b, " ON ");
	put_table(&b, key);
	strbuf_put(&b, " (");
	quote_append_ident(&b, kcol->old_name);
	strbuf_put(&b, ")");
	text = strbuf_take(&b);
	cJSON_AddItemToArray(pair, cJSON_CreateString(text));
	free(text);
	cJSON_AddItemToArray(arr, pair);

	arr = cJSON_AddArrayToObject(u, "validate");
	for (int ti = 0; ti < k->n_t; ti++) {
		const struct kc_table *t = &k->t[ti];

		for (int i = 0; i < t->n_cols; i++) {
			const struct kc_col *cc = &t->cols[i];

			if (!cc->check_old_name[0])
				continue;
			put_alter(&b, t);
			strbuf_put(&b, "DROP CONSTRAINT IF EXISTS ");
			quote_append_ident(&b, cc->check_old_name);
			strbuf_put(&b, ", ADD CONSTRAINT ");
			quote_append_ident(&b, cc->check_old_name);
			strbuf_put(&b, " CHECK (");
			quote_append_ident(&b, cc->old_name);
			strbuf_put(&b, " IS NOT NULL) NOT VALID");
			push_step(&tmp,
				  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, NULL,
					  LOCK_ACCESS_EXCLUSIVE, HOLD_ALL_NEEDED, strbuf_take(&b)));
			put_alter(&b, t);
			strbuf_put(&b, "VALIDATE CONSTRAINT ");
			quote_append_ident(&b, cc->check_old_name);
			text = strbuf_take(&b);
			cJSON_AddItemToArray(arr, cJSON_CreateString(text));
			free(text);
		}
	}
	for (int i = 0; i < k->n_fk; i++) {
		const struct kc_fk *f = &k->fk[i];
		const struct kc_table *t = &k->t[f->table];
		const struct kc_col *cc = &t->cols[f->col];

		put_alter(&b, t);
		strbuf_put(&b, "DROP CONSTRAINT IF EXISTS ");
		quote_append_ident(&b, f->old_name);
		strbuf_put(&b, ", ADD CONSTRAINT ");
		quote_append_ident(&b, f->old_name);
		strbuf_put(&b, " FOREIGN KEY (");
		quote_append_ident(&b, cc->shadow ? cc->old_name : cc->name);
		strbuf_put(&b, ") REFERENCES ");
		put_table(&b, key);
		strbuf_put(&b, " (");
		quote_append_ident(&b, kcol->old_name);
		strbuf_put(&b, ") ");
		strbuf_put(&b, f->tail);
		strbuf_put(&b, " NOT VALID");
		push_step(&tmp,
			  step_of(k, STEP_KEYCHANGE_SWAP, PHASE_FINALIZE, t, key, LOCK_ACCESS_EXCLUSIVE,
				  HOLD_ALL_NEEDED, strbuf_take(&b)));
		put_alter(&b, t);
		strbuf_put(&b, "VALIDATE CONSTRAINT ");
		quote_append_ident(&b, f->old_name);
		text = strbuf_take(&b);
		cJSON_AddItemToArray(arr, cJSON_CreateString(text));
		free(text);
	}
	cJSON_AddItemToObject(u, "held", statements_json(&tmp));
	push_swap(&tmp, k, true);
	cJSON_AddItemToObject(u, "swap", statements_json(&tmp));
	text = cJSON_PrintUnformatted(u);
	cJSON_Delete(u);
	return text;
}

/* ---- resolving the file's statements ------------------------------------------------ */

static void note_change(struct plan *p, const struct kc *k, const struct kc_req_info *ri, int self)
{
	const struct plan_input *in = &p->inputs[k->input];
	char key[4 * PLAN_NAME_MAX + 8];
	long long rows = 0;

	snprintf(key, sizeof(key), "%s", k->t[0].display);
	for (int ti = 0; ti < k->n_t; ti++)
		rows += k->t[ti].rows;
	input_note(
		p,
		"%s:%d: ALTER COLUMN %s TYPE bigint on %s: an online key type change of %d table(s), ~%lld "
		"row(s): bigint shadow columns kept equal by triggers and backfilled in batches, indexes "
		"and foreign keys built beside the old ones, then one swap under a brief all hold; the "
		"old columns stay (and keep following) until `pgvalve finalize ID`",
		in->file, in->line, k->t[0].cols[0].name, key, k->n_t, rows);
	for (int ti = 0; ti < k->n_t; ti++)
		if (k->t[ti].update_triggers[0])
			input_note(
				p,
				"%s:%d: the backfill updates every row of %s, which fires its UPDATE "
				"trigger(s) %s for each: make them skip rows whose only change is a "
				"*_pgvalve_new column, or expect what they do (an updated_at set to now())",
				in->file, in->line, k->t[ti].display, k->t[ti].update_triggers);
	for (int f = 0; f < k->n_fk; f++) {
		const struct kc_table *t = &k->t[k->fk[f].table];
		const struct kc_col *cc = &t->cols[k->fk[f].col];
		char tn[4 * PLAN_NAME_MAX + 8];
		int from = -1;

		snprintf(tn, sizeof(tn), "%s", t->display);
		for (int j = 0; j < p->n_keychange_reqs; j++)
			if (ri[j].folded_into == self && strcmp(ri[j].oid, t->oid) == 0 &&
			    ri[j].attnum == cc->attnum)
				from = j;
		if (from >= 0)
			input_note(
				p,
				"%s:%d: ALTER COLUMN %s TYPE bigint on %s: folded into the key change of %s",
				p->inputs[p->keychange_reqs[from].input].file,
				p->inputs[p->keychange_reqs[from].input].line, cc->name, tn, key);
		else
			input_note(p,
				   "%s:%d: the key change of %s also changes %s.%s (foreign key %s)%s, which "
				   "the "
				   "file leaves out",
				   in->file, in->line, key, tn, cc->name, k->fk[f].name,
				   cc->shadow ? "" : " — bigint already: only its foreign key moves");
	}
}

static int by_phase(const void *a, const void *b)
{
	const struct plan_step *x = a, *y = b;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

bool keychange_resolve(PGconn *c, struct plan *p, struct db_error *err)
{
	struct kc_req_info *ri;
	struct kc *k;
	bool ok = true;

	if (p->n_keychange_reqs == 0)
		return true;
	ri = xcalloc((size_t)p->n_keychange_reqs, sizeof(*ri));
	k = xmalloc(sizeof(*k));
	for (int i = 0; i < p->n_keychange_reqs && ok; i++)
		ok = keychange_catalog_read_req(c, &p->keychange_reqs[i], &ri[i], err);
	/* a referencing column's line folds into its key's change, when the file changes that key */
	for (int i = 0; i < p->n_keychange_reqs && ok; i++)
		for (int j = 0; j < p->n_keychange_reqs && !ri[i].key; j++)
			if (ri[j].key && ri[i].ref_attnum && strcmp(ri[i].ref_oid, ri[j].oid) == 0 &&
			    ri[i].ref_attnum == ri[j].attnum)
				ri[i].folded_into = j;
	for (int i = 0; i < p->n_keychange_reqs && ok; i++) {
		const struct plan_keychange_req *q = &p->keychange_reqs[i];
		char what[4 * PLAN_NAME_MAX + 8];

		if (ri[i].folded_into >= 0)
			continue;
		memset(k, 0, sizeof(*k));
		qname_format(&q->table, what, sizeof(what));
		if (!ri[i].oid[0]) {
			push_refusal(p, q->input, xasprintf("refused: table %s does not exist", what),
				     xstrdup("check the table name and search_path"));
			continue;
		}
		if (!keychange_catalog_read_change(c, p, i, &ri[i], k, err)) {
			ok = false;
		} else if (k->reasons[0]) {
			if (!ri[i].key && ri[i].ref_attnum)
				keychange_catalog_refuse(k,
							 "it references %s, which this file does not change: "
							 "pgvalve changes a "
							 "key "
							 "together with every column that references it",
							 ri[i].ref_name);
			push_refusal(
				p, q->input,
				xasprintf("refused: ALTER COLUMN %s TYPE bigint on %s: %s", q->column, what,
					  k->reasons),
				xasprintf("pgvalve changes an integer primary key (and every foreign key "
					  "column that references it) online: ALTER TABLE %s ALTER COLUMN "
					  "<key> TYPE bigint; what is named above must be removed (or "
					  "changed by hand) first",
					  what));
		} else {
			note_change(p, k, ri, i);
			push_prepare(p, k);
			push_constraints(p, k);
			push_swap(p, k, false);
			p->keychange_undo = xrealloc(p->keychange_undo,
						     sizeof(char *) * (size_t)(p->n_keychange_undo + 1));
			p->keychange_undo[p->n_keychange_undo++] = undo_json(k);
		}
		keychange_catalog_free(k);
	}
	free(k);
	free(ri);
	if (ok && p->n_steps) {
		qsort(p->steps, (size_t)p->n_steps, sizeof(*p->steps), by_phase);
		for (int i = 0; i < p->n_steps; i++)
			p->steps[i].seq = i + 1;
	}
	return ok;
}
