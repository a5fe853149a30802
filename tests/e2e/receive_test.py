#!/usr/bin/python3
"""End-to-end receiving on port 25: relayd with [receive] on a loopback port, a real DNS server
(unbound, on loopback, local zones only) serving the sender domain's SPF and DKIM records and the
MX of the alias targets, aiosmtpd sinks on 127.0.0.x as those MX hosts, swaks and smtplib as the
outside senders.

Shown: mail to anything@local.test arrives at the catch-all's target with an SRS envelope sender
and an Authentication-Results header with the right SPF and DKIM results (and an ARC set that
python3-dkim's arc_verify validates, when the relay seals); a named alias wins over the
catch-all; an unknown user of a domain without catch-all is refused at RCPT (550 5.1.1); a
non-local domain without AUTH is refused (550 5.7.1); a bounce to the SRS address reaches the
original sender, a forged SRS address is refused (550 5.1.1); a SIGHUP reloads the aliases; an
alias loop is a configuration error that stops the start, naming the file and line. An incoming
Authentication-Results that claims our authserv-id is removed (RFC 8601 §5); a client that
pipelines a message and 256 KiB of commands behind it gets its 250 and every reply, not a 421
for a message that was queued all the same; with 4 MiB behind it, any 421 comes after the 250.

DMARC (RFC 7489) and the forwarder's duty not to turn forgeries into backscatter (issue 22, bug
4): a forged, unsigned message in the name of a p=reject domain is refused at the end of DATA
with 550 5.7.1 and nothing is forwarded or bounced, whether SPF fails or passes for another
domain, for a subdomain too; so is SPF fail without a DKIM signature; signed mail passes with
dmarc=pass, even when it arrives with SPF failing; p=quarantine, p=none and pct=0 are forwarded,
the first and the last marked X-Spam-Flag: YES; with dmarc_reject = "quarantine-header" a p=reject
failure is marked instead of refused. A DSN for forwarded mail that the target refuses names the
address the sender used, never the private target.

The cases share one relayd, its DNS server and sinks; those that change the aliases or the
configuration (SIGHUP, dmarc_reject, the alias loop) have a relayd of their own beside it.

usage: receive_test.py RELAYD [--case N[,M...]] [--list]
"""
import email
import email.policy
import os
import re
import signal
import socket
import smtplib
import subprocess
import sys
import threading
import time

import dkim
from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("receive-")

# --- sinks: the MX hosts of the alias targets and of the original sender ----------------------
MX = {"gmail": "127.0.0.2", "named": "127.0.0.3", "sender": "127.0.0.4", "self": "127.0.0.5"}
MX_PORT = local_dns.free_port(list(MX.values()))
received = []  # (sink, mail_from, rcpt_tos, content bytes)
lock = threading.RLock()
ALIASES = ("# local.test forwards everything\n"
           "postmaster: boss@named.test\n"
           "*: me@gmail.test\n")


class Sink:
    def __init__(self, name):
        self.name = name

    async def handle_DATA(self, server, session, envelope):
        if self.name == "gmail" and b"Subject: refused by target" in envelope.content:
            # What Gmail answers a forwarder; the target's address in the text, as some MX do.
            return ("550 5.7.26 <%s>: Unauthenticated email is not accepted"
                    % envelope.rcpt_tos[0])
        with lock:
            received.append((self.name, envelope.mail_from, list(envelope.rcpt_tos),
                             envelope.content))
        return "250 2.0.0 OK stored"


@harness.fixture
def sinks():
    controllers = []
    try:
        for name, ip in MX.items():
            c = Controller(Sink(name), hostname=ip, port=MX_PORT, ready_timeout=10)
            c.start()
            controllers.append(c)
        yield controllers
    finally:
        for c in controllers:
            c.stop()


@harness.fixture
def keys():
    """The outside sender's DKIM key and local.test's (ARC seals): {name: (path, TXT data)}."""
    return {"sender": local_dns.dkim_key(TMP, "sender"), "local": local_dns.dkim_key(TMP, "local")}


def sender_key():
    return open(keys()["sender"][0], "rb").read()


