/*
 * libFuzzer target for the session state machine: startup packet, SSL/GSS
 * negotiation, cancel forwarding, upstream connect, authentication relay and
 * the framed relay in both directions, with hostile bytes from either side.
 *
 * Input: [u16 client_len][client bytes][server bytes]. A real worker loop
 * runs in-process; the "client" is one end of a socketpair handed to
 * session_accept(), the "server" is whatever connects to a loopback listener
 * this target owns. Both sides send their bytes, then close. The session
 * must end (freed, no leak, no sanitizer report) within a bounded number of
 * loop turns.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgvalve/config.h"
#include "pgvalve/log.h"
#include "runtime.h"
#include "session.h"
#include "worker.h"
#include "fuzz_check.h"

#define CHUNK 97 /* bytes per side per loop turn: odd, so headers split */
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static struct worker worker;
static int upstream_listener = -1;

static void fatal(const char *what)
{
	fprintf(stderr, "fuzz_session setup: %s: %s\n", what, strerror(errno));
	abort();
}

static void setup(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	struct config cfg;
	char err[256], upstream[512];
	struct config_error cerr;

	upstream_listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (upstream_listener < 0 || bind(upstream_listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(upstream_listener, 16) != 0 ||
	    getsockname(upstream_listener, (struct sockaddr *)&addr, &len) != 0)
		fatal("upstream listener");
	snprintf(upstream, sizeof(upstream),
		 "{\"listen\": {\"host\": \"127.0.0.1\", \"port\": 1},"
		 " \"upstream\": {\"host\": \"127.0.0.1\", \"port\": %d, \"sslmode\": \"disable\"},"
		 " \"limits\": {\"max_message_bytes\": 65536}}",
		 ntohs(addr.sin_port));
	config_init_defaults(&cfg);
	if (!config_parse(&cfg, upstream, &cerr))
		fatal(cerr.msg);
	cfg.workers = 1;
	log_configure(getenv("FUZZ_SESSION_LOG") ? LOG_DEBUG : LOG_ERROR, LOG_FORMAT_TEXT);
	rt.snap = snapshot_build(&cfg, err, sizeof(err));
	if (!rt.snap)
		fatal(err);
	/* The worker's own listener is never used (sessions are handed in): any free port. */
	((struct sockaddr_in *)&rt.snap->listen_addr)->sin_port = 0;
	if (!worker_init(&worker, 0, rt.snap, &session_hooks, err, sizeof(err)))
		fatal(err);
	rt.workers = &worker;
	rt.n_workers = 1;
}

/* Writes what fits without blocking; returns bytes written. */
static size_t push(int fd, const uint8_t *p, size_t n)
{
	ssize_t w = n ? send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

	return w > 0 ? (size_t)w : 0;
}

static void drain(int fd)
{
	uint8_t buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	const uint8_t *client_bytes, *server_bytes;
	size_t client_len, server_len, client_sent = 0, server_sent = 0;
	int pair[2], server_fd = -1;
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (!initialized) {
		setup();
		initialized = 1;
	}
	if (size < 2)
		return 0;
	client_len = (size_t)data[0] << 8 | data[1];
	if (client_len > size - 2)
		client_len = size - 2;
	client_bytes = data + 2;
	server_bytes = client_bytes + client_len;
	server_len = size - 2 - client_len;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) != 0)
		fatal("socketpair");
	session_accept(&worker, pair[0], (struct sockaddr *)&peer, sizeof(peer));

	/*
	 * Both sides trickle CHUNK bytes a turn, so the proxy sees messages split
	 * and interleaved; the client hangs up only after the server has said all
	 * it had, so replies reach the proxy before the session ends.
	 */
	for (int turn = 0, quiet = 0; turn < 400 && worker.n_sessions > 0; turn++) {
		client_sent += push(pair[1], client_bytes + client_sent,
				    MIN(CHUNK, client_len - client_sent));
		if (server_fd < 0)
			server_fd = accept(upstream_listener, NULL, NULL);
		if (server_fd >= 0) {
			server_sent += push(server_fd, server_bytes + server_sent,
					    MIN(CHUNK, server_len - server_sent));
			drain(server_fd);
		}
		if (client_sent == client_len && (server_fd < 0 || server_sent == server_len) &&
		    ++quiet == 8) {
			shutdown(pair[1], SHUT_WR);
			if (server_fd >= 0)
				shutdown(server_fd, SHUT_WR);
		}
		drain(pair[1]);
		event_base_loop(worker.base, EVLOOP_NONBLOCK);
	}
	/* A session still alive here waits on a timer (auth_ms); end it the way shutdown does. */
	while (worker.sessions)
		session_free(worker.sessions);
	close(pair[1]);
	if (server_fd >= 0)
		close(server_fd);
	/* Cancel forwards may have opened upstream connections: take and drop them. */
	for (int fd; (fd = accept(upstream_listener, NULL, NULL)) >= 0;)
		close(fd);
	event_base_loop(worker.base, EVLOOP_NONBLOCK);
	return 0;
}
