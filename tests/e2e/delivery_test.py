#!/usr/bin/python3
"""End-to-end delivery: relayd accepts mail over submission and delivers it to MX hosts found
through a real DNS server (unbound, on loopback, answering only from local zones) to real SMTP
receivers (aiosmtpd, with STARTTLS, on 127.0.0.x), DKIM-signed; retries, bounces (DSN), null MX,
implicit MX, MX fallback, required TLS and a restart in the middle.

The cases share one relayd and its peers. What several cases look at is sent once, by a fixture:
the first batch of seven messages, the restart while one of them waits for its retry, the
Gmail-like suspension, the two slow.test messages the operator cases work on, and the bounce and
delete of those. A case that finds relayd stopped (after the case that stops it) starts it again.

usage: delivery_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import asyncio
import base64
import email
import glob
import json
import os
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time

import dkim
import dns.resolver
from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, RELAYCTL = harness.args()[:2]
TMP = harness.scratch("delivery-")
# Unix socket paths are limited to 108 bytes; Bazel's temporary directory is longer.
CONTROL = harness.scratch("rc-", dir="/tmp") + "/control.sock"



# --- receivers -----------------------------------------------------------------------------
MX = {"good": "127.0.0.2", "nomx": "127.0.0.3", "mx2": "127.0.0.5", "tempfail": "127.0.0.6",
      "reject": "127.0.0.7", "dsn": "127.0.0.8", "plain": "127.0.0.9", "slow": "127.0.0.10",
      "stall": "127.0.0.11", "google": "127.0.0.12"}
DEAD = "127.0.0.4"  # nothing listens: the first MX of second.test
MX_PORT = local_dns.free_port(list(MX.values()) + [DEAD])

received = []  # (sink name, peer ip, tls?, mail_from, rcpt_tos, content bytes)
lock = threading.Lock()
tempfail_left = {"count": 2}  # the tempfail sink answers 451 to its first two transactions
slow_attempts = {"count": 0}  # the slow sink answers 451, always
stalled = {"count": 0}  # transactions the stall sink is sitting on
google_rcpts = {"count": 0}  # RCPTs seen by the "Google" MX; the first gets Gmail's 4.7.28


class Sink:
    def __init__(self, name):
        self.name = name

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.name == "reject":
            return "550 5.1.1 <%s>: no such user here" % address
        if self.name == "slow":
            with lock:
                slow_attempts["count"] += 1
            return "451 4.7.1 greylisted, come back later"
        if self.name == "google":
            with lock:
                google_rcpts["count"] += 1
                if google_rcpts["count"] == 1:
                    return ("421 4.7.28 Gmail has detected an unusual rate of unsolicited mail "
                            "originating from your IP address")
        if self.name == "tempfail":
            with lock:
                if tempfail_left["count"] > 0:
                    tempfail_left["count"] -= 1
                    return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.name == "stall":
            stalled["count"] += 1
            await asyncio.sleep(60)  # a receiver that takes its time: longer than the grace
        with lock:
            received.append((self.name, session.peer[0], session.ssl is not None,
                             envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK stored"


@harness.fixture
def sinks():
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.test", "-keyout", TMP + "/mx.key", "-out", TMP + "/mx.crt"],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(TMP + "/mx.crt", TMP + "/mx.key")
    controllers = []
    try:
        for name, ip in MX.items():
            kwargs = {} if name == "plain" else {"tls_context": tls}
            c = Controller(Sink(name), hostname=ip, port=MX_PORT, ready_timeout=10, **kwargs)
            c.start()
            controllers.append(c)
        yield controllers
    finally:
        for c in controllers:
            c.stop()

# --- DKIM key and DNS zones ------------------------------------------------------------------
@harness.fixture
def dkim_txt():
    """The relay's DKIM key in TMP/dkim.pem; the TXT data that publishes it."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", TMP + "/dkim.pem"],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", TMP + "/dkim.pem", "-pubout", "-outform",
                          "DER"], check=True, capture_output=True).stdout
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return " ".join('"%s"' % record[i:i + 200] for i in range(0, len(record), 200))


