/*
 * Unit tests for proxy/tls_record.c: the key schedule and record protection
 * against RFC 8448 §3's published traffic secrets and records, then two
 * ends talking over a socketpair: post-handshake NewSessionTicket skipped
 * however it is split, KeyUpdate both ways, padding, close_notify, records
 * arriving a byte at a time, writes that block halfway, and the records a
 * peer must not send (bad tag, too long, wrong type) failing that connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "tls_record.h"

/* ---- RFC 8448 §3, Simple 1-RTT Handshake ------------------------------------ */

static const char client_secret_hex[] = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
static const char server_secret_hex[] = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
static const char client_key_hex[] = "17422dda596ed5d9acd890e3c63f5051";
static const char client_iv_hex[] = "5b78923dee08579033e523d9";
static const char server_key_hex[] = "9f02283b6c9c07efc26bb9f2ac92e356";
static const char server_iv_hex[] = "cf782b88dd83549aadf1e984";
/* {client} send application_data record (client key, sequence 0): payload 00 01 .. 31. */
static const char client_app_record_hex[] = "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f"
					    "2b9819a8a5b46b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae6"
					    "3aeebb21694915e4";
/* {server} send application_data record (server key, sequence 1: a ticket went first). */
static const char server_app_record_hex[] = "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36"
					    "e30efaf97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf33254"
					    "0dd032e167c2955d";
/* After a KeyUpdate from the client (not in RFC 8448; Botan's RFC 8448 test derives it). */
static const char client_secret1_hex[] = "fcdfcc72725aaee48bf64e4fd8b749cdbdbab39d90da0b26e2245ca6ea167207";
/* {client} send alert record (sequence 1): close_notify. */
static const char client_alert_record_hex[] = "1703030013c98727606556"
					      "66b74d7ff1153efd6db6d0b0e3";

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;

	for (; hex[0]; hex++) {
		unsigned v;

		if (hex[0] == ' ')
			continue;
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		hex++;
	}
	return n;
}

static void payload50(uint8_t p[50])
{
	for (int i = 0; i < 50; i++)
		p[i] = (uint8_t)i;
}

static void test_derive_rfc8448(void **state)
{
	uint8_t secret[32], key[TLS_RECORD_KEY_MAX], iv[TLS_RECORD_IV_LEN], want[32];

	(void)state;
	unhex(server_secret_hex, secret);
	assert_true(tls_record_derive(TLS_SUITE_AES_128_GCM_SHA256, secret, key, iv));
	unhex(server_key_hex, want);
	assert_memory_equal(key, want, 16);
	unhex(server_iv_hex, want);
	assert_memory_equal(iv, want, 12);

	unhex(client_secret_hex, secret);
	assert_true(tls_record_derive(TLS_SUITE_AES_128_GCM_SHA256, secret, key, iv));
	unhex(client_key_hex, want);
	assert_memory_equal(key, want, 16);
	unhex(client_iv_hex, want);
	assert_memory_equal(iv, want, 12);

	assert_false(tls_record_derive(0x1304, secret, key, iv)); /* CCM: not done here */
}

/* ---- two ends on a socketpair ------------------------------------------------- */

struct pair {
	int fd[2];
	struct tls_record server, client; /* server on fd[0], client on fd[1] */
};

static void pair_open(struct pair *p, uint16_t suite)
{
	uint8_t cs[48], ss[48];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(p->fd[i], F_SETFL, O_NONBLOCK), 0);
	memset(cs, 0, sizeof(cs));
	memset(ss, 0, sizeof(ss));
	unhex(client_secret_hex, cs);
	unhex(server_secret_hex, ss);
	if (suite == TLS_SUITE_AES_256_GCM_SHA384) {
		memcpy(cs + 32, ss, 16); /* any 48 bytes will do */
		memcpy(ss + 32, cs, 16);
	}
	assert_true(tls_record_start(&p->server, suite, true, cs, ss));
	assert_true(tls_record_start(&p->client, suite, false, ss, cs));
}

