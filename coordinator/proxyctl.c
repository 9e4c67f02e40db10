/*
 * Proxy admin calls (see proxyctl.h). HTTP/1.1 with "Connection: close":
 * the whole answer is what arrives before the proxy closes, so no chunked
 * decoding is needed (evhttp sends Content-Length anyway). Every socket
 * operation waits with poll() against one deadline.
 */
#include "proxyctl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgvalve/admin_api.h"
#include "pgvalve/clock.h"
#include "pgvalve/token_file.h"
#include "xalloc.h"

#define ANSWER_MAX (4u << 20)

bool proxy_parse_url(const char *url, struct proxy *p, char *err, size_t errlen)
{
	const char *hp = url, *colon;
	char *end;
	long port;

	memset(p, 0, sizeof(*p));
	if (strncmp(hp, "http://", 7) == 0) {
		hp += 7;
	} else if (strncmp(hp, "dns://", 6) == 0) {
		hp += 6;
		p->dns = true;
	} else if (strstr(hp, "://")) {
		snprintf(err, errlen,
			 "proxy \"%s\": expected http://HOST:PORT (one proxy's admin address) or "
			 "dns://NAME:PORT (every address of NAME)",
			 url);
		return false;
	}
	colon = strrchr(hp, ':');
	if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(p->host)) {
		snprintf(err, errlen, "proxy \"%s\": expected %s", url,
			 p->dns ? "dns://NAME:PORT (a name whose addresses are the proxies' admin API)"
				: "http://HOST:PORT (the proxy's admin address)");
		return false;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || (*end && strcmp(end, "/") != 0) || end == colon + 1 || port < 1 || port > 65535) {
		snprintf(err, errlen, "proxy \"%s\": bad port", url);
		return false;
	}
	snprintf(p->host, sizeof(p->host), "%.*s", (int)(colon - hp), hp);
	if (p->host[0] == '[' && p->host[strlen(p->host) - 1] == ']') {
		memmove(p->host, p->host + 1, strlen(p->host));
		p->host[strlen(p->host) - 1] = '\0';
	}
	p->port = (int)port;
	snprintf(p->url, sizeof(p->url), "%s", url);
	return true;
}

bool proxy_load_token(struct proxy *p, const char *path, char *err, size_t errlen)
{
	char why[512];
	char *token = token_file_read(path, why, sizeof(why));

	if (!token) {
		snprintf(err, errlen, "proxy %s: token_file: %s", p->url, why);
		return false;
	}
	free(p->token);
	p->token = token;
	return true;
}

/* Waits for 'events' on 'fd' until 'deadline'; false on timeout or error. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int left = (int)(deadline - clock_mono_ms()), rc;

	if (left <= 0)
		return false;
	do {
		rc = poll(&pfd, 1, left);
	} while (rc < 0 && errno == EINTR);
	return rc > 0;
}

static int connect_by(const struct proxy *p, int64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char port[16];
	int fd = -1, rc, soerr = 0;
	socklen_t len = sizeof(soerr);

	snprintf(port, sizeof(port), "%d", p->port);
	rc = getaddrinfo(p->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", p->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) &&
		     getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0))
			break;
		snprintf(err, errlen, "cannot connect: %s",
			 soerr                          ? strerror(soerr)
				 : errno == EINPROGRESS ? "timed out"
							: strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(fd, POLLOUT, deadline))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* Reads until the proxy closes; the malloc'd answer (NUL-terminated), or NULL if too long or lost. */
static char *recv_all(int fd, int64_t deadline, size_t *len_out)
{
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);

	for (;;) {
		ssize_t n;

		if (len + 1 == cap) {
			if (cap >= ANSWER_MAX)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
		} else if (n == 0) {
			buf[len] = '\0';
			*len_out = len;
			return buf;
		} else if ((errno != EAGAIN && errno != EINTR) || !wait_fd(fd, POLLIN, deadline)) {
			break;
		}
	}
	free(buf);
	return NULL;
}

