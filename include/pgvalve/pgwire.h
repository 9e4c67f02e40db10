/*
 * PostgreSQL frontend/backend protocol v3 framing: message headers, startup
 * packets, and the handful of message bodies the proxy reads or writes.
 *
 * Pure functions over byte ranges; nothing here knows about sockets,
 * sessions or SQL. Every parser says "done", "incomplete" (need more bytes)
 * or "error" distinctly, and never reads past the bytes it was given.
 */
#ifndef PGVALVE_PGWIRE_H
#define PGVALVE_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGWIRE_HEADER_LEN 5      /* type byte + int32 length */
#define PGWIRE_STARTUP_MAX 10000 /* PostgreSQL's MAX_STARTUP_PACKET_LENGTH */
#define PGWIRE_PROTO_MAJOR_V3 3
#define PGWIRE_SSL_REQUEST 80877103
#define PGWIRE_GSSENC_REQUEST 80877104
#define PGWIRE_CANCEL_REQUEST 80877102
#define PGWIRE_CANCEL_LEN 16

/* Authentication request codes (first int32 of an 'R' message). */
#define PGWIRE_AUTH_OK 0
#define PGWIRE_AUTH_SASL 10

enum pgwire_result {
	PGWIRE_ERROR = -1,
	PGWIRE_OK = 0,
	PGWIRE_INCOMPLETE = 1,
};

static inline uint32_t pgwire_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void pgwire_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* A typed message header. 'len' counts itself (4) and the body, not the type byte. */
struct pgwire_header {
	uint8_t type;
	uint32_t len;
};

static inline size_t pgwire_body_len(const struct pgwire_header *h)
{
	return h->len - 4;
}

/*
 * Reads a typed message header from the 'avail' bytes at 'p'.
 * PGWIRE_INCOMPLETE: fewer than 5 bytes. PGWIRE_ERROR: the length is below 4,
 * above INT32_MAX (the field is a signed Int32), or above 'max_len' (the
 * whole message, type byte excluded).
 */
enum pgwire_result pgwire_read_header(const uint8_t *p, size_t avail, uint32_t max_len,
				      struct pgwire_header *h);

enum pgwire_startup_kind {
	PGWIRE_STARTUP_V3,
	PGWIRE_STARTUP_SSL,
	PGWIRE_STARTUP_GSSENC,
	PGWIRE_STARTUP_CANCEL,
};

/* An untyped first packet. Strings point into the packet and are NUL-terminated there. */
struct pgwire_startup {
	enum pgwire_startup_kind kind;
	uint32_t len;                 /* bytes of the whole packet */
	uint32_t code;                /* protocol version or request code */
	const char *user;             /* V3 only; never NULL for a valid V3 packet */
	const char *database;         /* V3 only; defaults to user, as the server does */
	const char *application_name; /* V3 only; may be NULL */
	uint32_t cancel_pid;          /* CANCEL only */
	uint32_t cancel_key;          /* CANCEL only */
};

/*
 * Parses the first packet of a connection (or the one after an SSL/GSS
 * negotiation). On error '*why' names what is wrong, for the ErrorResponse.
 */
enum pgwire_result pgwire_parse_startup(const uint8_t *p, size_t avail, struct pgwire_startup *out,
					const char **why);

/* Fields of an ErrorResponse / NoticeResponse body; any may be NULL. */
struct pgwire_error {
	const char *severity;   /* 'V' (untranslated) or 'S' */
	const char *sqlstate;   /* 'C' */
	const char *message;    /* 'M' */
	const char *schema;     /* 's' */
	const char *table;      /* 't' */
	const char *constraint; /* 'n' */
};

/*
 * Parses error fields from 'body' (the message without its header). A field
 * cut off by the end of 'len' is ignored, so a prefix of a long message
 * yields the fields it holds completely. Returns false if no field parsed.
 */
bool pgwire_parse_error(const uint8_t *body, size_t len, struct pgwire_error *e);

/*
 * Writes a complete ErrorResponse (type 'E') into 'out'. Returns the number of
 * bytes it needs; writes nothing if that exceeds 'cap'. 'message' is cut at
 * 1000 bytes.
 */
size_t pgwire_build_error(uint8_t *out, size_t cap, const char *severity, const char *sqlstate,
			  const char *message);

/*
 * Removes 'mech' from an AuthenticationSASL body (int32 10, then a list of
 * NUL-terminated names closed by an empty one), in place. Returns the new
 * body length, or 'len' unchanged if 'mech' is absent or the body malformed.
 */
size_t pgwire_sasl_remove_mechanism(uint8_t *body, size_t len, const char *mech);

/* ParameterStatus body: name\0value\0. Returns false when malformed. */
bool pgwire_parse_parameter_status(const uint8_t *body, size_t len, const char **name, const char **value);

/* Well-known types, both directions (protocol docs, "Message Formats"). */
#define PGWIRE_MSG_QUERY 'Q'
#define PGWIRE_MSG_EXECUTE 'E'
#define PGWIRE_MSG_TERMINATE 'X'
#define PGWIRE_MSG_AUTH 'R'
#define PGWIRE_MSG_ERROR 'E'
#define PGWIRE_MSG_READY 'Z'
#define PGWIRE_MSG_PARAMETER_STATUS 'S'
#define PGWIRE_MSG_BACKEND_KEY 'K'

#endif
