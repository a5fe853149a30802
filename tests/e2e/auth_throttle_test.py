#!/usr/bin/env python3
"""AUTH throttling cannot be walked around (issue 13, item 6), end to end against relayd.

Shows, with relayd --init's configuration on loopback (AUTH without TLS, to keep the client
small; one shard, so that per-shard limits are the totals):
  1. One valid account no longer unlocks guessing: a client alternates a wrong password for
     another user with a successful login as its own account (mallory). Before, each success
     cleared the address's failures and the guessing went on for ever; now the victim's name is
     refused (454 4.7.0) after user_failures_before_block guesses, guessing other names goes on
     only to failures_before_block in all, and then the address is refused, new connections too.
     The victim logs in from another address meanwhile.
  2. Addresses in one IPv6 /64 are one client, for AUTH failures and for connections_per_ip_max:
     inside a network namespace this test creates (a dummy device holding addresses of
     2001:db8:64::/64 and neighbouring /64s, clients bound to them, relayd on [::1]). Skipped, with
     the reason printed, without root or namespaces; client_key_test covers the mapping itself.
  3. A flood of AUTH from many connections gets 454 4.7.0 once checks_queued_max checks wait:
     the 535s (each a scrypt) come back within the time of one queue-full of checks, the rest at
     once, each session stays usable (NOOP), sessions that close while their check waits harm
     nothing, relayd's resident memory hardly moves, and once the queue has drained a login
     succeeds again.

Cases 1 to 3 share the throttle's relayd (the attacker and the /64 clients use addresses of
their own, so they do not meet); case 4 has a relayd of its own.

usage: auth_throttle_test.py RELAYD [--netns] [--case N[,M...]] [--list]
       (--netns: run inside a fresh network namespace)
"""
import base64
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import relayd_process  # noqa: E402  (the project's own helper, found through the path above)
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
IN_NETNS = "--netns" in harness.args()[1:]
with open(RELAYD, "rb") as f:
    ASAN = b"__asan_init" in f.read()
TMP = harness.scratch("auth-")
MALLORY, MALLORY_PW = "mallory@example.com", "mallory-password"
VICTIM, VICTIM_PW = "victim@example.com", "victim-password"
USER_LIMIT = 3       # user_failures_before_block
CLIENT_LIMIT = 6     # failures_before_block
CONNECTIONS_PER_CLIENT = 4
QUEUE_MAX = 8        # checks_queued_max (phase 3)
FLOOD_CONNECTIONS = 60
FLOOD_ROUNDS = 8


def users_line(name, password):
    """A users-file line in relayd's format (relay/server/users.h): scrypt N=2^15, r=8, p=1."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=1 << 15, r=8, p=1, maxmem=64 << 20,
                         dklen=32)
    return "%s $scrypt$ln=15,r=8,p=1$%s$%s\n" % (name, base64.b64encode(salt).decode(),
                                                  base64.b64encode(key).decode())


def plain(user, password):
    return "AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()


class Conn:
    """One SMTP client connection from `source` (an address of this host) to relayd."""

    def __init__(self, source, dest, port):
        family = socket.AF_INET6 if ":" in dest else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.bind((source, 0))
        self.sock.connect((dest, port))
        self.buf = b""

    def reply(self):
        """One complete reply; "" when the relay closed the connection."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    return "\n".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def send(self, line):
        self.sock.sendall((line + "\r\n").encode())

    def cmd(self, line):
        self.send(line)
        return self.reply()

    def hello(self):
        greeting = self.reply()
        if greeting.startswith("220"):
            self.cmd("EHLO client.test")
        return greeting

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(source, dest, port, user, password):
    """A fresh connection's AUTH reply (or its refusal at connect)."""
    c = Conn(source, dest, port)
    greeting = c.hello()
    r = c.cmd(plain(user, password)) if greeting.startswith("220") else greeting
    c.close()
    return r


class Relay(relayd_process.Relayd):
    """A relayd of this test: its ports by address, and a stop that checks it ended well."""

    def ports(self):
        out = {}
        for host, port in re.findall(r"(127\.0\.0\.1|\[::1\]):(\d+)",
                                     self.ready.split("submission")[1]):
            out.setdefault(host.strip("[]"), int(port))
        return out

    def stop_checked(self, name):
        code = self.stop()
        log = self.log()
        check(code == 0 and "Sanitizer" not in log and "runtime error" not in log,
              "%s: relayd exits cleanly on SIGTERM (%d), no sanitizer report" % (name, code))
        return log


