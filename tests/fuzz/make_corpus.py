#!/usr/bin/python3
"""Writes the seed corpora for fuzz_pgwire (small, realistic protocol v3 byte
sequences: startup packets, client and server messages, truncated ones) and
fuzz_relay (the same kind of streams behind fuzz_relay.c's control block).

Deterministic; run it after changing a seed and check the files in:
    /usr/bin/python3 tests/fuzz/make_corpus.py            # both, beside this script
    /usr/bin/python3 tests/fuzz/make_corpus.py OUTDIR     # pgwire seeds only, to OUTDIR
    /usr/bin/python3 tests/fuzz/make_corpus.py --relay [OUTDIR]
    /usr/bin/python3 tests/fuzz/make_corpus.py --auth-session [OUTDIR]
The default directories are tests/fuzz/corpus/pgwire/, corpus/relay/ and corpus/auth_session/."""

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


# ---- fuzz_relay ------------------------------------------------------------
# Control block (fuzz_relay.c): flags, max_len, four read sizes, four write sizes.
RELAY_BOTH, RELAY_C2S, RELAY_S2C = 0, 1, 2
RELAY_TRACK_MAX = 1024 * 1024
DEFAULT_MAX_LEN = 268435456


def relay_ctl(dirs=RELAY_BOTH, release_idle=False, small_buf=False, stop_every=0,
              max_len=DEFAULT_MAX_LEN, reads=(0, 0, 0, 0), writes=(255, 255, 255, 255)):
    """small_buf: start with a buffer of 16 + reads[0] bytes."""
    flags = dirs | (4 if release_idle else 0) | (8 if small_buf else 0) | (stop_every << 4)
    return bytes([flags]) + struct.pack("!I", max_len) + bytes(reads) + bytes(writes)


def claimed(type_, body_len, present):
    """A message whose length field claims body_len body bytes, with only 'present' of them."""
    return type_.encode() + struct.pack("!I", 4 + body_len) + bytes(
        (0x61 + i % 26) for i in range(present))


SASL_ONLY = msg("R", struct.pack("!I", AUTH_SASL) + cstr("SCRAM-SHA-256") + b"\0")
CLIENT_EXTENDED = (msg("P", cstr("s1") + cstr("SELECT * FROM orders WHERE id = $1")
                       + struct.pack("!HI", 1, 23))
                   + msg("B", cstr("") + cstr("s1") + struct.pack("!HHIsH", 0, 1, 1, b"7", 0))
                   + msg("D", b"P" + cstr(""))
                   + msg("E", cstr("") + struct.pack("!I", 0))
                   + msg("S")
                   + msg("C", b"S" + cstr("s1"))
                   + msg("C", b"P" + cstr(""))
                   + msg("S"))
SERVER_LOGIN = (SASL_PLUS
                + msg("R", struct.pack("!I", 11) + b"r=abc,s=c2FsdA==,i=4096")
                + msg("R", struct.pack("!I", 12) + b"v=c2lnbmF0dXJl")
                + msg("R", struct.pack("!I", 0))
                + msg("S", cstr("standard_conforming_strings") + cstr("on"))
                + msg("S", cstr("server_version") + cstr("15.8"))
                + msg("K", struct.pack("!II", 4242, 0x1BADCAFE))
                + msg("Z", b"I"))
SERVER_RESULT = (msg("T", struct.pack("!H", 1) + cstr("id") + struct.pack("!IHIhih", 0, 0, 23, 4, -1, 0))
                 + b"".join(msg("D", struct.pack("!HI", 1, 3) + str(100 + i).encode())
                            for i in range(20))
                 + msg("C", cstr("SELECT 20"))
                 + msg("Z", b"I"))

