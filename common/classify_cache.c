/*
 * The classification cache (see classify_cache.h): the key (the SQL text
 * with its literal values blanked, by a lexer pass that follows PostgreSQL
 * 15's scanner), and a chained hash table over the keys with one doubly
 * linked list in recency order for LRU eviction. It owns the entries and
 * their compact results; classify.c does the classifying and knows nothing
 * of the cache.
 */
#include "pgvalve/classify_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cache_entry {
	struct cache_entry *chain;         /* next in the hash bucket */
	struct cache_entry *newer, *older; /* recency list */
	uint64_t hash;
	struct classify_compact *result;
	size_t bytes; /* what the entry counts against max_bytes */
	size_t key_len;
	char key[]; /* classify_cache_key() of the text */
};

struct classify_cache {
	size_t max_entries, max_bytes;
	struct cache_entry **buckets;
	size_t n_buckets; /* a power of two */
	struct cache_entry *newest, *oldest;
	struct classify_cache_stats stats;
};

size_t classify_compact_size(const struct classify_result *r)
{
	return sizeof(struct classify_compact) + (size_t)r->n_refs * sizeof(struct classify_ref);
}

struct classify_compact *classify_compact_copy(const struct classify_result *r)
{
	struct classify_compact *c = malloc(classify_compact_size(r));

	if (!c)
		return NULL;
	c->flags = r->flags;
	c->unknown_reason = r->unknown_reason;
	c->n_refs = r->n_refs;
	memcpy(c->refs, r->refs, (size_t)r->n_refs * sizeof(c->refs[0]));
	return c;
}

void classify_compact_fill(const struct classify_compact *c, struct classify_result *out)
{
	out->flags = c->flags;
	out->unknown_reason = c->unknown_reason;
	out->n_refs = c->n_refs;
	memcpy(out->refs, c->refs, (size_t)c->n_refs * sizeof(c->refs[0]));
}

/*
 * ---- The key ----------------------------------------------------------------
 *
 * classify_sql's answer depends on the text only through libpg_query's parse
 * of it (PostgreSQL 15.1's scanner and grammar), so the key follows that
 * scanner (src/backend/parser/scan.l, as libpg_query 15-4.0 builds it: where
 * it differs from the server's, it is the one followed) token by token and
 * blanks a literal only where the scanner's token for it cannot depend on its
 * value. PostgreSQL 16 reads more as numbers (0x1F, 0o17, 0b101, 1_000, all
 * errors in 15): a libpg_query upgrade must revisit this, and the fuzz
 * target's check against libpg_query's own scanner says where.
 *
 *
 *   - numbers: {integer}, {decimal}, {real}, split by kind as the scanner
 *     splits them (digits whose value fits in int32 are ICONST, every other
 *     number FCONST, which the grammar treats differently: float(3) parses,
 *     float(3.5) and float(99999999999) do not). Digits right after an
 *     identifier character are part of the identifier (t1, a$1); after a
 *     lone '$' they are a parameter ($1); both stay. A number followed by an
 *     identifier character, or an exponent without digits (1e, 1e+), is an
 *     error ("trailing junk"): from there on the text is kept verbatim.
 *   - '...' with '' doubled (standard_conforming_strings is on: the cache is
 *     not used otherwise); also the string after N, which the scanner hands
 *     on as NCHAR followed by an ordinary string. A string "continues" across
 *     whitespace holding a newline ('a'\n'b' is one token), and so does its
 *     placeholder (see string_end).
 *   - E'...' (\' and \\ do not end it), unless an escape is one whose value
 *     the scanner checks: octal and hex escapes and a backslash before a
 *     non-ASCII byte make it verify the result as UTF-8, \u and \U must be
 *     valid code points. Those strings are kept verbatim.
 *   - B'...' and X'...' (the raw parser does not look inside them), and
 *     dollar quotes $$...$$ and $tag$...$tag$ (opaque). A '$' inside an
 *     identifier (a$b$) is part of it, not a quote.
 *
 * Kept verbatim: everything else. Identifiers, quoted identifiers (a ' or $
 * inside "..." starts nothing), keywords, operators, whitespace, comments
 * (-- and nested slash-star ones; a quote inside starts nothing), parameters,
 * U&'...' strings (the parser decodes their escapes and can fail on them),
 * and three places where the grammar or the parser looks at a literal's
 * value: the literal after UESCAPE (it must be one valid escape character),
 * after FLOAT ( (the precision must be 1..53), and after ALTER or COLUMN
 * (ALTER [COLUMN] n SET STATISTICS: n must be 1..32767). Those are every
 * check on a constant's value in PostgreSQL 15's gram.y and parser.c (going
 * by every error message libpg_query's gram.o and parser.o carry; the others
 * are about keywords, names or the shape of the statement); a literal kept
 * in a few more places than needed only costs cache entries.
 * An unterminated literal, quoted identifier or comment leaves the rest of
 * the text verbatim.
 *
 * Why two texts with one key get one answer, in three steps:
 *   1. The key reads back unambiguously: a text never holds a NUL (it ends
 *      at the first), so each NUL + letter is a placeholder and every other
 *      byte is the text's own. Two texts with one key are the same bytes
 *      except for blanked spans, which are literals of the same kind.
 *   2. The scanner makes the same tokens of both: each blanked span is one
 *      whole token of the kind its letter names, whose lexing cannot fail
 *      whatever its contents (this lexer decides that from the bytes before
 *      and after the span, which the two texts share). The bytes between
 *      blanked spans are the same, and the scanner starts on them in the
 *      same state (just after a literal), so they make the same tokens. Both
 *      token streams carry the same kinds and spellings; only values of
 *      blanked tokens differ.
 *   3. From equal token kinds the grammar builds the same tree except for
 *      constant values (it checks values only in the places kept verbatim),
 *      and classify.c never reads a constant's value: it reads node types,
 *      names from identifiers (relname, schemaname, ctename, function and
 *      operator names), and enums and flags from keywords (LOCK mode,
 *      COPY FROM/TO, DROP's object type, WITH RECURSIVE). A parse error
 *      stays a parse error in both. So flags, refs and unknown_reason agree.
 * The length rule is not the key's: texts over parse_max_bytes never reach
 * the cache, so an entry made from a short text never answers for a long one.
 * tests/fuzz/fuzz_classify.c checks step 2 against libpg_query's scanner and
 * all three together, by classifying each input and a copy with other
 * literals of the same kinds.
 */