static void pair_close(struct pair *p)
{
	tls_record_end(&p->server, -1);
	tls_record_end(&p->client, -1);
	close(p->fd[0]);
	close(p->fd[1]);
}

static void put_raw(int fd, const uint8_t *b, size_t n)
{
	assert_int_equal(write(fd, b, n), (ssize_t)n);
}

/* Reads everything that is there into buf; returns the count, or the first non-data answer. */
static long read_all(struct tls_record *r, int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		long n = tls_record_read(r, fd, buf + got, cap - got);

		if (n <= 0)
			return got > 0 ? (long)got : n;
		got += (size_t)n;
	}
}

static void test_open_rfc8448_client_record(void **state)
{
	struct pair p;
	uint8_t rec[128], buf[128], want[50];
	size_t n;

	(void)state;
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = unhex(client_app_record_hex, rec);
	assert_int_equal(n, 72);
	put_raw(p.fd[1], rec, n);
	payload50(want);
	assert_int_equal(read_all(&p.server, p.fd[0], buf, sizeof(buf)), 50);
	assert_memory_equal(buf, want, 50);
	assert_null(p.server.in); /* nothing buffered once delivered */

	/* The client's close_notify is end of stream. */
	n = unhex(client_alert_record_hex, rec);
	assert_int_equal(n, 24);
	put_raw(p.fd[1], rec, n);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], buf, sizeof(buf)), 0);
	pair_close(&p);
}

static void test_seal_rfc8448_server_record(void **state)
{
	struct pair p;
	uint8_t want[128], got[128], payload[50];
	size_t n;

	(void)state;
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = unhex(server_app_record_hex, want);
	payload50(payload);
	p.server.wr.seq = 1; /* the trace's server sent a NewSessionTicket under sequence 0 */
	assert_int_equal(tls_record_write(&p.server, p.fd[0], payload, sizeof(payload)), 50);
	assert_null(p.server.out);
	assert_int_equal(read(p.fd[1], got, sizeof(got)), (ssize_t)n);
	assert_memory_equal(got, want, n);
	pair_close(&p);
}