RELAY_SEEDS = {
    "client_simple_query": relay_ctl(RELAY_C2S) + msg("Q", cstr("SELECT 1")) + msg("X"),
    "client_extended": relay_ctl(RELAY_C2S) + CLIENT_EXTENDED,
    "client_extended_byte_by_byte": relay_ctl(RELAY_C2S, reads=(1, 1, 1, 1), writes=(1, 0, 3, 255))
    + CLIENT_EXTENDED,
    "client_extended_stops": relay_ctl(RELAY_C2S, stop_every=2, reads=(7, 3, 11, 2)) + CLIENT_EXTENDED,
    "client_many_statements": relay_ctl(RELAY_C2S, reads=(64, 0, 5, 200))
    + b"".join(msg("P", cstr(f"s{i}") + cstr(f"SELECT {i}") + struct.pack("!H", 0)) for i in range(40))
    + b"".join(msg("C", b"S" + cstr(f"s{i}")) for i in range(0, 40, 3))
    + msg("S"),
    "client_copy_in": relay_ctl(RELAY_C2S, reads=(100, 100, 100, 100), writes=(50, 0, 255, 7))
    + msg("Q", cstr("COPY t FROM STDIN")) + msg("d", b"1\tone\n" * 200) + msg("c") + msg("S"),
    "client_oversized_parse": relay_ctl(RELAY_C2S, reads=(5, 0, 0, 0))
    + claimed("P", RELAY_TRACK_MAX + 100, 3000),
    "client_oversized_parse_name_later": relay_ctl(RELAY_C2S, reads=(6, 1, 1, 100))
    + "P".encode() + struct.pack("!I", 4 + RELAY_TRACK_MAX + 100) + cstr("big_statement")
    + b"SELECT " + b"1, " * 500,
    "client_bad_length": relay_ctl(RELAY_C2S) + msg("Q", cstr("SELECT 1")) + b"Q\0\0\0\3",
    "client_over_max_len": relay_ctl(RELAY_C2S, max_len=1024) + msg("Q", cstr("SELECT 1"))
    + claimed("Q", 2000, 100),
    "server_login": relay_ctl(RELAY_S2C) + SERVER_LOGIN,
    "server_login_small_reads": relay_ctl(RELAY_S2C, reads=(1, 2, 3, 5), writes=(0, 1, 0, 2))
    + SERVER_LOGIN,
    "server_login_stops": relay_ctl(RELAY_S2C, stop_every=1, release_idle=True) + SERVER_LOGIN,
    "server_sasl_without_plus": relay_ctl(RELAY_S2C) + SASL_ONLY + msg("Z", b"I"),
    "server_result": relay_ctl(RELAY_S2C, release_idle=True, reads=(9, 0, 17, 4)) + SERVER_RESULT,
    "server_error": relay_ctl(RELAY_S2C) + msg("E", FULL_ERROR) + msg("Z", b"E"),
    "server_error_truncated": relay_ctl(RELAY_S2C) + msg("E", FULL_ERROR)[:60],
    "server_fatal_then_close": relay_ctl(RELAY_S2C)
    + msg("E", error_body([("S", "FATAL"), ("V", "FATAL"), ("C", "57P01"),
                           ("M", "terminating connection due to administrator command")])),
    "server_empty_ready": relay_ctl(RELAY_S2C) + msg("Z", b"I") + msg("Z"),
    "server_oversized_error": relay_ctl(RELAY_S2C, reads=(0, 0, 0, 0))
    + "E".encode() + struct.pack("!I", 4 + RELAY_TRACK_MAX) + b"SERROR\0CXX000\0M" + b"x" * 2000,
    "server_held_error_grows": relay_ctl(RELAY_S2C, writes=(0, 0, 0, 0)) + claimed("D", 6000, 6000)
    + claimed("E", 20000, 4000),
    "server_track_max_exactly": relay_ctl(RELAY_S2C) + claimed("E", RELAY_TRACK_MAX - 5, 500),
    "both_mixed": relay_ctl(RELAY_BOTH, reads=(13, 1, 0, 6), writes=(3, 255, 0, 9), stop_every=3)
    + msg("Q", cstr("SELECT 1")) + SERVER_LOGIN + CLIENT_EXTENDED + SERVER_RESULT,
    "small_buffer_login": relay_ctl(RELAY_S2C, small_buf=True, reads=(0, 7, 0, 3), writes=(0, 0, 5, 255))
    + SERVER_LOGIN,
    "small_buffer_extended": relay_ctl(RELAY_C2S, small_buf=True, reads=(4, 9, 1, 0), writes=(2, 0, 0, 255))
    + CLIENT_EXTENDED,
    "small_buffer_result": relay_ctl(RELAY_BOTH, small_buf=True, release_idle=True, reads=(30, 0, 0, 0))
    + SERVER_RESULT + msg("E", FULL_ERROR) + msg("Z", b"I"),
    "both_small_max_len": relay_ctl(RELAY_BOTH, max_len=4) + msg("S") + msg("Z") + msg("X"),
}


