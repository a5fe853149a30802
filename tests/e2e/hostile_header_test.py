#!/usr/bin/python3
"""A stranger's message with a hostile header does not stall the other sessions of its shard
(issue 13, item 4). relayd on loopback with one shard and port 25 for local.test (DKIM and ARC
checks on, forwarded mail sealed with local.test's key), keys served by unbound. Three "normal"
sessions on the same port send NOOP every 10 ms and time each reply:

  - baseline: for three seconds, nothing else happens;
  - hostile: meanwhile one client sends a message whose DKIM-Signature carries ~900 KiB of
    distinct tags (what took seconds to parse per pass, several passes per message, on the shard
    thread), with a right body hash and a key in DNS so that every check goes all the way.

The worst reply time of the normal sessions while that message is received and checked must stay
within a generous bound relative to the baseline of the same run: ten times the baseline's worst,
or 200 times its median, whichever is larger. The relay that parsed the tag list quadratically on
the shard stalled them for 15 seconds. A noisy machine can spoil one round, a stall by design
spoils every round: the round is tried up to three times.

Then a heavy message, whose checks are linear but long: 8 DKIM-Signatures, each with its own l=
and half of them c=relaxed/simple, over a 30 MiB body (two passes over it, eight for the relay
that hashed once per signature, and the ARC seal's). Receiving and queueing 30 MiB costs the
shard itself as much CPU as checking it does (tens of milliseconds on this machine), too much to
tell by latency where the checks ran; relayd's CPU time is read per thread instead
(/proc/PID/task/*/stat): the worker threads ("relay-work*"), which do nothing else for port 25,
must have spent CPU time on it. Where the checks ran on the shard, they spent none.

Both are answered 250, and an ordinary message is still accepted afterwards (run alone, that
case sends the two first).

usage: hostile_header_test.py RELAYD [--case N[,M...]] [--list]
"""
import base64
import hashlib
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("hostile-header-")
PINGERS = 3
PING_INTERVAL_S = 0.01
BASELINE_S = 3.0
AFTER_S = 1.0
TAG_LIST_BYTES = 900 * 1024
ROUNDS_MAX = 3


@harness.fixture
def relay():
    _, hostile_txt = local_dns.dkim_key(TMP, "hostile")
    local_key, local_txt = local_dns.dkim_key(TMP, "local")
    with local_dns.unbound(TMP, """
  local-zone: "test." static
  local-data: 'sel._domainkey.hostile.test. 300 IN TXT {hostile}'
  local-data: 'arc._domainkey.local.test. 300 IN TXT {local}'
""".format(hostile=hostile_txt, local=local_txt)) as dns_port:
        conf_path, _ = relayd_process.init(
            RELAYD, TMP + "/relay",
            relayd_process.merged(
                relayd_process.loopback(dns_port, local_dns.free_port(), shards=1),
                {"queue": {"segment_bytes": 64 << 20},  # the default: room for the heavy one
                 "delivery": {"enabled": False},  # accept and queue only: no delivery
                 "control_socket": harness.scratch("hh-", dir="/tmp") + "/control.sock"}),
            domain="local.test", hostname="mx.local.test", append="""
[receive]
listen = ["127.0.0.1:0"]
domains = ["local.test"]
aliases_dir = "aliases"
srs_domain = "local.test"

[[dkim.key]]
domain = "local.test"
selector = "arc"
key = "%s"
""" % local_key)
        os.makedirs(TMP + "/relay/aliases", exist_ok=True)  # init writes it
        open(TMP + "/relay/aliases/local.test", "w").write("*: me@elsewhere.test\n")
        with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
            yield r


def port():
    return relay().port("port 25 (receive)")


def fold(tokens, column):
    """Tokens joined by spaces, folded (CRLF SP) before one that would pass 76 columns: a port-25
    client keeps its lines under 1,000 bytes."""
    out = []
    for t in tokens:
        if column + len(t) + 1 > 76:
            out.append("\r\n")
            column = 0
        out.append(" " + t)
        column += len(t) + 1
    return "".join(out)


