#!/usr/bin/python3
"""IPv6 egress rotation, end to end, inside a network namespace of its own (egress_test.sh runs
this under `unshare --net`): an AnyIP route for 2001:db8:25::/64 on lo, unbound serving a zone
whose MX has only an AAAA record (2001:db8:53::25, on lo), an aiosmtpd receiver there recording the
peer address and EHLO name of each delivery, and relayd with `family = "ipv6-only"`, round-robin
over four sources derived from the prefix plus one explicit source (2001:db8:99::1) that no
route covers, so the kernel refuses it (EADDRNOTAVAIL) and relayd must suspend it.

Shows: successive deliveries leave from different addresses of the prefix, each with its own
EHLO name (mail{n}.example.com for 2001:db8:25::n); the refused source is suspended with a log
line, nothing leaves from it, and every message is still delivered by the others.

The messages go out once, whichever cases run (the deliveries fixture); case 1 needs neither
the namespace's network nor relayd running.

usage: egress_test.py RELAYD [--case N[,M...]] [--list]    (as root, in a fresh network namespace)
"""
import ipaddress
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib

from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helper, found through the path above)
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
PREFIX = ipaddress.ip_network("2001:db8:25::/64")
SINK_ADDR = "2001:db8:53::25"
BAD_SOURCE = "2001:db8:99::1"
MESSAGES = 8
TMP = harness.scratch("egress-")


def ip(*args):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


@harness.fixture
def network():
    """The namespace's network: lo, the AnyIP prefix and the receiver's address."""
    # Refuse to touch a real network: in a fresh namespace lo is the only interface.
    ok, links = ip("-o", "link", "show")
    if not ok:
        harness.skip("iproute2 does not work here: " + links)
    if len([l for l in links.splitlines() if l.strip()]) != 1 or ": lo:" not in links:
        raise RuntimeError("not in a fresh network namespace (interfaces: %s); run through "
                           "egress_test.sh" % links)
    for args in (("link", "set", "lo", "up"),
                 ("-6", "route", "add", "local", str(PREFIX), "dev", "lo"),
                 ("-6", "addr", "add", SINK_ADDR + "/128", "dev", "lo", "nodad")):
        ok, out = ip(*args)
        if not ok:
            harness.skip("ip %s failed: %s" % (" ".join(args), out))
    probe = socket.socket(socket.AF_INET6)
    try:
        probe.bind(("::1", 0))
    except OSError as e:
        harness.skip("no IPv6 on lo in the namespace: %s" % e)
    probe.close()


