/*
 * Reading a migration (docs/architecture.md, "plan"): SQL files as ORMs
 * write them, or a JSON plan, into the plan's list of input statements —
 * each with its file, line and trimmed text — plus the plan's name and
 * checksum. What the
 * statements mean is rules.c's business; input.c only cuts them apart,
 * reports syntax errors where they are, and drops the transaction wrapping
 * (BEGIN/COMMIT) that pgvalve replaces with its own phases.
 */
#ifndef PGVALVE_COORDINATOR_INPUT_H
#define PGVALVE_COORDINATOR_INPUT_H

#include <stdbool.h>

#include "plan.h"

#define INPUT_MAX_FILE_BYTES (64u << 20)   /* a larger file is refused */
#define INPUT_MAX_STATEMENTS 10000         /* a file (or files) with more statements is refused */
#define INPUT_PARSE_CHUNK_BYTES (4u << 20) /* a larger file is parsed in pieces of about this size */

/* Why input_load() or rules_plan() refused, and where: for people, like psql's errors. */
struct input_error {
	char file[256]; /* the file as given ("" when no file is to blame) */
	int line;       /* 1-based; 0 when no line is to blame */
	char msg[768];
	/* the file cannot be read as SQL text (cannot be opened, too large, a NUL byte, not UTF-8):
	   a usage error (exit 2) rather than a refusal */
	bool not_text;
};

/*
 * Reads 'files' in order into 'p', which must be zeroed: p->inputs (every
 * statement but BEGIN / START TRANSACTION / COMMIT / END, which are dropped
 * with a note in p->notes), p->name (the first file's base name without its
 * extension, or a JSON plan's "name"), p->checksum (SHA-256, hex, of all the
 * files' bytes in order).
 *
 * A file whose name ends in ".json", or whose first non-blank byte is '{',
 * is a JSON plan: {"name": "...", "statements": ["ALTER TABLE ...", ...]};
 * statement i (0-based) is reported as line i + 1 of that file. Any other
 * file is SQL, split with libpg_query; each statement's line is the line of
 * its first token, after any leading comments.
 *
 * Returns false with 'err' filled (file, line, PostgreSQL's message for a
 * syntax error) when a file cannot be read, is larger than
 * INPUT_MAX_FILE_BYTES, holds a NUL byte, does not parse, or when no
 * statement is left at all. Either way the caller frees 'p' with
 * plan_free(). Parses with libpg_query on the calling thread (see
 * rules.h about stack).
 */
__attribute__((warn_unused_result)) bool input_load(struct plan *p, char *const *files, int n_files,
						    struct input_error *err);

/*
 * input_load() of one file 'file' whose bytes are text[0..len), already in
 * memory (read by the caller, or never on disk: tests, the fuzz target).
 * 'file' names it in errors and notes and decides, like a path, whether it
 * is a JSON plan; p->checksum is of text[0..len).
 */
__attribute__((warn_unused_result)) bool input_load_text(struct plan *p, const char *file, const char *text,
							 size_t len, struct input_error *err);

/* Appends a note for people to p->notes; an identical note is kept once. */
__attribute__((format(printf, 2, 3))) void input_note(struct plan *p, const char *fmt, ...);

/* Sets err's fields; file may be NULL. */
__attribute__((format(printf, 4, 5))) void input_error_set(struct input_error *err, const char *file,
							   int line, const char *fmt, ...);

#endif
