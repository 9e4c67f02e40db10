"""limits.max_clients: the proxy refuses the client over the limit with an ErrorResponse
(instead of a hang or a bare close) and takes new clients again once one leaves."""

import psycopg
import pytest

import harness

MAX_CLIENTS = 5


def test_max_clients(pg, proxy_factory, connect):
    proxy = proxy_factory(pg, {"limits": {"max_clients": MAX_CLIENTS}})
    conns = [connect(proxy, autocommit=True) for _ in range(MAX_CLIENTS)]
    assert [c.execute("SELECT %s::int", (i,)).fetchone()[0] for i, c in enumerate(conns)] == list(range(MAX_CLIENTS))

    with proxy.raw() as raw:
        raw.send(raw.startup_packet("trust_user", harness.DATABASE))
        msgs = raw.read_until_closed(timeout=15)
        errors = [harness.parse_error_fields(b) for t, b in msgs if t == b"E"]
        assert len(errors) == 1 and len(msgs) == 1, msgs
        assert errors[0]["C"] == "53300", errors  # too_many_connections, as PostgreSQL says it
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(proxy.dsn())

    assert all(c.execute("SELECT 1").fetchone() == (1,) for c in conns)
    conns.pop().close()
    harness.wait_for(lambda: proxy.status()["clients"]["total"] == MAX_CLIENTS - 1, 10,
                     what="a free slot")
    with psycopg.connect(proxy.dsn(user="scram_user")) as c:
        assert c.execute("SELECT current_user").fetchone() == ("scram_user",)
    proxy.assert_healthy()
