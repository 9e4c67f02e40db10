/*
 * Allocation that cannot fail: the coordinator is a command-line program, so
 * running out of memory ends it (exit 4, "needs attention") instead of
 * threading a NULL through every caller. Every DDL statement commits together
 * with its journal row, so dying here leaves the journal true and
 * `pgvalve recover` finishes or undoes the migration. The proxy does not use
 * these: a server answers allocation failure per connection.
 */
#ifndef PGVALVE_COORDINATOR_XALLOC_H
#define PGVALVE_COORDINATOR_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), malloc, returns_nonnull));

/*
 * Makes cJSON allocate with xmalloc too, so cJSON_Create*, cJSON_Add*ToObject
 * and cJSON_Print* never return NULL for want of memory. Called once, first
 * thing, by the coordinator's main().
 */
void xalloc_init(void);

#endif