/* The significant token before the current one, as far as keeping a literal verbatim goes. */
enum prev_token {
	PREV_OTHER,
	PREV_LPAREN, /* ( */
	PREV_FLOAT,  /* the keyword FLOAT */
	PREV_KEEP,   /* UESCAPE, ALTER, COLUMN: the literal after it is kept */
};

struct keyer {
	const unsigned char *s;
	size_t n, i; /* the text, and how much of it is keyed */
	char *key;
	size_t k;                      /* key bytes written */
	struct classify_literal *lits; /* NULL: not asked for */
	size_t n_lits;
	enum prev_token prev, prev2; /* the last two tokens (whitespace and comments are none) */
};

/* Character classes of scan.l, by byte. */
enum {
	CH_SPACE = 1, /* space: [ \t\n\r\f] (a vertical tab is not one in PostgreSQL 15) */
	CH_DIGIT = 2,
	CH_IDENT = 4, /* ident_start (also dolq_start): [A-Za-z\200-\377_] */
	CH_DOLLAR = 8,
};

static const unsigned char
	char_class[256] = {
		[' '] = CH_SPACE,           ['\t'] = CH_SPACE,        ['\n'] = CH_SPACE,
		['\r'] = CH_SPACE,          ['\f'] = CH_SPACE,        ['0' ... '9'] = CH_DIGIT,
		['A' ... 'Z'] = CH_IDENT,   ['a' ... 'z'] = CH_IDENT, ['_'] = CH_IDENT,
		[0x80 ... 0xff] = CH_IDENT, ['$'] = CH_DOLLAR,
	};

static bool is_digit(unsigned char c)
{
	return char_class[c] & CH_DIGIT;
}

static bool is_ident_start(unsigned char c)
{
	return char_class[c] & CH_IDENT;
}

/* scan.l's ident_cont: ident_start, digits and $. */
static bool is_ident_cont(unsigned char c)
{
	return char_class[c] & (CH_IDENT | CH_DIGIT | CH_DOLLAR);
}

static bool is_space(unsigned char c)
{
	return char_class[c] & CH_SPACE;
}

static bool is_newline(unsigned char c)
{
	return c == '\n' || c == '\r';
}