# --- the receiver ------------------------------------------------------------------------------
received = []  # (peer ip, EHLO name, rcpt_tos)
lock = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            received.append((session.peer[0], session.host_name, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK stored"


@harness.fixture
def mx_port():
    """The receiver on SINK_ADDR; its port."""
    network()
    s = socket.socket(socket.AF_INET6)
    s.bind((SINK_ADDR, 0))
    port = s.getsockname()[1]
    s.close()
    sink = Controller(Sink(), hostname=SINK_ADDR, port=port, ready_timeout=10)
    sink.start()
    try:
        yield port
    finally:
        sink.stop()


@harness.fixture
def initialized():
    """relayd --init's configuration: (its path, the user's password, what it holds)."""
    conf_dir = TMP + "/relay"
    # --no-dkim: what is checked here is the source each message leaves from, not its signature.
    init = subprocess.run([RELAYD, "--init", conf_dir, "--domain", "example.com", "--hostname",
                           "relay.example.com", "--no-dkim"],
                          capture_output=True, text=True, check=True)
    password = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
    conf_path = conf_dir + "/relayd.toml"
    return conf_path, password, tomllib.load(open(conf_path, "rb"))


@harness.fixture
def relay():
    conf_path, password, _ = initialized()
    port = mx_port()
    # --- DNS: the MX has only an AAAA record ---------------------------------------------------
    with local_dns.unbound(TMP, """  local-zone: "test." static
  local-data: "six.test. 300 IN MX 10 mx.six.test."
  local-data: "mx.six.test. 300 IN AAAA %s"
""" % SINK_ADDR) as dns_port:
        settings = {
            "submission": {"listen": ["127.0.0.1:0"], "listen_tls": []},
            "shards": 1,
            "queue": {"segment_bytes": 8 << 20},
            "delivery": {"dns_servers": ["127.0.0.1:%d" % dns_port], "mx_port": port,
                         "family": "ipv6-only",
                         "source": [{"prefix": str(PREFIX), "count": 4,
                                     "ehlo_name": "mail{n}.example.com"},
                                    {"address": str(BAD_SOURCE),
                                     "ehlo_name": "refused.example.com"}]},
            "retry": {"intervals_s": [1, 1, 3600], "jitter_fraction": 0.0},
            "control_socket": harness.scratch("egress-", dir="/tmp") + "/control.sock"}
        # One connection per message, so that every message picks its source anew.
        relayd_process.configure(conf_path, settings, append="""
[[shaping]]
name = "six"
domains = ["six.test"]
messages_per_connection_max = 1
""")
        with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
            harness.on_failure(lambda: print(r.log()[-6000:]))
            r.password = password
            yield r


def submit(rcpt):
    c = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    c.starttls(context=ssl._create_unverified_context())
    c.login("app@example.com", relay().password)
    c.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\nSubject: egress\r\n"
               "\r\nHello over IPv6.\r\n" % rcpt)
    c.quit()


def wait_for(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        with lock:
            if pred():
                return True
        time.sleep(0.05)
    with lock:
        return pred()


@harness.fixture
def deliveries():
    """The messages submitted one at a time, each delivered before the next is submitted, so that
    the order of the deliveries is the order of the sources the pool handed out: ([(recipient,
    delivered in time)], what the receiver got)."""
    relay()
    out = []
    for i in range(MESSAGES):
        rcpt = "user%d@six.test" % i
        submit(rcpt)
        out.append((rcpt, wait_for(lambda: any(rcpt in r[2] for r in received), 15)))
    with lock:
        got = list(received)
    print("deliveries (peer, EHLO):", [(r[0], r[1]) for r in got], flush=True)
    return out, got


@harness.case(1, "relayd --init writes the documented defaults")
def defaults():
    _, _, conf = initialized()
    for table, key, value in (("submission", "listen", ["127.0.0.1:2587"]),
                              ("submission", "listen_tls", ["127.0.0.1:2465"]),
                              (None, "shards", 0), ("queue", "segment_bytes", 64 << 20),
                              ("delivery", "dns_servers", []), ("delivery", "mx_port", 25),
                              ("delivery", "family", "ipv4-first"),
                              ("delivery", "strategy", "round-robin"),
                              ("retry", "intervals_s", [60, 300, 900, 1800, 3600]),
                              ("retry", "jitter_fraction", 0.1)):
        got = (conf if table is None else conf.get(table, {})).get(key)
        check(got == value, "default config has %s%s = %r"
              % (table + "." if table else "", key, value))


@harness.case(2, "deliveries rotate over the prefix's sources, each with its EHLO name")
def rotation():
    delivered, got = deliveries()
    for rcpt, ok in delivered:
        check(ok, "%s delivered" % rcpt)
    peers = [r[0] for r in got]
    check(len(got) == MESSAGES, "each message delivered exactly once (%d)" % len(got))
    check(all(ipaddress.ip_address(p) in PREFIX for p in peers),
          "every delivery left from an address of %s" % PREFIX)
    expected = {str(PREFIX[n]) for n in range(1, 5)}
    check(set(peers) == expected, "all four derived sources used: %s" % sorted(set(peers)))
    check(all(peers[i] != peers[i + 1] for i in range(len(peers) - 1)),
          "successive deliveries leave from different source addresses")
    for peer, ehlo, _ in got:
        n = int(ipaddress.ip_address(peer)) - int(PREFIX.network_address)
        check(ehlo == "mail%d.example.com" % n, "%s said EHLO %s" % (peer, ehlo))
    check(BAD_SOURCE not in peers, "nothing left from the refused source %s" % BAD_SOURCE)


@harness.case(3, "the refused source is suspended with a log line; relayd stops cleanly")
def refused_source():
    deliveries()
    log = relay().log()
    suspended = [l for l in log.splitlines()
                 if "egress source " + BAD_SOURCE in l and "suspended" in l]
    check(len(suspended) >= 1, "the refused source is suspended with a log line: %r"
          % (suspended[:1],))
    check(not any("egress source 2001:db8:25::" in l and "suspended" in l
                  for l in log.splitlines()),
          "no source of the prefix was suspended")
    check(relay().stop() == 0, "relayd stops cleanly")


harness.main()
