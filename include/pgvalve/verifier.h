/*
 * Password verifiers as PostgreSQL stores them (pg_authid.rolpassword) and
 * where the proxy finds them when it terminates authentication: telling a
 * SCRAM-SHA-256 verifier from an md5 hash from anything else, and reading
 * PgBouncer's auth_file format (auth.userlist_file). Looking verifiers up in
 * the database, caching and refetching them belong to the session's auth
 * code.
 *
 * auth_file format (https://www.pgbouncer.org/config.html#authentication-file-format):
 *
 *     ; comment (a line whose first non-blank character is ';' or '#')
 *     "alice" "SCRAM-SHA-256$4096:c2FsdA==$...:..."
 *     "bob"   "md5d3b0f5a3e9b8f6b0c1c5e0e2b8a1f9c2"
 *     "odd""name" "..."          <- a '"' inside a field is written twice
 *
 * Two double-quoted fields per line, separated by blanks; anything after the
 * second field is ignored (PgBouncer's files may carry more). A name appears
 * once.
 */
#ifndef PGVALVE_VERIFIER_H
#define PGVALVE_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>

enum verifier_kind {
	VERIFIER_NONE,    /* NULL or empty: the role has no password */
	VERIFIER_SCRAM,   /* a well-formed SCRAM-SHA-256 verifier */
	VERIFIER_MD5,     /* "md5" + 32 hex digits */
	VERIFIER_INVALID, /* looks like one of those but is malformed */
	VERIFIER_PLAIN,   /* anything else: a plain-text password, which terminate mode cannot use */
};

/* What 'text' (NUL-terminated, or NULL) is. */
enum verifier_kind verifier_classify(const char *text);

/* "none", "SCRAM-SHA-256", "md5", "invalid", "plain text". */
const char *verifier_kind_name(enum verifier_kind k);

/* Limits of one auth_file entry and of the file (bytes). */
#define VERIFIER_NAME_MAX 256
#define VERIFIER_SECRET_MAX 1024
#define VERIFIER_FILE_MAX (64 << 20)

struct verifier_list;

/*
 * Parses auth_file text (len bytes; NULs are refused). NULL with err filled
 * ("line 3: expected a double-quoted name", "line 7: \"bob\" given twice
 * (first on line 2)", "out of memory") on the first problem: a broken file
 * is refused whole rather than silently missing users.
 */
struct verifier_list *verifier_list_parse(const char *text, size_t len, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* verifier_list_parse() of a file; the messages start with its path. */
struct verifier_list *verifier_list_load(const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The secret stored for 'name' (exact, case-sensitive match), borrowed from the list; NULL if absent. */
const char *verifier_list_peek(const struct verifier_list *l, const char *name);

/* How many entries. */
size_t verifier_list_count(const struct verifier_list *l);

/* Wipes the secrets and frees; NULL is fine. */
void verifier_list_free(struct verifier_list *l);

#endif