/* Whether w[0..n) is the keyword 'kw' (lower case): the scanner folds ASCII letters only. */
static bool is_word(const unsigned char *w, size_t n, const char *kw)
{
	size_t i;

	for (i = 0; i < n && kw[i]; i++)
		if ((w[i] | 0x20) != (unsigned char)kw[i])
			return false;
	return i == n && kw[i] == '\0';
}

/* What the identifier or keyword w[0..n) is, for the literal after it. */
static enum prev_token word_token(const unsigned char *w, size_t n)
{
	switch (n) {
	case 5:
		return is_word(w, n, "float") ? PREV_FLOAT : is_word(w, n, "alter") ? PREV_KEEP : PREV_OTHER;
	case 6:
		return is_word(w, n, "column") ? PREV_KEEP : PREV_OTHER;
	case 7:
		return is_word(w, n, "uescape") ? PREV_KEEP : PREV_OTHER;
	default:
		return PREV_OTHER;
	}
}

/* Whether the digits d[0..n) are an int32, as the scanner's strtoint() decides ICONST from FCONST. */
static bool fits_int32(const unsigned char *d, size_t n)
{
	while (n > 1 && *d == '0')
		d++, n--;
	return n < 10 || (n == 10 && memcmp(d, "2147483647", 10) <= 0);
}

/* Keys s[i..end) as it is. */
static void copy(struct keyer *z, size_t end)
{
	size_t len = end - z->i;
	char *to = z->key + z->k;
	const unsigned char *from = z->s + z->i;

	if (len <= 16) { /* most tokens: cheaper than a call to memcpy */
		for (size_t i = 0; i < len; i++)
			to[i] = (char)from[i];
	} else {
		memcpy(to, from, len);
	}
	z->k += len;
	z->i = end;
}

static void token(struct keyer *z, enum prev_token t)
{
	z->prev2 = z->prev;
	z->prev = t;
}

/* The literal s[i..end) of 'kind': a placeholder, or itself where the parser reads its value. */
static void literal(struct keyer *z, size_t end, char kind, bool keep)
{
	if (keep || z->prev == PREV_KEEP || (z->prev == PREV_LPAREN && z->prev2 == PREV_FLOAT)) {
		copy(z, end);
	} else {
		if (z->lits)
			z->lits[z->n_lits++] = (struct classify_literal){ z->i, end - z->i, kind };
		z->key[z->k++] = '\0';
		z->key[z->k++] = kind;
		z->i = end;
	}
	token(z, PREV_OTHER);
}

enum string_form {
	STRING_DOUBLED, /* '...' and U&'...': '' is a quote */
	STRING_ESCAPED, /* E'...': '' and backslash escapes */
	STRING_BITS,    /* B'...', X'...': the first quote ends it */
};

/*
 * Where the string whose body starts at s[j] ends (just past its last
 * closing quote), or 0 if it is unterminated. *checked is set if an E-string
 * has an escape the scanner checks (see above). After a closing quote the
 * string continues, in the same form, if what follows is whitespace holding
 * at least one newline and then a quote (scan.l's {quotecontinue}). The
 * server also allows -- comments in that whitespace; libpg_query's scanner,
 * which reports comments as tokens, does not, and it is the one to follow.
 */
static size_t string_end(const unsigned char *s, size_t n, size_t j, enum string_form form, bool *checked)
{
	for (;;) {
		size_t k;
		bool newline = false;

		for (;; j++) {
			if (j >= n)
				return 0;
			if (s[j] == '\\' && form == STRING_ESCAPED) {
				if (++j >= n)
					return 0;
				if ((s[j] >= '0' && s[j] <= '7') || s[j] == 'x' || s[j] == 'u' ||
				    s[j] == 'U' || s[j] >= 0x80)
					*checked = true;
			} else if (s[j] == '\'') {
				if (form == STRING_BITS || j + 1 >= n || s[j + 1] != '\'')
					break;
				j++; /* '' */
			}
		}
		for (k = ++j; k < n && is_space(s[k]); k++)
			newline |= is_newline(s[k]);
		if (!newline || k >= n || s[k] != '\'')
			return j;
		j = k + 1;
	}
}

/*
 * Where the number at s[i] (a digit, or '.' and a digit) ends, with its kind
 * in *kind; 0 when the scanner rejects it: {integer_junk}, {decimal_junk},
 * {real_junk} (an identifier character right after it) and {realfail} (an
 * exponent without digits) are errors in PostgreSQL 15. {decimalfail} (1..)
 * is the integer alone, followed by the .. token.
 */
