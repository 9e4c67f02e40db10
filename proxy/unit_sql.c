/*
 * Classifying a unit's messages (see unit_sql.h) through the worker's parse
 * cache, with the session's settings.
 */
#include "unit_sql.h"

#include <string.h>

#include "pgvalve/classify_cache.h"
#include "session.h"
#include "worker.h"

bool unit_sql_classify(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len,
		       struct classify_result *r)
{
	struct classify_options opt = {
		.parse_max_bytes = (size_t)s->w->snap->cfg.parse_max_bytes,
		.standard_conforming_strings_off = s->scs_off,
	};
	const char *sql = NULL;
	size_t sql_len = 0;
	bool unknown = false;

	switch (type) {
	case 'Q':
		sql = (const char *)body;
		sql_len = len;
		unknown = avail < len;
		break;
	case 'P': {
		const uint8_t *name_end = memchr(body, 0, avail);

		unknown = avail < len || !name_end;
		if (!unknown) {
			sql = (const char *)name_end + 1;
			sql_len = len - (uint32_t)(name_end + 1 - body);
		}
		break;
	}
	case 'B': {
		const uint8_t *portal_end = memchr(body, 0, avail), *stmt_end;
		struct stmt *st;
		bool uncertain;

		stmt_end = portal_end ? memchr(portal_end + 1, 0, avail - (uint32_t)(portal_end + 1 - body))
				      : NULL;
		if (!stmt_end)
			return false; /* malformed: the server will say so */
		if (stmt_end == portal_end + 1)
			return false; /* the unnamed statement was judged at its Parse */
		st = stmt_lookup(&s->statements, (const char *)portal_end + 1, &uncertain);
		if (!st) {
			/*
			 * Not known for sure (forgotten, or changed by a batch not yet
			 * answered), or prepared with SQL PREPARE (same namespace, never
			 * seen here): fail closed.
			 */
			unknown = true;
			break;
		}
		/* A named statement is classified once, the first time something needs it. */
		stmt_classify(st, s->w->classify_cache, &opt, r);
		return true;
	}
	case 'F':
		unknown = true;
		break;
	default:
		return false;
	}
	if (unknown) {
		memset(r, 0, sizeof(*r));
		r->flags = CLASSIFY_UNKNOWN;
	} else {
		classify_cache_sql(s->w->classify_cache, sql, sql_len, &opt, r);
	}
	return true;
}