/* Every suite both ways, the largest record, and a record cut into single bytes. */
static void test_roundtrip_suites(void **state)
{
	static const uint16_t suites[] = { TLS_SUITE_AES_128_GCM_SHA256, TLS_SUITE_AES_256_GCM_SHA384,
					   TLS_SUITE_CHACHA20_POLY1305_SHA256 };
	uint8_t *big = malloc(TLS_RECORD_PLAIN_MAX + 100), *back = malloc(TLS_RECORD_PLAIN_MAX + 100);
	uint8_t wire[64];

	(void)state;
	for (size_t i = 0; i < TLS_RECORD_PLAIN_MAX + 100; i++)
		big[i] = (uint8_t)(i * 7);
	for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
		struct pair p;
		long n;
		size_t got = 0;

		pair_open(&p, suites[s]);
		/* One record carries at most 2^14 bytes. */
		assert_int_equal(tls_record_write(&p.client, p.fd[1], big, TLS_RECORD_PLAIN_MAX + 100),
				 TLS_RECORD_PLAIN_MAX);
		assert_int_equal(tls_record_write(&p.client, p.fd[1], big + TLS_RECORD_PLAIN_MAX, 100), 100);
		while (got < TLS_RECORD_PLAIN_MAX + 100) {
			n = tls_record_read(&p.server, p.fd[0], back + got, TLS_RECORD_PLAIN_MAX + 100 - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
		assert_memory_equal(back, big, got);

		/* The other way, a byte at a time on the wire, read into a small buffer. */
		assert_int_equal(tls_record_write(&p.server, p.fd[0], "hello", 5), 5);
		n = read(p.fd[1], wire, sizeof(wire));
		assert_int_equal(n, 5 + 5 + 1 + 16);
		for (long i = 0; i < n - 1; i++) {
			put_raw(p.fd[0], wire + i, 1);
			assert_int_equal(tls_record_read(&p.client, p.fd[1], back, 2), TLS_RECORD_AGAIN);
		}
		put_raw(p.fd[0], wire + n - 1, 1);
		assert_int_equal(tls_record_read(&p.client, p.fd[1], back, 2), 2);
		assert_true(tls_record_pending(&p.client));
		assert_int_equal(tls_record_read(&p.client, p.fd[1], back + 2, 10), 3);
		assert_memory_equal(back, "hello", 5);
		assert_false(tls_record_pending(&p.client));
		pair_close(&p);
	}
	free(big);
	free(back);
}

/*
 * More connections than a thread keeps keyed cipher contexts, of all three
 * suites, taking turns: every record still opens, whichever context it gets.
 */
static void test_many_connections(void **state)
{
	static const uint16_t suites[] = { TLS_SUITE_AES_128_GCM_SHA256, TLS_SUITE_AES_256_GCM_SHA384,
					   TLS_SUITE_CHACHA20_POLY1305_SHA256 };
	enum { PAIRS = 50 };
	struct pair *p = calloc(PAIRS, sizeof(*p));
	char msg[32], back[64];

	(void)state;
	for (int i = 0; i < PAIRS; i++)
		pair_open(&p[i], suites[i % 3]);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < PAIRS; i++) {
			int n = snprintf(msg, sizeof(msg), "pair %d round %d", i, round);

			assert_int_equal(tls_record_write(&p[i].client, p[i].fd[1], msg, (size_t)n), n);
			assert_int_equal(tls_record_write(&p[i].server, p[i].fd[0], msg, (size_t)n), n);
		}
		for (int i = PAIRS - 1; i >= 0; i--) {
			int n = snprintf(msg, sizeof(msg), "pair %d round %d", i, round);

			assert_int_equal(tls_record_read(&p[i].server, p[i].fd[0], back, sizeof(back)), n);
			assert_memory_equal(back, msg, (size_t)n);
			assert_int_equal(tls_record_read(&p[i].client, p[i].fd[1], back, sizeof(back)), n);
			assert_memory_equal(back, msg, (size_t)n);
		}
	}
	for (int i = 0; i < PAIRS; i++)
		pair_close(&p[i]);
	free(p);
}

/* Records that came in one recv are read in one call, as far as the buffer goes. */
static void test_records_batched(void **state)
{
	struct pair p;
	char back[64];

	(void)state;
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	assert_int_equal(tls_record_write(&p.client, p.fd[1], "first,", 6), 6);
	assert_int_equal(tls_record_write(&p.client, p.fd[1], "second,", 7), 7);
	assert_int_equal(tls_record_write(&p.client, p.fd[1], "third", 5), 5);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], back, 10), 10);
	assert_false(tls_record_drained(&p.server)); /* plaintext waits */
	assert_true(tls_record_pending(&p.server));
	assert_int_equal(tls_record_read(&p.server, p.fd[0], back + 10, sizeof(back) - 10), 8);
	assert_memory_equal(back, "first,second,third", 18);
	assert_true(tls_record_drained(&p.server)); /* the socket had no more */
	assert_false(tls_record_pending(&p.server));
	assert_null(p.server.in);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], back, sizeof(back)), TLS_RECORD_AGAIN);
	pair_close(&p);
}

