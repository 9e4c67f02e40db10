/*
 * What the session fuzz targets (fuzz_session.c, fuzz_auth_session.c) run
 * in: one real worker in-process, whose sessions are handed one end of a
 * socketpair as their client, and a loopback listener that stands in for the
 * upstream server. Also the input split they share and the checks every run
 * ends with.
 */
#ifndef PGVALVE_FUZZ_SESSION_ENV_H
#define PGVALVE_FUZZ_SESSION_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "worker.h"

extern struct worker fuzz_worker;

/* Says which setup step failed, and why (errno), and aborts. */
__attribute__((noreturn)) void fuzz_env_fatal(const char *what);

/*
 * Once per process: the upstream listener, then the snapshot and worker from
 * a config whose upstream is that listener; 'extra' is more of the config
 * object, "" or starting with ", ". 'target' names the binary in messages.
 */
void fuzz_env_setup(const char *target, const char *extra);

/* The next connection the proxy made upstream, or -1 (none waiting). */
int fuzz_env_accept_upstream(void);

/*
 * After 'head' bytes of header: the first 'client_len' bytes (at most what
 * there is) are the client's, the rest the server's.
 */
struct fuzz_input {
	const uint8_t *client, *server;
	size_t client_len, server_len;
};
struct fuzz_input fuzz_env_split(const uint8_t *data, size_t size, size_t head, size_t client_len);

/* A new session whose client is a socketpair's other end, which this returns. */
int fuzz_env_session_start(void);

/*
 * Every session's state and activity are valid values and the worker counts
 * them right; 'each' (NULL: none) checks a session further.
 */
void fuzz_env_check_sessions(void (*each)(const struct session *s));

/* Ends what is left of the sessions as shutdown does (one waiting on a timer). */
void fuzz_env_sessions_free(void);

/*
 * The end of a run: no session and no client count left; closes the client
 * end and 'server_fd' (-1: none), takes and drops the upstream connections
 * cancel forwards may have opened, and lets the loop settle.
 */
void fuzz_env_finish(int client_fd, int server_fd);

#endif
