/*
 * The SQL a client message of a unit of work runs, classified: the one
 * reading of Query, Parse and Bind bodies that the hold check (park.c) and
 * table latency (latency.c) share (docs/architecture.md, statement
 * classification).
 */
#ifndef PGVALVE_PROXY_UNIT_SQL_H
#define PGVALVE_PROXY_UNIT_SQL_H

#include <stdbool.h>
#include <stdint.h>

#include "pgvalve/classify.h"

struct session;

/*
 * Fills 'r' with what message 'type' (its body: 'avail' of 'len' bytes) runs:
 * a Query's text, a Parse's text, the named statement a Bind binds (classified
 * once per statement, stmt.c), a FunctionCall (unknowable). Text shown only in
 * part, and a Bind of a name not known for sure, are CLASSIFY_UNKNOWN. False:
 * nothing to judge — another message type, a Bind of the unnamed statement
 * (judged at its Parse), or a malformed Bind (the server will say so).
 */
bool unit_sql_classify(struct session *s, uint8_t type, const uint8_t *body, uint32_t avail, uint32_t len,
		       struct classify_result *r);

#endif
