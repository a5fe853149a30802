#!/usr/bin/python3
"""End-to-end: what happened to the mail, told back to the sender (issue 15, items 1 and 3).

relayd on loopback delivers through a real DNS server (unbound) to a real receiver (aiosmtpd)
that refuses some recipients the way the big receivers do:

  gone@example.org      550 5.1.1 The email account that you tried to reach does not exist.
  full@example.org      452 4.2.2 The email account that you tried to reach is over quota.
  blocked@example.org   554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using
                        zen.spamhaus.org
  throttled@example.org 451 4.7.1 custom throttle (a [[bounces.rule]] of the config's own makes
                        it rate-limited; the shipped rules would say policy)

and accepts everything else, DSNs to app@example.com included. Shows: each failure carries its
category in the delivery log, the DSN (X-Bounce-Category) and the metrics; the hard bounce puts
the address on the sending domain's suppression list, so the next RCPT to it is refused with
550 5.7.1 naming the reason, while the spam-block bounce does not; `relayctl suppress` lists,
exports, removes and adds entries, and the running relay follows at the next RCPT. A second
relayd with `[suppression] at_rcpt = "accept"` takes a suppressed recipient, leaves it out of the
queued message and logs it as suppressed.

usage: feedback_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import os
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
TMP = harness.scratch("feedback-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
REPLIES = {
    "gone": "550 5.1.1 The email account that you tried to reach does not exist.",
    "full": "452 4.2.2 The email account that you tried to reach is over quota.",
    "blocked": "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using "
               "zen.spamhaus.org",
    "throttled": "451 4.7.1 custom throttle",
}


def reply_for(address):
    return REPLIES.get(address.split("@")[0])


@harness.fixture
def sink():
    s = local_smtp.Sink(reply_for)
    with local_smtp.serving(s, SINK_IP, MX_PORT, TMP):
        yield s


@harness.fixture
def dns_port():
    with local_dns.unbound(TMP, local_dns.mx_zones(("example.org", "example.com"),
                                                   SINK_IP)) as port:
        yield port


@harness.fixture
def config():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("fb-", dir="/tmp") + "/control.sock"}),
        append="""
[[bounces.rule]]
category = "rate-limited"
text = ['custom throttle']
""")


@harness.fixture
def relay():
    sink()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


def submit(rcpts):
    """Sends one message to `rcpts`; returns {rcpt: (code, text)} of each refused at RCPT (an
    empty dict when all were taken) and whether the message was queued."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    try:
        refused = s.sendmail("app@example.com", rcpts,
                             "From: app@example.com\r\nTo: %s\r\nSubject: feedback\r\n\r\nHi.\r\n"
                             % ", ".join(rcpts))
        queued = True
    except smtplib.SMTPRecipientsRefused as e:
        refused, queued = e.recipients, False
    s.quit()
    return {r: (code, text.decode(errors="replace")) for r, (code, text) in refused.items()}, queued


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def wait_for(predicate, what):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (WAIT_S, what))
    return None


def outcome(event, rcpt):
    return wait_for(lambda: [e for e in events()
                             if e.get("event") == event and e.get("recipient") == rcpt],
                    "a %s line for %s" % (event, rcpt))


def dsn_for(rcpt):
    """The DSN the sink received about `rcpt` (to app@example.com, from the null sender)."""
    return wait_for(lambda: [m for m in sink().delivered_to("app@example.com")
                             if m[0] in ("", "<>") and rcpt.encode() in m[2]],
                    "a DSN about %s" % rcpt)


@harness.fixture
def traffic():
    """The four refused recipients and one good one, sent once: their outcomes are in."""
    refused, queued = submit(["gone@example.org", "full@example.org", "blocked@example.org",
                              "throttled@example.org", "fine@example.org"])
    check(queued and not refused, "the relay takes all five recipients: %s" % refused)
    for event, rcpt in (("bounced", "gone"), ("deferred", "full"), ("bounced", "blocked"),
                        ("deferred", "throttled"), ("delivered", "fine")):
        outcome(event, rcpt + "@example.org")
    return True


