/*
 * libFuzzer target for proxy/tls_record.c's reader: what a TLS 1.3 peer may
 * send after the handshake. An input is a control block, then chunks that a
 * peer end (a second tls_record with the mirrored keys) turns into bytes on
 * a socketpair:
 *
 *   [0]  bits 0-1 suite (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, then
 *        AES-128 again); bit 2 the reading end is the TLS server
 *   [1]  read size: 1 + [1] % 97 bytes per read, 0 as much as fits
 *   then chunks [kind][len] and len bytes:
 *     kind % 8 = 0 application data, written by the peer's tls_record_write
 *                1 the peer's KeyUpdate (update_not_requested), then data
 *                2 data padded with zeros after the content type
 *                3 a well-formed NewSessionTicket of len bytes, cut in three records
 *                4 handshake content as given, sealed
 *                5 an alert as given, sealed
 *                6 raw bytes, unsealed
 *                7 a record of content type len, sealed, bytes as given
 *
 * The reader must never crash or read out of bounds, must fail with a
 * reason when it fails, and when every chunk is of kinds 0-3 (and a client
 * reads the tickets) it must deliver exactly the data, then end of stream.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_check.h"
#include "tls_record.h"

static const uint16_t suites[4] = { TLS_SUITE_AES_128_GCM_SHA256, TLS_SUITE_AES_256_GCM_SHA384,
				    TLS_SUITE_CHACHA20_POLY1305_SHA256, TLS_SUITE_AES_128_GCM_SHA256 };

static void put(int fd, const uint8_t *p, size_t n)
{
	FUZZ_CHECK(write(fd, p, n) == (ssize_t)n);
}

static void put_sealed(struct tls_record *peer, int fd, uint8_t type, const uint8_t *p, size_t n)
{
	static uint8_t rec[TLS_RECORD_BUF];
	size_t len = tls_record_seal(peer, type, p, n, rec);

	FUZZ_CHECK(len > 0);
	put(fd, rec, len);
}

static void put_data(struct tls_record *peer, int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		long w = tls_record_write(peer, fd, p, n);

		FUZZ_CHECK(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t expect[1 << 16], got[1 << 16], ticket[260];
	struct tls_record me, peer;
	uint8_t secret_a[48], secret_b[48];
	size_t expect_len = 0, got_len = 0, read_size, off = 2, wire = 0;
	bool checked = true, server;
	uint16_t suite;
	int fd[2];
	long n = 0;

	if (size < 2)
		return 0;
	suite = suites[data[0] & 3];
	server = data[0] & 4;
	read_size = data[1] ? 1 + data[1] % 97 : sizeof(got);
	memset(secret_a, 0x5a, sizeof(secret_a));
	memset(secret_b, 0xa5, sizeof(secret_b));
	memset(&me, 0, sizeof(me));
	memset(&peer, 0, sizeof(peer));
	FUZZ_CHECK(tls_record_start(&me, suite, server, secret_a, secret_b));
	FUZZ_CHECK(tls_record_start(&peer, suite, !server, secret_b, secret_a));
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
	/* Big enough for every record the largest input makes. */
	{
		int big = 1 << 20;

		setsockopt(fd[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(fd[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	FUZZ_CHECK(fcntl(fd[0], F_SETFL, O_NONBLOCK) == 0);

	/* A bound on what goes on the wire, under what the socket buffers hold. */
	while (off + 2 <= size && wire < 100000) {
		uint8_t kind = data[off] % 8;
		size_t len = data[off + 1];
		const uint8_t *p = data + off + 2;

		if (off + 2 + len > size)
			len = size - off - 2;
		off += 2 + len;
		wire += 3 * (TLS_RECORD_HEADER + 1 + 16) + 4 + len;
		switch (kind) {
		case 1:
			peer.key_update_due = true;
			/* fall through */
		case 0:
			put_data(&peer, fd[1], p, len);
			memcpy(expect + expect_len, p, len);
			expect_len += len;
			break;
		case 2: {
			uint8_t padded[256 + 1 + 40];

			memcpy(padded, p, len);
			padded[len] = 23;
			memset(padded + len + 1, 0, 40);
			put_sealed(&peer, fd[1], 0, padded, len + 1 + (len % 41));
			memcpy(expect + expect_len, p, len);
			expect_len += len;
			break;
		}
		case 3: {
			/* Three non-empty pieces: §5.1 forbids empty handshake fragments. */
			size_t total = 4 + len, a = 1 + len / 3, b = (total - a) / 2;

			ticket[0] = 4;
			ticket[1] = 0;
			ticket[2] = (uint8_t)(len >> 8);
			ticket[3] = (uint8_t)len;
			memcpy(ticket + 4, p, len);
			put_sealed(&peer, fd[1], 22, ticket, a);
			put_sealed(&peer, fd[1], 22, ticket + a, b);
			put_sealed(&peer, fd[1], 22, ticket + a + b, total - a - b);
			checked = checked && !server;
			break;
		}
		case 4:
		case 5:
			if (len > 0) {
				put_sealed(&peer, fd[1], kind == 4 ? 22 : 21, p, len);
				checked = false;
			}
			break;
		case 6:
			put(fd[1], p, len);
			checked = false;
			break;
		case 7:
			if (len > 0) {
				put_sealed(&peer, fd[1], p[0], p + 1, len - 1);
				checked = false;
			}
			break;
		}
	}
	shutdown(fd[1], SHUT_WR);

	for (;;) {
		size_t room = sizeof(got) - got_len;

		n = tls_record_read(&me, fd[0], got + got_len, room < read_size ? room : read_size);
		if (n <= 0)
			break;
		FUZZ_CHECK((size_t)n <= read_size);
		got_len += (size_t)n;
		FUZZ_CHECK(got_len <= sizeof(got));
	}
	if (n == TLS_RECORD_FAILED)
		FUZZ_CHECK(me.failed && tls_record_error() != NULL);
	if (checked) {
		FUZZ_CHECK(n == 0);
		FUZZ_CHECK(got_len == expect_len && memcmp(got, expect, got_len) == 0);
		FUZZ_CHECK(me.in == NULL && !tls_record_pending(&me));
	}
	tls_record_end(&me, -1);
	tls_record_end(&peer, -1);
	close(fd[0]);
	close(fd[1]);
	return 0;
}
