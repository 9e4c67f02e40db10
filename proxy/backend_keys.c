/*
 * The backend key map (see backend_keys.h): a fixed array of hash chains
 * under one mutex. Entries are few (one per logged-in session) and the
 * critical sections a handful of instructions long.
 */
#include "backend_keys.h"

#include <pthread.h>
#include <stdlib.h>

#define BUCKETS 4096 /* a power of two */

struct backend_key {
	struct backend_key *next;
	uint32_t pid;
	uint32_t key;
	struct backend_owner owner;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct backend_key *buckets[BUCKETS];

static struct backend_key **bucket(uint32_t pid, uint32_t key)
{
	uint32_t h = (pid * 2654435761u) ^ key;

	return &buckets[(h ^ (h >> 16)) & (BUCKETS - 1)];
}

bool backend_keys_add(uint32_t pid, uint32_t key, const struct backend_owner *owner)
{
	struct backend_key *e = malloc(sizeof(*e));
	struct backend_key **b;

	if (!e)
		return false;
	e->pid = pid;
	e->key = key;
	e->owner = *owner;
	pthread_mutex_lock(&mu);
	b = bucket(pid, key);
	e->next = *b;
	*b = e;
	pthread_mutex_unlock(&mu);
	return true;
}

void backend_keys_remove(uint32_t pid, uint32_t key)
{
	struct backend_key **link, *gone = NULL;

	pthread_mutex_lock(&mu);
	for (link = bucket(pid, key); *link; link = &(*link)->next) {
		if ((*link)->pid == pid && (*link)->key == key) {
			gone = *link;
			*link = gone->next;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	free(gone);
}

bool backend_keys_find(uint32_t pid, uint32_t key, struct backend_owner *owner)
{
	bool found = false;

	pthread_mutex_lock(&mu);
	for (struct backend_key *e = *bucket(pid, key); e; e = e->next) {
		if (e->pid == pid && e->key == key) {
			if (owner)
				*owner = e->owner;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&mu);
	return found;
}
