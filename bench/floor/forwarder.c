/*
 * The floor for bench/passthrough: a minimal epoll TCP forwarder. It accepts
 * connections, connects each one to the upstream and copies bytes both ways
 * with read() and write(); the benchmark runs pgbench through it to measure
 * what any user-space hop costs on the machine, before any proxy logic.
 *
 * What it is not: a proxy. It parses nothing (no startup packet, no
 * authentication, no messages), has no pool, no limits, no timeouts, no
 * configuration file and no admin interface. It is not part of the product
 * and is never installed; bench/passthrough compiles it with `cc -O2`.
 *
 * TLS, only when asked (bench/passthrough --floor-tls): -S opens TLS to the
 * upstream (PostgreSQL's SSLRequest, then OpenSSL's handshake), -C/-K
 * terminate TLS from clients (answers their SSLRequest, refuses their
 * GSSENCRequest); then SSL_read and SSL_write take the place of read and
 * write, nothing else changes. So it measures what a user-space hop that
 * does the same TLS as the proxies costs. The handshakes block the thread
 * that accepted the connection (the benchmark connects before it measures).
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
 * Usage: forwarder [-t THREADS] [-B] [-b BYTES] [-S] [-C CERT -K KEY] -l [HOST:]PORT -u HOST:PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
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
	SSL *ssl;        /* TLS on this socket (-S, -C/-K), else NULL */
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
	unsigned long accepted, handed_away, connect_failed, tls_failed;
	long open_max;
	unsigned long long bytes_up, bytes_down;
};

static struct loop loops[MAX_THREADS];
static int n_loops = 1;
static bool balance;

static struct sockaddr_storage upstream_addr;
static socklen_t upstream_len;
static size_t buf_size = 16384;
static SSL_CTX *upstream_tls; /* -S */
static SSL_CTX *client_tls;   /* -C/-K */

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
	SSL_free(p->a.ssl);
	SSL_free(p->b.ssl);
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

