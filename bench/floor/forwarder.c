/*
 * The floor for bench/passthrough: a minimal epoll TCP forwarder. It accepts
 * connections, connects each one to the upstream and copies bytes both ways
 * with read() and write(); the benchmark runs pgbench through it to measure
 * what any user-space hop costs on the machine, before any proxy logic.
 *
 * What it is not: a proxy. It parses nothing (no startup packet, no
 * authentication, no messages), has no pool, no TLS, no limits, no timeouts,
 * no configuration file and no admin interface. It is not part of the product
 * and is never installed; bench/passthrough compiles it with `cc -O2`.
 *
 * Model: N threads (1 by default), each with its own epoll loop and its own
 * listening socket bound with SO_REUSEPORT, so the kernel spreads connections
 * over the threads by a hash of the addresses, and no thread touches another's
 * connections. That hash often puts 6 of 8 long-lived sessions on one of two
 * threads; with -B a thread hands each connection it accepts to the thread
 * with the fewest open pairs (through an eventfd), as pgvalve-proxy's workers
 * do, so a comparison measures the hop and not the spread. Reads go into a per-thread scratch buffer and are written to
 * the peer at once; only what the peer did not take is copied into a buffer of
 * the pair, and reading from that side pauses until it is written
 * (back-pressure). An idle pair therefore holds no buffer. A read of 0 bytes
 * (EOF) is passed on as shutdown(SHUT_WR) once the pending bytes are written;
 * the pair closes when both directions have ended, or at once on an error.
 * SIGTERM or SIGINT: every thread stops, closes its connections and the
 * process exits 0, printing per-thread counters on stderr.
 *
 * Usage: forwarder [-t THREADS] [-B] [-b BYTES] -l [HOST:]PORT -u HOST:PORT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_EVENTS 256

/* One direction's source: the socket, and the bytes read from it that its peer has not taken yet. */
struct side {
	int fd;
	uint32_t events; /* interest registered with epoll */
	bool eof;        /* read() returned 0 */
	bool shut;       /* SHUT_WR passed on to the peer */
	char *pending;   /* malloc'd while the peer's write would block, else NULL */
	size_t off, len;
	struct side *peer;
	struct pair *pair;
};

struct pair {
	struct side a; /* the accepted client */
	struct side b; /* the upstream */
	bool dead;     /* closed; freed after the current batch of events */
	struct pair *next, *prev, *next_dead;
};

struct loop {
	int epfd;
	int listen_fd;
	int wake_fd; /* eventfd: connections were handed to this loop (-B) */
	char *scratch;
	struct pair *pairs; /* live pairs, for closing at shutdown */
	struct pair *dead;
	pthread_t thread;
	/* Pairs open on this loop plus connections handed to it and not opened yet; read by other loops. */
	atomic_long open_now;
	/* Accepted sockets handed over by other loops, under mu. */
	pthread_mutex_t mu;
	int *handed;
	size_t n_handed, cap_handed;
	/* counters, printed at exit */
	unsigned long accepted, handed_away, connect_failed;
	long open_max;
	unsigned long long bytes_up, bytes_down;
};

static struct loop loops[MAX_THREADS];
static int n_loops = 1;
static bool balance;

static struct sockaddr_storage upstream_addr;
static socklen_t upstream_len;
static size_t buf_size = 16384;

/* Tokens for the two kinds of non-pair descriptors; a pair side is its own struct side pointer. */
static char tok_listen, tok_signal, tok_wake;