static size_t number_end(const unsigned char *s, size_t n, size_t i, char *kind)
{
	size_t j = i, k;
	bool integer = true;

	while (j < n && is_digit(s[j]))
		j++;
	if (j < n && s[j] == '.') {
		if (j > i && j + 1 < n && s[j + 1] == '.') {
			*kind = fits_int32(s + i, j - i) ? CLASSIFY_LIT_INT : CLASSIFY_LIT_NUMERIC;
			return j;
		}
		integer = false;
		for (j++; j < n && is_digit(s[j]); j++)
			;
	}
	if (j < n && (s[j] == 'e' || s[j] == 'E')) {
		k = j + 1;
		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k >= n || !is_digit(s[k]))
			return 0;
		for (j = k; j < n && is_digit(s[j]); j++)
			;
		integer = false;
	}
	if (j < n && is_ident_start(s[j]))
		return 0;
	*kind = integer && fits_int32(s + i, j - i) ? CLASSIFY_LIT_INT : CLASSIFY_LIT_NUMERIC;
	return j;
}

/* Where the slash-star comment at s[i] ends (they nest), or 0 if it does not. */
static size_t block_comment_end(const unsigned char *s, size_t n, size_t i)
{
	size_t depth = 0;

	while (i + 1 < n) {
		if (s[i] == '/' && s[i + 1] == '*') {
			depth++;
			i += 2;
		} else if (s[i] == '*' && s[i + 1] == '/') {
			i += 2;
			if (--depth == 0)
				return i;
		} else {
			i++;
		}
	}
	return 0;
}

/* Where the quoted identifier whose body starts at s[j] ends ("" is a quote), or 0. */
static size_t quoted_ident_end(const unsigned char *s, size_t n, size_t j)
{
	for (; j < n; j++) {
		if (s[j] != '"')
			continue;
		if (j + 1 >= n || s[j + 1] != '"')
			return j + 1;
		j++;
	}
	return 0;
}

/*
 * Where the dollar quote opening with the delimiter s[i..i+d) ends: just
 * past the first copy of the delimiter after it, or 0. (The scanner finds
 * exactly that one: inside the quote, a $ starts no other token.)
 */
static size_t dollar_end(const unsigned char *s, size_t n, size_t i, size_t d)
{
	for (size_t j = i + d; j + d <= n; j++) {
		const unsigned char *p = memchr(s + j, '$', n - j);

		if (!p || (size_t)(p - s) + d > n)
			return 0;
		j = (size_t)(p - s);
		if (memcmp(p, s + i, d) == 0)
			return j + d;
	}
	return 0;
}

/*
 * One token at z->i, keyed. Returns false when the rest of the text is to
 * be kept verbatim (an unterminated literal or comment, a scanner error).
 * Inlined into key_text(), where the keyer is a local that nothing else
 * sees: otherwise every byte stored to the key (a char array, which may
 * alias anything) makes the compiler reload the keyer's fields, and keying
 * pgbench's statement takes twice as long.
 */
