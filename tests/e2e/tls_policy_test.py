#!/usr/bin/python3
"""End-to-end: TLS that an attacker cannot strip (issue 17): the downgrade memory, and how each
delivery used TLS.

relayd on loopback with two shards delivers through a real DNS server (unbound) to a real
receiver (aiosmtpd) for secure.example and plain.example, whose MX hosts share its address. First
it offers STARTTLS: the delivery to secure.example is encrypted, logged with its TLS mode, counted
in the metrics, and secure.example is remembered (`relayctl tls list`, and <spool>/tls-memory,
which a restart reads back). Then the same MX stops offering STARTTLS, as an attacker on the path
would make it: mail to secure.example is deferred with the reason, never sent in plain text,
while plain.example (never seen with TLS) is delivered in plain text and logged so. `relayctl
tls forget` lets secure.example's mail go in plain text again.

usage: tls_policy_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, RELAYCTL = harness.args()[0], harness.args()[1]
TMP = harness.scratch("tlspolicy-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
SINK = local_smtp.Sink()


@harness.fixture
def dns_port():
    with local_dns.unbound(TMP, local_dns.mx_zones(("secure.example", "plain.example"),
                                                   SINK_IP)) as port:
        yield port


@harness.fixture
def conf():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("tp-", dir="/tmp") + "/control.sock",
         "tls_policy": {"downgrade_memory": True, "memory_days": 30}}))


@harness.fixture
def relay():
    with relayd_process.Relayd(RELAYD, conf()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-4000:]))
        yield r


def submit(rcpt):
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", conf()[1])
    s.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\nSubject: tls\r\n"
               "Message-ID: <%s@client.test>\r\n\r\nHi.\r\n" % (rcpt, time.time_ns()))
    s.quit()


def relayctl(*args):
    r = subprocess.run([RELAYCTL] + list(args) + ["--config", conf()[0]], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def wait_for(predicate, what):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (WAIT_S, what))
    return None


def line(event, rcpt):
    """The latest `event` line of the delivery log for `rcpt` ({} when none comes)."""
    found = wait_for(lambda: [e for e in relayd_process.delivery_events(TMP + "/relay")
                              if e.get("event") == event and e.get("recipient") == rcpt],
                     "a %s line for %s" % (event, rcpt))
    return found[-1] if found else {}


def metric(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()
    m = re.search("^" + re.escape(name) + r" (\d+)$", body, re.M)
    return int(m.group(1)) if m else 0


@harness.case(1, "a delivery over STARTTLS is logged and counted with its mode, and remembered")
def remembered():
    with local_smtp.serving(SINK, SINK_IP, MX_PORT, TMP):
        relay()
        submit("a@secure.example")
        got = line("delivered", "a@secure.example")
        tls = got.get("tls", {})
        check(tls.get("version", "").startswith("TLS") and tls.get("mode") == "opportunistic",
              "encrypted; the test's self-signed certificate is not valid: opportunistic: %s"
              % tls)
        check(metric('relay_delivered_by_tls_total{mode="opportunistic"}') >= 1,
              "relay_delivered_by_tls_total counts it")
        code, out = relayctl("tls", "list")
        check(code == 0 and re.search(r"^secure\.example\s+\d{4}-\d\d-\d\d$", out, re.M) and
              "1 remembered" in out, "relayctl tls list names secure.example:\n%s" % out)
    # The memory is written when the relay stops, and read back when it starts.
    relay().stop()
    memory = open(TMP + "/relay/spool/tls-memory").read()
    check(re.search(r"^secure\.example\t\d+$", memory, re.M), "on disk: %r" % memory)
    relay().start()


@harness.case(2, "STARTTLS stripped: a remembered domain is deferred, never sent in plain text")
def stripped():
    with local_smtp.serving(SINK, SINK_IP, MX_PORT, TMP, tls=False):
        submit("plain@plain.example")
        got = line("delivered", "plain@plain.example")
        check(got.get("tls") == {"mode": "none"}, "a domain never seen with TLS goes in plain "
              "text, logged so: %s" % got.get("tls"))
        submit("b@secure.example")
        held = line("deferred", "b@secure.example")
        reason = held.get("reply", {}).get("text", "") if isinstance(held.get("reply"), dict) \
            else str(held)
        check("TLS is required for secure.example" in str(held) and
              "offered no STARTTLS" in str(held) and held.get("category") == "bad-connection",
              "deferred with the reason: %s" % (reason or held))
        check(not SINK.delivered_to("b@secure.example"), "nothing reached the MX in plain text")
        check(metric('relay_delivered_by_tls_total{mode="none"}') >= 1,
              "the plain-text delivery is counted as none")
        code, out = relayctl("tls", "forget", "secure.example")
        check(code == 0 and "plain text is allowed again" in out, "tls forget: %s" % out)
        code, out = relayctl("tls", "forget", "secure.example")
        check(code == 1 and "not remembered" in out, "a second forget says so: %s" % out)
        code, out = relayctl("queue", "retry", "--domain", "secure.example")
        check(code == 0, "retry: %s" % out)
        wait_for(lambda: SINK.delivered_to("b@secure.example"), "b@ delivered after tls forget")
        code, out = relayctl("tls", "list")
        check(code == 0 and "0 remembered" in out, "nothing remembered now:\n%s" % out)


harness.main()
