/*
 * libpg_query's parse tree, read with cJSON: parsing SQL into it, reading
 * fields of its nodes, table names (RangeVar), and comparing two trees.
 * Both readers of parse trees use it: the classifier (common/classify.c) and
 * the coordinator's rules (coordinator/rules.c). What a tree means is theirs
 * to decide; this module knows the tree's shape only.
 *
 * The shape (libpg_query 15's JSON output): a node is an object with one
 * key, its type, capitalized ({"RangeVar": {...fields...}}); a field typed
 * as a particular node (RangeVar *relation) holds the fields without the
 * wrapper. Lists are arrays. Fields at their zero value (false, 0, NULL) are
 * left out. Names arrive as PostgreSQL folds them: unquoted identifiers in
 * lower case, quoted ones as written.
 *
 * Parsing is libpg_query's raw parser, which recurses once per nesting
 * level without a limit (the tree-to-JSON step takes about 134 bytes of
 * stack a level, an expression nests at most one level per two bytes of
 * SQL) and leaks one pthread key per thread that ever parses: parse only
 * bounded text on threads with stack to spare, and only on a fixed set of
 * threads (see CLASSIFY_STACK_BYTES in classify.h, RULES_PARSE_MAX_BYTES in
 * the coordinator's rules.h). Nothing here allocates except pgtree_parse()
 * and pgtree_same(), and those report failure rather than die, so the
 * proxy may use them.
 */
#ifndef PGVALVE_PGTREE_H
#define PGVALVE_PGTREE_H

#include <cjson/cJSON.h>
#include <stdbool.h>

enum pgtree_error_kind {
	PGTREE_SYNTAX,   /* libpg_query refused the text: message and cursorpos are PostgreSQL's */
	PGTREE_TOO_DEEP, /* parsed, but cJSON refuses to read a tree nested that deeply (or memory ran out) */
};

struct pgtree_error {
	enum pgtree_error_kind kind;
	int cursorpos; /* PGTREE_SYNTAX: 1-based character position of the error, 0 when unknown */
	char message[256];
};

/*
 * Parses the NUL-terminated 'sql' into its tree, {"version": N, "stmts":
 * [{"stmt": {...}, "stmt_location": .., "stmt_len": ..}, ...]}, which the
 * caller frees with cJSON_Delete(). NULL with 'err' filled when it does not
 * parse or cannot be read.
 */
__attribute__((warn_unused_result)) cJSON *pgtree_parse(const char *sql, struct pgtree_error *err);

/* The statements of a parsed tree (an array; NULL if none). */
const cJSON *pgtree_stmts(const cJSON *tree);

/* obj's field 'key' (NULL when absent or obj is NULL). */
const cJSON *pgtree_get(const cJSON *obj, const char *key);

/* obj's string field 'key', NULL when absent or not a string. */
const char *pgtree_str(const cJSON *obj, const char *key);

/* Whether obj's string field 'key' is 'want'. */
bool pgtree_str_is(const cJSON *obj, const char *key, const char *want);

/* obj's boolean field 'key': absent is false (libpg_query leaves false out). */
bool pgtree_flag(const cJSON *obj, const char *key);

/* obj's integer field 'key' into *out; false (and *out untouched) when absent or not a number. */
bool pgtree_int(const cJSON *obj, const char *key, int *out);

/* The length of a list (an array; 0 for NULL or anything else). */
int pgtree_list_len(const cJSON *list);

/* Item i of a list (0-based), NULL past its end. Walk a whole list with cJSON_ArrayForEach. */
const cJSON *pgtree_list_at(const cJSON *list, int i);

/* The type of a node ({"SelectStmt": {...}} gives "SelectStmt"), NULL if 'node' is not one. */
const char *pgtree_kind(const cJSON *node);

/* The fields of 'node' if it is a node of type 'kind', else NULL. */
const cJSON *pgtree_node(const cJSON *node, const char *kind);

/*
 * Whether 'child', a member of an object, is a node of the tree rather than
 * a field: node types are capitalized keys holding objects, fields are
 * lower case.
 */
bool pgtree_is_node(const cJSON *child);

/* The value of a String node ({"String": {"sval": "..."}}), NULL if 'node' is not one. */
const char *pgtree_string(const cJSON *node);

/* A table's name in a RangeVar (its fields, unwrapped): NULL parts are absent. */
struct pgtree_range_var {
	const char *catalog; /* database.schema.table: the database */
	const char *schema;
	const char *name;
	bool inh; /* false for ONLY t */
};

/* Reads 'rv' (a RangeVar's fields) into *out; false when it names no relation. */
bool pgtree_range_var(const cJSON *rv, struct pgtree_range_var *out);

/*
 * Whether trees a and b are the same but for "location" fields (positions
 * in the text) anywhere and the field 'ignore' (NULL: none) of their top
 * objects. False also when memory runs out for the copies it compares.
 */
bool pgtree_same(const cJSON *a, const cJSON *b, const char *ignore);

#endif