static inline __attribute__((always_inline)) bool key_token(struct keyer *z)
{
	const unsigned char *s = z->s;
	size_t n = z->n, i = z->i, j;
	unsigned char c = s[i], next = i + 1 < n ? s[i + 1] : '\0';
	bool checked = false;
	char kind;

	if (is_space(c)) {
		for (j = i + 1; j < n && is_space(s[j]); j++)
			;
		copy(z, j);
	} else if (c == '-' && next == '-') {
		for (j = i + 2; j < n && !is_newline(s[j]); j++)
			;
		copy(z, j);
	} else if (c == '/' && next == '*') {
		if (!(j = block_comment_end(s, n, i)))
			return false;
		copy(z, j);
	} else if (c == '"') {
		if (!(j = quoted_ident_end(s, n, i + 1)))
			return false;
		copy(z, j);
		token(z, PREV_OTHER);
	} else if (c == '\'') {
		if (!(j = string_end(s, n, i + 1, STRING_DOUBLED, &checked)))
			return false;
		literal(z, j, CLASSIFY_LIT_STRING, false);
	} else if (is_digit(c) || (c == '.' && is_digit(next))) {
		if (!(j = number_end(s, n, i, &kind)))
			return false;
		literal(z, j, kind, false);
	} else if (c == '$' && is_digit(next)) {
		/* A parameter; an identifier character after its digits is an error. */
		for (j = i + 1; j < n && is_digit(s[j]); j++)
			;
		if (j < n && is_ident_start(s[j]))
			return false;
		copy(z, j);
		token(z, PREV_OTHER);
	} else if (c == '$') {
		/* $tag$ opens a dollar quote; the tag is an identifier without $, or empty. */
		j = i + 1;
		if (j < n && is_ident_start(s[j]))
			while (j < n && (is_ident_start(s[j]) || is_digit(s[j])))
				j++;
		if (j < n && s[j] == '$') {
			if (!(j = dollar_end(s, n, i, j + 1 - i)))
				return false;
			literal(z, j, CLASSIFY_LIT_DOLLAR, false);
		} else {
			copy(z, i + 1); /* a lone $ ({dolqfailed} gives back all but it) */
			token(z, PREV_OTHER);
		}
	} else if (is_ident_start(c)) {
		unsigned char lower = c | 0x20;

		/* Prefixed strings start only where an identifier would: not after an identifier character. */
		if (next == '\'' && (lower == 'e' || lower == 'b' || lower == 'x')) {
			enum string_form form = lower == 'e' ? STRING_ESCAPED : STRING_BITS;

			if (!(j = string_end(s, n, i + 2, form, &checked)))
				return false;
			literal(z, j,
				lower == 'e'           ? CLASSIFY_LIT_ESTRING
					: lower == 'b' ? CLASSIFY_LIT_BITS
						       : CLASSIFY_LIT_HEX,
				checked);
		} else if (next == '\'' && lower == 'n') {
			copy(z, i + 1); /* NCHAR; the string follows */
			token(z, PREV_OTHER);
		} else if (lower == 'u' && next == '&' && i + 2 < n && s[i + 2] == '\'') {
			if (!(j = string_end(s, n, i + 3, STRING_DOUBLED, &checked)))
				return false;
			copy(z, j); /* U&'...': kept */
			token(z, PREV_OTHER);
		} else {
			for (j = i + 1; j < n && is_ident_cont(s[j]); j++)
				;
			copy(z, j);
			token(z, word_token(s + i, j - i));
		}
	} else if (c == '.' && next == '.') {
		copy(z, i + 2); /* .. is one token: ..5 is .. and 5, not . and .5 */
		token(z, PREV_OTHER);
	} else {
		z->key[z->k++] = (char)
			c; /* operator characters, punctuation, anything else: a byte at a time */
		z->i++;
		token(z, c == '(' ? PREV_LPAREN : PREV_OTHER);
	}
	return true;
}

/* classify_cache_key() of sql[0..len), which holds no NUL. */
static size_t key_text(const char *sql, size_t len, char *key, struct classify_literal *lits, size_t *n_lits)
{
	struct keyer z = { .s = (const unsigned char *)sql, .n = len, .key = key, .lits = lits };

	while (z.i < z.n && key_token(&z))
		;
	copy(&z, z.n);
	if (n_lits)
		*n_lits = z.n_lits;
	return z.k;
}

size_t classify_cache_key(const char *sql, size_t len, char *key, struct classify_literal *lits,
			  size_t *n_lits)
{
	return key_text(sql, strnlen(sql, len), key, lits, n_lits);
}

/*
 * 64-bit hash of a key, eight bytes a step (keys run to CLASSIFY_PARSE_MAX_LIMIT):
 * a multiply and a shift per word, then the MurmurHash3 finalizer so that
 * every byte reaches the low bits a bucket is picked by.
 */
