#!/usr/bin/python3
"""End-to-end: the DSN extension (RFC 3461; issue 16, item 6).

relayd on loopback, clients submitting with NOTIFY, RET, ENVID and ORCPT, two receivers found
through a real DNS server (unbound):

  example.org, example.com  aiosmtpd at 127.0.0.2, which does not offer DSN; it refuses
                            gone*@example.org for good (550 5.1.1), and takes the DSNs to
                            app@example.com
  dsn.test                  Postfix's smtp-sink at 127.0.0.3, which offers DSN and dumps each
                            message with the MAIL and RCPT arguments it got (X-Mail-Args,
                            X-Rcpt-Args)

Shows: the parameters are taken (no more 555); NOTIFY=SUCCESS to a server without DSN gets a
"relayed" DSN naming ENVID and ORCPT; NOTIFY=NEVER silences a failure DSN that a message without
NOTIFY gets; RET=FULL returns the whole message, RET=HDRS only its header section; a server that
offers DSN gets the parameters on its MAIL and RCPT commands and no DSN comes from the relay.

usage: dsn_test.py RELAYD [--case N[,M...]] [--list]
"""
import glob
import os
import smtplib
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("dsn-")
SINK_IP, DSN_SINK_IP = "127.0.0.2", "127.0.0.3"
MX_PORT = local_dns.free_port([SINK_IP, DSN_SINK_IP])
SMTP_SINK = "/usr/sbin/smtp-sink"
WAIT_S = 30


@harness.fixture
def sink():
    s = local_smtp.Sink(lambda address: "550 5.1.1 no such user"
                        if address.startswith("gone") else None)
    with local_smtp.serving(s, SINK_IP, MX_PORT, TMP):
        yield s


@harness.fixture
def dsn_sink():
    """Postfix's smtp-sink, offering DSN, dumping each message into TMP/dsn-sink/."""
    os.makedirs(TMP + "/dsn-sink")
    p = subprocess.Popen([SMTP_SINK, "-u", "root", "-d", TMP + "/dsn-sink/%M.",
                          "%s:%d" % (DSN_SINK_IP, MX_PORT), "16"],
                         stdout=open(TMP + "/dsn-sink.log", "w"), stderr=subprocess.STDOUT)
    try:
        yield p
    finally:
        harness.stop_process(p)


