/*
 * The rewrite rules (docs/architecture.md, "plan"): each input statement of
 * a plan is matched to a rule that turns it into safe steps — ADD … NOT VALID at
 * cutover and VALIDATE after it, CREATE INDEX CONCURRENTLY before it, SET
 * NOT NULL proven by a helper CHECK — with the lock each step takes and the
 * hold it needs. Names are generated the way PostgreSQL would, and every
 * identifier in generated SQL is quoted. Pure: no database here; what only
 * the database knows (existing names, column types, row counts) is the
 * preflight's business.
 */
#ifndef PGVALVE_COORDINATOR_RULES_H
#define PGVALVE_COORDINATOR_RULES_H

#include <stdbool.h>

#include "input.h"
#include "plan.h"

/*
 * A statement longer than this is not parsed into a tree, only split:
 * libpg_query recurses once per nesting level (about 134 bytes of stack a
 * level, at most one level per two bytes), and 64 KiB stays within the
 * main thread's 8 MiB. Such a statement is refused, or run as written with
 * --allow-unsafe.
 */
#define RULES_PARSE_MAX_BYTES (64u << 10)

struct rules_options {
	bool allow_unsafe; /* run what no rule covers as written (STEP_UNSAFE), with a note */
};

/* The statement forms the rules cover, for people: "ALTER TABLE … ADD …; …". */
extern const char rules_supported_forms[];

/*
 * Plans every statement of p->inputs (from input_load()): fills
 * p->constraints, p->drops, p->steps (in execution order: every prepare step,
 * then cutover, validate, finalize; seq 1..n) and adds to p->notes.
 *
 * Returns false with 'err' filled (the statement's file and line) when a
 * statement matches no rule and opt->allow_unsafe is off (the message has
 * the statement's first 120 characters and the supported forms), when a
 * covered statement cannot be rewritten faithfully (a CHECK expression that
 * does not read back the same, a CREATE INDEX without a name, more than 32
 * key columns), or when memory runs out. Either way the caller frees 'p'
 * with plan_free().
 */
__attribute__((warn_unused_result)) bool rules_plan(struct plan *p, const struct rules_options *opt,
						    struct input_error *err);

#endif