def relayd_for(name, settings):
    """A context manager: relayd with the two users and `settings` over the test's own."""
    conf_path, _ = relayd_process.init(
        RELAYD, TMP + "/" + name, relayd_process.merged({
            "submission": {"listen_tls": [], "auth_requires_tls": False},
            "metrics": {"listen": ""},
            "shards": 1,
            "queue": {"segment_bytes": 8 << 20},
            "delivery": {"enabled": False},  # accept and queue only
            "auth": {"failures_before_delay": 1000}}, settings))
    with open(os.path.join(os.path.dirname(conf_path), "users"), "w") as f:
        f.write(users_line(MALLORY, MALLORY_PW) + users_line(VICTIM, VICTIM_PW))
    return Relay(RELAYD, conf_path, TMP + "/" + name + ".log")


def ip(*args):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


SIX_A = ["2001:db8:64::1", "2001:db8:64::2", "2001:db8:64::3"]      # one /64
SIX_B = "2001:db8:65::1"                                              # the next /64
SIX_C = ["2001:db8:66::1", "2001:db8:66::2", "2001:db8:66::3"]      # one /64
SIX_D = "2001:db8:67::1"


@harness.fixture
def loopback():
    """In the network namespace (--netns): lo up; on the host's loopback, nothing to do."""
    if not IN_NETNS:
        return
    # Refuse to touch a real network: in a fresh namespace lo is the only interface.
    ok, links = ip("-o", "link", "show")
    if not ok or len(links.splitlines()) != 1 or ": lo:" not in links:
        raise RuntimeError("not in a fresh network namespace (%s); run through "
                           "auth_throttle_test.sh" % links)
    ok, out = ip("link", "set", "lo", "up")
    if not ok:
        raise RuntimeError("ip link set lo up: " + out)


@harness.fixture
def six_skip():
    """The network namespace's addresses (before relayd starts); why the /64 part cannot run
    here, or None."""
    if not IN_NETNS:
        return "no network namespace (needs root and unshare --net)"
    loopback()
    # The clients' addresses on a dummy device (on lo where the kernel has no dummy driver).
    device = "authtest0"
    if not (ip("link", "add", device, "type", "dummy")[0] and ip("link", "set", device, "up")[0]):
        device = "lo"
    for a in SIX_A + [SIX_B] + SIX_C + [SIX_D]:
        ok, out = ip("-6", "addr", "add", a + "/64", "dev", device, "nodad")
        if not ok:
            return "ip -6 addr add %s/64 dev %s failed: %s" % (a, device, out)
    return None


@harness.fixture
def throttle():
    """The throttle's relayd (cases 1 to 3), on [::1] too when the namespace has the /64s."""
    listen = ["127.0.0.1:0", "[::1]:0"] if six_skip() is None else ["127.0.0.1:0"]
    with relayd_for("throttle", {
            "submission": {"listen": listen},
            "auth": {"failures_before_block": CLIENT_LIMIT,
                     "user_failures_before_block": USER_LIMIT},
            "limits": {"connections_per_ip_max": CONNECTIONS_PER_CLIENT}}) as r:
        yield r