@harness.fixture
def dns_port():
    zones = local_dns.mx_zones(("example.org", "example.com"), SINK_IP)
    zones += local_dns.mx_zones(("dsn.test",), DSN_SINK_IP)
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def relay():
    sink()
    dsn_sink()
    conf, password = relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("dsn-", dir="/tmp") + "/control.sock"}))
    with relayd_process.Relayd(RELAYD, conf, TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r, password


def submit(rcpts, subject, mail_options=(), rcpt_options=(), body="Hi.\r\n"):
    """Sends one message from app@example.com with the given DSN parameters (each recipient gets
    `rcpt_options`); returns the reply to each command that was not 250."""
    r, password = relay()
    s = smtplib.SMTP("127.0.0.1", r.port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", password)
    s.ehlo("client.test")
    check(s.has_extn("dsn"), "the relay offers DSN")
    refused = s.sendmail("app@example.com", rcpts,
                         "From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\n%s"
                         % (", ".join(rcpts), subject, body),
                         mail_options=list(mail_options), rcpt_options=list(rcpt_options))
    s.quit()
    return refused


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def wait_for(predicate, what, seconds=WAIT_S):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (seconds, what))
    return None


def outcome(event, rcpt):
    return wait_for(lambda: [e for e in events()
                             if e.get("event") == event and e.get("recipient") == rcpt],
                    "a %s line for %s" % (event, rcpt))


def dsns_about(rcpt):
    """The DSNs the sink received for app@example.com that name `rcpt`, as text."""
    return [m[2].decode(errors="replace") for m in sink().delivered_to("app@example.com")
            if m[0] in ("", "<>") and rcpt.encode() in m[2]]


@harness.case(1, "NOTIFY=SUCCESS to a server without DSN: a relayed DSN with ENVID and ORCPT")
def relayed():
    check(submit(["ok@example.org"], "relayed", mail_options=["ENVID=batch+2B7"],
                 rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Ok+2Bx@example.org"]) == {},
          "the parameters are taken")
    outcome("delivered", "ok@example.org")
    found = wait_for(lambda: dsns_about("ok@example.org"), "a DSN about ok@example.org") or [""]
    text = found[0]
    for field in ("Action: relayed\r\n", "Status: 2.0.0\r\n",
                  "Original-Envelope-Id: batch+7\r\n",
                  "Original-Recipient: rfc822; Ok+x@example.org\r\n",
                  "Final-Recipient: rfc822; ok@example.org\r\n"):
        check(field in text, "the relayed DSN has %r" % field.strip())
    sent = (outcome("dsn_sent", "app@example.com") or [{}])[-1]
    check(sent.get("dsn") == "relayed", "the log says dsn_sent relayed: %s" % sent)


@harness.case(2, "NOTIFY=NEVER: no DSN for a bounce that gets one without it")
def notify_never():
    submit(["gone-never@example.org"], "never", rcpt_options=["NOTIFY=NEVER"])
    submit(["gone-default@example.org"], "default")
    outcome("bounced", "gone-never@example.org")
    outcome("bounced", "gone-default@example.org")
    wait_for(lambda: dsns_about("gone-default@example.org"), "the DSN without NOTIFY")
    time.sleep(1)  # the DSN of the other would have been queued at the same time
    check(not dsns_about("gone-never@example.org"), "no DSN for NOTIFY=NEVER")


@harness.case(3, "RET=FULL returns the whole message, RET=HDRS its header section")
def ret():
    submit(["gone-full@example.org"], "full", mail_options=["RET=FULL"],
           body="the body that comes back\r\n")
    submit(["gone-hdrs@example.org"], "hdrs", mail_options=["RET=HDRS"],
           body="the body that stays\r\n")
    full = (wait_for(lambda: dsns_about("gone-full@example.org"), "the RET=FULL DSN") or [""])[0]
    hdrs = (wait_for(lambda: dsns_about("gone-hdrs@example.org"), "the RET=HDRS DSN") or [""])[0]
    check("Content-Type: message/rfc822" in full and "the body that comes back" in full,
          "RET=FULL: message/rfc822 with the body")
    check("Content-Type: text/rfc822-headers" in hdrs and "the body that stays" not in hdrs and
          "Subject: hdrs" in hdrs, "RET=HDRS: the header section only")


@harness.case(4, "a server that offers DSN gets RET, ENVID, NOTIFY and ORCPT; no DSN from us")
def passed_on():
    check(submit(["someone@dsn.test"], "passed on", mail_options=["RET=HDRS", "ENVID=e+3D1"],
                 rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;Someone@dsn.test"]) == {},
          "taken")
    outcome("delivered", "someone@dsn.test")

    def dumped():
        for path in glob.glob(TMP + "/dsn-sink/*"):
            text = open(path, errors="replace").read()
            if "Subject: passed on" in text:
                return text
        return None
    text = wait_for(dumped, "smtp-sink dumped the message") or ""
    mail_args = [l for l in text.splitlines() if l.startswith("X-Mail-Args:")]
    rcpt_args = [l for l in text.splitlines() if l.startswith("X-Rcpt-Args:")]
    check(mail_args and "RET=HDRS" in mail_args[0] and "ENVID=e+3D1" in mail_args[0],
          "MAIL carried RET and ENVID: %s" % mail_args)
    check(rcpt_args and "NOTIFY=SUCCESS" in rcpt_args[0] and
          "ORCPT=rfc822;Someone@dsn.test" in rcpt_args[0], "RCPT carried NOTIFY and ORCPT: %s"
          % rcpt_args)
    time.sleep(1)
    check(not dsns_about("someone@dsn.test"), "the server reports success itself: no DSN from us")


harness.main()
