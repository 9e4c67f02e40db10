/*
 * Framing of the PostgreSQL v3 protocol (https://www.postgresql.org/docs/current/protocol-message-formats.html).
 * Owns byte-level parsing and building of the messages the proxy looks into;
 * it does not own buffers, sockets or the decision of what to do with them.
 */
#include "pgvalve/pgwire.h"

#include <string.h>

enum pgwire_result pgwire_read_header(const uint8_t *p, size_t avail, uint32_t max_len,
				      struct pgwire_header *h)
{
	if (avail < PGWIRE_HEADER_LEN)
		return PGWIRE_INCOMPLETE;
	h->type = p[0];
	h->len = pgwire_get_u32(p + 1);
	/* The length is an Int32 that counts itself: below 4 or negative is malformed. */
	if (h->len < 4 || h->len > INT32_MAX || h->len > max_len)
		return PGWIRE_ERROR;
	return PGWIRE_OK;
}

/* Returns the length of the NUL-terminated string at p within end, or -1. */
static long cstr_len(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *nul = memchr(p, 0, (size_t)(end - p));

	return nul ? (long)(nul - p) : -1;
}

enum pgwire_result pgwire_parse_startup(const uint8_t *p, size_t avail, struct pgwire_startup *out,
					const char **why)
{
	const uint8_t *pos, *end;

	*why = NULL;
	if (avail < 8)
		return PGWIRE_INCOMPLETE;
	memset(out, 0, sizeof(*out));
	out->len = pgwire_get_u32(p);
	out->code = pgwire_get_u32(p + 4);
	if (out->len < 8 || out->len > PGWIRE_STARTUP_MAX) {
		*why = "invalid length of startup packet";
		return PGWIRE_ERROR;
	}
	switch (out->code) {
	case PGWIRE_SSL_REQUEST:
	case PGWIRE_GSSENC_REQUEST:
		if (out->len != 8) {
			*why = "invalid length of encryption request";
			return PGWIRE_ERROR;
		}
		out->kind = out->code == PGWIRE_SSL_REQUEST ? PGWIRE_STARTUP_SSL : PGWIRE_STARTUP_GSSENC;
		return PGWIRE_OK;
	case PGWIRE_CANCEL_REQUEST:
		if (out->len != PGWIRE_CANCEL_LEN) {
			*why = "invalid length of cancel request";
			return PGWIRE_ERROR;
		}
		if (avail < PGWIRE_CANCEL_LEN)
			return PGWIRE_INCOMPLETE;
		out->kind = PGWIRE_STARTUP_CANCEL;
		out->cancel_pid = pgwire_get_u32(p + 8);
		out->cancel_key = pgwire_get_u32(p + 12);
		return PGWIRE_OK;
	}
	if (out->code >> 16 != PGWIRE_PROTO_MAJOR_V3) {
		*why = "unsupported frontend protocol: only protocol 3 is supported";
		return PGWIRE_ERROR;
	}
	if (avail < out->len)
		return PGWIRE_INCOMPLETE;

	/* Pairs of NUL-terminated name and value, closed by an empty name. */
	out->kind = PGWIRE_STARTUP_V3;
	pos = p + 8;
	end = p + out->len;
	for (;;) {
		long nlen = pos < end ? cstr_len(pos, end) : -1;
		const char *name = (const char *)pos;
		long vlen;

		if (nlen < 0)
			goto malformed;
		if (nlen == 0)
			break;
		pos += nlen + 1;
		vlen = pos < end ? cstr_len(pos, end) : -1;
		if (vlen < 0)
			goto malformed;
		if (strcmp(name, "user") == 0)
			out->user = (const char *)pos;
		else if (strcmp(name, "database") == 0)
			out->database = (const char *)pos;
		else if (strcmp(name, "application_name") == 0)
			out->application_name = (const char *)pos;
		pos += vlen + 1;
	}
	if (pos + 1 != end)
		goto malformed;
	if (out->user == NULL || out->user[0] == '\0') {
		*why = "no PostgreSQL user name specified in startup packet";
		return PGWIRE_ERROR;
	}
	if (out->database == NULL || out->database[0] == '\0')
		out->database = out->user;
	return PGWIRE_OK;

malformed:
	*why = "invalid startup packet layout: expected terminator as last byte";
	return PGWIRE_ERROR;
}

