/*
 * Leased entries (see lease.h): a singly linked list searched by id, one
 * libevent timer per entry. A lease is restarted, never extended: renewing
 * arms the timer afresh with the new length.
 */
#include "lease.h"

#include <stdlib.h>
#include <string.h>

void lease_list_init(struct lease_list *list, struct event_base *base, lease_expired_fn expired)
{
	list->base = base;
	list->expired = expired;
}

struct leased *lease_find(const struct lease_list *list, const char *id)
{
	for (struct leased *l = list->head; l; l = l->next)
		if (strcmp(l->id, id) == 0)
			return l;
	return NULL;
}

void *lease_peek(const struct lease_list *list, const char *id)
{
	struct leased *l = lease_find(list, id);

	return l ? l->item : NULL;
}

static void arm(struct leased *l)
{
	struct timeval tv = { (time_t)(*l->lease_ms / 1000), (suseconds_t)(*l->lease_ms % 1000) * 1000 };

	evtimer_add(l->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct leased *l = arg;

	l->list->expired(l);
}

struct leased *lease_add(struct lease_list *list, void *item, const char *id, int64_t *lease_ms)
{
	struct leased *l = calloc(1, sizeof(*l));

	if (!l || !(l->timer = evtimer_new(list->base, on_timer, l))) {
		free(l);
		return NULL;
	}
	l->item = item;
	l->id = id;
	l->lease_ms = lease_ms;
	l->list = list;
	l->next = list->head;
	list->head = l;
	list->n++;
	arm(l);
	return l;
}

bool lease_renew(struct lease_list *list, const char *id, int64_t lease_ms)
{
	struct leased *l = lease_find(list, id);

	if (!l)
		return false;
	*l->lease_ms = lease_ms; /* main thread only: workers never read the lease */
	arm(l);
	return true;
}

void *lease_remove(struct leased *l)
{
	struct leased **link;
	void *item = l->item;

	for (link = &l->list->head; *link != l; link = &(*link)->next)
		;
	*link = l->next;
	l->list->n--;
	event_free(l->timer);
	free(l);
	return item;
}