static uint64_t hash_key(const char *p, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15u;
	uint64_t h = k ^ n, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * k;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

struct classify_cache *classify_cache_new(size_t max_entries, size_t max_bytes)
{
	struct classify_cache *c = calloc(1, sizeof(*c));
	size_t smallest = sizeof(struct cache_entry) + sizeof(struct classify_compact);

	if (!c)
		return NULL;
	/*
	 * No more entries than the smallest fit in max_bytes, and at least a
	 * bucket an entry: chains stay short without ever resizing.
	 */
	c->max_entries = max_entries < max_bytes / smallest ? max_entries : max_bytes / smallest;
	c->max_bytes = max_bytes;
	c->n_buckets = 16;
	while (c->n_buckets < c->max_entries && c->n_buckets <= SIZE_MAX / 4)
		c->n_buckets *= 2;
	c->buckets = calloc(c->n_buckets, sizeof(c->buckets[0]));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	return c;
}

void classify_cache_free(struct classify_cache *c)
{
	struct cache_entry *e, *older;

	if (!c)
		return;
	for (e = c->newest; e; e = older) {
		older = e->older;
		free(e->result);
		free(e);
	}
	free(c->buckets);
	free(c);
}

static void list_unlink(struct classify_cache *c, struct cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
}

static void list_push_newest(struct classify_cache *c, struct cache_entry *e)
{
	e->newer = NULL;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
}

static struct cache_entry **bucket_of(const struct classify_cache *c, uint64_t hash)
{
	return &c->buckets[hash & (c->n_buckets - 1)];
}

static void evict_oldest(struct classify_cache *c)
{
	struct cache_entry *e = c->oldest, **link;

	for (link = bucket_of(c, e->hash); *link != e; link = &(*link)->chain)
		;
	*link = e->chain;
	list_unlink(c, e);
	c->stats.entries--;
	c->stats.bytes -= e->bytes;
	c->stats.evictions++;
	free(e->result);
	free(e);
}

/* Keeps 'r' as the result for key[0..len); on out of memory keeps nothing. */
static void insert(struct classify_cache *c, const char *key, size_t len, uint64_t hash,
		   const struct classify_result *r)
{
	size_t need = sizeof(struct cache_entry) + len + classify_compact_size(r);
	struct cache_entry *e, **bucket;

	if (c->max_entries == 0 || need > c->max_bytes)
		return;
	e = malloc(sizeof(*e) + len);
	if (!e || !(e->result = classify_compact_copy(r))) {
		free(e);
		return;
	}
	while (c->stats.entries >= c->max_entries || c->stats.bytes + need > c->max_bytes)
		evict_oldest(c);
	e->hash = hash;
	e->bytes = need;
	e->key_len = len;
	memcpy(e->key, key, len);
	bucket = bucket_of(c, hash);
	e->chain = *bucket;
	*bucket = e;
	list_push_newest(c, e);
	c->stats.entries++;
	c->stats.bytes += need;
}

/* Keys of texts up to half this long are built on the stack. */
#define KEY_STACK_BYTES 4096

void classify_cache_sql(struct classify_cache *c, const char *sql, size_t len,
			const struct classify_options *opt, struct classify_result *out)
{
	char small[KEY_STACK_BYTES], *key = small;
	struct cache_entry *e;
	size_t key_len;
	uint64_t hash;

	len = strnlen(sql, len); /* classify_sql stops at a NUL: equal text, equal key */
	/*
	 * Past the parse limit, or with standard_conforming_strings off, the
	 * answer is UNKNOWN without parsing; below it, classify_sql's result
	 * depends on the text alone (on its key, see above), so one entry serves
	 * every option set.
	 */
	if (opt->standard_conforming_strings_off || len > opt->parse_max_bytes ||
	    len > CLASSIFY_PARSE_MAX_LIMIT) {
		classify_sql(sql, len, opt, out);
		return;
	}
	if (CLASSIFY_CACHE_KEY_MAX(len) > sizeof(small) && !(key = malloc(CLASSIFY_CACHE_KEY_MAX(len)))) {
		c->stats.misses++; /* no room for the key: answered, not kept */
		classify_sql(sql, len, opt, out);
		return;
	}
	key_len = key_text(sql, len, key, NULL, NULL);
	hash = hash_key(key, key_len);
	for (e = *bucket_of(c, hash); e; e = e->chain) {
		if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0) {
			c->stats.hits++;
			list_unlink(c, e);
			list_push_newest(c, e);
			classify_compact_fill(e->result, out);
			goto done;
		}
	}
	c->stats.misses++;
	classify_sql(sql, len, opt, out);
	/* Out of memory inside classify_sql is no verdict on the text: ask again next time. */
	if (!(out->flags & CLASSIFY_UNKNOWN) || strcmp(out->unknown_reason, "out of memory") != 0)
		insert(c, key, key_len, hash, out);
done:
	if (key != small)
		free(key);
}

void classify_cache_stats(const struct classify_cache *c, struct classify_cache_stats *out)
{
	*out = c->stats;
}