BODY = "Hello.\r\n"
# RFC 6376 §3.4.4: this body is its own relaxed canonical form.
BH = base64.b64encode(hashlib.sha256(BODY.encode()).digest()).decode()
HEAD = ("From: Mallory <mallory@hostile.test>\r\nTo: anyone@local.test\r\nSubject: hostile\r\n"
        "Date: Sun, 22 Nov 2026 20:22:40 +0000\r\nMessage-ID: <h1@hostile.test>\r\n")
tags, size, i = [], 0, 0
while size < TAG_LIST_BYTES:
    tags.append("t%d=;" % i)
    size += len(tags[-1]) + 1
    i += 1
SIGNATURE = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=hostile.test; s=sel;"
             " h=from; bh=%s; b=AAAA;" % BH) + fold(tags, 76) + "\r\n"
HOSTILE = (HEAD + SIGNATURE + "\r\n" + BODY).encode()
# Lines without trailing or repeated white space: the body is its own relaxed canonical form.
HEAVY_BODY = b"".join(b"A line of a long body, like a newsletter's, number %d.\r\n" % n
                      for n in range(30 * 1024 * 1024 // 56))
heavy_signatures = []
for k in range(8):
    length = len(HEAVY_BODY) - 1000 * k
    heavy_signatures.append(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/%s; d=hostile.test; s=sel;\r\n"
        " h=from; l=%d; bh=%s; b=AAAA\r\n" %
        ("simple" if k % 2 else "relaxed", length,
         base64.b64encode(hashlib.sha256(HEAVY_BODY[:length]).digest()).decode()))
HEAVY = (HEAD.replace("hostile\r\n", "heavy\r\n") + "".join(heavy_signatures) +
         "\r\n").encode() + HEAVY_BODY
ORDINARY = (HEAD.replace("hostile\r\n", "ordinary\r\n") + "\r\n" + BODY).encode()


def read_reply(f):
    while True:
        line = f.readline()
        if not line or line[3:4] == b" ":
            return line


def pinger(stop, samples):
    s = socket.create_connection(("127.0.0.1", port()), timeout=120)
    f = s.makefile("rb")
    read_reply(f)
    s.sendall(b"EHLO pinger.test\r\n")
    read_reply(f)
    while not stop.is_set():
        t0 = time.monotonic()
        s.sendall(b"NOOP\r\n")
        if not read_reply(f).startswith(b"250"):
            samples.append((t0, float("inf")))
            break
        samples.append((t0, time.monotonic() - t0))
        time.sleep(PING_INTERVAL_S)
    s.sendall(b"QUIT\r\n")
    s.close()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def relayd_cpu_s(pid):
    """{thread id: (name, CPU seconds so far)} of relayd's threads, from /proc."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            comm = open("/proc/%d/task/%s/comm" % (pid, tid)).read().strip()
            stat = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
        except OSError:
            continue  # the thread ended
        # proc(5): after "(comm) ", utime and stime are the 12th and 13th fields.
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (comm, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def cpu_spent(before, after):
    """(CPU seconds spent on the worker threads, on all threads) between two relayd_cpu_s."""
    workers = total = 0.0
    for tid, (comm, seconds) in after.items():
        spent = seconds - before.get(tid, (comm, 0.0))[1]
        if spent > 0:
            print("  %s[%s]: %.2f s" % (comm, tid, spent))
        total += spent
        if comm.startswith("relay-work"):
            workers += spent
    return workers, total


def with_pingers(action):
    """Runs action() while the pingers run; returns (action's result, the reply times)."""
    stop = threading.Event()
    samples = [[] for _ in range(PINGERS)]
    threads = [threading.Thread(target=pinger, args=(stop, samples[k])) for k in range(PINGERS)]
    for t in threads:
        t.start()
    try:
        result = action()
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    return result, [rtt for per in samples for _, rtt in per]


def send(message, subject):
    """Sends `message` on port 25 over a plain socket (sendall lets the pingers' threads run, a
    Python-side dot-stuffing of 30 MiB would not); returns the code of the reply to its dot."""
    s = socket.create_connection(("127.0.0.1", port()), timeout=120)
    f = s.makefile("rb")
    read_reply(f)
    for command in (b"EHLO client.test", b"MAIL FROM:<mallory@hostile.test>",
                    b"RCPT TO:<anyone@local.test>", b"DATA"):
        s.sendall(command + b"\r\n")
        read_reply(f)
    # No line of these messages starts with "." (RFC 5321 §4.5.2): nothing to stuff.
    t0 = time.monotonic()
    s.sendall(message + b".\r\n")
    reply = read_reply(f)
    took = time.monotonic() - t0
    s.sendall(b"QUIT\r\n")
    s.close()
    print("%s message: %s after %.3f s" % (subject, reply.decode(errors="replace").strip(), took))
    return int(reply[:3]) if reply[:3].isdigit() else 0


@harness.fixture
def bound():
    """(the NOOP reply times of the baseline, the bound on the worst while a message is sent)."""
    _, baseline = with_pingers(lambda: time.sleep(BASELINE_S))
    median, worst = statistics.median(baseline), max(baseline)
    p99 = sorted(baseline)[int(len(baseline) * 0.99)]
    limit = max(10 * worst, 200 * median)
    print("baseline: %d NOOPs, median %.2f ms, p99 %.2f ms, worst %.2f ms: bound %.1f ms" %
          (len(baseline), median * 1e3, p99 * 1e3, worst * 1e3, limit * 1e3))
    return baseline, limit


def worst_while_sending(message, subject):
    """The message sent while the pingers run, up to ROUNDS_MAX times while the worst reply
    time of the pingers is over the bound; returns (its reply code, that worst)."""
    _, limit = bound()

    def one_round():
        time.sleep(0.3)
        code = send(message, subject)
        time.sleep(AFTER_S)
        return code

    for attempt in range(1, ROUNDS_MAX + 1):
        code, during = with_pingers(one_round)
        worst_during = max(during)
        print("%s round %d: %d NOOPs, median %.2f ms, worst %.2f ms" %
              (subject, attempt, len(during), statistics.median(during) * 1e3,
               worst_during * 1e3))
        if worst_during <= limit:
            break
    return code, worst_during


@harness.fixture
def hostile_sent():
    """The hostile message sent while the pingers run: (its reply code, their worst reply)."""
    print("hostile message: %d bytes, %d tags in its DKIM-Signature" % (len(HOSTILE), len(tags)))
    return worst_while_sending(HOSTILE, "hostile")


@harness.fixture
def heavy_sent():
    """The heavy message sent: (its reply code, CPU seconds of the worker threads, of relayd)."""
    print("heavy message: %d bytes, 8 signatures" % len(HEAVY))
    before = relayd_cpu_s(relay().pid)
    code = send(HEAVY, "heavy")
    time.sleep(AFTER_S)
    workers, total = cpu_spent(before, relayd_cpu_s(relay().pid))
    print("heavy message: relayd used %.2f s of CPU, %.2f s of it on the worker threads" %
          (total, workers))
    return code, workers, total


@harness.case(1, "the normal sessions are served during the baseline")
def baseline_served():
    baseline, _ = bound()
    check(len(baseline) > 100, "the normal sessions were served during the baseline")


@harness.case(2, "a ~900 KiB DKIM-Signature tag list does not stall the other sessions")
def hostile():
    _, limit = bound()
    code, worst_during = hostile_sent()
    check(code == 250, "the hostile message is answered 250 (got %s)" % code)
    check(worst_during <= limit,
          "while the hostile message is received and checked, the worst NOOP reply of the other "
          "sessions (%.1f ms) stays within %.1f ms (10 x the baseline's worst, or 200 x its "
          "median)" % (worst_during * 1e3, limit * 1e3))


@harness.case(3, "8 DKIM signatures over 30 MiB are checked on the worker threads")
def heavy():
    code, workers, total = heavy_sent()
    check(code == 250, "the heavy message is answered 250 (got %s)" % code)
    check(workers > 0,
          "the worker threads checked the heavy message: %.2f s of the %.2f s of CPU it cost "
          "relayd (the rest: receiving and queueing it)" % (workers, total))


@harness.case(4, "an ordinary message is accepted after the hostile and the heavy one")
def ordinary():
    hostile_sent()
    heavy_sent()
    check(send(ORDINARY, "ordinary") == 250, "an ordinary message is accepted afterwards")


harness.main()
