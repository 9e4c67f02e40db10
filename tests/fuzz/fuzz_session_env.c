/*
 * The session fuzz targets' shared setup and run scaffolding (see
 * fuzz_session_env.h).
 */
#include "fuzz_session_env.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "pgvalve/config.h"
#include "pgvalve/log.h"
#include "runtime.h"

struct worker fuzz_worker;
static int upstream_listener = -1;
static const char *target_name = "fuzz";

void fuzz_env_fatal(const char *what)
{
	fprintf(stderr, "%s setup: %s: %s\n", target_name, what, strerror(errno));
	abort();
}

void fuzz_env_setup(const char *target, const char *extra)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	struct config cfg;
	char err[256], json[2048];
	struct config_error cerr;

	target_name = target;
	upstream_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (upstream_listener < 0 || bind(upstream_listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(upstream_listener, 16) != 0 ||
	    getsockname(upstream_listener, (struct sockaddr *)&addr, &len) != 0)
		fuzz_env_fatal("upstream listener");
	if (snprintf(json, sizeof(json),
		     "{\"listen\": {\"host\": \"127.0.0.1\", \"port\": 1},"
		     " \"upstream\": {\"host\": \"127.0.0.1\", \"port\": %d, \"sslmode\": \"disable\"}%s}",
		     ntohs(addr.sin_port), extra) >= (int)sizeof(json))
		fuzz_env_fatal("config too long");
	config_init_defaults(&cfg);
	if (!config_parse(&cfg, json, &cerr))
		fuzz_env_fatal(cerr.msg);
	cfg.workers = 1;
	log_configure(getenv("FUZZ_SESSION_LOG") ? LOG_DEBUG : LOG_ERROR, LOG_FORMAT_TEXT);
	rt.snap = snapshot_build(&cfg, err, sizeof(err));
	if (!rt.snap)
		fuzz_env_fatal(err);
	/* The worker's own listener is never used (sessions are handed in): any free port. */
	((struct sockaddr_in *)&rt.snap->listen_addr)->sin_port = 0;
	if (!worker_init(&fuzz_worker, 0, rt.snap, &session_hooks, err, sizeof(err)))
		fuzz_env_fatal(err);
	rt.workers = &fuzz_worker;
	rt.n_workers = 1;
}

int fuzz_env_accept_upstream(void)
{
	return accept(upstream_listener, NULL, NULL);
}

struct fuzz_input fuzz_env_split(const uint8_t *data, size_t size, size_t head, size_t client_len)
{
	struct fuzz_input in;

	in.client_len = client_len < size - head ? client_len : size - head;
	in.client = data + head;
	in.server = in.client + in.client_len;
	in.server_len = size - head - in.client_len;
	return in;
}

int fuzz_env_session_start(void)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int pair[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0)
		fuzz_env_fatal("socketpair");
	session_accept(&fuzz_worker, pair[0], (struct sockaddr *)&peer, sizeof(peer));
	return pair[1];
}

void fuzz_env_check_sessions(void (*each)(const struct session *s))
{
	int n = 0;

	for (const struct session *s = fuzz_worker.sessions; s; s = s->next) {
		FUZZ_CHECK((unsigned)s->state <= SESSION_CLOSING);
		FUZZ_CHECK((unsigned)session_activity(s) < SESSION_ACT_N);
		if (each)
			each(s);
		n++;
	}
	FUZZ_CHECK(n == fuzz_worker.n_sessions);
}

void fuzz_env_sessions_free(void)
{
	while (fuzz_worker.sessions)
		session_free(fuzz_worker.sessions);
}

void fuzz_env_finish(int client_fd, int server_fd)
{
	FUZZ_CHECK(fuzz_worker.n_sessions == 0);
	FUZZ_CHECK(atomic_load(&rt.clients) == 0);
	close(client_fd);
	if (server_fd >= 0)
		close(server_fd);
	for (int fd; (fd = accept(upstream_listener, NULL, NULL)) >= 0;)
		close(fd);
	event_base_loop(fuzz_worker.base, EVLOOP_NONBLOCK);
}