/* Reports a failed system call with errno's text and exits 1. */
static void die(const char *what)
{
	fprintf(stderr, "forwarder: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Parses "[HOST:]PORT" (HOST defaults to 127.0.0.1) into an address; exits on failure. */
static void parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256] = "127.0.0.1";
	const char *port = spec, *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	int rc;

	if (colon) {
		size_t n = (size_t)(colon - spec);

		if (n == 0 || n >= sizeof(host)) {
			fprintf(stderr, "forwarder: bad address '%s'\n", spec);
			exit(2);
		}
		memcpy(host, spec, n);
		host[n] = '\0';
		port = colon + 1;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "forwarder: %s: %s\n", spec, gai_strerror(rc));
		exit(2);
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Registers or changes fd's interest to EVENTS; data.ptr is TOKEN. */
static void watch(struct loop *l, int fd, uint32_t events, int op, void *token)
{
	struct epoll_event ev = { .events = events, .data.ptr = token };

	if (epoll_ctl(l->epfd, op, fd, &ev) != 0)
		die(op == EPOLL_CTL_ADD ? "epoll_ctl(ADD)" : "epoll_ctl(MOD)");
}

/*
 * What a side waits for, derived from state alone after every change: input
 * while nothing it sent is pending and it has not ended; output while its
 * peer's bytes are pending for it.
 */
static void side_update(struct loop *l, struct side *s)
{
	uint32_t want = 0;

	if (!s->eof && s->len == 0)
		want |= EPOLLIN;
	if (s->peer->len > 0)
		want |= EPOLLOUT;
	if (want != s->events) {
		watch(l, s->fd, want, EPOLL_CTL_MOD, s);
		s->events = want;
	}
}

static void pair_close(struct loop *l, struct pair *p)
{
	if (p->dead)
		return;
	p->dead = true;
	close(p->a.fd);
	close(p->b.fd);
	free(p->a.pending);
	free(p->b.pending);
	p->a.pending = p->b.pending = NULL;
	if (p->prev)
		p->prev->next = p->next;
	else
		l->pairs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next_dead = l->dead;
	l->dead = p;
	atomic_fetch_sub(&l->open_now, 1);
}

/* Writes BUF[0..LEN) to DST; returns bytes written (possibly short), or -1 on an error other than EAGAIN. */
static ssize_t write_some(int dst, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(dst, buf + done, len - done);

		if (n > 0) {
			done += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			break;
		} else {
			return -1;
		}
	}
	return (ssize_t)done;
}

/* After S's pending bytes are gone: pass S's EOF on to the peer. Returns false when the pair closed. */
static bool side_pass_eof(struct loop *l, struct side *s)
{
	if (!s->eof || s->len > 0 || s->shut)
		return true;
	s->shut = true;
	if (shutdown(s->peer->fd, SHUT_WR) != 0 || (s->peer->eof && s->peer->shut)) {
		pair_close(l, s->pair);
		return false;
	}
	return true;
}

/* S is readable: read, write to the peer, keep what it did not take. */
static void side_read(struct loop *l, struct side *s)
{
	ssize_t n, w;

	n = read(s->fd, l->scratch, buf_size);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			pair_close(l, s->pair);
		return;
	}
	if (n == 0) {
		s->eof = true;
		if (!side_pass_eof(l, s))
			return;
		side_update(l, s);
		return;
	}
	if (s == &s->pair->a)
		l->bytes_up += (unsigned long long)n;
	else
		l->bytes_down += (unsigned long long)n;
	w = write_some(s->peer->fd, l->scratch, (size_t)n);
	if (w < 0) {
		pair_close(l, s->pair);
		return;
	}
	if (w < n) {
		s->pending = malloc((size_t)(n - w));
		if (!s->pending) {
			pair_close(l, s->pair);
			return;
		}
		memcpy(s->pending, l->scratch + w, (size_t)(n - w));
		s->off = 0;
		s->len = (size_t)(n - w);
		side_update(l, s);
		side_update(l, s->peer);
	}
}

/* S is writable: write its peer's pending bytes; when they are gone, resume reading the peer. */
static void side_write(struct loop *l, struct side *s)
{
	struct side *src = s->peer;
	ssize_t w;

	if (src->len == 0)
		return;
	w = write_some(s->fd, src->pending + src->off, src->len);
	if (w < 0) {
		pair_close(l, s->pair);
		return;
	}
	src->off += (size_t)w;
	src->len -= (size_t)w;
	if (src->len == 0) {
		free(src->pending);
		src->pending = NULL;
		src->off = 0;
		if (!side_pass_eof(l, src))
			return;
	}
	side_update(l, src);
	side_update(l, s);
}