def relayctl(*args):
    r = subprocess.run([RELAYCTL, "suppress"] + list(args) + ["--config", config()[0]],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


@harness.case(1, "each failure carries its category in the delivery log")
def categories_in_the_log():
    traffic()
    expected = {("bounced", "gone"): "bad-mailbox", ("deferred", "full"): "quota",
                ("bounced", "blocked"): "spam-block", ("deferred", "throttled"): "rate-limited"}
    for (event, name), category in expected.items():
        lines = [e for e in events() if e.get("event") == event and
                 e.get("recipient") == name + "@example.org"]
        check(lines and lines[0].get("category") == category,
              "%s@example.org: %s, category %s: %s" % (name, event, category, lines[:1]))
    delivered = [e for e in events() if e.get("event") == "delivered" and
                 e.get("recipient") == "fine@example.org"]
    check(delivered and "category" not in delivered[0], "a delivery has no category")


@harness.case(2, "the DSN names the category (X-Bounce-Category) beside the status")
def categories_in_the_dsn():
    traffic()
    for rcpt, status, category in (("gone@example.org", "5.1.1", "bad-mailbox"),
                                   ("blocked@example.org", "5.7.1", "spam-block")):
        dsns = dsn_for(rcpt) or []
        text = dsns[0][2].decode(errors="replace") if dsns else ""
        check("Status: %s\r\nX-Bounce-Category: %s\r\n" % (status, category) in text,
              "the DSN about %s: Status %s, X-Bounce-Category %s" % (rcpt, status, category))


@harness.case(3, "relay_recipient_failures_total counts failures by category and site")
def categories_in_the_metrics():
    traffic()
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()
    for result, category in (("bounced", "bad-mailbox"), ("deferred", "quota"),
                             ("bounced", "spam-block"), ("deferred", "rate-limited")):
        series = 'relay_recipient_failures_total{result="%s",category="%s",site="default"} 1' % (
            result, category)
        check(series + "\n" in body, series)


@harness.case(4, "a hard bounce suppresses the address for its sending domain; a block does not")
def bounce_suppresses():
    traffic()
    refused = wait_for(lambda: submit(["gone@example.org"])[0],
                       "RCPT to gone@example.org refused after its bounce")
    code, text = (refused or {}).get("gone@example.org", (0, ""))
    check(code == 550 and text.startswith("5.7.1 gone@example.org is on the suppression list "
                                          "of example.com: bad-mailbox bounce on "),
          "RCPT to the bounced address: 550 5.7.1 with the reason: %d %s" % (code, text))
    refused, queued = submit(["blocked@example.org"])
    check(queued and not refused, "the spam-block bounce is about the relay, not the address: "
          "RCPT taken")
    rc, out = relayctl("list", "--tenant", "example.com")
    check(rc == 0 and "gone@example.org  bounce bad-mailbox" in out and "blocked@" not in out,
          "relayctl suppress list shows the bounce: %s" % out.strip())


@harness.case(5, "relayctl suppress acts on the running relay at the next RCPT")
def relayctl_acts_at_once():
    relay()
    rc, out = relayctl("add", "Manual@Example.org", "--tenant", "example.com", "--note", "asked")
    check(rc == 0, "relayctl suppress add: %s" % out.strip())
    refused, _ = submit(["manual@example.org"])
    code, text = refused.get("manual@example.org", (0, ""))
    check(code == 550 and "added by the operator" in text,
          "the added address is refused at once, no reload: %d %s" % (code, text))
    export = TMP + "/export.csv"
    rc, out = relayctl("export", "--out", export)
    lines = open(export).read().splitlines() if rc == 0 else []
    check(lines[:1] == ["tenant,address,reason,category,time,queue_id,detail"] and
          any(l.startswith("example.com,manual@example.org,manual,,") for l in lines),
          "relayctl suppress export writes CSV: %s" % lines[:3])
    rc, out = relayctl("remove", "manual@example.org", "--tenant", "example.com")
    check(rc == 0, "relayctl suppress remove: %s" % out.strip())
    refused, queued = submit(["manual@example.org"])
    check(queued and not refused, "removed: the next RCPT is taken")
    rc, out = relayctl("import", export)
    refused, _ = submit(["manual@example.org"])
    check(rc == 0 and refused.get("manual@example.org", (0,))[0] == 550,
          "relayctl suppress import puts the export back: %s" % out.strip())
    rc, out = relayctl("remove", "nobody@example.org", "--tenant", "example.com")
    check(rc == 1 and "not on the list" in out, "removing an absent entry fails: %s" % out.strip())


@harness.fixture
def accepting_relay():
    """A relayd of its own whose list has one entry, and that takes suppressed recipients."""
    sink()
    conf, password = relayd_process.init(RELAYD, TMP + "/accepting", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("fba-", dir="/tmp") + "/control.sock",
         "suppression": {"at_rcpt": "accept"}}))
    r = subprocess.run([RELAYCTL, "suppress", "add", "unsub@example.org", "--tenant",
                        "example.com", "--reason", "unsubscribe", "--config", conf],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "relayctl suppress add before the start: %s" % r.stderr.strip())
    with relayd_process.Relayd(RELAYD, conf, TMP + "/accepting.log") as relay:
        harness.on_failure(lambda: print(relay.log()[-4000:]))
        yield relay, password


def accepting_events():
    return relayd_process.delivery_events(TMP + "/accepting")


@harness.case(6, 'at_rcpt = "accept": a suppressed recipient is taken, not queued, and logged')
def accept_mode():
    relay, password = accepting_relay()
    s = smtplib.SMTP("127.0.0.1", relay.port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", password)
    body = "From: app@example.com\r\nSubject: both\r\n\r\nHi.\r\n"
    refused = s.sendmail("app@example.com", ["unsub@example.org", "keep@example.org"], body)
    check(not refused, "both recipients are taken at RCPT: %s" % refused)
    s.mail("app@example.com")
    s.rcpt("unsub@example.org")
    s.putcmd("data")
    code, _ = s.getreply()
    s.send(b"From: app@example.com\r\nSubject: only\r\n\r\nHi.\r\n.\r\n")
    code, text = s.getreply()
    check(code == 250 and b"not queued, every recipient is suppressed" in text,
          "a message for the suppressed recipient alone: 250, not queued: %d %s" % (code, text))
    s.quit()
    delivered = wait_for(lambda: sink().delivered_to("keep@example.org"),
                         "the other recipient is delivered")
    check(delivered and not sink().delivered_to("unsub@example.org"),
          "nothing reaches the suppressed recipient")
    lines = wait_for(lambda: [e for e in accepting_events() if e.get("event") == "suppressed"],
                     "suppressed lines in the delivery log")
    check(lines and len(lines) == 2 and all(e.get("recipient") == "unsub@example.org"
                                            for e in lines) and
          "unsubscribe" in lines[0].get("reason", "") and lines[0].get("queue_id") and
          lines[1].get("queue_id", "") == "",
          "two suppressed lines, the first with the queue id of the message sent to the other: %s"
          % lines)
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port_of(relay),
                                  timeout=10).read().decode()
    check("relay_recipients_suppressed_total 2\n" in body, "relay_recipients_suppressed_total 2")


def metrics_port_of(relay):
    import re
    m = re.findall(r"metrics on http://\S+ \(port (\d+)\)", relay.log())
    return int(m[-1]) if m else 0


harness.main()