int proxy_request(const struct proxy *p, const char *method, const char *path, const cJSON *body,
		  int timeout_ms, cJSON **out, char *err, size_t errlen)
{
	int64_t deadline = clock_mono_ms() + timeout_ms;
	char *json = body ? cJSON_PrintUnformatted(body) : NULL, *answer = NULL, head[1024];
	const char *text;
	size_t json_len = json ? strlen(json) : 0, answer_len = 0;
	int fd, status = -1, hn;

	*out = NULL;
	fd = connect_by(p, deadline, err, errlen);
	if (fd < 0)
		goto done;
	hn = snprintf(head, sizeof(head),
		      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nUser-Agent: pgvalve\r\n"
		      "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n",
		      method, path, p->host, p->port, json_len, p->token ? "Authorization: Bearer " : "",
		      p->token ? p->token : "", p->token ? "\r\n" : "");
	if (hn < 0 || (size_t)hn >= sizeof(head) || !send_all(fd, head, (size_t)hn, deadline) ||
	    (json && !send_all(fd, json, json_len, deadline))) {
		snprintf(err, errlen, "cannot send the request (timed out or connection lost)");
		goto done;
	}
	answer = recv_all(fd, deadline, &answer_len);
	if (!answer || sscanf(answer, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, answer ? "not an HTTP answer" : "no answer within %d ms", timeout_ms);
		status = -1;
		goto done;
	}
	text = strstr(answer, "\r\n\r\n");
	if (text)
		*out = cJSON_Parse(text + 4);
done:
	if (fd >= 0)
		close(fd);
	free(json);
	free(answer);
	return status;
}

/* The "error" of an answer, or a fallback. */
static const char *answer_error(const cJSON *doc, const char *fallback)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, ADMIN_ERROR);

	return cJSON_IsString(e) ? e->valuestring : fallback;
}

/* One request of a fan-out, and its answer. */
struct call {
	const struct proxy *proxy;
	const char *method, *path;
	const cJSON *body;
	int timeout_ms;
	int status;
	cJSON *doc;
	char err[256];
	int64_t answered_ms; /* clock_mono_ms() when the answer (or the failure) came */
};

static void *call_run(void *arg)
{
	struct call *c = arg;

	c->status = proxy_request(c->proxy, c->method, c->path, c->body, c->timeout_ms, &c->doc, c->err,
				  sizeof(c->err));
	c->answered_ms = clock_mono_ms();
	return NULL;
}

/*
 * The same request to 'n' proxies at once, a thread each, so the whole
 * fan-out takes one timeout however many proxies there are and a proxy
 * that does not answer delays no other. A call whose thread cannot start
 * runs in this one. The caller deletes each calls[i].doc.
 */
static struct call *fan_out(struct proxy *const *proxies, int n, const char *method, const char *path,
			    const cJSON *body, int timeout_ms)
{
	struct call *calls = xcalloc((size_t)n + 1, sizeof(*calls));
	pthread_t *threads = xcalloc((size_t)n + 1, sizeof(*threads));
	bool *started = xcalloc((size_t)n + 1, sizeof(*started));

	for (int i = 0; i < n; i++) {
		calls[i] = (struct call){ .proxy = proxies[i],
					  .method = method,
					  .path = path,
					  .body = body,
					  .timeout_ms = timeout_ms,
					  .status = -1 };
		started[i] = pthread_create(&threads[i], NULL, call_run, &calls[i]) == 0;
		if (!started[i])
			call_run(&calls[i]);
	}
	for (int i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
	free(threads);
	free(started);
	return calls;
}

bool proxy_hold_all(struct proxy *const *proxies, int n, const cJSON *hold, int timeout_ms,
		    struct proxy_hold_result *res)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(hold, ADMIN_HOLD_ID);
	int64_t asked = clock_mono_ms();
	struct call *calls = fan_out(proxies, n, "POST", ADMIN_PATH_HOLDS, hold, timeout_ms);
	bool ok = true;

	memset(res, 0, sizeof(*res));
	res->in_transaction_pids = cJSON_CreateArray();
	res->acks = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		const struct call *c = &calls[i];
		cJSON *pid, *ack = cJSON_CreateObject();

		/* each proxy's own answer time, for the report (docs/architecture.md §4.10) */
		cJSON_AddStringToObject(ack, "proxy", c->proxy->url);
		cJSON_AddNumberToObject(ack, "status", c->status);
		cJSON_AddNumberToObject(ack, "ack_ms", (double)(c->answered_ms - asked));
		cJSON_AddNumberToObject(ack, "answered_at_ms", (double)c->answered_ms);
		if (c->status != 201)
			cJSON_AddStringToObject(ack, "error",
						c->status < 0 ? c->err
							      : answer_error(c->doc, "unexpected answer"));
		cJSON_AddItemToArray(res->acks, ack);

		if (c->status == 201) {
			res->acked++;
			res->in_transaction += (int)cJSON_GetNumberValue(
				cJSON_GetObjectItemCaseSensitive(c->doc, ADMIN_HOLD_IN_TRANSACTION));
			cJSON_ArrayForEach(
				pid, cJSON_GetObjectItemCaseSensitive(c->doc, ADMIN_HOLD_IN_TRANSACTION_PIDS))
				cJSON_AddItemToArray(res->in_transaction_pids,
						     cJSON_CreateNumber(pid->valuedouble));
		} else if (ok) { /* the first refusal says why */
			if (c->status < 0)
				snprintf(res->why, sizeof(res->why),
					 "proxy %.200s did not acknowledge the hold: %.250s", c->proxy->url,
					 c->err);
			else
				snprintf(res->why, sizeof(res->why),
					 "proxy %.200s did not acknowledge the hold (HTTP %d): %.250s",
					 c->proxy->url, c->status, answer_error(c->doc, "unexpected answer"));
			res->status = c->status;
			ok = false;
		}
	}
	for (int i = 0; i < n; i++)
		cJSON_Delete(calls[i].doc);
	free(calls);
	/* All or none: released everywhere, also where no answer came (the proxy may take it late). */
	if (!ok && cJSON_IsString(id))
		proxy_release_all(proxies, n, id->valuestring, timeout_ms);
	return ok;
}

