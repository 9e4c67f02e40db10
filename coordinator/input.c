/*
 * Reading migration files into the plan's input statements (see input.h).
 * libpg_query splits SQL with PostgreSQL's own grammar, so a ';' inside a
 * string, a dollar-quoted body or a comment never cuts a statement; when a
 * file does not parse, the error's position names the line. Trimming, and
 * cutting at ';' where PostgreSQL names no position, use the one SQL lexer
 * (pgvalve/sqllex.h). Rules for what the statements mean live in rules.c.
 */
#include "input.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/sqllex.h"
#include "rules.h"
#include "strbuf.h"
#include "xalloc.h"

struct loader {
	struct plan *p;
	struct input_error *err;
	int cap_inputs;
};

void input_error_set(struct input_error *err, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static int line_of(const char *text, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

/*
 * The byte offset of a 1-based error position, which PostgreSQL counts in
 * characters (UTF-8 here): past 'cursorpos' - 1 characters.
 */
static size_t cursor_offset(const char *text, size_t len, int cursorpos)
{
	size_t i = 0;

	for (int chars = 1; chars < cursorpos && i < len; chars++)
		for (i++; i < len && ((unsigned char)text[i] & 0xc0) == 0x80; i++)
			;
	return i;
}

/* Reads all of 'path' into a malloc'd buffer with a NUL after it. */
__attribute__((warn_unused_result)) static bool read_file(const char *path, char **out, size_t *out_len,
							  struct input_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	bool ok = false;

	if (!f) {
		input_error_set(err, path, 0, "cannot open: %s", strerror(errno));
		err->not_text = true;
		return false;
	}
	do {
		if (len == cap) {
			if (cap >= INPUT_MAX_FILE_BYTES) {
				input_error_set(err, path, 0, "larger than %u MiB",
						INPUT_MAX_FILE_BYTES >> 20);
				err->not_text = true;
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap + 1);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		input_error_set(err, path, 0, "cannot read: %s", strerror(errno));
		err->not_text = true;
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	buf = NULL;
	ok = true;
out:
	free(buf);
	fclose(f);
	return ok;
}

void input_note(struct plan *p, const char *fmt, ...)
{
	va_list ap;
	char *note;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	note = xmalloc((size_t)(n < 0 ? 0 : n) + 1);
	va_start(ap, fmt);
	vsnprintf(note, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
	va_end(ap);
	for (int i = 0; i < p->n_notes; i++) {
		if (strcmp(p->notes[i], note) == 0) {
			free(note);
			return;
		}
	}
	p->notes = xrealloc(p->notes, sizeof(*p->notes) * (size_t)(p->n_notes + 1));
	p->notes[p->n_notes++] = note;
}

static void add_input(struct loader *l, const char *file, int line, const char *text, size_t len)
{
	struct plan *p = l->p;
	struct plan_input *in;

	if (p->n_inputs == l->cap_inputs) {
		l->cap_inputs = l->cap_inputs ? l->cap_inputs * 2 : 32;
		p->inputs = xrealloc(p->inputs, sizeof(*p->inputs) * (size_t)l->cap_inputs);
	}
	in = &p->inputs[p->n_inputs++];
	in->line = line;
	in->file = xstrdup(file);
	in->text = xstrndup(text, len);
}

/*
 * Whether a statement (that parsed) only opens or closes the file's own
 * transaction: BEGIN, START TRANSACTION, COMMIT or END. COMMIT PREPARED and
 * ROLLBACK are not wrapping; they stay and meet the rules.
 */
static bool is_tx_wrapping(const char *s, size_t len)
{
	struct sqllex lx;
	struct sqllex_token t;

	sqllex_init(&lx, s, len, 0);
	sqllex_next_significant(&lx, &t);
	if (sqllex_is_keyword(s, &t, "begin") || sqllex_is_keyword(s, &t, "end"))
		return true;
	if (sqllex_is_keyword(s, &t, "start"))
		return true; /* START TRANSACTION is the only START statement */
	if (sqllex_is_keyword(s, &t, "commit")) {
		sqllex_next_significant(&lx, &t);
		return !sqllex_is_keyword(s, &t, "prepared");
	}
	return false;
}

/* Whether text[start..end) fails to parse on its own; if so, its line in 'text' and PostgreSQL's message. */
static bool piece_fails(const char *text, size_t start, size_t end, int *line, char *msg, size_t cap)
{
	char *piece = xstrndup(text + start, end - start);
	PgQuerySplitResult r;
	size_t at = 0, token_end;
	bool fails;

	r = pg_query_split_with_parser(piece);
	if ((fails = r.error != NULL)) {
		/* No position: blame the piece's first token. */
		if (r.error->cursorpos > 0)
			at = cursor_offset(piece, end - start, r.error->cursorpos);
		else if (!sqllex_trim(piece, end - start, &at, &token_end))
			at = 0;
		*line = line_of(text, start + at);
		snprintf(msg, cap, "%s", r.error->message);
	}
	pg_query_free_split_result(r);
	free(piece);
	return fails;
}

/*
 * Finds where a text that does not parse goes wrong when PostgreSQL's error
 * carries no position (an invalid escape in E'...', an encoding error): cut
 * it at each ';' the lexer sees and parse piece by piece. Sets the line
 * (1-based, in 'text') and message of the first piece that fails; false if
 * none does.
 */
static bool locate_error(const char *text, size_t len, int *line, char *msg, size_t cap)
{
	struct sqllex lx;
	struct sqllex_token t;
	size_t start = 0;

	sqllex_init(&lx, text, len, 0);
	while (start < len) {
		while (sqllex_next(&lx, &t) != SQLLEX_END && !sqllex_is_char(text, &t, ';'))
			;
		if (piece_fails(text, start, t.end, line, msg, cap))
			return true;
		start = t.end;
	}
	return false;
}

/*
 * psql meta-commands (\connect, \i, \set …): a backslash that starts a line
 * outside strings, comments and dollar quotes. Sets err to the first, with
 * the lines of the others; false when there is none.
 */
static bool meta_commands(const char *file, const char *text, size_t len, struct input_error *err)
{
	struct sqllex lx;
	struct sqllex_token t;
	struct strbuf others = { 0 };
	char first[40] = "";
	int first_line = 0, n = 0;

	sqllex_init(&lx, text, len, 0);
	while (sqllex_next(&lx, &t) != SQLLEX_END) {
		size_t b = t.start, e;

		if (t.kind != SQLLEX_OTHER || text[t.start] != '\\')
			continue;
		while (b > 0 && (text[b - 1] == ' ' || text[b - 1] == '\t'))
			b--;
		if (b > 0 && text[b - 1] != '\n')
			continue;
		if (n++ == 0) {
			for (e = t.start;
			     e < len && e - t.start < sizeof(first) - 1 && text[e] != '\n' && text[e] != ' ';
			     e++)
				;
			snprintf(first, sizeof(first), "%.*s", (int)(e - t.start), text + t.start);
			first_line = line_of(text, t.start);
		} else if (n <= 20) {
			char one[16];

			snprintf(one, sizeof(one), "%s%d", others.len ? ", " : "", line_of(text, t.start));
			strbuf_put(&others, one);
		}
	}
	if (n == 0)
		return false;
	input_error_set(err, file, first_line,
			"psql meta-command %s%s%s%s: pgvalve runs SQL, not psql scripts; remove %s (connect "
			"with --db, and pass an included file as one more FILE argument)",
			first, n > 1 ? " (and on line(s) " : "", n > 1 ? others.s : "", n > 1 ? ")" : "",
			n > 1 ? "them" : "it");
	free(strbuf_take(&others));
	return true;
}

/*
 * The offset of the first byte of text[0..len) that is not part of a
 * well-formed UTF-8 sequence (no overlong forms, surrogates or code points
 * past U+10FFFF), or len when all of it is.
 */
static size_t utf8_invalid(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		else
			return i;
		if (i + n >= len)
			return i;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return i;
		for (size_t k = 2; k <= n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		i += n + 1;
	}
	return len;
}

/*
 * More than INPUT_MAX_STATEMENTS statements in 'text', counted by the
 * lexer's ';' before anything is parsed, so that a huge file is answered
 * quickly without building its parse tree.
 */
static bool too_many_statements(const char *text, size_t len, size_t *count)
{
	struct sqllex lx;
	struct sqllex_token t;

	*count = 0;
	sqllex_init(&lx, text, len, 0);
	while (sqllex_next(&lx, &t) != SQLLEX_END)
		if (sqllex_is_char(text, &t, ';') && ++*count > INPUT_MAX_STATEMENTS)
			return true;
	return false;
}

/* Lines counted forward from the last place asked about: linear over a file read in order. */
struct line_cursor {
	size_t off;
	int line;
};

static int line_to(const char *text, struct line_cursor *lc, size_t off)
{
	if (off < lc->off)
		*lc = (struct line_cursor){ 0, 1 };
	for (; lc->off < off; lc->off++)
		lc->line += text[lc->off] == '\n';
	return lc->line;
}

/*
 * Splits text[base..end) — all of 'text', or one piece of a large file —
 * with libpg_query's parser and adds its statements; lines count in all of
 * 'text'. 'text' has a NUL at text[end] when base is 0 and end the length.
 */
__attribute__((warn_unused_result)) static bool split_piece(struct loader *l, const char *file,
							    const char *text, size_t len, size_t base,
							    size_t end, int fixed_line, bool *wrapped,
							    struct line_cursor *lc)
{
	char *copy = base == 0 && end == len ? NULL : xstrndup(text + base, end - base);
	const char *piece = copy ? copy : text;
	size_t plen = end - base;
	PgQuerySplitResult r = pg_query_split_with_parser(piece);
	bool ok = false;

	if (r.error) {
		int line = r.error->cursorpos > 0
			? line_of(piece, cursor_offset(piece, plen, r.error->cursorpos))
			: 0;
		char msg[sizeof(l->err->msg)];

		if (meta_commands(file, text, len, l->err))
			goto out;
		snprintf(msg, sizeof(msg), "%s", r.error->message);
		if (line == 0 && !locate_error(piece, plen, &line, msg, sizeof(msg)))
			line = 1;
		input_error_set(l->err, file, fixed_line ? fixed_line : line + line_of(text, base) - 1, "%s",
				msg);
		goto out;
	}
	for (int i = 0; i < r.n_stmts; i++) {
		size_t loc = (size_t)r.stmts[i]->stmt_location, n = (size_t)r.stmts[i]->stmt_len, start, stop;

		if (loc > plen || n > plen - loc)
			continue; /* defensive: libpg_query's offsets are within the text */
		if (n == 0)
			n = plen - loc; /* the last statement without a ';' */
		if (!sqllex_trim(piece + loc, n, &start, &stop))
			continue; /* empty, or only comments */
		if (is_tx_wrapping(piece + loc + start, stop - start)) {
			*wrapped = true;
			continue;
		}
		add_input(l, file, fixed_line ? fixed_line : line_to(text, lc, base + loc + start),
			  piece + loc + start, stop - start);
	}
	ok = true;
out:
	pg_query_free_split_result(r);
	free(copy);
	return ok;
}

/*
 * A text larger than INPUT_PARSE_CHUNK_BYTES, parsed in pieces of about
 * that size cut at the ';' the lexer sees, so that memory stays bounded (a
 * parse tree takes about ten times its text). A statement longer than
 * RULES_PARSE_MAX_BYTES, which no rule parses, is taken as written without
 * its tree: the rules refuse it (or --allow-unsafe runs it, and the server
 * parses it).
 */
__attribute__((warn_unused_result)) static bool load_sql_pieces(struct loader *l, const char *file,
								const char *text, size_t len, bool *wrapped)
{
	struct line_cursor lc = { 0, 1 };
	struct sqllex lx;
	struct sqllex_token t;
	size_t stmt = 0, chunk = 0;

	sqllex_init(&lx, text, len, 0);
	for (;;) {
		bool at_end = sqllex_next(&lx, &t) == SQLLEX_END;
		size_t stop, body_end, a, b;

		if (!at_end && !sqllex_is_char(text, &t, ';'))
			continue;
		stop = at_end ? len : t.end;
		body_end = at_end ? len : t.start;
		if (stop - stmt > RULES_PARSE_MAX_BYTES) {
			if (stmt > chunk && !split_piece(l, file, text, len, chunk, stmt, 0, wrapped, &lc))
				return false;
			if (sqllex_trim(text + stmt, body_end - stmt, &a, &b))
				add_input(l, file, line_to(text, &lc, stmt + a), text + stmt + a, b - a);
			chunk = stop;
		} else if (stop - chunk > INPUT_PARSE_CHUNK_BYTES && stmt > chunk) {
			if (!split_piece(l, file, text, len, chunk, stmt, 0, wrapped, &lc))
				return false;
			chunk = stmt;
		}
		stmt = stop;
		if (at_end)
			break;
	}
	return len <= chunk || split_piece(l, file, text, len, chunk, len, 0, wrapped, &lc);
}

/*
 * Splits one SQL text into statements and adds them to the plan. 'fixed_line'
 * > 0 (a JSON plan's statement) is every statement's line; 0 counts lines in
 * 'text'. Transaction wrapping is dropped and *wrapped set.
 */
__attribute__((warn_unused_result)) static bool load_sql(struct loader *l, const char *file, const char *text,
							 size_t len, int fixed_line, bool *wrapped)
{
	struct line_cursor lc = { 0, 1 };
	size_t count;

	if (too_many_statements(text, len, &count) ||
	    (size_t)l->p->n_inputs + count > INPUT_MAX_STATEMENTS + 1u) {
		input_error_set(
			l->err, file, fixed_line,
			"more than %d statements: more than pgvalve plans as one migration; split it into "
			"migrations of fewer statements (a data load belongs in COPY, outside the migration)",
			INPUT_MAX_STATEMENTS);
		return false;
	}
	if (len > INPUT_PARSE_CHUNK_BYTES && !fixed_line)
		return load_sql_pieces(l, file, text, len, wrapped);
	return split_piece(l, file, text, len, 0, len, fixed_line, wrapped, &lc);
}

/* A JSON plan: {"name": "...", "statements": ["...", ...]}. */
__attribute__((warn_unused_result)) static bool load_json(struct loader *l, const char *file,
							  const char *text, size_t len, bool first,
							  bool *wrapped)
{
	const char *bad = NULL;
	cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &bad, false);
	const cJSON *name, *stmts, *s;
	bool ok = false;
	int i = 0;

	if (!doc) {
		input_error_set(
			l->err, file, bad ? line_of(text, (size_t)(bad - text)) : 1,
			"not valid JSON (a JSON plan is {\"name\": \"...\", \"statements\": [\"...\"]})");
		return false;
	}
	name = cJSON_GetObjectItemCaseSensitive(doc, "name");
	stmts = cJSON_GetObjectItemCaseSensitive(doc, "statements");
	if (!cJSON_IsObject(doc) || !cJSON_IsArray(stmts) || (name && !cJSON_IsString(name))) {
		input_error_set(l->err, file, 1,
				"a JSON plan is {\"name\": \"...\", \"statements\": [\"...\"]}");
		goto out;
	}
	if (first && name && name->valuestring[0]) {
		free(l->p->name);
		l->p->name = xstrdup(name->valuestring);
	}
	cJSON_ArrayForEach(s, stmts)
	{
		i++;
		if (!cJSON_IsString(s)) {
			input_error_set(l->err, file, i, "statement %d is not a string", i);
			goto out;
		}
		if (!load_sql(l, file, s->valuestring, strlen(s->valuestring), i, wrapped))
			goto out;
	}
	ok = true;
out:
	cJSON_Delete(doc);
	return ok;
}

static bool is_json_file(const char *path, const char *text, size_t len)
{
	size_t n = strlen(path);

	if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
		return true;
	for (size_t i = 0; i < len; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
			return text[i] == '{';
	return false;
}

/* The base name of 'path' without its extension, malloc'd. */
static char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');

	return xstrndup(base, dot && dot != base ? (size_t)(dot - base) : strlen(base));
}

/* One file's bytes text[0..len), which 'text' ends with a NUL after. */
__attribute__((warn_unused_result)) static bool load_text(struct loader *l, const char *path,
							  const char *text, size_t len, bool first)
{
	const char *sql, *nul;
	bool wrapped = false, ok;
	size_t bad;

	if ((nul = memchr(text, '\0', len))) {
		input_error_set(l->err, path, line_of(text, (size_t)(nul - text)),
				"contains a NUL byte at byte offset %zu: not a SQL text file",
				(size_t)(nul - text));
		l->err->not_text = true;
		return false;
	}
	if ((bad = utf8_invalid(text, len)) < len) {
		input_error_set(
			l->err, path, line_of(text, bad),
			"not valid UTF-8: byte 0x%02x at byte offset %zu; pgvalve reads migration files "
			"as UTF-8 (convert it first, e.g. iconv -f LATIN1 -t UTF-8)",
			(unsigned char)text[bad], bad);
		l->err->not_text = true;
		return false;
	}
	if (first)
		l->p->name = base_name(path);
	/* Editors on Windows start UTF-8 files with a byte order mark; the server would choke on it. */
	sql = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? text + 3 : text;
	if (is_json_file(path, sql, len - (size_t)(sql - text)))
		ok = load_json(l, path, sql, len - (size_t)(sql - text), first, &wrapped);
	else
		ok = load_sql(l, path, sql, len - (size_t)(sql - text), 0, &wrapped);
	if (ok && wrapped)
		input_note(l->p,
			   "%s: its BEGIN/COMMIT are dropped: pgvalve runs the migration in its own "
			   "phases (prepare, cutover, validate, finalize), each in transactions of its own",
			   path);
	return ok;
}

__attribute__((warn_unused_result)) static bool load_file(struct loader *l, EVP_MD_CTX *sha, const char *path,
							  bool first)
{
	char *text = NULL;
	size_t len;
	bool ok = false;

	if (!read_file(path, &text, &len, l->err))
		return false;
	if (EVP_DigestUpdate(sha, text, len) != 1)
		input_error_set(l->err, path, 0, "cannot compute the checksum");
	else
		ok = load_text(l, path, text, len, first);
	free(text);
	return ok;
}

/* The SHA-256 in 'sha' as hex into p->checksum; false with 'err' set if it cannot be had. */
__attribute__((warn_unused_result)) static bool finish_checksum(struct plan *p, EVP_MD_CTX *sha,
								struct input_error *err)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n_digest = 0;

	if (EVP_DigestFinal_ex(sha, digest, &n_digest) != 1 || n_digest != 32) {
		input_error_set(err, NULL, 0, "cannot compute the checksum");
		return false;
	}
	for (unsigned int i = 0; i < n_digest; i++)
		snprintf(p->checksum + 2 * i, 3, "%02x", digest[i]);
	return true;
}

static EVP_MD_CTX *checksum_start(struct input_error *err)
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new();

	if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(sha);
		input_error_set(err, NULL, 0, "cannot compute the checksum");
		return NULL;
	}
	return sha;
}

bool input_load(struct plan *p, char *const *files, int n_files, struct input_error *err)
{
	struct loader l = { .p = p, .err = err };
	EVP_MD_CTX *sha;
	bool ok = false;

	memset(err, 0, sizeof(*err));
	if (!(sha = checksum_start(err)))
		return false;
	if (n_files <= 0) {
		input_error_set(err, NULL, 0, "no input file");
		goto out;
	}
	for (int i = 0; i < n_files; i++)
		if (!load_file(&l, sha, files[i], i == 0))
			goto out;
	if (!finish_checksum(p, sha, err))
		goto out;
	if (p->n_inputs == 0) {
		input_error_set(err, files[0], 0, "no statements to plan");
		goto out;
	}
	ok = true;
out:
	EVP_MD_CTX_free(sha);
	return ok;
}

bool input_load_text(struct plan *p, const char *file, const char *text, size_t len, struct input_error *err)
{
	struct loader l = { .p = p, .err = err };
	EVP_MD_CTX *sha;
	char *copy;
	bool ok = false;

	memset(err, 0, sizeof(*err));
	if (!(sha = checksum_start(err)))
		return false;
	copy = xmalloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	if (EVP_DigestUpdate(sha, copy, len) != 1)
		input_error_set(err, file, 0, "cannot compute the checksum");
	else if (load_text(&l, file, copy, len, true) && finish_checksum(p, sha, err))
		ok = true;
	if (ok && p->n_inputs == 0) {
		input_error_set(err, file, 0, "no statements to plan");
		ok = false;
	}
	free(copy);
	EVP_MD_CTX_free(sha);
	return ok;
}