@harness.fixture
def dns_port():
    zones = """
  local-zone: "test." static
  local-data: 'sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"'
  local-data: "sender.test. 300 IN MX 10 mx.sender.test."
  local-data: "mx.sender.test. 300 IN A {sender}"
  local-data: 'sel._domainkey.sender.test. 300 IN TXT {sender_txt}'
  local-data: '_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject"'
  local-data: 'forger.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
  local-data: '_dmarc.forger.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@forger.test"'
  local-data: 'nodmarc.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
  local-data: '_dmarc.quarantine.test. 300 IN TXT "v=DMARC1; p=quarantine"'
  local-data: '_dmarc.none.test. 300 IN TXT "v=DMARC1; p=none"'
  local-data: '_dmarc.sampled.test. 300 IN TXT "v=DMARC1; p=reject; pct=0"'
  local-data: "gmail.test. 300 IN MX 10 mx.gmail.test."
  local-data: "mx.gmail.test. 300 IN A {gmail}"
  local-data: "named.test. 300 IN MX 10 mx.named.test."
  local-data: "mx.named.test. 300 IN A {named}"
  local-data: 'local.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"'
  local-data: "local.test. 300 IN MX 10 mx.local.test."
  local-data: "mx.local.test. 300 IN A {self}"
  local-data: 'arc._domainkey.local.test. 300 IN TXT {local_txt}'
""".format(sender_txt=keys()["sender"][1], local_txt=keys()["local"][1], **MX)
    with local_dns.unbound(TMP, zones) as port:
        yield port


def dns_txt(name, timeout=5):
    """TXT lookup against our unbound, for python3-dkim's verifiers."""
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_port()
    try:
        answer = r.resolve(name.decode().rstrip("."), "TXT")
    except Exception:
        return None
    return b"".join(b"".join(rr.strings) for rr in answer)


# --- relayd ------------------------------------------------------------------------------------
def relayd_for(name, aliases, settings=None):
    """A relayd (a context manager) receiving for local.test (aliases: the text of its aliases
    file) and strict.test, delivering to the sinks; `settings` merged into its configuration."""
    sinks()
    conf_dir = "%s/%s" % (TMP, name)
    conf_path, _ = relayd_process.init(
        RELAYD, conf_dir, relayd_process.merged(
            relayd_process.loopback(dns_port(), MX_PORT),
            {"control_socket": harness.scratch("rcv-", dir="/tmp") + "/control.sock"}),
        domain="local.test", hostname="mx.local.test", append="""
[receive]
listen = ["127.0.0.1:0"]
domains = ["local.test", "strict.test"]
aliases_dir = "aliases"
srs_domain = "local.test"
checks_timeout_ms = 5000

[[dkim.key]]
domain = "local.test"
selector = "arc"
key = "%s"
""" % keys()["local"][0])
    if settings:
        relayd_process.configure(conf_path, settings)
    os.makedirs(conf_dir + "/aliases", exist_ok=True)  # init writes it
    open(conf_dir + "/aliases/local.test", "w").write(aliases)
    open(conf_dir + "/aliases/strict.test", "w").write("bob: bob@named.test\n")
    r = relayd_process.Relayd(RELAYD, conf_path, "%s/%s.log" % (TMP, name))
    r.aliases = conf_dir + "/aliases/local.test"
    return r


@harness.fixture
def relay():
    with relayd_for("relay", ALIASES) as r:
        harness.on_failure(lambda: print(r.log()[-4000:]))
        yield r


def port():
    return relay().port("port 25 (receive)")


