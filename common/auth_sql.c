/*
 * The lookup function's SQL (see auth_sql.h). Why each clause is there:
 * SECURITY DEFINER because pg_authid is readable by superusers only; the
 * pinned search_path (pg_catalog, then pg_temp) and schema-qualified names
 * because a SECURITY DEFINER function must not resolve names through the
 * caller's path (https://www.postgresql.org/docs/15/sql-createfunction.html,
 * "Writing SECURITY DEFINER Functions Safely"); expired passwords come back
 * NULL so the proxy refuses them as PostgreSQL does; only roles that may log
 * in are visible; EXECUTE is revoked from PUBLIC and granted to the lookup
 * role alone.
 */
#include "pgvalve/auth_sql.h"

#include <string.h>

/* 's' with every 'q' doubled, between two 'q's: "a""b" for identifiers, 'a''b' for literals. */
static bool put_quoted(FILE *out, const char *s, char q)
{
	if (fputc(q, out) == EOF)
		return false;
	for (; *s; s++) {
		if (*s == q && fputc(q, out) == EOF)
			return false;
		if (fputc(*s, out) == EOF)
			return false;
	}
	return fputc(q, out) != EOF;
}

bool auth_sql_write(FILE *out, const char *role)
{
	bool ok = true;

	/* The name also lands in a comment line and inside a $pgvalve$-quoted block. */
	if (!role[0] || strstr(role, "$pgvalve$"))
		return false;
	for (const char *s = role; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;

	ok = ok &&
		fputs("-- pgvalve-proxy: the verifier lookup for \"auth\": {\"mode\": \"terminate\"}.\n"
		      "-- Run as a superuser in the database the lookup connects to (auth.dbname, or\n"
		      "-- every database clients use when auth.dbname is null), e.g.\n"
		      "--   pgvalve-proxy --print-auth-sql | psql -U postgres -d postgres -v "
		      "ON_ERROR_STOP=1\n"
		      "-- Then give the lookup role a password and put it in auth.password_file:\n"
		      "--   ALTER ROLE ",
		      out) >= 0;
	ok = ok && put_quoted(out, role, '"');
	ok = ok &&
		fputs(" PASSWORD '...';\n"
		      "BEGIN;\n"
		      "DO $pgvalve$\n"
		      "BEGIN\n"
		      "    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ",
		      out) >= 0;
	ok = ok && put_quoted(out, role, '\'');
	ok = ok &&
		fputs(") THEN\n"
		      "        CREATE ROLE ",
		      out) >= 0;
	ok = ok && put_quoted(out, role, '"');
	ok = ok &&
		fputs(" LOGIN;\n"
		      "    END IF;\n"
		      "END\n"
		      "$pgvalve$;\n"
		      "CREATE SCHEMA IF NOT EXISTS pgvalve;\n"
		      "CREATE OR REPLACE FUNCTION pgvalve.auth_lookup(role_name text)\n"
		      "RETURNS TABLE (rolname text, rolpassword text)\n"
		      "LANGUAGE sql STABLE STRICT SECURITY DEFINER\n"
		      "SET search_path = pg_catalog, pg_temp\n"
		      "AS $pgvalve$\n"
		      "    SELECT a.rolname::text,\n"
		      "           CASE WHEN a.rolvaliduntil IS NULL OR a.rolvaliduntil >= pg_catalog.now()\n"
		      "                THEN a.rolpassword END\n"
		      "      FROM pg_catalog.pg_authid AS a\n"
		      "     WHERE a.rolname OPERATOR(pg_catalog.=) role_name::pg_catalog.name\n"
		      "       AND a.rolcanlogin\n"
		      "$pgvalve$;\n"
		      "REVOKE ALL ON FUNCTION pgvalve.auth_lookup(text) FROM PUBLIC;\n"
		      "GRANT USAGE ON SCHEMA pgvalve TO ",
		      out) >= 0;
	ok = ok && put_quoted(out, role, '"');
	ok = ok && fputs(";\nGRANT EXECUTE ON FUNCTION pgvalve.auth_lookup(text) TO ", out) >= 0;
	ok = ok && put_quoted(out, role, '"');
	ok = ok && fputs(";\nCOMMIT;\n", out) >= 0;
	return ok && fflush(out) == 0;
}
