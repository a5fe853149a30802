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
alias loop is a configuration error that stops the start, naming the file and line.

usage: receive_test.py RELAYD
"""
import email
import email.policy
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

import dkim
from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402
import relayd_process  # noqa: E402

RELAYD = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="receive-", dir=os.environ.get("TEST_TMPDIR"))
failures, checks = [], 0


def check(cond, what):
    global checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


# --- sinks: the MX hosts of the alias targets and of the original sender ----------------------
MX = {"gmail": "127.0.0.2", "named": "127.0.0.3", "sender": "127.0.0.4"}
MX_PORT = local_dns.free_port(list(MX.values()))
received = []  # (sink, mail_from, rcpt_tos, content bytes)
lock = threading.RLock()


class Sink:
    def __init__(self, name):
        self.name = name

    async def handle_DATA(self, server, session, envelope):
        with lock:
            received.append((self.name, envelope.mail_from, list(envelope.rcpt_tos),
                             envelope.content))
        return "250 2.0.0 OK stored"


controllers = []
for name, ip in MX.items():
    c = Controller(Sink(name), hostname=ip, port=MX_PORT, ready_timeout=10)
    c.start()
    controllers.append(c)


SENDER_KEY, SENDER_TXT = local_dns.dkim_key(TMP, "sender")  # the outside sender's DKIM key
LOCAL_KEY, LOCAL_TXT = local_dns.dkim_key(TMP, "local")  # local.test's key: ARC seals
zones = """
  local-zone: "test." static
  local-data: 'sender.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"'
  local-data: "sender.test. 300 IN MX 10 mx.sender.test."
  local-data: "mx.sender.test. 300 IN A {sender}"
  local-data: 'sel._domainkey.sender.test. 300 IN TXT {sender_txt}'
  local-data: 'forger.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
  local-data: "gmail.test. 300 IN MX 10 mx.gmail.test."
  local-data: "mx.gmail.test. 300 IN A {gmail}"
  local-data: "named.test. 300 IN MX 10 mx.named.test."
  local-data: "mx.named.test. 300 IN A {named}"
  local-data: 'local.test. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"'
  local-data: 'arc._domainkey.local.test. 300 IN TXT {local_txt}'
""".format(sender_txt=SENDER_TXT, local_txt=LOCAL_TXT, **MX)
unbound, DNS_PORT = local_dns.start_unbound(TMP, zones)


def dns_txt(name, timeout=5):
    """TXT lookup against our unbound, for python3-dkim's verifiers."""
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = DNS_PORT
    try:
        answer = r.resolve(name.decode().rstrip("."), "TXT")
    except Exception:
        return None
    return b"".join(b"".join(rr.strings) for rr in answer)


