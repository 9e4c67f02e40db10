/*
 * Fault injection (see fault.h).
 */
#include "fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fault_point(const char *name)
{
	const char *at = getenv("PGVALVE_TEST_KILL_AT");

	if (at && strcmp(at, name) == 0) {
		fprintf(stderr, "pgvalve: PGVALVE_TEST_KILL_AT=%s: killing myself\n", name);
		fflush(NULL);
		raise(SIGKILL);
	}
}