@harness.fixture
def dns_port():
    zones = """
  local-zone: "test." static
  local-zone: "example.com." static
  local-data: "good.test. 300 IN MX 10 mx1.good.test."
  local-data: "mx1.good.test. 300 IN A {good}"
  local-data: "nomx.test. 300 IN A {nomx}"
  local-data: "nullmx.test. 300 IN MX 0 ."
  local-data: "second.test. 300 IN MX 10 dead.second.test."
  local-data: "second.test. 300 IN MX 20 mx2.second.test."
  local-data: "dead.second.test. 300 IN A {dead}"
  local-data: "mx2.second.test. 300 IN A {mx2}"
  local-data: "tempfail.test. 300 IN MX 10 mx.tempfail.test."
  local-data: "mx.tempfail.test. 300 IN A {tempfail}"
  local-data: "reject.test. 300 IN MX 10 mx.reject.test."
  local-data: "mx.reject.test. 300 IN A {reject}"
  local-data: "plain.test. 300 IN MX 10 mx.plain.test."
  local-data: "mx.plain.test. 300 IN A {plain}"
  local-data: "slow.test. 300 IN MX 10 mx.slow.test."
  local-data: "mx.slow.test. 300 IN A {slow}"
  local-data: "stall.test. 300 IN MX 10 mx.stall.test."
  local-data: "mx.stall.test. 300 IN A {stall}"
  local-zone: "google.com." static
  local-data: "gmail.test. 300 IN MX 5 gmail-smtp-in.l.google.com."
  local-data: "hosted.test. 300 IN MX 5 gmail-smtp-in.l.google.com."
  local-data: "gmail-smtp-in.l.google.com. 300 IN A {google}"
  local-data: "example.com. 300 IN MX 10 mx.example.com."
  local-data: "mx.example.com. 300 IN A {dsn}"
  local-data: 'relay._domainkey.example.com. 300 IN TXT {txt}'
""".format(dead=DEAD, txt=dkim_txt(), **MX)
    with local_dns.unbound(TMP, zones) as port:
        yield port


def resolver():
    """A resolver asking the test's DNS server, for the DKIM check at the receiver."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_port()
    return r


# --- relayd ------------------------------------------------------------------------------------
conf_dir = TMP + "/relay"
log_path = TMP + "/relayd.log"


def show_logs():
    print(open(log_path).read()[-6000:])
    for path in glob.glob(conf_dir + "/log/delivery-*.log"):
        print(open(path).read()[-4000:])


@harness.fixture
def relayd():
    sinks()
    conf_path, password = relayd_process.init(RELAYD, conf_dir, relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT),
        # Two quick retries, then an hour: long enough that only `relayctl queue retry` brings a
        # fourth. Attempts at about 0, 1 and 2 s stay under delay_warning_s; the operator's retry
        # of a slow.test message comes later and brings the one "delayed" DSN.
        {"retry": {"intervals_s": [1, 1, 3600], "jitter_fraction": 0.0, "delay_warning_s": 4},
         "control_socket": CONTROL}),
        append="""
[[shaping]]
name = "plain-test"
domains = ["plain.test"]
tls = "required"