bool proxy_refusal_is_final(int status)
{
	return status == 401 || status == 403;
}

bool proxy_renew_all(struct proxy *const *proxies, int n, const char *id, int64_t lease_ms, int timeout_ms)
{
	cJSON *body = cJSON_CreateObject();
	struct call *calls;
	char path[256];
	bool ok = true;

	cJSON_AddNumberToObject(body, ADMIN_HOLD_LEASE_MS, (double)lease_ms);
	snprintf(path, sizeof(path), ADMIN_PATH_HOLDS_PREFIX "%s" ADMIN_PATH_RENEW_SUFFIX, id);
	calls = fan_out(proxies, n, "POST", path, body, timeout_ms);
	for (int i = 0; i < n; i++) {
		ok &= calls[i].status == 200;
		cJSON_Delete(calls[i].doc);
	}
	free(calls);
	cJSON_Delete(body);
	return ok;
}

int proxy_release_all(struct proxy *const *proxies, int n, const char *id, int timeout_ms)
{
	return proxy_release_all_timed(proxies, n, id, timeout_ms, NULL);
}

int proxy_release_all_timed(struct proxy *const *proxies, int n, const char *id, int timeout_ms,
			    int64_t *answered_ms)
{
	struct call *calls;
	char path[256];
	int failed = 0;

	snprintf(path, sizeof(path), ADMIN_PATH_HOLDS_PREFIX "%s", id);
	calls = fan_out(proxies, n, "DELETE", path, NULL, timeout_ms);
	for (int i = 0; i < n; i++) {
		bool released = calls[i].status == 200 || calls[i].status == 404;

		failed += !released;
		if (answered_ms)
			answered_ms[i] = released ? calls[i].answered_ms : -1;
		cJSON_Delete(calls[i].doc);
	}
	free(calls);
	return failed;
}

void proxy_request_all(struct proxy *const *proxies, int n, const char *method, const char *path,
		       const cJSON *body, int timeout_ms, int *status, cJSON **docs)
{
	struct call *calls = fan_out(proxies, n, method, path, body, timeout_ms);

	for (int i = 0; i < n; i++) {
		status[i] = calls[i].status;
		docs[i] = calls[i].doc;
	}
	free(calls);
}

int proxy_refresh_all(struct proxy *const *proxies, int n, const cJSON *tables, int timeout_ms,
		      int *statements, char *why, size_t cap)
{
	cJSON *body = cJSON_CreateObject();
	struct call *calls;
	int failed = 0;

	*statements = 0;
	why[0] = '\0';
	cJSON_AddItemToObject(body, ADMIN_HOLD_TABLES, cJSON_Duplicate(tables, true));
	calls = fan_out(proxies, n, "POST", ADMIN_PATH_STATEMENTS_REFRESH, body, timeout_ms);
	for (int i = 0; i < n; i++) {
		const cJSON *marked = cJSON_GetObjectItemCaseSensitive(calls[i].doc,
								       ADMIN_REFRESH_STATEMENTS);

		if (calls[i].status == 200) {
			if (cJSON_IsNumber(marked))
				*statements += marked->valueint;
		} else if (failed++ == 0) {
			snprintf(why, cap, "%s: %s", proxies[i]->url,
				 calls[i].status < 0 ? calls[i].err : "refused the statement refresh");
		}
		cJSON_Delete(calls[i].doc);
	}
	free(calls);
	cJSON_Delete(body);
	return failed;
}
