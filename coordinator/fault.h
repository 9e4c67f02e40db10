/*
 * Fault injection for the crash tests: when the environment variable
 * PGVALVE_TEST_KILL_AT names a point the coordinator passes (a journal
 * state just recorded, or "holding": holds acknowledged, DDL not yet run),
 * the process kills itself with SIGKILL there — no cleanup, as after a
 * crash or `kill -9`. Unset, it costs one getenv per point.
 */
#ifndef PGVALVE_COORDINATOR_FAULT_H
#define PGVALVE_COORDINATOR_FAULT_H

void fault_point(const char *name);

#endif