# --- relayd ------------------------------------------------------------------------------------
conf_dir = TMP + "/relay"
conf_path, _ = relayd_process.init(
    RELAYD, conf_dir, relayd_process.loopback(DNS_PORT, MX_PORT) + [
        ('control_socket = "control.sock"',
         'control_socket = "%s/control.sock"' % tempfile.mkdtemp(prefix="rcv-", dir="/tmp"))],
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
""" % LOCAL_KEY)
os.makedirs(conf_dir + "/aliases")
ALIASES = conf_dir + "/aliases/local.test"
open(ALIASES, "w").write("# local.test forwards everything\n"
                         "postmaster: boss@named.test\n"
                         "*: me@gmail.test\n")
open(conf_dir + "/aliases/strict.test", "w").write("bob: bob@named.test\n")
log_path = TMP + "/relayd.log"


def start_relayd(path=conf_path):
    p, ready = relayd_process.start(RELAYD, path, log_path)
    if ready is None:
        print(open(log_path).read())
        sys.exit("relayd did not start")
    return p, relayd_process.port(ready, "port 25 (receive)")


relayd, PORT = start_relayd()


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
    sig = dkim.sign(msg, b"sel", b"sender.test", open(SENDER_KEY, "rb").read(),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig + msg


def swaks(args, data=None):
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(PORT), "--helo", "mail.sender.test",
           "--timeout", "30"] + args
    if data is not None:
        path = "%s/msg-%d.eml" % (TMP, time.time_ns())
        open(path, "wb").write(data)
        cmd += ["--data", "@" + path]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def headers_of(content):
    return email.message_from_bytes(content, policy=email.policy.compat32)


# 1. The catch-all, through swaks, DKIM-signed by the sender, from an address SPF authorises.
r = swaks(["--from", "alice@sender.test", "--to", "anything@local.test"],
          signed_message("to the catch-all"))
check(r.returncode == 0 and "250 2.0.0 Ok: queued" in r.stdout,
      "port 25 accepts mail for anything@local.test without AUTH")
check(wait_for(lambda: got("gmail", "to the catch-all")),
      "the catch-all's target (me@gmail.test) receives it through its MX")
g = got("gmail", "to the catch-all")
if g:
    _, mail_from, rcpts, content = g[0]
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
    check(dkim.verify(content, dnsfunc=dns_txt), "the sender's DKIM signature still verifies")
    if m.get_all("ARC-Seal"):
        cv, results, reason = dkim.arc_verify(content, dnsfunc=dns_txt)
        check(cv == dkim.CV_Pass, "arc_verify validates the ARC set: %s %s" % (cv, reason))
    else:
        check(False, "an ARC set is added (ARC-Seal, ARC-Message-Signature, "
                     "ARC-Authentication-Results)")
    SRS_ADDRESS = mail_from
else:
    SRS_ADDRESS = None

# 2. A named alias wins over the catch-all; "+" suffixes and case do not matter.
s = smtplib.SMTP("127.0.0.1", PORT, local_hostname="mail.sender.test", timeout=30)
s.sendmail("alice@sender.test", ["PostMaster+x@Local.Test"],
           signed_message("to postmaster", to="postmaster@local.test"))
s.quit()
check(wait_for(lambda: got("named", "to postmaster")), "postmaster@local.test goes to its alias")
check(not got("gmail", "to postmaster"), "... and not to the catch-all")

# 3. Refusals at RCPT time.
s = smtplib.SMTP("127.0.0.1", PORT, local_hostname="mail.sender.test", timeout=30)
s.ehlo()
check("auth" not in s.esmtp_features, "AUTH is not offered before TLS on port 25")
check("starttls" in s.esmtp_features, "STARTTLS is offered on port 25")
s.mail("alice@sender.test")
code, text = s.rcpt("someone@elsewhere.test")
check((code, text[:5]) == (550, b"5.7.1"), "a non-local domain without AUTH: %d %s" % (code, text))
code, text = s.rcpt("carol@strict.test")
check((code, text[:5]) == (550, b"5.1.1"),
      "an unknown user of a domain without catch-all: %d %s" % (code, text))
code, text = s.rcpt("bob@strict.test")
check(code == 250, "a known user of that domain is accepted")
if SRS_ADDRESS:
    forged = SRS_ADDRESS.replace("=sender.test=", "=evil.test=")
    code, text = s.rcpt(forged)
    check((code, text[:5]) == (550, b"5.1.1"), "a forged SRS address: %d %s" % (code, text))
s.rset()
s.quit()

# 4. SPF fail is reported, not refused (the policy is the final receiver's).
s = smtplib.SMTP("127.0.0.1", PORT, local_hostname="mail.forger.test", timeout=30)
s.sendmail("ceo@forger.test", ["x@local.test"],
           b"From: ceo@forger.test\r\nSubject: spf fail\r\n\r\nbody\r\n")
s.quit()
check(wait_for(lambda: got("gmail", "spf fail")), "mail failing SPF is still forwarded")
g = got("gmail", "spf fail")
if g:
    ar = " ".join((headers_of(g[0][3]).get("Authentication-Results") or "").split())
    check("spf=fail smtp.mailfrom=ceo@forger.test" in ar, "... with spf=fail: " + ar)
    check("dkim=none" in ar, "... and dkim=none for an unsigned message: " + ar)

# 5. A bounce of the forwarded mail, to the SRS address, reaches the original sender.
if SRS_ADDRESS:
    r = swaks(["--from", "<>", "--to", SRS_ADDRESS, "--helo", "mx.gmail.test"],
              b"From: MAILER-DAEMON@gmail.test\r\nTo: " + SRS_ADDRESS.encode() +
              b"\r\nSubject: bounce back\r\n\r\nYour message could not be delivered.\r\n")
    check(r.returncode == 0, "a bounce to the SRS address is accepted")
    check(wait_for(lambda: got("sender", "bounce back")),
          "the bounce reaches the original sender's MX")
    b = got("sender", "bounce back")
    if b:
        check(b[0][1] in ("", "<>") and b[0][2] == ["alice@sender.test"],
              "... from the null sender to alice@sender.test: %r %r" % (b[0][1], b[0][2]))

# 6. SIGHUP reloads the aliases; a broken file keeps the previous set.
open(ALIASES, "w").write("postmaster: boss@named.test\nnew: fresh@named.test\n")
relayd.send_signal(signal.SIGHUP)
time.sleep(1.0)
s = smtplib.SMTP("127.0.0.1", PORT, local_hostname="mail.sender.test", timeout=30)
s.ehlo()
s.mail("alice@sender.test")
check(s.rcpt("new@local.test")[0] == 250, "after SIGHUP a new alias is accepted")
check(s.rcpt("anything@local.test")[0] == 550, "... and the removed catch-all is gone")
s.rset()
open(ALIASES, "w").write("a: b\nb: a\n")
relayd.send_signal(signal.SIGHUP)
time.sleep(1.0)
s.mail("alice@sender.test")
check(s.rcpt("new@local.test")[0] == 250, "a looping aliases file on SIGHUP keeps the old set")
s.quit()
check("alias loop" in open(log_path).read(), "... and the loop is logged")

relayd.send_signal(signal.SIGTERM)
check(relayd.wait(timeout=20) == 0, "relayd stops cleanly")

# 7. A loop is a configuration error at start, named with file and line: the aliases are known
# in full before any mail arrives, so it is refused before it can turn into a mail loop.
start = subprocess.run([RELAYD, "--config", conf_path], capture_output=True, text=True,
                       timeout=30)
out = start.stdout + start.stderr
check(start.returncode == 2, "relayd refuses to start with an alias loop (exit %d)" % start.returncode)
check(re.search(r"aliases/local\.test:\d+: alias loop", out) is not None,
      "the error names the file and line: " + out.strip().splitlines()[-1] if out.strip() else "")

for c in controllers:
    c.stop()
unbound.terminate()
unbound.wait()
print("%d checks, %d failed" % (checks, len(failures)))
if failures:
    print(open(log_path).read()[-4000:])
    sys.exit(1)
shutil.rmtree(TMP, ignore_errors=True)