/* SSL_write, with write()'s contract: -1 and errno EAGAIN when the socket would block. */
static ssize_t tls_write(SSL *ssl, const char *buf, size_t len)
{
	size_t n = 0;

	ERR_clear_error();
	if (SSL_write_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	switch (SSL_get_error(ssl, 0)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		errno = EAGAIN;
		break;
	default:
		errno = EPIPE;
	}
	return -1;
}

/* SSL_read, with read()'s contract: 0 at the end of the stream, -1 and errno EAGAIN when nothing is there. */
static ssize_t tls_read(SSL *ssl, char *buf, size_t len)
{
	size_t n = 0;

	ERR_clear_error();
	if (SSL_read_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	switch (SSL_get_error(ssl, 0)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0; /* EOF without close_notify */
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

/* Writes BUF[0..LEN) to DST; returns bytes written (possibly short), or -1 on an error other than EAGAIN. */
static ssize_t write_some(struct side *dst, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = dst->ssl ? tls_write(dst->ssl, buf + done, len - done)
				     : write(dst->fd, buf + done, len - done);

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

	n = s->ssl ? tls_read(s->ssl, l->scratch, buf_size) : read(s->fd, l->scratch, buf_size);
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
	w = write_some(s->peer, l->scratch, (size_t)n);
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
	w = write_some(s, src->pending + src->off, src->len);
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

static bool set_blocking(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	return flags >= 0 && fcntl(fd, F_SETFL, on ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) == 0;
}

static bool read_exactly(int fd, void *buf, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0 && !(n < 0 && errno == EINTR))
			return false;
		if (n > 0)
			done += (size_t)n;
	}
	return true;
}

/* PostgreSQL's SSLRequest (and GSSENCRequest) code, sent after an 8-byte length. */
#define SSL_REQUEST_CODE 80877103u
#define GSSENC_REQUEST_CODE 80877104u

/* On a blocking socket: answers the client's SSLRequest and runs the server side of the handshake. */
static SSL *tls_accept(int fd)
{
	uint32_t msg[2];
	SSL *ssl;

	for (;;) {
		if (!read_exactly(fd, msg, sizeof(msg)) || ntohl(msg[0]) != 8)
			return NULL;
		if (ntohl(msg[1]) == SSL_REQUEST_CODE)
			break;
		if (ntohl(msg[1]) != GSSENC_REQUEST_CODE || write(fd, "N", 1) != 1)
			return NULL; /* a plain startup: this floor wants TLS */
	}
	if (write(fd, "S", 1) != 1 || !(ssl = SSL_new(client_tls)))
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* On a blocking, connected socket: SSLRequest to the server, then the client side of the handshake. */
static SSL *tls_connect(int fd)
{
	uint32_t msg[2] = { htonl(8), htonl(SSL_REQUEST_CODE) };
	char answer;
	SSL *ssl;

	if (write(fd, msg, sizeof(msg)) != sizeof(msg) || !read_exactly(fd, &answer, 1) || answer != 'S' ||
	    !(ssl = SSL_new(upstream_tls)))
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/*
 * The TLS legs asked for (-S, -C/-K), set up on blocking sockets before the
 * pair starts relaying; the upstream connect is then a blocking one too.
 */
static bool tls_legs(int cfd, int ufd, SSL **cssl, SSL **ussl)
{
	*cssl = *ussl = NULL;
	if (!set_blocking(cfd, true) || !set_blocking(ufd, true))
		return false;
	if (client_tls && !(*cssl = tls_accept(cfd)))
		return false;
	if (upstream_tls &&
	    ((connect(ufd, (struct sockaddr *)&upstream_addr, upstream_len) != 0) ||
	     !(*ussl = tls_connect(ufd))))
		return false;
	if (!upstream_tls && connect(ufd, (struct sockaddr *)&upstream_addr, upstream_len) != 0)
		return false;
	return set_blocking(cfd, false) && set_blocking(ufd, false);
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

	SSL *cssl = NULL, *ussl = NULL;
	bool tls = client_tls || upstream_tls;

	open = reserved ? atomic_load(&l->open_now) : atomic_fetch_add(&l->open_now, 1) + 1;
	ufd = socket(upstream_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ufd < 0 || (tls && !tls_legs(cfd, ufd, &cssl, &ussl)) ||
	    (!tls && connect(ufd, (struct sockaddr *)&upstream_addr, upstream_len) != 0 &&
	     errno != EINPROGRESS)) {
		if (tls && ufd >= 0)
			l->tls_failed++; /* a connect, a handshake, or a client without SSLRequest (a probe) */
		else
			l->connect_failed++;
		SSL_free(cssl);
		SSL_free(ussl);
		if (ufd >= 0)
			close(ufd);
		close(cfd);
		atomic_fetch_sub(&l->open_now, 1);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		SSL_free(cssl);
		SSL_free(ussl);
		close(ufd);
		close(cfd);
		atomic_fetch_sub(&l->open_now, 1);
		return;
	}
	set_nodelay(cfd);
	set_nodelay(ufd);
	p->a = (struct side){ .fd = cfd, .ssl = cssl, .events = EPOLLIN, .peer = &p->b, .pair = p };
	p->b = (struct side){ .fd = ufd, .ssl = ussl, .events = EPOLLIN, .peer = &p->a, .pair = p };
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
		"Usage: forwarder [-t THREADS] [-B] [-b BYTES] [-S] [-C CERT -K KEY] -l [HOST:]PORT -u "
		"HOST:PORT\n"
		"  -l  listen address (HOST defaults to 127.0.0.1)\n"
		"  -u  upstream address\n"
		"  -t  event loops, each its own thread and SO_REUSEPORT socket (default 1, max %d)\n"
		"  -B  hand each accepted connection to the loop with the fewest open pairs\n"
		"  -b  bytes read per read() (default 16384)\n"
		"  -S  TLS to the upstream (PostgreSQL SSLRequest; the certificate is not checked)\n"
		"  -C  certificate and -K key: clients must connect with TLS (PostgreSQL SSLRequest)\n",
		MAX_THREADS);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage listen_addr;
	socklen_t listen_len = 0;
	const char *listen_spec = NULL, *upstream_spec = NULL, *cert = NULL, *key = NULL;
	bool tls_upstream = false;
	int opt, sig_fd;
	sigset_t mask;

	while ((opt = getopt(argc, argv, "l:u:t:b:BSC:K:h")) != -1) {
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
		case 'S':
			tls_upstream = true;
			break;
		case 'C':
			cert = optarg;
			break;
		case 'K':
			key = optarg;
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
	    buf_size < 512 || buf_size > (1u << 24) || !cert != !key) {
		usage(stderr);
		return 2;
	}
	/* TLS 1.3 where both ends have it (OpenSSL's default), no session tickets to clients. */
	if (tls_upstream && !(upstream_tls = SSL_CTX_new(TLS_client_method())))
		die("SSL_CTX_new");
	if (cert) {
		if (!(client_tls = SSL_CTX_new(TLS_server_method())) ||
		    SSL_CTX_use_certificate_chain_file(client_tls, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(client_tls, key, SSL_FILETYPE_PEM) != 1) {
			ERR_print_errors_fp(stderr);
			fprintf(stderr, "forwarder: cannot use certificate %s and key %s\n", cert, key);
			return 2;
		}
		SSL_CTX_set_num_tickets(client_tls, 0);
	}
	/* write()'s partial writes; a retry after WANT_WRITE passes the same bytes from the pair's buffer. */
	if (upstream_tls)
		SSL_CTX_set_mode(upstream_tls,
				 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (client_tls)
		SSL_CTX_set_mode(client_tls,
				 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
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
	fprintf(stderr, "forwarder: %s -> %s, %d thread(s)%s%s%s, pid %d\n", listen_spec, upstream_spec,
		n_loops, balance ? ", balanced" : "", client_tls ? ", TLS from clients" : "",
		upstream_tls ? ", TLS to the upstream" : "", (int)getpid());

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
			"another thread, %lu upstream connects failed, %lu TLS setups failed, %llu bytes "
			"client->server, %llu bytes server->client\n",
			i, l->accepted, l->open_max, l->handed_away, l->connect_failed, l->tls_failed,
			l->bytes_up, l->bytes_down);
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
