/*
 * pgvalve: the migration coordinator's command line. Finds the command in
 * the table, parses its flags (options.c) and runs it (cmd_<name>.c).
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "proxy_dns.h"
#include "report.h"
#include "xalloc.h"

static const struct command commands[] = {
	{ "plan",
	  "FILE.sql|FILE.json --db URL [--proxy URL]... [--allow-unsafe] [--format text|json]\n"
	  "              [--orm prisma|django|flyway|golang-migrate|alembic [--orm-name NAME]]",
	  "show the safe steps a migration becomes, with locks, holds and preflight findings",
	  OPT_DB | OPT_PROXY | OPT_FORMAT | OPT_CONFIG | OPT_ALLOW_UNSAFE | OPT_ORM, cmd_plan },
	{ "apply",
	  "FILE... --db URL [--proxy URL]... [--config pgvalve.json] [--window SPEC]...\n"
	  "              [--max-stall MS] [--lock-timeout MS] [--attempts N] [--watch S] [--baseline S]\n"
	  "              [--rollback-on RULE]... [--terminate-blockers-after DURATION]\n"
	  "              [--postpone-cutover] [--allow-unsafe] [--yes] [--format text|json]\n"
	  "              [--orm prisma|django|flyway|golang-migrate|alembic [--orm-name NAME]]\n"
	  "              [--backfill-batch ROWS] [--backfill-rate ROWS_PER_S] [--max-lag DURATION]\n"
	  "              [--finalize] [--self-test]",
	  "run a migration: preflight, cutover under holds, validate, watch, commit or roll back",
	  OPT_DB | OPT_PROXY | OPT_FORMAT | OPT_CONFIG | OPT_WINDOW | OPT_MAX_STALL | OPT_LOCK_TIMEOUT |
		  OPT_ATTEMPTS | OPT_WATCH | OPT_ROLLBACK_ON | OPT_TERMINATE | OPT_POSTPONE | OPT_YES |
		  OPT_ALLOW_UNSAFE | OPT_ORM | OPT_BACKFILL_BATCH | OPT_BACKFILL_RATE | OPT_FINALIZE |
		  OPT_SELF_TEST | OPT_MAX_LAG,
	  cmd_apply },
	{ "cutover", "ID --db URL", "release a cutover postponed with --postpone-cutover",
	  OPT_DB | OPT_CONFIG, cmd_cutover },
	{ "status", "[ID] --db URL [--format text|json]", "show migrations and what is pending",
	  OPT_DB | OPT_CONFIG | OPT_FORMAT, cmd_status },
	{ "rollback", "ID --db URL [--proxy URL]...", "undo a migration: restore the prior constraints",
	  OPT_DB | OPT_PROXY | OPT_CONFIG | OPT_FORMAT | OPT_MAX_STALL | OPT_LOCK_TIMEOUT | OPT_ATTEMPTS,
	  cmd_rollback },
	{ "recover", "--db URL [--proxy URL]... [--resume|--rollback] [--self-test]",
	  "after a crash: finish (--resume) or undo (--rollback) an interrupted migration",
	  OPT_DB | OPT_PROXY | OPT_CONFIG | OPT_FORMAT | OPT_RESUME | OPT_ROLLBACK | OPT_MAX_STALL |
		  OPT_LOCK_TIMEOUT | OPT_ATTEMPTS | OPT_WATCH | OPT_ROLLBACK_ON | OPT_BACKFILL_BATCH |
		  OPT_BACKFILL_RATE | OPT_SELF_TEST | OPT_MAX_LAG,
	  cmd_recover },
	{ "finalize", "ID --db URL [--proxy URL]...",
	  "end a key type change: drop the old columns and triggers kept for a rollback",
	  OPT_DB | OPT_PROXY | OPT_CONFIG | OPT_FORMAT | OPT_MAX_STALL | OPT_LOCK_TIMEOUT | OPT_ATTEMPTS,
	  cmd_finalize },
	{ "report", "ID --db URL [--format text|json]",
	  "a migration's evidence: states, holds, validations, client errors, self-test, damage after a "
	  "rollback",
	  OPT_DB | OPT_CONFIG | OPT_FORMAT, cmd_report },
	{ "audit",
	  "--db URL [--schema S]... [--table T]... [--format text|json|dot|mermaid|sql]\n"
	  "              [--orphans] [--suggest] [--fail-on error|warning]",
	  "the foreign-key graph: what is wrong with it, and the foreign keys that are missing",
	  OPT_DB | OPT_CONFIG | OPT_FORMAT | OPT_FORMAT_AUDIT | OPT_SCHEMA | OPT_TABLE | OPT_ORPHANS |
		  OPT_SUGGEST | OPT_FAIL_ON,
	  cmd_audit },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "pgvalve %s: zero-downtime constraint migrations for PostgreSQL\n\nUsage:\n",
		PGVALVE_VERSION);
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  pgvalve %-8s %s\n", commands[i].name, commands[i].usage);
	fprintf(f,
		"\n--db also reads PGVALVE_DB and libpq's PG* variables.\n"
		"Exit codes: 0 done, 1 refused by a check (nothing changed), 2 usage or config error,\n"
		"3 rolled back, 4 needs attention (pgvalve status says what).\n");
}

/* `pgvalve CMD --help`: what the command does and its flags, on stdout. */
static void command_help(const struct command *cmd)
{
	printf("usage: pgvalve %s %s\n\n%s.\n\n"
	       "--db also reads PGVALVE_DB and libpq's PG* variables.\n"
	       "Exit codes: 0 done, 1 refused by a check (nothing changed), 2 usage or config error,\n"
	       "3 rolled back, 4 needs attention (pgvalve status says what).\n",
	       cmd->name, cmd->usage, cmd->summary);
}

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct options o;
	char err[1024];
	int rc;

	xalloc_init();
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_DONE;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("pgvalve %s\n", PGVALVE_VERSION);
		return EXIT_DONE;
	}
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "pgvalve: error: unknown command \"%s\"\n\n", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			command_help(cmd);
			return EXIT_DONE;
		}
	}
	if (!options_parse(argc - 1, argv + 1, cmd->flags, &o, err, sizeof(err))) {
		fprintf(stderr, "pgvalve %s: error: %s\nusage: pgvalve %s %s\n", cmd->name, err, cmd->name,
			cmd->usage);
		options_free(&o);
		return EXIT_USAGE;
	}
	/* dns:// proxies: the fleet as the command starts (cutover.c asks again before every hold) */
	if ((cmd->flags & OPT_PROXY) && !proxy_dns_options(&o, err, sizeof(err))) {
		fprintf(stderr,
			"pgvalve %s: error: %s\nhint: check the name, or list the proxies as "
			"http://HOST:PORT\n",
			cmd->name, err);
		options_free(&o);
		return EXIT_USAGE;
	}
	report_init(o.format);
	rc = cmd->exec(&o);
	options_free(&o);
	return rc;
}
