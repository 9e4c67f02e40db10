"""LISTEN/NOTIFY across two sessions through the proxy: notifications reach an idle listener
that sends nothing (the proxy relays server-initiated messages), with payload and the
notifier's backend PID, in order, and only for channels listened to."""

import select
import time

import harness


def drain_notifies(conn, want, timeout=15):
    """psycopg2: waits on the socket until 'want' notifications arrived; returns them."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if select.select([conn], [], [], left)[0]:
            conn.poll()
            while conn.notifies:
                got.append(conn.notifies.pop(0))
    return got


def test_notify_reaches_idle_listener(proxy, connect):
    listener = connect(proxy, driver="psycopg2")
    listener.autocommit = True
    listener.cursor().execute("LISTEN chan_a")
    notifier = connect(proxy, autocommit=True)
    notifier_pid = notifier.execute("SELECT pg_backend_pid()").fetchone()[0]
    notifier.execute("NOTIFY chan_a, 'hello ✓'")
    got = drain_notifies(listener, 1)
    assert [(n.channel, n.payload, n.pid) for n in got] == [("chan_a", "hello ✓", notifier_pid)]


def test_many_notifications_in_order_and_filtered_by_channel(proxy, connect):
    listener = connect(proxy, driver="psycopg2")
    listener.autocommit = True
    listener.cursor().execute("LISTEN chan_b")
    notifier = connect(proxy)
    for i in range(200):
        notifier.execute("SELECT pg_notify(%s, %s)", ("chan_b" if i % 2 == 0 else "chan_other", str(i)))
    notifier.commit()  # delivered at commit, all at once
    got = drain_notifies(listener, 100)
    assert [n.payload for n in got] == [str(i) for i in range(0, 200, 2)]
    assert all(n.channel == "chan_b" for n in got)
    assert drain_notifies(listener, 1, timeout=0.5) == []


def test_notify_with_psycopg3_listener(proxy, connect):
    listener = connect(proxy, autocommit=True)
    received = []
    listener.add_notify_handler(received.append)
    listener.execute("LISTEN chan_c")
    notifier = connect(proxy, autocommit=True)
    notifier.execute("NOTIFY chan_c, 'from psycopg3'")

    def arrived():
        listener.execute("SELECT 1")  # reads whatever the server sent meanwhile
        return received
    harness.wait_for(arrived, 15, interval=0.1, what="notification")
    assert (received[0].channel, received[0].payload) == ("chan_c", "from psycopg3")
    assert received[0].pid == notifier.info.backend_pid


def test_unlisten_stops_delivery(proxy, connect):
    listener = connect(proxy, driver="psycopg2")
    listener.autocommit = True
    cur = listener.cursor()
    cur.execute("LISTEN chan_d")
    cur.execute("UNLISTEN chan_d")
    notifier = connect(proxy, autocommit=True)
    notifier.execute("NOTIFY chan_d, 'nobody'")
    cur.execute("LISTEN chan_e")
    notifier.execute("NOTIFY chan_e, 'somebody'")
    got = drain_notifies(listener, 1)
    assert [n.payload for n in got] == ["somebody"]
