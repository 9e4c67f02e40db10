/*
 * libFuzzer target for the extended-protocol bookkeeping of proxy/stmt.c:
 * Parse, Bind/Execute, Close, Sync and Query sequences against a model of
 * the server, which processes the client's messages in order (after an error
 * it skips to the next Sync, as PostgreSQL does) and answers ParseComplete,
 * CloseComplete, ErrorResponse and ReadyForQuery to the map at once.
 *
 * Each input byte is one step:
 *   bits 0-2  what: 0 Parse, 1 Bind+Execute, 2 Close statement, 3 Close
 *             portal, 4 Sync, 5 Query (inside an open extended batch it
 *             makes the map give up, as the session does), 6 the server
 *             handles one message, 7 the server handles everything sent
 *   bits 3-4  which name: "", "a", "b", "c"
 *   bits 5-7  Parse: the text ("SELECT n", 7: longer than the proxy shows);
 *             Bind and Parse: 6 or 7 make the server fail that message;
 *             Bind: 5 has the proxy re-prepare the statement first (statement
 *             refresh: Close, Parse, Describe of its own in front of the Bind)
 *
 * What must hold after every step, unless the map gave up ("overflowed"):
 *   - the map holds exactly the statements the model server holds;
 *   - a Bind the server executes runs the statement that stmt_lookup()
 *     named when the client sent it, unless it said it was not certain (a
 *     hold judged it by that text: any other would let held work through,
 *     or hold work needlessly; an uncertain one is held as unknown);
 *   - every answer to the proxy's own re-prepare is reported as the proxy's
 *     (taken out of the stream), every answer to the client's as not, even
 *     after the map gave up.
 * Checks are FUZZ_CHECKs, which abort whatever NDEBUG says.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "stmt.h"

#define NAMES 4
#define MAX_SENT 4096
#define TEXT_UNKNOWN 7

static const char *const names[NAMES] = { "", "a", "b", "c" };

struct msg {
	/* 'P', 'B', 'C' (statement), 'c' (portal), 'S', 'Q'; the proxy's re-prepare: 'r' Close, 'p' Parse, 'd' Describe */
	uint8_t what;
	uint8_t name;
	int text; /* Parse: 0..6, TEXT_UNKNOWN */
	bool fails;
	/* Bind: what stmt_lookup() said at send time ('uncertain': a hold treats it as unknown). */
	bool looked_up_uncertain;
	bool looked_up_found;
	char looked_up_sql[16];
	bool looked_up_sql_known;
};

struct server {
	bool has[NAMES];
	int text[NAMES];
	bool skipping; /* after an error, up to the next Sync */
};

static void text_of(int text, char *out, size_t cap)
{
	snprintf(out, cap, "SELECT %d", text);
}

/* The map equals the model server's statements (the unnamed one is never in the map). */
static void check_map(const struct stmt_map *m, const struct server *srv)
{
	if (m->overflowed)
		return;
	for (int n = 1; n < NAMES; n++) {
		const struct stmt *st = stmt_peek(m, names[n]);
		char want[16];

		FUZZ_CHECK((st != NULL) == srv->has[n]);
		if (!st)
			continue;
		if (srv->text[n] == TEXT_UNKNOWN) {
			FUZZ_CHECK(st->sql == NULL);
		} else {
			text_of(srv->text[n], want, sizeof(want));
			FUZZ_CHECK(st->sql && strcmp(st->sql, want) == 0);
		}
	}
	FUZZ_CHECK(m->bytes <= STMT_MAX_BYTES);
}

static void server_error(struct stmt_map *m, struct server *srv)
{
	stmt_error(m);
	srv->skipping = true;
}

/* The server handles one message and answers the map as the proxy would relay it. */
static void serve(struct stmt_map *m, struct server *srv, const struct msg *x)
{
	char want[16];

	if (srv->skipping && x->what != 'S')
		return; /* discarded: no answer at all */
	switch (x->what) {
	case 'P':
		if (x->fails || (x->name != 0 && srv->has[x->name])) {
			server_error(m, srv); /* a syntax error, or 42P05 duplicate_prepared_statement */
			return;
		}
		if (x->name != 0) {
			srv->has[x->name] = true;
			srv->text[x->name] = x->text;
		}
		FUZZ_CHECK(!stmt_parse_complete(m));
		return;
	case 'r':
		FUZZ_CHECK(stmt_close_complete(m)); /* the client's statement stays, as the map says */
		return;
	case 'p':
		FUZZ_CHECK(stmt_parse_complete(m));
		return;
	case 'd': {
		static const uint8_t no_params[2] = { 0, 0 };
		FUZZ_CHECK(stmt_param_desc(m, no_params, 2, 2));
		FUZZ_CHECK(stmt_row_desc(m, NULL, 0, 0) == 1);
		return;
	}
	case 'B':
		if (!srv->has[x->name] && x->name != 0) {
			server_error(m, srv); /* 26000 invalid_sql_statement_name */
			return;
		}
		if (x->name != 0 && !x->looked_up_uncertain) {
			/* The hold judged this Bind by what stmt_lookup() said: it must be what runs. */
			FUZZ_CHECK(x->looked_up_found);
			if (srv->text[x->name] == TEXT_UNKNOWN) {
				FUZZ_CHECK(!x->looked_up_sql_known);
			} else {
				text_of(srv->text[x->name], want, sizeof(want));
				FUZZ_CHECK(x->looked_up_sql_known && strcmp(x->looked_up_sql, want) == 0);
			}
		}
		if (x->fails)
			server_error(m, srv); /* the Execute failed */
		return;
	case 'C':
		if (x->name != 0)
			srv->has[x->name] = false;
		FUZZ_CHECK(!stmt_close_complete(m));
		return;
	case 'c':
		FUZZ_CHECK(!stmt_close_complete(m));
		return;
	case 'S':
		srv->skipping = false;
		stmt_ready(m);
		return;
	case 'Q':
		if (x->fails)
			stmt_error(m); /* a failed simple Query: its error, then ReadyForQuery */
		stmt_ready(m);
		return;
	}
}