static void set_nodelay(int fd)
{
	int one = 1;

	/* As pgvalve-proxy, PgBouncer, libpq and the server do: no Nagle delay on small messages. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * A client was accepted: start a non-blocking connect to the upstream. Bytes
 * the client sends before it completes find the upstream not writable and
 * wait in the pair as any other pending bytes; a refused connect shows as an
 * error on the upstream socket (EPOLLERR, then read or write fails) and closes
 * the pair.
 */
static void pair_open(struct loop *l, int cfd, bool reserved)
{
	struct pair *p;
	long open;
	int ufd;

	open = reserved ? atomic_load(&l->open_now) : atomic_fetch_add(&l->open_now, 1) + 1;
	ufd = socket(upstream_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ufd < 0 ||
	    (connect(ufd, (struct sockaddr *)&upstream_addr, upstream_len) != 0 && errno != EINPROGRESS)) {
		l->connect_failed++;
		if (ufd >= 0)
			close(ufd);
		close(cfd);
		atomic_fetch_sub(&l->open_now, 1);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(ufd);
		close(cfd);
		atomic_fetch_sub(&l->open_now, 1);
		return;
	}
	set_nodelay(cfd);
	set_nodelay(ufd);
	p->a = (struct side){ .fd = cfd, .events = EPOLLIN, .peer = &p->b, .pair = p };
	p->b = (struct side){ .fd = ufd, .events = EPOLLIN, .peer = &p->a, .pair = p };
	watch(l, cfd, EPOLLIN, EPOLL_CTL_ADD, &p->a);
	watch(l, ufd, EPOLLIN, EPOLL_CTL_ADD, &p->b);
	p->next = l->pairs;
	if (l->pairs)
		l->pairs->prev = p;
	l->pairs = p;
	l->accepted++;
	if (open > l->open_max)
		l->open_max = open;
}

/* The loop with the fewest open pairs, L itself when tied. */
static struct loop *least_loaded(struct loop *l)
{
	struct loop *best = l;
	long best_n = atomic_load(&l->open_now);

	for (int i = 0; i < n_loops; i++) {
		long n = atomic_load(&loops[i].open_now);

		if (n < best_n) {
			best = &loops[i];
			best_n = n;
		}
	}
	return best;
}

/* Queues accepted socket FD for loop TO and wakes it; false if it could not (FD stays the caller's). */
static bool handoff(struct loop *to, int fd)
{
	uint64_t one = 1;
	bool ok = true;

	pthread_mutex_lock(&to->mu);
	if (to->n_handed == to->cap_handed) {
		size_t cap = to->cap_handed ? 2 * to->cap_handed : 16;
		int *grown = realloc(to->handed, cap * sizeof(*grown));

		if (grown) {
			to->handed = grown;
			to->cap_handed = cap;
		} else {
			ok = false;
		}
	}
	if (ok)
		to->handed[to->n_handed++] = fd;
	pthread_mutex_unlock(&to->mu);
	if (ok)
		(void)!write(to->wake_fd, &one, sizeof(one));
	return ok;
}

/* Opens the pairs of the connections other loops handed to L. */
static void take_handed(struct loop *l)
{
	uint64_t n;
	int *fds;
	size_t count;

	(void)!read(l->wake_fd, &n, sizeof(n));
	pthread_mutex_lock(&l->mu);
	fds = l->handed;
	count = l->n_handed;
	l->handed = NULL;
	l->n_handed = l->cap_handed = 0;
	pthread_mutex_unlock(&l->mu);
	for (size_t i = 0; i < count; i++)
		pair_open(l, fds[i], true);
	free(fds);
}

static void accept_all(struct loop *l)
{
	for (;;) {
		int fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			struct loop *to = balance ? least_loaded(l) : l;

			if (to != l) {
				/* Counted now, so a burst of accepts does not pick the same loop for all. */
				atomic_fetch_add(&to->open_now, 1);
				if (handoff(to, fd)) {
					l->handed_away++;
					continue;
				}
				atomic_fetch_sub(&to->open_now, 1);
			}
			pair_open(l, fd, false);
		} else if (errno == EINTR || errno == ECONNABORTED) {
			continue;
		} else {
			/* EAGAIN: drained. EMFILE and the like: try again on the next wakeup. */
			return;
		}
	}
}

static void *loop_run(void *arg)
{
	struct loop *l = arg;
	struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(l->epfd, evs, MAX_EVENTS, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			void *tok = evs[i].data.ptr;
			uint32_t e = evs[i].events;
			struct side *s;

			if (tok == &tok_signal)
				goto stop;
			if (tok == &tok_listen) {
				accept_all(l);
				continue;
			}
			if (tok == &tok_wake) {
				take_handed(l);
				continue;
			}
			s = tok;
			if (s->pair->dead)
				continue;
			/* EPOLLERR/EPOLLHUP: the read or write below sees the error or the EOF. */
			if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				side_write(l, s);
			if (!s->pair->dead && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && (s->events & EPOLLIN))
				side_read(l, s);
			/* An error while nothing is pending and reading is paused would be reported forever. */
			if (!s->pair->dead && (e & EPOLLERR))
				pair_close(l, s->pair);
		}
		while (l->dead) {
			struct pair *p = l->dead;

			l->dead = p->next_dead;
			free(p);
		}
	}