bool pgwire_parse_error(const uint8_t *body, size_t len, struct pgwire_error *e)
{
	const uint8_t *pos = body, *end = body + len;
	bool any = false;

	memset(e, 0, sizeof(*e));
	while (pos < end && *pos != 0) {
		uint8_t field = *pos++;
		long flen = pos < end ? cstr_len(pos, end) : -1;
		const char *val = (const char *)pos;

		if (flen < 0)
			break; /* cut off: keep the complete fields before it */
		switch (field) {
		case 'V':
			e->severity = val;
			break;
		case 'S':
			if (!e->severity)
				e->severity = val;
			break;
		case 'C':
			e->sqlstate = val;
			break;
		case 'M':
			e->message = val;
			break;
		case 's':
			e->schema = val;
			break;
		case 't':
			e->table = val;
			break;
		case 'n':
			e->constraint = val;
			break;
		default:
			break;
		}
		any = true;
		pos += flen + 1;
	}
	return any;
}

size_t pgwire_build_error(uint8_t *out, size_t cap, const char *severity, const char *sqlstate,
			  const char *message)
{
	size_t sl = strlen(severity), cl = strlen(sqlstate), ml = strnlen(message, 1000);
	/* type + length + S,V,C,M fields each "X...\0" + terminator */
	size_t need = 1 + 4 + 2 * (1 + sl + 1) + (1 + cl + 1) + (1 + ml + 1) + 1;
	uint8_t *p = out;

	if (need > cap)
		return need;
	*p++ = 'E';
	pgwire_put_u32(p, (uint32_t)(need - 1));
	p += 4;
	*p++ = 'S';
	memcpy(p, severity, sl + 1);
	p += sl + 1;
	*p++ = 'V';
	memcpy(p, severity, sl + 1);
	p += sl + 1;
	*p++ = 'C';
	memcpy(p, sqlstate, cl + 1);
	p += cl + 1;
	*p++ = 'M';
	memcpy(p, message, ml);
	p += ml;
	*p++ = 0;
	*p++ = 0;
	return need;
}

size_t pgwire_sasl_remove_mechanism(uint8_t *body, size_t len, const char *mech)
{
	size_t mlen = strlen(mech);
	uint8_t *pos, *end = body + len;

	uint8_t *found = NULL;

	if (len < 5 || pgwire_get_u32(body) != PGWIRE_AUTH_SASL)
		return len;
	/* Validate the whole list first: names, then one empty name ending the body exactly. */
	for (pos = body + 4;;) {
		long nlen = pos < end ? cstr_len(pos, end) : -1;

		if (nlen < 0)
			return len;
		if (nlen == 0) {
			if (pos + 1 != end)
				return len;
			break;
		}
		if (!found && (size_t)nlen == mlen && memcmp(pos, mech, mlen) == 0)
			found = pos;
		pos += nlen + 1;
	}
	if (!found)
		return len;
	memmove(found, found + mlen + 1, (size_t)(end - (found + mlen + 1)));
	return len - (mlen + 1);
}

bool pgwire_parse_parameter_status(const uint8_t *body, size_t len, const char **name, const char **value)
{
	const uint8_t *end = body + len;
	long nlen = len > 0 ? cstr_len(body, end) : -1, vlen;

	if (nlen < 0 || body + nlen + 1 >= end)
		return false;
	vlen = cstr_len(body + nlen + 1, end);
	if (vlen < 0 || body + nlen + 1 + vlen + 1 != end)
		return false; /* exactly name\0value\0, as libpq insists */
	*name = (const char *)body;
	*value = (const char *)body + nlen + 1;
	return true;
}