/*
 * The client sends 'x': the map hears what the session tells it
 * (proxy/session.c, on_client_msg). 'batch_open': an extended message since
 * the last Sync.
 */
static void send_msg(struct stmt_map *m, struct msg *x, bool *batch_open);

/* The proxy re-prepares 'name' in front of a Bind, as stmt_refresh.c does: a map entry with known text. */
static size_t reprepare(struct stmt_map *m, uint8_t name, struct msg *sent, size_t n_sent)
{
	static const uint8_t kinds[3] = { 'r', 'p', 'd' };
	bool uncertain;
	struct stmt *st = name ? stmt_lookup(m, names[name], &uncertain) : NULL;

	if (!st || st != stmt_peek(m, names[name]) || !st->sql || n_sent + 4 > MAX_SENT)
		return n_sent;
	stmt_refresh_sent(m, st);
	for (int i = 0; i < 3; i++)
		sent[n_sent++] = (struct msg){ .what = kinds[i], .name = name };
	return n_sent;
}

static void send_msg(struct stmt_map *m, struct msg *x, bool *batch_open)
{
	char sql[16];
	const struct stmt *st;
	bool was_open = *batch_open, uncertain = false;

	if (x->what == 'S')
		*batch_open = false;
	else if (x->what != 'Q')
		*batch_open = true;
	switch (x->what) {
	case 'P':
		if (x->text == TEXT_UNKNOWN) {
			stmt_parse_sent(m, names[x->name], NULL, 0);
		} else {
			text_of(x->text, sql, sizeof(sql));
			stmt_parse_sent(m, names[x->name], sql, strlen(sql));
		}
		return;
	case 'B':
		st = x->name ? stmt_lookup(m, names[x->name], &uncertain) : NULL;
		x->looked_up_uncertain = x->name && uncertain;
		x->looked_up_found = st != NULL;
		x->looked_up_sql_known = st && st->sql;
		if (st && st->sql)
			snprintf(x->looked_up_sql, sizeof(x->looked_up_sql), "%s", st->sql);
		return;
	case 'C':
		stmt_close_sent(m, true, names[x->name]);
		return;
	case 'c':
		stmt_close_sent(m, false, names[x->name]);
		return;
	case 'Q':
		if (was_open) {
			stmt_forget(m); /* discarded or answered: unknowable */
			return;
		}
		/* fall through */
	case 'S':
		stmt_sync_sent(m);
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t kinds[] = { 'P', 'B', 'C', 'c', 'S', 'Q' };
	struct stmt_map m = { 0 };
	struct server srv = { 0 };
	struct msg *sent = calloc(MAX_SENT, sizeof(*sent));
	size_t n_sent = 0, served = 0;
	bool batch_open = false;

	if (!sent)
		return 0;
	for (size_t i = 0; i < size; i++) {
		uint8_t what = data[i] & 7, name = (data[i] >> 3) & 3, arg = data[i] >> 5;

		if (what < 6) {
			struct msg *x;

			if (n_sent == MAX_SENT)
				break;
			if (kinds[what] == 'B' && arg == 5)
				n_sent = reprepare(&m, name, sent, n_sent);
			x = &sent[n_sent++];
			x->what = kinds[what];
			x->name = name;
			x->text = arg;
			x->fails = arg >= 6;
			send_msg(&m, x, &batch_open);
		} else {
			size_t until = what == 6 ? served + 1 : n_sent;

			while (served < n_sent && served < until)
				serve(&m, &srv, &sent[served++]);
		}
		check_map(&m, &srv);
	}
	while (served < n_sent)
		serve(&m, &srv, &sent[served++]);
	check_map(&m, &srv);
	/* Every answer came: nothing is left waiting, unless the server still skips to a Sync. */
	if (!m.overflowed && !srv.skipping)
		FUZZ_CHECK(m.ops_n == 0);
	stmt_clear(&m);
	free(sent);
	return 0;
}
