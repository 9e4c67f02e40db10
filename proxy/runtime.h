/*
 * Process-wide state of pgvalve-proxy: the published configuration snapshot
 * (immutable once built: config, resolved addresses, TLS contexts), the
 * workers, and process counters. Workers read their own pointer to the
 * snapshot; a reload builds a new one and hands it to each worker as a job.
 */
#ifndef PGVALVE_PROXY_RUNTIME_H
#define PGVALVE_PROXY_RUNTIME_H

#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "pgvalve/config.h"

struct verifier_list;

struct snapshot {
	struct config cfg;
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	struct sockaddr_storage upstream_addr[CONFIG_MAX_UPSTREAMS];
	socklen_t upstream_addrlen[CONFIG_MAX_UPSTREAMS];
	SSL_CTX *client_tls;                         /* NULL: answer 'N' to SSLRequest */
	SSL_CTX *upstream_tls[CONFIG_MAX_UPSTREAMS]; /* NULL: sslmode disable */
	/* auth.mode terminate: auth.userlist_file's verifiers (NULL: none configured). */
	struct verifier_list *userlist;
	/* auth.password_file's first line, the lookup role's password (NULL: libpq's own sources). */
	char *lookup_password;
	/*
	 * The upstream new sessions use: cfg.active, or where a switchover moved
	 * it. The one field the main thread changes after publishing (workers
	 * copy it only inside the snapshot job, which the main thread waits for).
	 */
	int active;
};

/* Resolves addresses and builds TLS contexts; takes ownership of *cfg on success. */
struct snapshot *snapshot_build(struct config *cfg, char *err, size_t errlen);
void snapshot_free(struct snapshot *snap);

struct worker;

struct runtime {
	struct worker *workers;
	int n_workers;
	struct snapshot *snap; /* the main thread's current snapshot */
	time_t started;
	atomic_uint_fast64_t next_conn_id;
	atomic_int clients; /* client connections, for limits.max_clients */
	atomic_bool draining;
	char *admin_token; /* from admin.token_file; NULL: mutating calls are open */
};

/*
 * Reads admin.token_file with token_file_read() into *token (malloc'd; NULL
 * when 'path' is NULL: mutating admin calls are open). Returns false with
 * 'err' filled in the config's wording: '"admin.token_file": cannot open ...'.
 */
bool runtime_load_token(const char *path, char **token, char *err, size_t errlen);

extern struct runtime rt;

#endif
