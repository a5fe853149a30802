#!/usr/bin/env python3
"""A client that pipelines commands and never reads its replies (issue 13, item 1): each "EHLO a"
costs the relay about twice its size in reply. Shown bounded, on relayd --init's configuration on
loopback with replies_unread_bytes_max = 65536 and replies_unread_timeout_ms = 3000:
  - the relay stops reading (TCP pushes back): the client cannot hand it anywhere near the 24 MiB
    it tries to, and relayd's resident memory (VmRSS from /proc) grows by less than RSS_GROWTH_MAX;
  - another client is served normally meanwhile (greeting, EHLO, QUIT);
  - the flooder is dropped, for the input it sent without reading (input_held_bytes_max) or at
    the stall timeout, and relayd says which;
  - a client that pipelines the same way but reads its replies gets every one of them;
  - a client dripping a command a byte at a time is cut at command_deadline_ms (bytes do not
    re-arm it), a TLS client that sends close_notify at once, an idle unauthenticated one
    after idle_before_auth_ms, and with half of connections_max held (stress mode) a new idle
    one after stress_timeout_ms.
The cases share one relayd; each leaves no connection open behind it.

usage: hostile_client_test.py RELAYD [--case N[,M...]] [--list]
"""
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import relayd_process  # noqa: E402  (the project's own helper, found through the path above)
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("hostile-")
FLOOD_BYTES = 24 << 20        # what the experiment sent (RSS went from 11 to 433 MiB)
RSS_GROWTH_MAX = 24 << 20     # far below the flood's reply volume (~48 MiB), far above the bound
STALL_MS = 3000
DEADLINE_MS = 2000        # command_deadline_ms
IDLE_MS = 4000            # idle_before_auth_ms
CONNECTIONS_MAX = 20      # one shard: stress mode from 10 connections
STRESS_MS = 1000          # stress_timeout_ms


@harness.fixture
def relay():
    conf_path, _ = relayd_process.init(
        RELAYD, TMP + "/relay",
        {"submission": {"listen": ["127.0.0.1:0"], "listen_tls": []},
         "metrics": {"listen": ""},
         "shards": 1,
         "queue": {"segment_bytes": 8 << 20},
         "delivery": {"enabled": False},
         "limits": {"replies_unread_bytes_max": 65536,
                    "replies_unread_timeout_ms": STALL_MS,
                    "command_deadline_ms": DEADLINE_MS,
                    "idle_before_auth_ms": IDLE_MS,
                    "connections_max": CONNECTIONS_MAX,
                    "stress_connections_percent": 50,
                    "stress_timeout_ms": STRESS_MS}})
    with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
        yield r


def port():
    return relay().port()


def closed_after(sock, limit_s):
    """Seconds until the relay ends the connection (EOF or reset), reading what it says;
    (seconds, bytes read)."""
    t = time.time()
    sock.settimeout(limit_s)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return time.time() - t, data


def wait_until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


@harness.case(1, "a client that does not read its replies is pushed back, bounded and dropped")
def flood():
    rss_before = relayd_process.rss_bytes(relay().pid)

    # The flooder: a small receive buffer so that its unread replies do not sit in our own kernel
    # buffers either, and a send timeout to notice when the relay stops taking bytes.
    flooder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder.connect(("127.0.0.1", port()))
    flooder.settimeout(2.0)
    chunk = b"EHLO a\r\n" * 8192  # 64 KiB
    sent = 0
    t0 = time.time()
    try:
        while sent < FLOOD_BYTES and time.time() - t0 < 20:
            sent += flooder.send(chunk)
    except socket.timeout:
        pass  # the relay stopped reading: TCP pushes back
    except OSError as e:
        print("flooder: %s after %d bytes" % (e, sent))
    flooder_blocked_at = time.time()
    rss_during = relayd_process.rss_bytes(relay().pid)
    print("flood: %d bytes taken of %d; relayd VmRSS %d -> %d KiB" %
          (sent, FLOOD_BYTES, rss_before >> 10, rss_during >> 10))
    check(sent < FLOOD_BYTES, "the relay stops reading a client that does not read its replies")
    check(rss_during - rss_before < RSS_GROWTH_MAX,
          "relayd's RSS grows by less than %d MiB (grew %d KiB)" %
          (RSS_GROWTH_MAX >> 20, (rss_during - rss_before) >> 10))

    # Meanwhile another client is served as usual.
    other = socket.create_connection(("127.0.0.1", port()), timeout=5)
    f = other.makefile("rb")
    greeting = f.readline()
    other.sendall(b"EHLO other.test\r\n")
    lines = []
    while True:
        line = f.readline()
        lines.append(line)
        if not line or line[3:4] == b" ":
            break
    other.sendall(b"QUIT\r\n")
    bye = f.readline()
    other.close()
    check(greeting.startswith(b"220") and lines[-1].startswith(b"250") and bye.startswith(b"221"),
          "another client is served during the flood")

    # The flooder is dropped once its replies have stayed unread for the stall timeout: reading
    # now yields the replies that were waiting, then the 421, then the end of the stream.
    flooder.settimeout(STALL_MS / 1000 + 10)
    time.sleep(STALL_MS / 1000 + 1)
    tail = b""
    try:
        while True:
            data = flooder.recv(65536)
            if not data:
                break
            tail = (tail + data)[-4096:]
    except OSError as e:
        print("flooder read: %s" % e)
    dropped_after = time.time() - flooder_blocked_at
    flooder.close()
    # The 421 is sent, but a close with the client's input unread resets the connection, and the
    # reset may discard what was on its way: only the end of the connection is certain.
    check(dropped_after < STALL_MS / 1000 + 10,
          "the flooding client is dropped within the stall timeout (%.1f s)" % dropped_after)
    # The connection has ended, so its line is written; a moment for it to reach the file.
    check(wait_until(lambda: "without reading its replies: closing" in relay().log() or
                     "has not read its replies" in relay().log(), 5),
          "relayd logs why it dropped the flooder")