[[dkim.key]]
domain = "example.com"
selector = "relay"
key = "%s/dkim.pem"
""" % TMP)
    with relayd_process.Relayd(RELAYD, conf_path, log_path) as r:
        harness.on_failure(show_logs)
        r.password = password
        yield r


def relay():
    """The shared relayd, started again if a case stopped it."""
    r = relayd()
    return r if r.running() else r.start()


def port():
    return relay().port()


def conf_path():
    return relayd().conf_path


def submit(rcpts, subject, sender="app@example.com"):
    s = smtplib.SMTP("127.0.0.1", port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", relay().password)
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nHello from the delivery test.\r\n"
           ".leading dot line\r\n" % (sender, ", ".join(rcpts), subject))
    s.sendmail(sender, rcpts, msg)
    s.quit()


def wait_for(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        with lock:
            if pred():
                return True
        time.sleep(0.1)
    with lock:
        return pred()


def got(sink, rcpt=None):
    return [r for r in received if r[0] == sink and (rcpt is None or rcpt in r[4])]


def relayctl(*args):
    r = subprocess.run([RELAYCTL] + list(args), capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def queue_id_of(rcpt):
    """The queue id of the live message for `rcpt`, from relayctl queue list and show."""
    domain = rcpt.split("@")[1]
    code, out = relayctl("queue", "list", "--spool", conf_dir + "/spool", "--domain", domain)
    for line in out.splitlines()[1:]:
        if not line.strip():
            continue
        qid = line.split()[0]
        code, shown = relayctl("queue", "show", qid, "--spool", conf_dir + "/spool")
        if rcpt in shown:
            return qid
    return None


def dsns_for(rcpt, action):
    return [d for d in got("dsn") if rcpt.encode() in d[5] and
            ("Action: " + action).encode() in d[5]]


# --- what several cases look at, sent once -------------------------------------------------------
@harness.fixture
def batch():
    """The first seven messages, one per kind of destination."""
    submit(["alice@good.test"], "to good")
    submit(["bob@nomx.test"], "implicit mx")
    submit(["carol@second.test"], "second mx")
    submit(["dave@tempfail.test"], "tempfail")
    submit(["erin@reject.test"], "rejected")
    submit(["frank@nullmx.test"], "null mx")
    submit(["gina@plain.test"], "tls required")


@harness.fixture
def restarted():
    """relayd restarted while dave@tempfail.test waits for its retry: (whether the 451 was seen
    first, relayd's exit status)."""
    batch()
    # The tempfail sink refuses twice with 451.
    seen = wait_for(lambda: tempfail_left["count"] < 2, 20)
    code = relay().stop()
    relay()
    return seen, code


@harness.fixture
def google_suspended():
    """Gmail's "421 4.7.28 ... unusual rate" to ivy@gmail.test, then jay@hosted.test at the same
    site: (whether the 421 came, the RCPTs the Google MX saw 3 s later)."""
    # One SMTP session for both messages, so that both are owned by the same shard.
    s = smtplib.SMTP("127.0.0.1", port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", relay().password)
    s.sendmail("app@example.com", ["ivy@gmail.test"],
               "From: app@example.com\r\nTo: ivy@gmail.test\r\nSubject: rate\r\n\r\nhi\r\n")
    answered = wait_for(lambda: google_rcpts["count"] >= 1, 20)
    time.sleep(0.5)
    s.sendmail("app@example.com", ["jay@hosted.test"],
               "From: app@example.com\r\nTo: jay@hosted.test\r\nSubject: same site\r\n\r\nhi\r\n")
    s.quit()
    time.sleep(3)  # ivy's retries at +1 s and +2 s fall inside the suspension (3600 s)
    return answered, google_rcpts["count"]


@harness.fixture
def slow_queued():
    """sam@ and sue@slow.test (always 451) after their three attempts: (whether they were made,
    sam's queue id, sue's)."""
    submit(["sam@slow.test"], "always 451")
    submit(["sue@slow.test"], "to be deleted")
    tried = wait_for(lambda: slow_attempts["count"] >= 6, 30)
    time.sleep(1)
    return tried, queue_id_of("sam@slow.test"), queue_id_of("sue@slow.test")


@harness.fixture
def bounced_and_deleted():
    """The operator bounces sam's message and deletes sue's: (relayctl's answer to the bounce,
    whether the bounce's DSN came, relayctl's answer to the delete)."""
    _, sam, sue = slow_queued()
    bounce = relayctl("queue", "bounce", sam, "--socket", CONTROL)
    dsn = wait_for(lambda: dsns_for("sam@slow.test", "failed"), 15)
    delete = relayctl("queue", "delete", sue, "--socket", CONTROL)
    return bounce, dsn, delete


# --- the cases -----------------------------------------------------------------------------------
@harness.case(1, "delivered over STARTTLS to the MX, DKIM-signed, byte for byte; implicit MX")
def delivered():
    batch()
    check(wait_for(lambda: got("good"), 20), "delivered to the MX of good.test")
    g = got("good")
    if g:
        check(g[0][2], "STARTTLS used where offered")
        check(g[0][3] == "app@example.com" and g[0][4] == ["alice@good.test"], "envelope kept")
        content = g[0][5]
        check(b"\r\n..leading" not in content and b"\r\n.leading dot line" in content,
              "dot-stuffing undone by the receiver: body byte-for-byte")

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            ans = resolver().resolve(name.rstrip("."), "TXT", lifetime=5)
            return b"".join(b"".join(r.strings) for r in ans)

        check(dkim.verify(content, dnsfunc=dnsfunc), "DKIM signature verifies at the receiver "
              "(python3-dkim, key from unbound)")
    check(wait_for(lambda: got("nomx"), 20), "no MX: delivered to the domain's A record")


@harness.case(2, "relayctl send-test submits, follows the delivery and says what to look for")
def send_test():
    # It submits through the running relay as the user, follows the delivery log and says what
    # to look for on arrival.
    r = subprocess.run([RELAYCTL, "send-test", "--config", conf_path(), "--server",
                        "127.0.0.1:%d" % port(), "--user", "app@example.com", "--to",
                        "tess@good.test", "--wait", "20"],
                       input=relay().password + "\n", capture_output=True, text=True, timeout=60)
    print("     " + r.stdout.replace("\n", "\n     ") + r.stderr)
    check(r.returncode == 0 and "TLSv1.3" in r.stdout and
          "accepted: 250 2.0.0 Ok: queued as" in r.stdout,
          "relayctl send-test submits over TLS with AUTH and the relay queues it")
    check(re.search(r"(?m)^delivered .*mx_host=\S+ .*reply_code=250", r.stdout) is not None,
          "send-test follows the delivery log to the delivery")
    check("dkim=pass header.d=example.com header.s=relay" in r.stdout and "spf=pass" in r.stdout,
          "send-test says what the recipient's headers should show")
    check(wait_for(lambda: got("good", "tess@good.test"), 10), "the test message arrives")
    r = subprocess.run([RELAYCTL, "send-test", "--config", conf_path(), "--server",
                        "127.0.0.1:%d" % port(), "--user", "app@example.com", "--to",
                        "tess@good.test", "--wait", "0"],
                       input="wrong\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 1 and "AUTH: 535" in r.stderr,
          "send-test with a wrong password says AUTH failed, exit 1: %s" % r.stderr.strip())


@harness.case(3, "the first MX unreachable: delivered by the second")
def second_mx():
    batch()
    check(wait_for(lambda: got("mx2"), 30), "first MX unreachable: delivered by the second")


@harness.case(4, "a message deferred with 451 is delivered after a restart")
def deferred_across_restart():
    seen, code = restarted()
    check(seen, "451 from tempfail.test seen")
    check(code == 0, "relayd stops cleanly while a message is deferred")
    check(wait_for(lambda: got("tempfail"), 40),
          "deferred message delivered after 4xx and a restart")


@harness.case(5, "550 at RCPT and a null MX each bounce: one DSN each, with the null sender")
def bounces():
    batch()
    # The DSNs go to app@example.com at example.com's MX.
    check(wait_for(lambda: len(got("dsn")) >= 2, 30), "two DSNs arrive at the sender's MX")
    dsns = got("dsn")
    texts = [d[5].decode("utf-8", "replace") for d in dsns]
    for rcpt, status in (("erin@reject.test", "5.1.1"), ("frank@nullmx.test", "5.1.10")):
        match = [t for t in texts if "Final-Recipient: rfc822; " + rcpt in t or
                 "Final-Recipient: rfc822;" + rcpt in t]
        check(len(match) == 1, "DSN for %s" % rcpt)
        if match:
            m = email.message_from_string(match[0])
            check(m.get_content_type() == "multipart/report" and
                  m.get_param("report-type") == "delivery-status",
                  "DSN for %s is multipart/report; report-type=delivery-status" % rcpt)
            check("Status: " + status in match[0], "DSN for %s has Status: %s" % (rcpt, status))
    for d in dsns:
        # aiosmtpd records MAIL FROM:<> as the text "<>".
        check(d[3] in ("", "<>"), "DSN sent with the null sender (%r)" % d[3])
    check(not got("reject"), "nothing delivered to the rejecting MX")


@harness.case(6, "exactly once, even across the restart; TLS required is never plain text")
def exactly_once():
    batch()
    restarted()
    time.sleep(3)
    for sink, rcpt in (("good", "alice@good.test"), ("nomx", "bob@nomx.test"),
                       ("mx2", "carol@second.test"), ("tempfail", "dave@tempfail.test")):
        check(len(got(sink, rcpt)) == 1,
              "%s delivered exactly once (%d)" % (rcpt, len(got(sink, rcpt))))
    check(not got("plain"), "TLS required by the shaping rule: not delivered in plain text")


@harness.case(7, "Gmail's 4.7.28 suspends the site for every domain hosted there")
def google_suspension():
    # "421 4.7.28 ... unusual rate" matches a reply rule of the shipped "google" shaping rule
    # (found by the MX host's suffix .google.com): the (source, site) pair is suspended and its
    # mail deferred without a connection, for every domain hosted at that site, not just the one
    # that got the reply.
    answered, rcpts = google_suspended()
    check(answered, "the Google MX answered 421 4.7.28")
    check(rcpts == 1 and not got("google"),
          "suspended site: no further connection for either domain (%d RCPTs seen)" % rcpts)


@harness.case(8, "relayctl queue list and retry, one message or all, through the control socket")
def operator_retry():
    tried, sam, sue = slow_queued()
    check(tried, "slow.test tried 3 times per message")
    check(sam is not None and sue is not None, "relayctl queue list shows both deferred messages")
    before = slow_attempts["count"]
    # The README's form: the socket comes from the config's control_socket, not a fixed name.
    code, out = relayctl("queue", "retry", sam, "--config", conf_path())
    check(code == 0 and out.startswith("ok"), "relayctl queue retry --config: %s" % out.strip())
    check(wait_for(lambda: slow_attempts["count"] > before, 10),
          "retry brings an attempt now instead of in an hour")
    time.sleep(0.5)
    before = slow_attempts["count"]
    code, out = relayctl("queue", "retry", "--all", "--config", conf_path())
    check(code == 0 and out.startswith("ok") and "shard 1" in out,
          "relayctl queue retry --all answers ok for every shard, exit 0: %s" % out.strip())
    check(wait_for(lambda: slow_attempts["count"] > before, 10), "retry --all brings an attempt")


@harness.case(9, "relayctl reload says what it reloaded, and names an edit that needs a restart")
def reload():
    # This relay, found through --config.
    relay()
    code, out = relayctl("reload", "--config", conf_path())
    check(code == 0 and out.startswith("ok: ") and "users reloaded" in out and
          "delivery logs reopened" in out and "changed" not in out,
          "relayctl reload answers what it reloaded, exit 0: %s" % out.strip())
    conf_text = open(conf_path()).read()
    edited = re.sub(r"(?m)^connections_max = \d+", "connections_max = 1234", conf_text, count=1)
    check(edited != conf_text, "the test edits limits.connections_max")
    open(conf_path(), "w").write(edited)
    try:
        code, out = relayctl("reload", "--config", conf_path())
        check(code == 0 and "limits reloaded" not in out and "next restart" not in out,
              "relayctl reload applies [limits] at once: %s" % out.strip())
        restart = re.sub(r"(?m)^rotate_keep = \d+", "rotate_keep = 9", edited, count=1)
        check(restart != edited, "the test edits log.rotate_keep")
        open(conf_path(), "w").write(restart)
        code, out = relayctl("reload", "--config", conf_path())
        check(code == 0 and "log.rotate_keep" in out and "next restart" in out and
              "connections_max" not in out,
              "relayctl reload names an edit that needs a restart: %s" % out.strip())
    finally:
        open(conf_path(), "w").write(conf_text)


@harness.case(10, "a deferral past delay_warning_s sends one 'delayed' DSN per message")
def delayed_dsn():
    _, sam, _ = slow_queued()
    time.sleep(2.5)  # past delay_warning_s for sam, whatever the timing of the first attempts
    before = slow_attempts["count"]
    relayctl("queue", "retry", sam, "--socket", CONTROL)
    check(wait_for(lambda: slow_attempts["count"] > before, 10), "a retry past delay_warning_s")
    check(wait_for(lambda: dsns_for("sam@slow.test", "delayed"), 15),
          "a deferral past delay_warning_s sends a 'delayed' DSN")
    delayed = dsns_for("sam@slow.test", "delayed")
    if delayed:
        text = delayed[0][5].decode("utf-8", "replace")
        check("Status: 4." in text and "Will-Retry-Until:" in text and "451" in text,
              "the delayed DSN has a 4.x.x Status, Will-Retry-Until and the last reply")
    code, shown = relayctl("queue", "show", sam, "--spool", conf_dir + "/spool")
    check("delay notice: sent" in shown, "relayctl queue show says the delay notice went out")
    before = slow_attempts["count"]
    code, out = relayctl("queue", "retry", sam, "--socket", CONTROL)
    check(wait_for(lambda: slow_attempts["count"] > before, 10),
          "another retry of the same message")
    time.sleep(1)
    check(len(dsns_for("sam@slow.test", "delayed")) == 1,
          "one 'delayed' DSN per message, not per attempt")
    check(not dsns_for("sue@slow.test", "delayed"),
          "no delayed DSN for attempts inside the warning time")


@harness.case(11, "relayctl queue bounce sends a DSN, delete does not; an unknown id is refused")
def bounce_and_delete():
    (code, out), dsn, (delete_code, delete_out) = bounced_and_deleted()
    check(code == 0 and out.startswith("ok"), "relayctl queue bounce: %s" % out.strip())
    check(dsn, "bounce by the operator sends a DSN to the sender")
    check(delete_code == 0 and delete_out.startswith("ok"),
          "relayctl queue delete: %s" % delete_out.strip())
    time.sleep(0.5)
    check(queue_id_of("sue@slow.test") is None and queue_id_of("sam@slow.test") is None,
          "both are gone from relayctl queue list")
    check(not any(b"sue@slow.test" in d[5] for d in got("dsn")), "delete sends no DSN")
    code, out = relayctl("queue", "retry", "1-0-ffff", "--socket", CONTROL)
    check(code == 1 and "no live message" in out, "retry of an unknown id: %s" % out.strip())


@harness.case(12, "SIGTERM with an outbound session stuck: stopped within the grace, still queued")
def stuck_outbound():
    # The receiver is slower than the grace period: relayd still stops within the grace, and the
    # message stays queued for the next start.
    submit(["tom@stall.test"], "stalled")
    check(wait_for(lambda: stalled["count"] >= 1, 20),
          "the stall receiver is holding a transaction")
    t0 = time.time()
    code = relay().stop(timeout_s=20)
    check(code == 0 and time.time() - t0 < 10,
          "SIGTERM with an outbound session stuck: exit %d after %.1f s (grace 2 s)"
          % (code, time.time() - t0))
    check(queue_id_of("tom@stall.test") is not None,
          "the stuck message is still queued after the stop")


def e_reason(event):
    """The local reason or reply text of a delivery log line."""
    return event.get("reason", "") or event.get("reply", {}).get("text", "")


@harness.case(13, "the delivery log: one JSON object per line, every event of the run")
def delivery_log():
    # What it looks for: the first batch across the restart, the suspension, the bounce and the
    # delete; then relayd stopped, as after the other cases.
    restarted()
    google_suspended()
    bounced_and_deleted()
    relayd().stop()
    log = open(log_path).read()
    events = {}
    lines = 0
    for path in glob.glob(conf_dir + "/log/delivery-*.log"):
        for line in open(path, encoding="utf-8"):
            lines += 1
            try:
                obj = json.loads(line)
            except ValueError:
                check(False, "delivery log line is JSON: %r" % line[:200])
                continue
            events.setdefault(obj.get("event"), []).append(obj)
    check(lines > 0, "delivery log written (%d lines)" % lines)
    for name in ("received", "delivered", "deferred", "bounced", "dsn_sent", "deleted"):
        check(name in events, "delivery log has %s events" % name)
    gone = [e for e in events.get("deleted", []) if e.get("recipient") == "sue@slow.test"]
    check(len(gone) == 1 and "operator" in e_reason(gone[0]),
          "relayctl queue delete leaves one 'deleted' line for sue: %r" % gone)
    good = [e for e in events.get("delivered", []) if e.get("recipient") == "alice@good.test"]
    check(len(good) == 1 and good[0].get("tls", {}).get("version", "").startswith("TLS") and
          good[0].get("mx") == "mx1.good.test" and good[0].get("reply", {}).get("code") == 250,
          "delivered line for alice has MX host, TLS version and reply")
    late = [e for e in events.get("deferred", []) if e.get("recipient") == "dave@tempfail.test"]
    check(len(late) >= 1 and late[0].get("reply", {}).get("code") == 451 and
          late[0].get("next_attempt"),
          "deferred line for dave has the 451 and the next attempt")

    for rcpt in ("ivy@gmail.test", "jay@hosted.test"):
        held = [e for e in events.get("deferred", []) if e.get("recipient") == rcpt and
                "suspended" in e.get("reason", "")]
        check(len(held) >= 1 and held[0].get("site"),
              "deferred line for %s names the suspension as its reason" % rcpt)
    check("suspending delivery to" in log and "4.7.28" in log,
          "relayd logs the suspension with the reply that caused it")


def submit_for_id(rcpt, subject):
    """Sends one message to `rcpt` over a connection of its own: its queue id ("" if refused)."""
    s = smtplib.SMTP("127.0.0.1", port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", relay().password)
    s.mail("app@example.com")
    s.rcpt(rcpt)
    code, text = s.data(("From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\nhi\r\n"
                         % (rcpt, subject)).encode())
    s.quit()
    m = re.search(r"queued as (\S+)", text.decode(errors="replace"))
    return m.group(1) if code == 250 and m else ""


@harness.case(14, "a suspension holds in every shard, not only the one that saw the reply")
def suspension_in_every_shard():
    # google_suspended's 421 suspended (source, Google) in the shard that owned that session.
    # Mail for the same site from new connections lands on either shard (SO_REUSEPORT): none of
    # it reaches the Google MX, whichever shard queued it.
    answered, rcpts = google_suspended()
    check(answered, "the Google MX answered 421 4.7.28")
    shards = set()
    for i in range(16):
        qid = submit_for_id("kim%d@hosted.test" % i, "every shard %d" % i)
        if qid.count("-") == 2:
            shards.add(qid.split("-")[1])
        if len(shards) == 2 and i >= 3:
            break
    check(len(shards) == 2, "messages queued by both shards: %s" % sorted(shards))
    time.sleep(2)
    check(google_rcpts["count"] == rcpts,
          "no shard opened a connection to the suspended site (%d RCPTs seen, %d before)"
          % (google_rcpts["count"], rcpts))
    check(", as shard " in relay().log() or len(shards) < 2,
          "the other shard logs the suspension it took over")


@harness.case(15, "relayctl queue suspend holds a site in every shard and across a restart; resume")
def operator_suspension():
    relay()
    code, out = relayctl("queue", "suspend", "mx1.good.test", "--for", "1h", "--reason",
                         "receiver maintenance", "--config", conf_path())
    check(code == 0 and "suspended for 3600 s" in out, "relayctl queue suspend: %s" % out.strip())
    for i in range(6):  # over new connections: both shards queue some
        submit_for_id("held%d@good.test" % i, "held %d" % i)
    time.sleep(2)
    check(not [r for r in received if r[0] == "good" and any("held" in t for t in r[4])],
          "nothing reaches the suspended site, whichever shard queued it")
    code, out = relayctl("queue", "suspensions", "--config", conf_path())
    check(code == 0 and "mx1.good.test for " in out and "(operator)" in out and
          "receiver maintenance" in out, "relayctl queue suspensions lists it: %s" % out.strip())
    relay().stop()
    relay()
    code, out = relayctl("queue", "suspensions", "--config", conf_path())
    check("mx1.good.test for " in out, "still suspended after a restart: %s" % out.strip())
    time.sleep(2)
    check(not [r for r in received if r[0] == "good" and any("held" in t for t in r[4])],
          "the restarted relay holds the site too")
    code, out = relayctl("queue", "resume", "mx1.good.test", "--config", conf_path())
    check(code == 0 and "resumed" in out, "relayctl queue resume: %s" % out.strip())
    code, out = relayctl("queue", "retry", "--all", "--config", conf_path())
    check(wait_for(lambda: len([r for r in received if r[0] == "good" and
                                any("held" in t for t in r[4])]) >= 6, 20),
          "resumed and retried: the held messages are delivered")
    code, out = relayctl("queue", "resume", "mx1.good.test", "--config", conf_path())
    check(code == 1 and "not suspended" in out, "resuming again: not suspended: %s" % out.strip())


harness.main()
