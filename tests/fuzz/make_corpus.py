#!/usr/bin/python3
"""Writes the seed corpus for fuzz_pgwire: small, realistic protocol v3 byte
sequences (startup packets, client and server messages, truncated ones).

Deterministic; run it after changing a seed and check the files in:
    /usr/bin/python3 tests/fuzz/make_corpus.py [OUTDIR]
OUTDIR defaults to tests/fuzz/corpus/pgwire/ beside this script."""

import os
import struct
import sys

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
AUTH_SASL = 10


def cstr(s):
    return s.encode() + b"\0"


def startup(code, params=None):
    body = struct.pack("!I", code)
    if params is not None:
        body += b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!I", 4 + len(body)) + body


def msg(type_, body=b""):
    return type_.encode() + struct.pack("!I", 4 + len(body)) + body


def error_body(fields):
    return b"".join(k.encode() + cstr(v) for k, v in fields) + b"\0"


V3 = 3 << 16
FULL_ERROR = error_body([
    ("S", "ERROR"), ("V", "ERROR"), ("C", "23505"),
    ("M", 'duplicate key value violates unique constraint "orders_pkey"'),
    ("D", "Key (id)=(1) already exists."), ("s", "public"), ("t", "orders"),
    ("n", "orders_pkey"), ("F", "nbtinsert.c"), ("L", "664"), ("R", "_bt_check_unique"),
])
LOGIN = startup(V3, [("user", "app"), ("database", "shop"), ("application_name", "psql"),
                     ("client_encoding", "UTF8")])
SASL_PLUS = msg("R", struct.pack("!I", AUTH_SASL) + cstr("SCRAM-SHA-256-PLUS")
                + cstr("SCRAM-SHA-256") + b"\0")

SEEDS = {
    "startup_v3_login": LOGIN,
    "startup_v3_user_only": startup(V3, [("user", "postgres")]),
    "startup_v3_2_replication": startup(3 << 16 | 2, [("user", "app"), ("replication", "database")]),
    "startup_v2_refused": startup(2 << 16, [("user", "app")]),
    "startup_no_user": startup(V3, [("database", "shop")]),
    "startup_truncated": LOGIN[:23],
    "ssl_request": startup(SSL_REQUEST),
    "gssenc_request": startup(GSSENC_REQUEST),
    "cancel_request": struct.pack("!IIII", 16, CANCEL_REQUEST, 4242, 0x1BADCAFE),
    "query": msg("Q", cstr("SELECT 1")),
    "extended_query": (msg("P", cstr("") + cstr("SELECT $1::int") + struct.pack("!HI", 1, 23))
                       + msg("B", cstr("") + cstr("") + struct.pack("!HHIsH", 0, 1, 1, b"7", 0))
                       + msg("E", cstr("") + struct.pack("!I", 0)) + msg("S")),
    "error_response": msg("E", FULL_ERROR),
    "error_response_truncated": msg("E", FULL_ERROR)[:60],
    "error_body_only": FULL_ERROR,
    "auth_sasl_plus": SASL_PLUS,
    "auth_sasl_plus_body_only": SASL_PLUS[5:],
    "server_login": (msg("R", struct.pack("!I", 0))
                     + msg("S", cstr("standard_conforming_strings") + cstr("on"))
                     + msg("S", cstr("server_version") + cstr("15.8"))
                     + msg("K", struct.pack("!II", 4242, 0x1BADCAFE))
                     + msg("Z", b"I")),
    "parameter_status_body": cstr("standard_conforming_strings") + cstr("off"),
    "notice_then_ready": (msg("N", error_body([("S", "NOTICE"), ("V", "NOTICE"), ("C", "00000"),
                                               ("M", "table \"t\" does not exist, skipping")]))
                          + msg("Z", b"T")),
    "build_error_strings": cstr("FATAL") + cstr("08P01") + cstr("invalid frontend message type 0"),
    "terminate": msg("X"),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "pgwire")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")


if __name__ == "__main__":
    main()
