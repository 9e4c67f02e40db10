/*
 * The coordinator's settings (the command line and the coordinator config
 * in docs/architecture.md): config/pgvalve.json (every key optional, comments
 * allowed), then the command line on top, then PGVALVE_DB for --db. Parsing
 * only: what a value means is each command's business.
 */
#ifndef PGVALVE_COORDINATOR_OPTIONS_H
#define PGVALVE_COORDINATOR_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyctl.h"

#define OPTIONS_MAX_PROXIES 128 /* admin addresses, after dns:// entries are resolved */
#define OPTIONS_MAX_LIST 32
#define OPTIONS_BASELINE_DEFAULT_S 60

/* dot, mermaid and sql: pgvalve audit's drawings and suggested migration (OPT_FORMAT_AUDIT). */
enum output_format { FORMAT_TEXT, FORMAT_JSON, FORMAT_DOT, FORMAT_MERMAID, FORMAT_SQL };

/* --fail-on: the least severity of an audit finding that makes the exit code 1. */
enum fail_on { FAIL_ON_NONE, FAIL_ON_WARNING, FAIL_ON_ERROR };

struct options {
	enum output_format format;
	char *db;                                   /* NULL: libpq's PG* variables decide */
	struct proxy *proxies[OPTIONS_MAX_PROXIES]; /* the admin addresses to call */
	int n_proxies;
	/* the --proxy / "proxies" entries as given when one is dns:// (proxy_dns.h); else none */
	struct proxy *proxy_given[OPTIONS_MAX_PROXIES];
	int n_proxy_given;
	char *config_file;
	char *windows[OPTIONS_MAX_LIST];
	int n_windows;
	int max_stall_ms;
	int lock_timeout_ms;
	int attempts;
	int watch_s;
	/* --baseline / "baseline_s": seconds of table latency measured before the cutover, 0 to 300;
	   -1: OPTIONS_BASELINE_DEFAULT_S, or watch_s when shorter (docs/architecture.md §4.10) */
	int baseline_s;
	char *rollback_on[OPTIONS_MAX_LIST];
	int n_rollback_on;
	int64_t terminate_blockers_after_ms; /* < 0: never */
	bool postpone_cutover;
	bool yes;
	bool allow_unsafe;
	bool resume;
	bool rollback;
	char *schemas[OPTIONS_MAX_LIST]; /* audit --schema */
	int n_schemas;
	char *tables[OPTIONS_MAX_LIST]; /* audit --table */
	int n_tables;
	bool orphans;
	bool suggest;
	enum fail_on fail_on;
	char *orm;      /* --orm / "orm": the tool whose bookkeeping apply writes (orm.h); NULL: none */
	char *orm_name; /* --orm-name: the migration's name for that tool */
	/* the key type change's backfill (keychange_prepare.c) */
	int backfill_batch; /* rows per batch */
	int backfill_rate;  /* rows a second at most (0: as fast as it goes) */
	bool finalize;      /* apply --finalize: drop the old columns once committed */
	bool self_test;     /* apply --self-test: prove each new constraint enforced (selftest.h) */
	/* the backfill's replication-lag throttle (keychange_lag.c) */
	int64_t max_lag_ms; /* --max-lag: pause while a standby replays further behind (0: off) */
	char **args;        /* positional: files, or an id */
	int n_args;
};

/* Which flags a command takes (a bit per flag). */
enum option_flag {
	OPT_DB = 1 << 0,
	OPT_PROXY = 1 << 1,
	OPT_FORMAT = 1 << 2,
	OPT_CONFIG = 1 << 3,
	OPT_WINDOW = 1 << 4,
	OPT_MAX_STALL = 1 << 5,
	OPT_LOCK_TIMEOUT = 1 << 6,
	OPT_ATTEMPTS = 1 << 7,
	OPT_WATCH = 1 << 8, /* --watch and --baseline */
	OPT_ROLLBACK_ON = 1 << 9,
	OPT_TERMINATE = 1 << 10,
	OPT_POSTPONE = 1 << 11,
	OPT_YES = 1 << 12,
	OPT_ALLOW_UNSAFE = 1 << 13,
	OPT_RESUME = 1 << 14,
	OPT_ROLLBACK = 1 << 15,
	OPT_SCHEMA = 1 << 16,
	OPT_TABLE = 1 << 17,
	OPT_ORPHANS = 1 << 18,
	OPT_SUGGEST = 1 << 19,
	OPT_FAIL_ON = 1 << 20,
	OPT_FORMAT_AUDIT = 1 << 21, /* not a flag: --format also takes dot, mermaid and sql */
	OPT_ORM = 1 << 22,          /* --orm and --orm-name */
	/* the key type change's backfill */
	OPT_BACKFILL_BATCH = 1 << 23,
	OPT_BACKFILL_RATE = 1 << 24,
	OPT_FINALIZE = 1 << 25,
	OPT_SELF_TEST = 1 << 26, /* apply --self-test (selftest.h) */
	/* the backfill's replication-lag throttle */
	OPT_MAX_LAG = 1 << 27,
};

/*
 * Parses argv (after the command word) allowing only 'allowed' flags. False
 * with 'err' filled (a usage error: exit 2).
 */
bool options_parse(int argc, char **argv, unsigned allowed, struct options *o, char *err, size_t errlen)
	__attribute__((warn_unused_result));

void options_free(struct options *o);

/* "500ms", "30s", "2m", "1h", or a bare number of milliseconds. -1 when malformed. */
int64_t options_parse_duration_ms(const char *s);

#endif
