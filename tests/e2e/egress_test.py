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

usage: egress_test.py RELAYD     (as root, in a fresh network namespace)
"""
import ipaddress
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tomllib

from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helper, found through the path above)
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check, failures  # noqa: E402,F401

RELAYD = sys.argv[1]
PREFIX = ipaddress.ip_network("2001:db8:25::/64")
SINK_ADDR = "2001:db8:53::25"
BAD_SOURCE = "2001:db8:99::1"
MESSAGES = 8



def skip(reason):
    print("SKIP: " + reason, flush=True)
    sys.exit(0)


def ip(*args):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


# --- the namespace's network: lo, the AnyIP prefix and the receiver's address -------------------
# Refuse to touch a real network: in a fresh namespace lo is the only interface.
ok, links = ip("-o", "link", "show")
if not ok:
    skip("iproute2 does not work here: " + links)
if len([l for l in links.splitlines() if l.strip()]) != 1 or ": lo:" not in links:
    sys.exit("not in a fresh network namespace (interfaces: %s); run through egress_test.sh"
             % links)
for args in (("link", "set", "lo", "up"),
             ("-6", "route", "add", "local", str(PREFIX), "dev", "lo"),
             ("-6", "addr", "add", SINK_ADDR + "/128", "dev", "lo", "nodad")):
    ok, out = ip(*args)
    if not ok:
        skip("ip %s failed: %s" % (" ".join(args), out))
probe = socket.socket(socket.AF_INET6)
try:
    probe.bind(("::1", 0))
except OSError as e:
    skip("no IPv6 on lo in the namespace: %s" % e)
probe.close()

TMP = tempfile.mkdtemp(prefix="egress-", dir=os.environ.get("TEST_TMPDIR"))

# --- the receiver ------------------------------------------------------------------------------
received = []  # (peer ip, EHLO name, rcpt_tos)
lock = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            received.append((session.peer[0], session.host_name, list(envelope.rcpt_tos)))
        return "250 2.0.0 OK stored"


s = socket.socket(socket.AF_INET6)
s.bind((SINK_ADDR, 0))
MX_PORT = s.getsockname()[1]
s.close()
sink = Controller(Sink(), hostname=SINK_ADDR, port=MX_PORT, ready_timeout=10)
sink.start()
harness.stop_at_exit(sink)

# --- DNS: the MX has only an AAAA record ---------------------------------------------------------
unbound, DNS_PORT = local_dns.start_unbound(TMP, """  local-zone: "test." static
  local-data: "six.test. 300 IN MX 10 mx.six.test."
  local-data: "mx.six.test. 300 IN AAAA %s"
""" % SINK_ADDR)
harness.stop_at_exit(unbound)

# --- relayd ------------------------------------------------------------------------------------
conf_dir = TMP + "/relay"
# --no-dkim: what is checked here is the source each message leaves from, not its signature.
init = subprocess.run([RELAYD, "--init", conf_dir, "--domain", "example.com", "--hostname",
                       "relay.example.com", "--no-dkim"],
                      capture_output=True, text=True, check=True)
PASSWORD = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
conf_path = conf_dir + "/relayd.toml"
defaults = tomllib.load(open(conf_path, "rb"))
for table, key, value in (("submission", "listen", ["127.0.0.1:2587"]),
                          ("submission", "listen_tls", ["127.0.0.1:2465"]),
                          (None, "shards", 0), ("queue", "segment_bytes", 64 << 20),
                          ("delivery", "dns_servers", []), ("delivery", "mx_port", 25),
                          ("delivery", "family", "ipv4-first"),
                          ("delivery", "strategy", "round-robin"),
                          ("retry", "intervals_s", [60, 300, 900, 1800, 3600]),
                          ("retry", "jitter_fraction", 0.1)):
    got = (defaults if table is None else defaults.get(table, {})).get(key)
    check(got == value, "default config has %s%s = %r" % (table + "." if table else "", key, value))
settings = {
    "submission": {"listen": ["127.0.0.1:0"], "listen_tls": []},
    "shards": 1,
    "queue": {"segment_bytes": 8 << 20},
    "delivery": {"dns_servers": ["127.0.0.1:%d" % DNS_PORT], "mx_port": MX_PORT,
                 "family": "ipv6-only",
                 "source": [{"prefix": str(PREFIX), "count": 4, "ehlo_name": "mail{n}.example.com"},
                            {"address": str(BAD_SOURCE), "ehlo_name": "refused.example.com"}]},
    "retry": {"intervals_s": [1, 1, 3600], "jitter_fraction": 0.0},
    "control_socket": tempfile.mkdtemp(dir="/tmp") + "/control.sock"}
# One connection per message, so that every message picks its source anew.
relayd_process.configure(conf_path, settings, append="""
[[shaping]]
name = "six"
domains = ["six.test"]
messages_per_connection_max = 1
""")
log_path = TMP + "/relayd.log"
relayd = subprocess.Popen([RELAYD, "--config", conf_path], stdout=open(log_path, "w"),
                          stderr=subprocess.STDOUT)
harness.stop_at_exit(relayd)
PORT = None
for _ in range(300):
    m = re.search(r"submission \(STARTTLS\) on 127\.0\.0\.1:(\d+)", open(log_path).read())
    if m:
        PORT = int(m.group(1))
        break
    if relayd.poll() is not None:
        break
    time.sleep(0.1)
if PORT is None:
    print(open(log_path).read())
    sys.exit("relayd did not start")


def submit(rcpt):
    c = smtplib.SMTP("127.0.0.1", PORT, local_hostname="client.test", timeout=30)
    c.starttls(context=ssl._create_unverified_context())
    c.login("app@example.com", PASSWORD)
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


# One message at a time: each is delivered before the next is submitted, so the order of the
# deliveries is the order of the sources the pool handed out.
for i in range(MESSAGES):
    rcpt = "user%d@six.test" % i
    submit(rcpt)
    check(wait_for(lambda: any(rcpt in r[2] for r in received), 15), "%s delivered" % rcpt)

with lock:
    got = list(received)
peers = [r[0] for r in got]
print("deliveries (peer, EHLO):", [(r[0], r[1]) for r in got], flush=True)
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

log = open(log_path).read()
suspended = [l for l in log.splitlines() if "egress source " + BAD_SOURCE in l and "suspended" in l]
check(len(suspended) >= 1, "the refused source is suspended with a log line: %r"
      % (suspended[:1],))
check(not any("egress source 2001:db8:25::" in l and "suspended" in l for l in log.splitlines()),
      "no source of the prefix was suspended")

relayd.send_signal(signal.SIGTERM)
check(relayd.wait(timeout=30) == 0, "relayd stops cleanly")
unbound.terminate()
unbound.wait(timeout=10)
sink.stop()
if failures:
    print(log[-6000:])
else:
    shutil.rmtree(TMP, ignore_errors=True)
harness.finish()