def wait_for(pred, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        with lock:
            if pred():
                return True
        time.sleep(0.1)
    with lock:
        return pred()


def got(sink, subject):
    with lock:
        return [r for r in received
                if r[0] == sink and ("Subject: " + subject).encode() in r[3]]


def signed_message(subject, frm="alice@sender.test", to="anything@local.test"):
    msg = ("From: Alice <%s>\r\nTo: %s\r\nSubject: %s\r\nDate: Sun, 22 Nov 2026 23:00:00 +0000\r\n"
           "Message-ID: <%s@sender.test>\r\n\r\nHello from outside.\r\n" %
           (frm, to, subject, subject.replace(" ", "-"))).encode()
    sig = dkim.sign(msg, b"sel", b"sender.test", sender_key(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def swaks(args, data=None):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port()), "--helo", "mail.sender.test",
           "--timeout", "30"] + args
    if data is not None:
        path = "%s/msg-%d.eml" % (TMP, time.time_ns())
        open(path, "wb").write(data)
        cmd += ["--data", "@" + path]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def headers_of(content):
    return email.message_from_bytes(content, policy=email.policy.compat32)


def send(mail_from, frm, subject, rcpt="x@local.test", sign=False, more_headers="", to_port=None):
    """Sends one message; returns (code, text) of the reply to the end of DATA."""
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Sun, 22 Nov 2026 23:00:00 +0000\r\n"
           "Message-ID: <%s@test>\r\n%s\r\nbody\r\n" %
           (frm, rcpt, subject, subject.replace(" ", "-"), more_headers)).encode()
    if sign:
        msg = dkim.sign(msg, b"sel", b"sender.test", sender_key(),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + msg
    s = smtplib.SMTP("127.0.0.1", to_port or port(), local_hostname="mail.sender.test",
                     timeout=30)
    try:
        s.sendmail(mail_from, [rcpt], msg)
        result = (250, b"")
    except smtplib.SMTPDataError as e:
        result = (e.smtp_code, e.smtp_error)
    s.quit()
    return result


def auth_results(sink, subject):
    g = got(sink, subject)
    if not g:
        return None, ""
    m = headers_of(g[0][3])
    return m, " ".join((m.get("Authentication-Results") or "").split())


@harness.fixture
def catch_all():
    """A message for the catch-all, through swaks, DKIM-signed by the sender, from an address SPF
    authorises: (swaks's result, whether its target received it in time, what it received)."""
    r = swaks(["--from", "alice@sender.test", "--to", "anything@local.test"],
              signed_message("to the catch-all"))
    arrived = wait_for(lambda: got("gmail", "to the catch-all"))
    g = got("gmail", "to the catch-all")
    return r, arrived, g[0] if g else None


def srs_address():
    """The SRS address the catch-all's message was sent from, or None."""
    record = catch_all()[2]
    return record[1] if record else None


@harness.case(1, "the catch-all forwards with SRS, Authentication-Results and an ARC set")
def catch_all_forwarded():
    r, arrived, record = catch_all()
    check(r.returncode == 0 and "250 2.0.0 Ok: queued" in r.stdout,
          "port 25 accepts mail for anything@local.test without AUTH")
    check(arrived, "the catch-all's target (me@gmail.test) receives it through its MX")
    if record:
        _, mail_from, rcpts, content = record
        check(rcpts == ["me@gmail.test"], "the envelope recipient is the alias target: %s" % rcpts)
        check(re.fullmatch(r"SRS0=[^=]+=[A-Z2-7]{2}=sender\.test=alice@local\.test", mail_from)
              is not None, "the envelope sender is rewritten with SRS: %s" % mail_from)
        m = headers_of(content)
        ar = m.get_all("Authentication-Results") or []
        print("     Authentication-Results: " + " | ".join(ar))
        check(len(ar) == 1 and ar[0].strip().startswith("mx.local.test;"),
              "one Authentication-Results header with our authserv-id")
        ar_text = " ".join(ar[0].split()) if ar else ""
        check("spf=pass smtp.mailfrom=alice@sender.test" in ar_text, "SPF passes for sender.test")
        check("dkim=pass header.d=sender.test" in ar_text, "DKIM passes for sender.test")
        check("dmarc=pass header.from=sender.test" in ar_text,
              "DMARC passes for sender.test (p=reject)")
        check(not m.get_all("X-Spam-Flag"), "... and the message is not marked")
        check(dkim.verify(content, dnsfunc=dns_txt), "the sender's DKIM signature still verifies")
        if m.get_all("ARC-Seal"):
            cv, results, reason = dkim.arc_verify(content, dnsfunc=dns_txt)
            check(cv == dkim.CV_Pass, "arc_verify validates the ARC set: %s %s" % (cv, reason))
        else:
            check(False, "an ARC set is added (ARC-Seal, ARC-Message-Signature, "
                         "ARC-Authentication-Results)")


@harness.case(2, "an Authentication-Results claiming our authserv-id is removed (RFC 8601 §5)")
def forged_results():
    # One naming another host stays; the sender's signature still verifies.
    forged_msg = signed_message("forged results")
    forged_msg = (b"Authentication-Results: MX.local.test; dkim=pass header.d=bank.test\r\n"
                  b"Authentication-Results: elsewhere.test; spf=none\r\n" + forged_msg)
    r = swaks(["--from", "alice@sender.test", "--to", "anything@local.test"], forged_msg)
    check(r.returncode == 0 and "250 2.0.0 Ok: queued" in r.stdout,
          "a message with a forged Authentication-Results is accepted")
    check(wait_for(lambda: got("gmail", "forged results")), "... and forwarded")
    g = got("gmail", "forged results")
    if g:
        m = headers_of(g[0][3])
        ar = [" ".join(v.split()) for v in (m.get_all("Authentication-Results") or [])]
        print("     Authentication-Results: " + " | ".join(ar))
        check(len(ar) == 2 and ar[0].startswith("mx.local.test;") and "header.d=bank.test" not in
              ar[0] and ar[1] == "elsewhere.test; spf=none",
              "the forged field claiming mx.local.test is gone; ours and elsewhere.test's remain")
        check(dkim.verify(g[0][3], dnsfunc=dns_txt), "the sender's DKIM signature still verifies")
        # Sealed from the checks' parse of the message, less the field removed.
        cv, _, reason = dkim.arc_verify(g[0][3], dnsfunc=dns_txt)
        check(cv == dkim.CV_Pass, "the ARC set sealed over what was forwarded validates: %s %s"
              % (cv, reason))


# A client that pipelines a whole message and then many NOOPs in one go, reading its replies as
# they come: the relay stops reading while the message is being queued (instead of buffering the
# NOOPs and closing with 421 after the message was queued, so that the client would send it
# again), then answers everything. 256 KiB of NOOPs stay below input_held_bytes_max (1 MiB), so
# every one is answered however far the kernel reads ahead. With 4 MiB the kernel may read more
# than that ahead while the message is queued (it fills receive buffers as fast as the client
# sends, and a busy machine runs the loop late): then the relay ends the connection with 421
# 4.7.0, after the 250 of the message and the replies before it, never instead of them.
def pipeline(subject, noops):
    piped = socket.create_connection(("127.0.0.1", port()), timeout=30)
    replies = {"bytes": b""}

    def read_replies():
        buf = b""
        try:
            while True:
                data = piped.recv(1 << 20)
                if not data:
                    break
                buf += data
        except OSError:
            pass
        replies["bytes"] = buf

    reader = threading.Thread(target=read_replies, daemon=True)
    reader.start()
    body = signed_message(subject).replace(b"\r\n.", b"\r\n..")
    try:
        piped.sendall(b"EHLO mail.sender.test\r\nMAIL FROM:<alice@sender.test>\r\n"
                      b"RCPT TO:<anything@local.test>\r\nDATA\r\n" + body + b".\r\n" +
                      b"NOOP\r\n" * noops + b"QUIT\r\n")
    except OSError as e:
        # The relay may end the connection while the client is still sending (421 4.7.0): what
        # counts is the replies that came before, which the checks look at.
        print("     sending: %s" % e)
    reader.join(90)
    piped.close()
    out = replies["bytes"]
    print("     %d NOOPs pipelined: %d bytes of replies, queued: %s, %d x 250 Ok, 421: %s" %
          (noops, len(out), b"250 2.0.0 Ok: queued as" in out, out.count(b"250 2.0.0 Ok\r\n"),
           b"\r\n421" in out))
    return out


@harness.case(3, "a message pipelined with 256 KiB of commands is queued, every command answered")
def pipelined_flood():
    out = pipeline("pipelined flood", 43690)
    check(b"250 2.0.0 Ok: queued as" in out and b"\r\n421" not in out and
          out.count(b"250 2.0.0 Ok\r\n") == 43690 and out.endswith(b"221 2.0.0 Bye\r\n"),
          "a message pipelined with 256 KiB of commands is queued, and every command answered")
    check(wait_for(lambda: got("gmail", "pipelined flood")) and
          (time.sleep(1) or len(got("gmail", "pipelined flood")) == 1),
          "... and delivered once")


@harness.case(4, "with 4 MiB of commands behind it, any 421 comes after the message's 250")
def pipelined_deluge():
    out = pipeline("pipelined deluge", 699050)
    queued_at = out.find(b"250 2.0.0 Ok: queued as")
    answered = out.count(b"250 2.0.0 Ok\r\n") == 699050 and out.endswith(b"221 2.0.0 Bye\r\n")
    ended = re.search(rb"\r\n421 4\.7\.0 [^\r]* Too much input without reading the replies\r\n$",
                      out)
    check(queued_at > 0 and (answered or (ended is not None and ended.start() > queued_at)),
          "with 4 MiB of commands behind it, the message is queued and the client told so; then "
          "every command is answered or the relay ends with 421 4.7.0 as the last reply")
    check(wait_for(lambda: got("gmail", "pipelined deluge")) and
          (time.sleep(1) or len(got("gmail", "pipelined deluge")) == 1),
          "... and delivered once")


@harness.case(5, "a named alias wins over the catch-all; '+' suffixes and case do not matter")
def named_alias():
    s = smtplib.SMTP("127.0.0.1", port(), local_hostname="mail.sender.test", timeout=30)
    s.sendmail("alice@sender.test", ["PostMaster+x@Local.Test"],
               signed_message("to postmaster", to="postmaster@local.test"))
    s.quit()
    check(wait_for(lambda: got("named", "to postmaster")),
          "postmaster@local.test goes to its alias")
    check(not got("gmail", "to postmaster"), "... and not to the catch-all")


@harness.case(6, "refusals at RCPT: not ours without AUTH, unknown user, forged SRS")
def rcpt_refusals():
    srs = srs_address()
    s = smtplib.SMTP("127.0.0.1", port(), local_hostname="mail.sender.test", timeout=30)
    s.ehlo()
    check("auth" not in s.esmtp_features, "AUTH is not offered before TLS on port 25")
    check("starttls" in s.esmtp_features, "STARTTLS is offered on port 25")
    s.mail("alice@sender.test")
    code, text = s.rcpt("someone@elsewhere.test")
    check((code, text[:5]) == (550, b"5.7.1"),
          "a non-local domain without AUTH: %d %s" % (code, text))
    code, text = s.rcpt("carol@strict.test")
    check((code, text[:5]) == (550, b"5.1.1"),
          "an unknown user of a domain without catch-all: %d %s" % (code, text))
    code, text = s.rcpt("bob@strict.test")
    check(code == 250, "a known user of that domain is accepted")
    if srs:
        forged = srs.replace("=sender.test=", "=evil.test=")
        code, text = s.rcpt(forged)
        check((code, text[:5]) == (550, b"5.1.1"), "a forged SRS address: %d %s" % (code, text))
    s.rset()
    s.quit()


@harness.case(7, "DMARC and SPF at the end of DATA: forgeries refused, milder policies marked")
def dmarc():
    # Issue 22, bug 4: a forgery in the name of a p=reject domain is refused (550 5.7.1) instead
    # of forwarded, so the final receiver never refuses it and no DSN goes to the forged sender.
    relay()
    refused = []  # subjects that must never reach any sink, as a message or inside a DSN
    for what, mail_from, frm, subject in [
            ("SPF fails, unsigned", "ceo@forger.test", "CEO <ceo@forger.test>", "spoof spf fail"),
            ("SPF passes for another domain", "alice@sender.test", "ceo@forger.test",
             "spoof spf unaligned"),
            ("a subdomain, through the organizational domain's record", "alice@sender.test",
             "ceo@news.forger.test", "spoof subdomain")]:
        code, text = send(mail_from, frm, subject)
        check((code, text[:5]) == (550, b"5.7.1") and b"DMARC policy (p=reject)" in text,
              "a forged From of a p=reject domain (%s) is refused: %d %s" % (what, code, text))
        refused.append(subject)
    code, text = send("ceo@nodmarc.test", "ceo@nodmarc.test", "spf fail no dkim")
    check((code, text[:5]) == (550, b"5.7.1") and b"SPF of nodmarc.test" in text,
          "SPF fail without a DKIM signature, no DMARC record: refused: %d %s" % (code, text))
    refused.append("spf fail no dkim")
    code, text = send("alice@sender.test", "a@sender.test", "two from",
                      more_headers="From: ceo@forger.test\r\n")
    check((code, text[:5]) == (550, b"5.7.1") and b"exactly one From" in text,
          "a message with two From fields is refused: %d %s" % (code, text))
    refused.append("two from")

    # Signed mail of the p=reject domain arriving through another forwarder: SPF fails for that
    # forwarder's envelope, the aligned signature carries DMARC.
    code, text = send("bounces@forger.test", "Alice <alice@sender.test>", "signed via forwarder",
                      sign=True)
    check(code == 250, "signed mail passes although SPF fails: %d %s" % (code, text))
    check(wait_for(lambda: got("gmail", "signed via forwarder")), "... and is forwarded")
    _, ar = auth_results("gmail", "signed via forwarder")
    check("spf=fail" in ar and "dmarc=pass header.from=sender.test" in ar,
          "... dmarc=pass: " + ar)

    # The milder policies: forwarded, p=quarantine (and p=reject sampled out by pct=0) marked.
    for subject, frm, policy, marked in [
            ("quarantine policy", "news@quarantine.test", "p=quarantine dis=quarantine", True),
            ("none policy", "news@none.test", "p=none dis=none", False),
            ("pct zero", "news@sampled.test", "p=reject dis=quarantine", True)]:
        code, text = send("alice@sender.test", frm, subject)
        check(code == 250, "%s: accepted (%d %s)" % (subject, code, text))
        check(wait_for(lambda: got("gmail", subject)), "%s: forwarded" % subject)
        m, ar = auth_results("gmail", subject)
        domain = frm.split("@")[1]
        check("dmarc=fail (%s) header.from=%s" % (policy, domain) in ar,
              "%s: dmarc=fail (%s): %s" % (subject, policy, ar))
        flags = (m.get_all("X-Spam-Flag") or []) if m else []
        check(flags == (["YES"] if marked else []),
              "%s: %s" % (subject, "marked X-Spam-Flag: YES" if marked else "not marked"))
        if m:
            cv, _, reason = dkim.arc_verify(got("gmail", subject)[0][3], dnsfunc=dns_txt)
            check(cv == dkim.CV_Pass, "%s: its ARC set validates: %s %s" % (subject, cv, reason))

    # Nothing refused above was forwarded or bounced: every later message has arrived by now.
    time.sleep(1)
    with lock:
        leaked = [(r[0], sub) for r in received for sub in refused
                  if ("Subject: " + sub).encode() in r[3]]
    check(not leaked, "nothing refused was forwarded or came back as a DSN: %s" % leaked)


@harness.case(8, "a DSN for forwarded mail names the address the sender used, not the target")
def dsn_for_forwarded():
    # Nor its MX host, even when the target's reply text names it.
    code, _ = send("alice@sender.test", "alice@sender.test", "refused by target",
                   rcpt="private@local.test", sign=True)
    check(code == 250, "a message for the catch-all is accepted (the target will refuse it)")
    check(wait_for(lambda: got("self", "refused by target")),
          "a DSN comes back to the SRS address (local.test's MX)")
    d = got("self", "refused by target")
    if d:
        _, mail_from, rcpts, content = d[0]
        print("     DSN to %s:\n       " % rcpts + "\n       ".join(
            l for l in content.decode(errors="replace").splitlines()
            if re.match(r"(Final|Original)-Recipient|Remote-MTA|Diagnostic-Code|Action|Status",
                        l)))
        check(mail_from in ("", "<>") and len(rcpts) == 1 and rcpts[0].startswith("SRS0="),
              "... from the null sender to the SRS address: %r %r" % (mail_from, rcpts))
        check(b"Final-Recipient: rfc822; private@local.test" in content,
              "the DSN names the address the sender used (private@local.test)")
        named = [l for l in content.decode(errors="replace").splitlines() if "gmail" in l.lower()]
        check(not named, "the DSN never names the private target me@gmail.test nor its MX host: "
              "%s" % named)
        check(b"550 5.7.26" in content, "... and still gives the target's reply")


@harness.case(9, "a bounce to the SRS address reaches the original sender")
def bounce_to_srs():
    srs = srs_address()
    if srs:
        r = swaks(["--from", "<>", "--to", srs, "--helo", "mx.gmail.test"],
                  b"From: MAILER-DAEMON@gmail.test\r\nTo: " + srs.encode() +
                  b"\r\nSubject: bounce back\r\n\r\nYour message could not be delivered.\r\n")
        check(r.returncode == 0, "a bounce to the SRS address is accepted")
        check(wait_for(lambda: got("sender", "bounce back")),
              "the bounce reaches the original sender's MX")
        b = got("sender", "bounce back")
        if b:
            check(b[0][1] in ("", "<>") and b[0][2] == ["alice@sender.test"],
                  "... from the null sender to alice@sender.test: %r %r" % (b[0][1], b[0][2]))


@harness.case(10, "SIGHUP reloads the aliases; a looping file keeps the previous set")
def sighup_aliases():
    r = harness.enter(relayd_for("sighup", ALIASES))
    open(r.aliases, "w").write("postmaster: boss@named.test\nnew: fresh@named.test\n")
    r.signal(signal.SIGHUP)
    time.sleep(1.0)
    s = smtplib.SMTP("127.0.0.1", r.port("port 25 (receive)"), local_hostname="mail.sender.test",
                     timeout=30)
    s.ehlo()
    s.mail("alice@sender.test")
    check(s.rcpt("new@local.test")[0] == 250, "after SIGHUP a new alias is accepted")
    check(s.rcpt("anything@local.test")[0] == 550, "... and the removed catch-all is gone")
    s.rset()
    open(r.aliases, "w").write("a: b\nb: a\n")
    r.signal(signal.SIGHUP)
    time.sleep(1.0)
    s.mail("alice@sender.test")
    check(s.rcpt("new@local.test")[0] == 250, "a looping aliases file on SIGHUP keeps the old set")
    s.quit()
    check("alias loop" in r.log(), "... and the loop is logged")
    check(r.stop(timeout_s=20) == 0, "relayd stops cleanly")


@harness.case(11, "with dmarc_reject = \"quarantine-header\" a p=reject failure is marked instead")
def quarantine_header():
    r = harness.enter(relayd_for("quarantine", "*: me@gmail.test\n",
                                 {"receive": {"dmarc_reject": "quarantine-header"}}))
    code, text = send("alice@sender.test", "ceo@forger.test", "spoof quarantined",
                      to_port=r.port("port 25 (receive)"))
    check(code == 250, "with dmarc_reject = quarantine-header the forgery is accepted: %d" % code)
    check(wait_for(lambda: got("gmail", "spoof quarantined")), "... forwarded")
    m, ar = auth_results("gmail", "spoof quarantined")
    check(m is not None and m.get_all("X-Spam-Flag") == ["YES"] and
          "dmarc=fail (p=reject dis=reject) header.from=forger.test" in ar,
          "... marked X-Spam-Flag: YES, dmarc=fail (p=reject dis=reject): " + ar)
    check(r.stop(timeout_s=20) == 0, "relayd stops cleanly")


@harness.case(12, "an alias loop stops the start, naming the file and line")
def alias_loop_at_start():
    # The aliases are known in full before any mail arrives, so a loop is refused before it can
    # turn into a mail loop.
    r = relayd_for("loop", "a: b\nb: a\n")
    start = subprocess.run([RELAYD, "--config", r.conf_path], capture_output=True, text=True,
                           timeout=30)
    out = start.stdout + start.stderr
    check(start.returncode == 2,
          "relayd refuses to start with an alias loop (exit %d)" % start.returncode)
    check(re.search(r"aliases/local\.test:\d+: alias loop", out) is not None,
          "the error names the file and line: " + out.strip().splitlines()[-1]
          if out.strip() else "")


harness.main()