@harness.case(1, "one valid account does not unlock guessing another's password")
def own_account():
    port = throttle().ports()["127.0.0.1"]
    # Guess the victim's password, log in as mallory, again and again, from 127.0.0.2.
    attacker = "127.0.0.2"
    guess_replies, own_replies = [], []
    for i in range(USER_LIMIT + 2):
        guess_replies.append(login(attacker, "127.0.0.1", port, VICTIM, "guess%d" % i)[:3])
        own_replies.append(login(attacker, "127.0.0.1", port, MALLORY, MALLORY_PW)[:3])
    print("victim guesses: %s; mallory's logins between them: %s" % (guess_replies, own_replies))
    check(guess_replies == ["535"] * USER_LIMIT + ["454"] * 2,
          "logging in with one's own account between guesses does not reset them: the victim's "
          "name is refused from that address after %d guesses" % USER_LIMIT)
    check(own_replies == ["235"] * (USER_LIMIT + 2),
          "the attacker's own account still logs in (its address is below %d failures)"
          % CLIENT_LIMIT)
    # Other names from the same address: only up to the address's total.
    others = []
    for i in range(CLIENT_LIMIT):
        others.append(login(attacker, "127.0.0.1", port, "user%d@example.com" % i, "x")[:3])
    print("guesses at other names: %s" % others)
    check(others[:CLIENT_LIMIT - USER_LIMIT] == ["535"] * (CLIENT_LIMIT - USER_LIMIT) and
          others[CLIENT_LIMIT - USER_LIMIT] in ("421", "454"),
          "guessing other names stops at %d failures from the address in all" % CLIENT_LIMIT)
    r = login(attacker, "127.0.0.1", port, MALLORY, MALLORY_PW)
    check(r.startswith("421 4.7.0"), "then the address's new connections get 421 (%s)" % r)
    r = login("127.0.0.3", "127.0.0.1", port, VICTIM, VICTIM_PW)
    check(r.startswith("235"), "the victim logs in from another address meanwhile (%s)" % r)


@harness.case(2, "addresses in one IPv6 /64 are one client, for AUTH failures and connections")
def one_slash64():
    if six_skip() is not None:
        harness.skip("IPv6 /64 grouping end to end: %s" % six_skip())
    port6 = throttle().ports()["::1"]
    replies = []
    for i in range(CLIENT_LIMIT):  # spread over two addresses of the /64, a name each
        replies.append(login(SIX_A[i % 2], "::1", port6, "n%d@example.com" % i, "x")[:3])
    print("failures from %s and %s: %s" % (SIX_A[0], SIX_A[1], replies))
    check(replies == ["535"] * CLIENT_LIMIT, "%d failures from two addresses of one /64"
          % CLIENT_LIMIT)
    r = login(SIX_A[2], "::1", port6, MALLORY, MALLORY_PW)
    check(r.startswith("421 4.7.0"),
          "a third address of that /64 is refused as blocked (%s)" % r)
    r = login(SIX_B, "::1", port6, MALLORY, MALLORY_PW)
    check(r.startswith("235"), "the next /64 is another client: it logs in (%s)" % r)

    held = [Conn(SIX_C[i % 2], "::1", port6) for i in range(CONNECTIONS_PER_CLIENT)]
    greetings = [c.hello()[:3] for c in held]
    extra = Conn(SIX_C[2], "::1", port6)
    refused = extra.reply()
    other = Conn(SIX_D, "::1", port6)
    accepted = other.reply()
    print("connections from %s/%s: %s; a third address: %r; the next /64: %r"
          % (SIX_C[0], SIX_C[1], greetings, refused, accepted))
    check(greetings == ["220"] * CONNECTIONS_PER_CLIENT and
          refused.startswith("421 4.7.0 Too many connections from your address"),
          "connections_per_ip_max = %d counts the /64: a fifth connection, from a third "
          "address of it, gets 421" % CONNECTIONS_PER_CLIENT)
    check(accepted.startswith("220"), "a connection from the next /64 is accepted")
    for c in held + [extra, other]:
        c.close()


@harness.case(3, "the throttle's relayd exits cleanly")
def throttle_stops():
    throttle().stop_checked("throttle")


@harness.case(4, "a flood of AUTH gets 454 4.7.0 from the bounded check queue")
def flood_of_auth():
    loopback()
    # Many failures per address are allowed here: what refuses is the queue, not the throttle.
    relay = harness.enter(relayd_for("flood", {
        "submission": {"listen": ["127.0.0.1:0"]},
        "auth": {"failures_before_block": 100000, "user_failures_before_block": 100000,
                 "checks_queued_max": QUEUE_MAX}}))
    port = relay.ports()["127.0.0.1"]
    try:
        flood(relay, port)
    finally:
        relay.stop_checked("flood")


