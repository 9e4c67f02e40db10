/*
 * The SQL that sets up the verifier lookup for auth.mode "terminate"
 * (printed by pgvalve-proxy --print-auth-sql): a schema-qualified
 * SECURITY DEFINER function with its search_path pinned that returns a
 * login role's name and verifier, NULL when the password has expired, and
 * the grants that let the lookup role call it and nothing more. The text is
 * kept here so tests can run it against a real server.
 */
#ifndef PGVALVE_AUTH_SQL_H
#define PGVALVE_AUTH_SQL_H

#include <stdbool.h>
#include <stdio.h>

#define AUTH_SQL_DEFAULT_ROLE "pgvalve_auth"

/*
 * Writes the script to 'out' for the lookup role 'role' (auth.user; quoted
 * as an identifier and a literal where it appears). Returns false if writing
 * failed or 'role' cannot be written safely (empty, a control character,
 * "$pgvalve$"), before writing anything in that case.
 */
bool auth_sql_write(FILE *out, const char *role) __attribute__((warn_unused_result));

#endif