@harness.case(2, "a pipelining client that reads as it goes gets all 20,000 replies")
def pipelined_reader():
    count = 20000
    reader = socket.create_connection(("127.0.0.1", port()), timeout=10)
    got = {"bytes": b"", "done": False}

    def read_all():
        buf = b""
        while True:  # until the relay closes after QUIT
            data = reader.recv(1 << 20)
            if not data:
                break
            buf += data
        got["bytes"] = buf
        got["done"] = True

    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()
    reader.sendall(b"EHLO b\r\n" * count + b"QUIT\r\n")
    thread.join(60)
    reader.close()
    finals = got["bytes"].count(b"\r\n250 ")
    check(got["done"] and finals == count and b"221 " in got["bytes"],
          "a reading client gets all %d pipelined replies (%d)" % (count, finals))


@harness.case(3, "a client dripping a command a byte at a time is cut at command_deadline_ms")
def drip():
    # One byte every 0.4 s: each byte must not re-arm an idle timer.
    drip = socket.create_connection(("127.0.0.1", port()), timeout=5)
    drip.recv(4096)  # the greeting
    t0 = time.time()
    result = {}

    def drip_bytes():
        try:
            for b in b"EHLO dripping.example.test\r\n":
                drip.send(bytes([b]))
                time.sleep(0.4)
        except OSError:
            pass
        result["sent_for"] = time.time() - t0

    dripper = threading.Thread(target=drip_bytes, daemon=True)
    dripper.start()
    waited, said = closed_after(drip, 20)
    cut_after = time.time() - t0  # the relay's EOF, after its 421
    # The dripper may go on sending into the relay's linger (close_linger_ms) until it stops.
    dripper.join(15)
    drip.close()
    print("drip: closed after %.1f s: %r" % (cut_after, said[-80:]))
    check(cut_after < DEADLINE_MS / 1000 + 2 and b"421" in said,
          "a dripping client is cut at command_deadline_ms with a 421 (%.1f s)" % cut_after)


@harness.case(4, "a TLS client's close_notify ends the connection at once")
def close_notify():
    tls_client = socket.create_connection(("127.0.0.1", port()), timeout=5)
    tf = tls_client.makefile("rb")
    tf.readline()
    tls_client.sendall(b"EHLO tls.example.test\r\n")
    while tf.readline()[3:4] == b"-":
        pass
    tls_client.sendall(b"STARTTLS\r\n")
    tf.readline()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    wrapped = ctx.wrap_socket(tls_client, server_hostname="relay.example.com")
    wrapped.sendall(b"EHLO tls.example.test\r\n")
    wrapped.recv(4096)
    t0 = time.time()
    try:
        # Sends close_notify, then waits (5 s at most) for the relay's close_notify or its end.
        wrapped.unwrap().close()
    except (OSError, ssl.SSLError):
        wrapped.close()
    waited = time.time() - t0
    check(waited < 2, "a TLS client's close_notify ends the connection at once (%.1f s)" % waited)


@harness.case(5, "an idle unauthenticated client is closed after idle_before_auth_ms")
def idle():
    idle = socket.create_connection(("127.0.0.1", port()), timeout=5)
    idle.recv(4096)
    waited, said = closed_after(idle, 20)
    idle.close()
    check(IDLE_MS / 1000 - 0.5 < waited < IDLE_MS / 1000 + 2 and b"421" in said,
          "an idle unauthenticated client is closed after idle_before_auth_ms (%.1f s)" % waited)


@harness.case(6, "with half of connections_max held, a new idle client goes at stress_timeout_ms")
def stress():
    held = []
    for _ in range(CONNECTIONS_MAX // 2):
        s = socket.create_connection(("127.0.0.1", port()), timeout=5)
        s.recv(4096)
        held.append(s)
    late = socket.create_connection(("127.0.0.1", port()), timeout=5)
    late.recv(4096)
    waited, said = closed_after(late, 20)
    late.close()
    for s in held:
        s.close()
    check(waited < STRESS_MS / 1000 + 1.5 and b"421" in said,
          "under stress a new idle client is closed after stress_timeout_ms (%.1f s)" % waited)


@harness.case(7, "relayd stops cleanly")
def stops_cleanly():
    code = relay().stop()
    check(code == 0, "relayd stops cleanly (exit %s)" % code)


harness.main()