def flood(relay, port):
    # How long one check costs here (an unknown user costs the same scrypt as a known one).
    t0 = time.time()
    r = login("127.0.0.9", "127.0.0.1", port, "nobody@example.com", "x")
    check_s = time.time() - t0
    print("one failed AUTH alone: %.0f ms (%s)" % (check_s * 1000, r[:3]))
    rss_before = relayd_process.rss_bytes(relay.pid)

    conns = [Conn("127.0.1.%d" % (i + 1), "127.0.0.1", port) for i in range(FLOOD_CONNECTIONS)]
    for c in conns:
        c.hello()
    results = {"535": [], "454": [], "other": []}
    usable = [0]
    lock = threading.Lock()
    start = threading.Barrier(FLOOD_CONNECTIONS)

    def flood_one(i, c):
        start.wait()
        for n in range(FLOOD_ROUNDS):
            t = time.time()
            r = c.cmd(plain("flood%d-%d@example.com" % (i, n), "x"))
            took = time.time() - t
            with lock:
                results.get(r[:3], results["other"]).append(took)
            if r.startswith("454") and c.cmd("NOOP").startswith("250"):
                with lock:
                    usable[0] += 1

    threads = [threading.Thread(target=flood_one, args=(i, c)) for i, c in enumerate(conns)]
    t0 = time.time()
    for t in threads:
        t.start()
    # Meanwhile: sessions that send AUTH and leave before the answer.
    for i in range(20):
        c = Conn("127.0.2.%d" % (i + 1), "127.0.0.1", port)
        c.hello()
        c.send(plain("leaver%d@example.com" % i, "x"))
        c.close()
    rss_peak = 0
    while any(t.is_alive() for t in threads):
        rss_peak = max(rss_peak, relayd_process.rss_bytes(relay.pid))
        time.sleep(0.05)
    flood_s = time.time() - t0
    for c in conns:
        c.close()
    attempts = FLOOD_CONNECTIONS * FLOOD_ROUNDS
    slow = max(results["535"]) if results["535"] else 0
    fast = sorted(results["454"])[len(results["454"]) * 99 // 100] if results["454"] else 0
    print("flood: %d AUTH from %d connections in %.1f s: %d answered 535 (each a scrypt, slowest "
          "%.2f s), %d answered 454 4.7.0 (99th percentile %.3f s), %d other; "
          "relayd VmRSS %d KiB before, %d KiB at most during"
          % (attempts, FLOOD_CONNECTIONS, flood_s, len(results["535"]), slow,
             len(results["454"]), fast, len(results["other"]), rss_before >> 10, rss_peak >> 10))
    check(len(results["535"]) + len(results["454"]) == attempts,
          "every AUTH of the flood is answered, 535 or 454")
    check(len(results["454"]) >= attempts // 2,
          "most of the flood gets 454 4.7.0 at once instead of waiting in line (%d of %d)"
          % (len(results["454"]), attempts))
    # A check that got in waited at most for the queue ahead of it, the one running and itself;
    # with slack for a loaded machine.
    check(slow < (QUEUE_MAX + 2) * check_s * 3 + 2,
          "no admitted check waits longer than a queue-full of them (%.2f s; one takes %.2f s)"
          % (slow, check_s))
    check(usable[0] == len(results["454"]), "after each 454 the session answers NOOP with 250")
    if ASAN:
        print("SKIP: RSS bound: relayd is built with AddressSanitizer, whose quarantine keeps the "
              "freed 32 MiB scrypt buffers (grew %d KiB)" % ((rss_peak - rss_before) >> 10))
    else:
        # One scrypt at a time holds 32 MiB (N=2^15, r=8) while it runs.
        check(rss_peak - rss_before < 64 << 20,
              "relayd's RSS grows by less than 64 MiB during the flood (%d KiB)"
              % ((rss_peak - rss_before) >> 10))
    check("AUTH queue full (%d password checks waiting" % QUEUE_MAX in relay.log(),
          "relayd logs that the AUTH queue is full")
    # Once the leavers' checks are done the queue drains; then a login succeeds.
    deadline = time.time() + (QUEUE_MAX + 2) * check_s * 3 + 10
    r = ""
    while time.time() < deadline:
        r = login("127.0.0.4", "127.0.0.1", port, MALLORY, MALLORY_PW)
        if r.startswith("235"):
            break
        time.sleep(0.5)
    check(r.startswith("235"), "after the flood a login succeeds (%s)" % r[:40])
    drained = re.findall(r"AUTH queue drained; (\d+) AUTH attempts got 454", relay.log())
    print("relayd: queue drained after refusing %s" % drained)
    check(drained and sum(map(int, drained)) >= len(results["454"]),
          "relayd logs the drain with the number refused")


harness.main()