/* A NewSessionTicket split over three records, with padding, then data: the data alone arrives. */
static void test_ticket_skipped(void **state)
{
	struct pair p;
	uint8_t ticket[300], rec[TLS_RECORD_BUF], buf[64], padded[40];
	size_t n;

	(void)state;
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	memset(ticket, 0xab, sizeof(ticket));
	ticket[0] = 4;
	ticket[1] = 0;
	ticket[2] = (sizeof(ticket) - 4) >> 8;
	ticket[3] = (sizeof(ticket) - 4) & 0xff;
	n = tls_record_seal(&p.server, 22, ticket, 2, rec); /* half a header */
	put_raw(p.fd[0], rec, n);
	n = tls_record_seal(&p.server, 22, ticket + 2, 100, rec);
	put_raw(p.fd[0], rec, n);
	assert_int_equal(tls_record_read(&p.client, p.fd[1], buf, sizeof(buf)), TLS_RECORD_AGAIN);
	n = tls_record_seal(&p.server, 22, ticket + 102, sizeof(ticket) - 102, rec);
	put_raw(p.fd[0], rec, n);
	/* Padding: zeros after the content type (sealed as part of the content here, then type 0s). */
	memset(padded, 0, sizeof(padded));
	memcpy(padded, "data", 4);
	padded[4] = 23;
	n = tls_record_seal(&p.server, 0, padded, 20, rec);
	put_raw(p.fd[0], rec, n);
	assert_int_equal(read_all(&p.client, p.fd[1], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "data", 4);
	assert_false(p.client.failed);

	/* A client does not send tickets: the server end fails. */
	n = tls_record_seal(&p.client, 22, ticket, sizeof(ticket), rec);
	put_raw(p.fd[1], rec, n);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], buf, sizeof(buf)), TLS_RECORD_FAILED);
	assert_non_null(strstr(tls_record_error(), "NewSessionTicket"));
	pair_close(&p);
}

