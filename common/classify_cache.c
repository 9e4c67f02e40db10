/*
 * The classification cache (see classify_cache.h): the key (the SQL text
 * with its literal values blanked, by one pass of the SQL lexer,
 * pgvalve/sqllex.h, which follows PostgreSQL 15's scanner), and a chained
 * hash table over the keys with one doubly
 * linked list in recency order for LRU eviction. It owns the entries and
 * their compact results; classify.c does the classifying and knows nothing
 * of the cache.
 */
#include "pgvalve/classify_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pgvalve/sqllex.h"

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
 * it differs from the server's, it is the one followed) token by token, as
 * sqllex.h reads it, and blanks a literal only where the scanner's token for
 * it cannot depend on its value. PostgreSQL 16 reads more as numbers (0x1F, 0o17, 0b101, 1_000, all
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
 *     placeholder (the lexer, sqllex.h, reads it as one token).
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
	const char *s;
	size_t i; /* how much of the text is keyed */
	char *key;
	size_t k;                      /* key bytes written */
	struct classify_literal *lits; /* NULL: not asked for */
	size_t n_lits;
	enum prev_token prev, prev2; /* the last two tokens (whitespace and comments are none) */
};

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

/* Keys s[i..end) as it is. */
static inline __attribute__((always_inline)) void copy(struct keyer *z, size_t end)
{
	size_t len = end - z->i;
	char *to = z->key + z->k;
	const char *from = z->s + z->i;

	if (len <= 16) { /* most tokens: cheaper than a call to memcpy */
		for (size_t i = 0; i < len; i++)
			to[i] = from[i];
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

/*
 * One token, keyed. Returns false when the rest of the text is to be kept
 * verbatim (an unterminated literal or comment, a scanner error). Inlined
 * into key_text(), where the keyer is a local nothing else sees, so its
 * fields stay in registers while bytes are stored to the key (a char array,
 * which may alias anything).
 */
static inline __attribute__((always_inline)) bool key_token(struct keyer *z, const struct sqllex_token *t)
{
	switch (t->kind) {
	case SQLLEX_SPACE:
	case SQLLEX_COMMENT:
		copy(z, t->end);
		return true;
	case SQLLEX_STRING:
		literal(z, t->end, CLASSIFY_LIT_STRING, false);
		return true;
	case SQLLEX_ESTRING:
		literal(z, t->end, CLASSIFY_LIT_ESTRING, t->checked_escape);
		return true;
	case SQLLEX_BSTRING:
		literal(z, t->end, CLASSIFY_LIT_BITS, false);
		return true;
	case SQLLEX_XSTRING:
		literal(z, t->end, CLASSIFY_LIT_HEX, false);
		return true;
	case SQLLEX_DOLLAR:
		literal(z, t->end, CLASSIFY_LIT_DOLLAR, false);
		return true;
	case SQLLEX_INTEGER:
		literal(z, t->end, CLASSIFY_LIT_INT, false);
		return true;
	case SQLLEX_NUMERIC:
		literal(z, t->end, CLASSIFY_LIT_NUMERIC, false);
		return true;
	case SQLLEX_IDENT:
		copy(z, t->end);
		token(z, word_token((const unsigned char *)z->s + t->start, t->end - t->start));
		return true;
	case SQLLEX_SELF:
		copy(z, t->end);
		token(z, z->s[t->start] == '(' ? PREV_LPAREN : PREV_OTHER);
		return true;
	case SQLLEX_QIDENT:
	case SQLLEX_UIDENT:
	case SQLLEX_USTRING: /* U&'...': kept (the parser decodes its escapes and can fail on them) */
	case SQLLEX_PARAM:
	case SQLLEX_OPERATOR:
	case SQLLEX_OTHER:
		copy(z, t->end);
		token(z, PREV_OTHER);
		return true;
	case SQLLEX_END:
	case SQLLEX_ERROR:
	case SQLLEX_UNTERMINATED:
		break;
	}
	return false;
}

/* Tokens lexed at a time: enough for most statements in one call. */
#define KEY_TOKENS 64

/* classify_cache_key() of sql[0..len), which holds no NUL. */
static size_t key_text(const char *sql, size_t len, char *key, struct classify_literal *lits, size_t *n_lits)
{
	struct keyer z = { .s = sql, .key = key, .lits = lits };
	struct sqllex lx;
	struct sqllex_token toks[KEY_TOKENS];
	size_t n;

	sqllex_init(&lx, sql, len, 0);
	while ((n = sqllex_next_many(&lx, toks, KEY_TOKENS)) > 0)
		for (size_t i = 0; i < n; i++)
			if (!key_token(&z, &toks[i]))
				goto rest;
rest:
	copy(&z, len);
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