stop:
	while (l->pairs)
		pair_close(l, l->pairs);
	/* Handed over but never opened: only their client sockets exist. */
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < l->n_handed; i++)
		close(l->handed[i]);
	l->n_handed = 0;
	pthread_mutex_unlock(&l->mu);
	while (l->dead) {
		struct pair *p = l->dead;

		l->dead = p->next_dead;
		free(p);
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: forwarder [-t THREADS] [-B] [-b BYTES] -l [HOST:]PORT -u HOST:PORT\n"
		"  -l  listen address (HOST defaults to 127.0.0.1)\n"
		"  -u  upstream address\n"
		"  -t  event loops, each its own thread and SO_REUSEPORT socket (default 1, max %d)\n"
		"  -B  hand each accepted connection to the loop with the fewest open pairs\n"
		"  -b  bytes read per read() (default 16384)\n",
		MAX_THREADS);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage listen_addr;
	socklen_t listen_len = 0;
	const char *listen_spec = NULL, *upstream_spec = NULL;
	int opt, sig_fd;
	sigset_t mask;

	while ((opt = getopt(argc, argv, "l:u:t:b:Bh")) != -1) {
		switch (opt) {
		case 'l':
			listen_spec = optarg;
			break;
		case 'u':
			upstream_spec = optarg;
			break;
		case 't':
			n_loops = atoi(optarg);
			break;
		case 'b':
			buf_size = (size_t)atol(optarg);
			break;
		case 'B':
			balance = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!listen_spec || !upstream_spec || optind != argc || n_loops < 1 || n_loops > MAX_THREADS ||
	    buf_size < 512 || buf_size > (1u << 24)) {
		usage(stderr);
		return 2;
	}
	parse_addr(listen_spec, &listen_addr, &listen_len);
	parse_addr(upstream_spec, &upstream_addr, &upstream_len);

	/* Blocked in every thread (inherited), so the signals stay pending and sig_fd stays readable. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0)
		die("pthread_sigmask");
	signal(SIGPIPE, SIG_IGN);
	sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		die("signalfd");

	/* Every socket is bound before any loop runs, so a taken port fails the start, not a thread. */
	for (int i = 0; i < n_loops; i++) {
		struct loop *l = &loops[i];
		int one = 1;

		l->scratch = malloc(buf_size);
		l->epfd = epoll_create1(EPOLL_CLOEXEC);
		l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		l->listen_fd = socket(listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		pthread_mutex_init(&l->mu, NULL);
		if (!l->scratch || l->epfd < 0 || l->wake_fd < 0 || l->listen_fd < 0)
			die("setting up a loop");
		setsockopt(l->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (setsockopt(l->listen_fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
			die("SO_REUSEPORT");
		if (bind(l->listen_fd, (struct sockaddr *)&listen_addr, listen_len) != 0 ||
		    listen(l->listen_fd, 1024) != 0)
			die(listen_spec);
		watch(l, l->listen_fd, EPOLLIN, EPOLL_CTL_ADD, &tok_listen);
		/* Not read by anyone: the pending signal keeps it readable for every loop. */
		watch(l, sig_fd, EPOLLIN, EPOLL_CTL_ADD, &tok_signal);
		watch(l, l->wake_fd, EPOLLIN, EPOLL_CTL_ADD, &tok_wake);
	}
	fprintf(stderr, "forwarder: %s -> %s, %d thread(s)%s, pid %d\n", listen_spec, upstream_spec, n_loops,
		balance ? ", balanced" : "", (int)getpid());

	for (int i = 1; i < n_loops; i++) {
		errno = pthread_create(&loops[i].thread, NULL, loop_run, &loops[i]);
		if (errno != 0)
			die("pthread_create");
	}
	loop_run(&loops[0]);
	for (int i = 1; i < n_loops; i++)
		pthread_join(loops[i].thread, NULL);

	for (int i = 0; i < n_loops; i++) {
		struct loop *l = &loops[i];

		fprintf(stderr,
			"forwarder: thread %d: %lu connections (at most %ld open), %lu accepted and handed "
			"to "
			"another thread, %lu upstream connects failed, %llu bytes client->server, %llu bytes "
			"server->client\n",
			i, l->accepted, l->open_max, l->handed_away, l->connect_failed, l->bytes_up,
			l->bytes_down);
		close(l->listen_fd);
		close(l->epfd);
		close(l->wake_fd);
		free(l->scratch);
		free(l->handed);
		pthread_mutex_destroy(&l->mu);
	}
	close(sig_fd);
	return 0;
}