# fuzz_auth_session.c: [ctl][u16 client_len][client bytes][server bytes]; ctl bits: 1 md5 role,
# 2 wrong password, 4 unknown role, 8 raw client, 16 honest server, 32/64 tamper the honest
# client's first/second answer with the client bytes ([op][arg][data]).
def auth_ctl(ctl, client=b"", server=b""):
    return bytes([ctl]) + struct.pack("!H", len(client)) + client + server


AFTER_LOGIN = (msg("S", cstr("server_version") + cstr("15.0")) + msg("K", struct.pack("!II", 4242, 7))
               + msg("Z", b"I") + msg("T", b"\0\0") + msg("C", cstr("SELECT 0")) + msg("Z", b"I"))
AUTH_SESSION_SEEDS = {
    "scram_honest": auth_ctl(16, server=AFTER_LOGIN),
    "md5_honest": auth_ctl(16 | 1, server=AFTER_LOGIN),
    "scram_wrong_password": auth_ctl(16 | 2),
    "md5_wrong_password": auth_ctl(16 | 1 | 2),
    "unknown_role": auth_ctl(16 | 4),
    "scram_first_xor": auth_ctl(16 | 32, client=bytes([0, 20, 1])),
    "scram_first_cut": auth_ctl(16 | 32, client=bytes([1, 10])),
    "scram_final_bad_base64": auth_ctl(16 | 64, client=bytes([0, 80]) + b"*!"),
    "scram_final_replaced": auth_ctl(16 | 64, client=bytes([2, 0]) + b"c=biws,r=x,p=AAAA"),
    "scram_final_appended": auth_ctl(16 | 64, client=bytes([3, 0]) + b",x=extension"),
    "md5_answer_cut": auth_ctl(16 | 1 | 32, client=bytes([1, 20])),
    "raw_client_bad_mechanism": auth_ctl(8, client=msg("p", cstr("SCRAM-SHA-1") + struct.pack("!i", 3)
                                                       + b"n,,")),
    "raw_client_huge_length": auth_ctl(8, client=b"p" + struct.pack("!I", 10 << 20)),
    "raw_client_query_instead": auth_ctl(8, client=msg("Q", cstr("SELECT 1"))),
    "hostile_server_absurd_iterations": auth_ctl(0, server=msg("R", struct.pack("!I", AUTH_SASL)
                                                               + cstr("SCRAM-SHA-256") + b"\0")
                                                 + msg("R", struct.pack("!I", 11)
                                                       + b"r=x,s=c2FsdA==,i=2000000000")),
    "hostile_server_cleartext": auth_ctl(0, server=msg("R", struct.pack("!I", 3))),
    "hostile_server_ok_at_once": auth_ctl(0, server=msg("R", struct.pack("!I", 0)) + msg("Z", b"I")),
}


def write_seeds(seeds, out):
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    args = sys.argv[1:]
    if args[:1] == ["--relay"]:
        write_seeds(RELAY_SEEDS, args[1] if len(args) > 1 else os.path.join(here, "relay"))
    elif args[:1] == ["--auth-session"]:
        write_seeds(AUTH_SESSION_SEEDS,
                    args[1] if len(args) > 1 else os.path.join(here, "auth_session"))
    elif args:
        write_seeds(SEEDS, args[0])
    else:
        write_seeds(SEEDS, os.path.join(here, "pgwire"))
        write_seeds(RELAY_SEEDS, os.path.join(here, "relay"))
        write_seeds(AUTH_SESSION_SEEDS, os.path.join(here, "auth_session"))


if __name__ == "__main__":
    main()