/* KeyUpdate(update_requested) from the client: the server follows and answers with its own. */
static void key_update(uint16_t suite)
{
	static const uint8_t requested[5] = { 24, 0, 0, 1, 1 };
	struct pair p;
	uint8_t rec[TLS_RECORD_BUF], buf[64], old_rd[48], old_wr[48];
	size_t n;

	pair_open(&p, suite);
	memcpy(old_rd, p.server.rd.secret, 48);
	memcpy(old_wr, p.server.wr.secret, 48);
	n = tls_record_seal(&p.client, 22, requested, sizeof(requested), rec);
	put_raw(p.fd[1], rec, n);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], buf, sizeof(buf)), TLS_RECORD_AGAIN);
	assert_true(p.server.key_update_due);
	assert_memory_not_equal(p.server.rd.secret, old_rd, 32);
	assert_int_equal(p.server.rd.seq, 0);
	if (p.server.suite == TLS_SUITE_AES_128_GCM_SHA256) {
		/* client_application_traffic_secret_1 as Botan's RFC 8448 test derives it. */
		uint8_t want[32];

		unhex(client_secret1_hex, want);
		assert_memory_equal(p.server.rd.secret, want, 32);
	}

	/* The client derives its next write secret the same way: mirror it from the server's read side. */
	memcpy(p.client.wr.secret, p.server.rd.secret, 48);
	memcpy(p.client.wr.key, p.server.rd.key, sizeof(p.client.wr.key));
	memcpy(p.client.wr.iv, p.server.rd.iv, sizeof(p.client.wr.iv));
	p.client.wr.id = p.server.rd.id + 1000000;
	p.client.wr.seq = 0;
	assert_int_equal(tls_record_write(&p.client, p.fd[1], "after", 5), 5);
	assert_int_equal(read_all(&p.server, p.fd[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "after", 5);

	/* The server's next write: KeyUpdate(update_not_requested), then data under the new key. */
	assert_int_equal(tls_record_write(&p.server, p.fd[0], "reply", 5), 5);
	assert_false(p.server.key_update_due);
	assert_memory_not_equal(p.server.wr.secret, old_wr, 32);
	assert_int_equal(read_all(&p.client, p.fd[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "reply", 5);
	assert_false(p.client.key_update_due); /* not requested back */
	assert_memory_equal(p.client.rd.secret, p.server.wr.secret, 32);
	pair_close(&p);
}

static void test_key_update(void **state)
{
	(void)state;
	key_update(TLS_SUITE_AES_128_GCM_SHA256);
	key_update(TLS_SUITE_CHACHA20_POLY1305_SHA256);
}

/* A record the peer must not send fails that end, with a reason. */
static void expect_failure(const uint8_t *raw, size_t n, const char *why)
{
	struct pair p;
	uint8_t buf[64];
	const char *err;

	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	put_raw(p.fd[1], raw, n);
	assert_int_equal(tls_record_read(&p.server, p.fd[0], buf, sizeof(buf)), TLS_RECORD_FAILED);
	err = tls_record_error();
	assert_non_null(err);
	if (!strstr(err, why))
		fail_msg("error \"%s\" does not say \"%s\"", err, why);
	assert_true(p.server.failed);
	/* Sticky: nothing more is read or written. */
	assert_int_equal(tls_record_read(&p.server, p.fd[0], buf, sizeof(buf)), TLS_RECORD_FAILED);
	assert_int_equal(tls_record_write(&p.server, p.fd[0], "x", 1), TLS_RECORD_FAILED);
	pair_close(&p);
}

static void test_bad_records(void **state)
{
	uint8_t rec[TLS_RECORD_BUF + 16];
	size_t n = unhex(client_app_record_hex, rec);
	struct pair p;

	(void)state;
	rec[40] ^= 1;
	expect_failure(rec, n, "bad record MAC");
	rec[40] ^= 1;
	rec[0] = 22; /* a plaintext handshake record after the handshake */
	expect_failure(rec, n, "unexpected type");
	rec[0] = 23;
	rec[3] = (TLS_RECORD_BODY_MAX + 1) >> 8;
	rec[4] = (TLS_RECORD_BODY_MAX + 1) & 0xff;
	expect_failure(rec, n, "too long");
	rec[3] = 0;
	rec[4] = 10;
	expect_failure(rec, 15, "too short");

	/* A well-sealed record whose inner content type is unknown, one of only zeros, an alert. */
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = tls_record_seal(&p.client, 99, (const uint8_t *)"x", 1, rec);
	pair_close(&p);
	expect_failure(rec, n, "unexpected content type");
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = tls_record_seal(&p.client, 0, (const uint8_t *)"\0\0", 2, rec);
	pair_close(&p);
	expect_failure(rec, n, "without a content type");
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = tls_record_seal(&p.client, 21, (const uint8_t *)"\x02\x28", 2, rec); /* handshake_failure */
	pair_close(&p);
	expect_failure(rec, n, "TLS alert 40");
	pair_open(&p, TLS_SUITE_AES_128_GCM_SHA256);
	n = tls_record_seal(&p.client, 22, (const uint8_t *)"\x18\0\0\x01\x01\x17", 6, rec);
	pair_close(&p);
	expect_failure(rec, n, "KeyUpdate"); /* data after a KeyUpdate in its record */
}

/* A write that blocks halfway: AGAIN, then the same bytes again take it whole; the peer sees one stream. */
static void test_blocked_write(void **state)
{
	struct pair p;
	int small = 4096;
	uint8_t *data = malloc(200000), *got = malloc(200000);
	size_t sent = 0, recvd = 0;
	int agains = 0;

	(void)state;
	pair_open(&p, TLS_SUITE_AES_256_GCM_SHA384);
	assert_int_equal(setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	for (size_t i = 0; i < 200000; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	while (recvd < 200000) {
		if (sent < 200000) {
			long n = tls_record_write(&p.server, p.fd[0], data + sent, 200000 - sent);

			if (n == TLS_RECORD_AGAIN)
				agains++;
			else {
				assert_true(n > 0);
				sent += (size_t)n;
			}
		}
		for (;;) {
			long n = tls_record_read(&p.client, p.fd[1], got + recvd, 200000 - recvd);

			if (n == TLS_RECORD_AGAIN)
				break;
			assert_true(n > 0);
			recvd += (size_t)n;
		}
	}
	assert_true(agains > 0);
	assert_memory_equal(got, data, 200000);
	assert_null(p.server.out);
	free(data);
	free(got);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_derive_rfc8448),
		cmocka_unit_test(test_open_rfc8448_client_record),
		cmocka_unit_test(test_seal_rfc8448_server_record),
		cmocka_unit_test(test_roundtrip_suites),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_records_batched),
		cmocka_unit_test(test_ticket_skipped),
		cmocka_unit_test(test_key_update),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_blocked_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
