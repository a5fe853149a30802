#!/usr/bin/env python3
"""End-to-end test of the submission server: relayd on loopback, driven by swaks, Python's smtplib
and raw sockets; accepted messages are read back from the spool with spool_dump. The configuration
is `relayd --init`'s own, DKIM keys included: every message accepted must be signed with both, and
verify (python3-dkim) against the records --init printed.

The cases share one relayd, except password guessing, which blocks the user and so has a relayd
of its own. The spool is read back (the last case) after the messages the cases that ran sent,
each case having said how many it had queued; run alone, it sends the messages it looks for.

usage: submission_test.py RELAYD SPOOL_DUMP [--case N[,M...]] [--list]
"""
import base64
import os
import re
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import relayd_process  # noqa: E402  (the project's own helper, found through the path above)
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, SPOOL_DUMP = harness.args()[:2]
TMP = harness.scratch("e2e-")
USER, DOMAIN = "app@example.com", "example.com"


def run(cmd, timeout=60, input=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)


class Init:
    """`relayd --init` into conf_dir, with DKIM keys: what it wrote and printed."""

    def __init__(self, conf_dir):
        init = run([RELAYD, "--init", conf_dir, "--domain", DOMAIN, "--hostname", "relay.test"])
        assert init.returncode == 0, init.stderr
        self.conf_dir = conf_dir
        self.password = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
        self.conf_path = os.path.join(conf_dir, "relayd.toml")
        self.conf = open(self.conf_path).read()
        # --init made two DKIM keys, named them in the config and printed their TXT records, as
        # zone-file lines: "<selector>._domainkey.<domain>. IN TXT "v=DKIM1; k=rsa; p=..." "..."".
        self.dkim_records = {}
        for owner, strings in re.findall(r'^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$', init.stdout, re.M):
            self.dkim_records[owner] = "".join(re.findall(r'"([^"]*)"', strings))

    def relayd(self, log_path):
        """The configuration changed for the test (ports, a small timeout and size limit, no
        delivery), and a relayd (a context manager) that runs it."""
        relayd_process.configure(self.conf_path, {
            "submission": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
            "limits": {"command_timeout_ms": 4000, "message_bytes_max": 12000000,
                       "connections_per_ip_max": 40},
            "shards": 2,
            "delivery": {"enabled": False},  # accept and queue only
            "auth": {"failures_before_delay": 2, "failure_delay_ms": 300,
                     "failures_before_block": 6},
            "queue": {"segment_bytes": 32 << 20}})
        r = relayd_process.Relayd(RELAYD, self.conf_path, log_path)
        r.password = self.password
        return r


@harness.fixture
def initialized():
    return Init(os.path.join(TMP, "relay"))


@harness.fixture
def relay():
    """The relayd most cases share; `expected` counts the messages the cases queued on it."""
    with initialized().relayd(os.path.join(TMP, "relayd.log")) as r:
        harness.on_failure(lambda: print(r.log()[-5000:]))
        print("relayd listening on", r.port(), r.port("submissions (TLS)"))
        r.expected = 0
        yield r


def tls_port():
    return relay().port("submissions (TLS)")


def swaks(*args, port=None):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % (port or relay().port()), "--timeout", "20",
           "--helo", "client.test"] + list(args)
    r = run(cmd)
    return r.returncode, r.stdout + r.stderr


def queued(output):
    return re.findall(r"250 2\.0\.0 Ok: queued as (\S+)", output)


class Conn:
    """A raw SMTP connection to `relay` (the shared relayd by default)."""

    def __init__(self, port=None, implicit_tls=False, relay_=None):
        self.relay = relay_ or relay()
        self.sock = socket.create_connection(("127.0.0.1", port or self.relay.port()), timeout=20)
        if implicit_tls:
            self.sock = ssl._create_unverified_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        """Reads one complete (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; got %r" % lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def starttls(self):
        r = self.cmd("STARTTLS")
        assert r.startswith("220"), r
        self.sock = ssl._create_unverified_context().wrap_socket(self.sock)
        return r

    def login(self, password=None):
        self.reply()  # greeting
        self.cmd("EHLO client.test")
        self.starttls()
        self.cmd("EHLO client.test")
        token = base64.b64encode(("\0%s\0%s" % (USER, password or self.relay.password))
                                 .encode()).decode()
        r = self.cmd("AUTH PLAIN " + token)
        assert r.startswith("235"), r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@harness.case(1, "relayd --init makes two DKIM keys, names them and prints their records")
def init_keys():
    init = initialized()
    check(sorted(r.split(";")[1].strip() for r in init.dkim_records.values()) ==
          ["k=ed25519", "k=rsa"],
          "relayd --init prints an RSA and an Ed25519 DKIM record: %s" % sorted(init.dkim_records))
    keys = re.findall(r'^\[\[dkim\.key\]\]\ndomain = "([^"]+)"\nselector = "([^"]+)"\n'
                      r'key = "([^"]+)"$', init.conf, re.M)
    check(sorted("%s._domainkey.%s" % (s, d) for d, s, _ in keys) == sorted(init.dkim_records),
          "the config names one [[dkim.key]] per record printed")
    check(keys and all(stat.S_IMODE(os.stat(os.path.join(init.conf_dir, k)).st_mode) == 0o600
                       for _, _, k in keys), "the private keys exist, mode 0600")


@harness.case(2, "relayd --help and a wrong argument")
def usage():
    help_run = run([RELAYD, "--help"])
    check(help_run.returncode == 0 and help_run.stdout.startswith("usage: relayd") and
          "--no-dkim" in help_run.stdout and help_run.stderr == "",
          "relayd --help: the usage on stdout, exit 0")
    bad = run([RELAYD, "--bogus"])
    check(bad.returncode == 2 and "usage: relayd" in bad.stderr and bad.stdout == "",
          "a wrong argument: the usage on stderr, exit 2")


@harness.case(3, "the ready line names only the listeners there are")
def ready_line():
    ready = relay().ready
    check(" on ;" not in ready and "port 25" not in ready,
          "the ready line leaves out port 25, where nothing listens")


@harness.case(4, "swaks: STARTTLS, implicit TLS, AUTH PLAIN and LOGIN; the refusals")
def swaks_ways_in():
    password = relay().password
    relay().expected += 3
    rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", password,
                    "--from", USER, "--to", "someone@example.org", "--header", "Subject: plain")
    check(rc == 0 and len(queued(out)) == 1, "STARTTLS + AUTH PLAIN is queued")
    check("TLSv1.3" in out or "TLS" in out, "STARTTLS negotiated")

    rc, out = swaks("--tls", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", password,
                    "--from", "news@example.com", "--to", "someone@example.org")
    check(rc == 0 and len(queued(out)) == 1, "STARTTLS + AUTH LOGIN, another address of the domain")

    rc, out = swaks("--tlsc", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", password,
                    "--from", USER, "--to", "someone@example.org", port=tls_port())
    check(rc == 0 and len(queued(out)) == 1, "implicit TLS (465) + AUTH PLAIN is queued")

    rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", "wrong",
                    "--from", USER, "--to", "someone@example.org")
    check("535 5.7.8" in out and not queued(out), "wrong password: 535 5.7.8")

    rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", password,
                    "--from", "ceo@other.org", "--to", "someone@example.org")
    check("550 5.7.1" in out and not queued(out), "sending as someone else: 550 5.7.1")

    rc, out = swaks("--from", USER, "--to", "someone@example.org")
    check("530 5.7.0" in out and not queued(out), "relaying without AUTH: 530 5.7.0")

    rc, out = swaks("--tls", "--from", USER, "--to", "someone@example.org")
    check("530 5.7.0" in out and not queued(out), "TLS but no AUTH: still 530 5.7.0")


@harness.case(5, "no AUTH before STARTTLS; an over-long command line gets 500 5.5.2")
def before_tls():
    c = Conn()
    c.reply()
    ehlo = c.cmd("EHLO client.test")
    check("AUTH" not in ehlo and "STARTTLS" in ehlo, "AUTH is not offered before STARTTLS")
    r = c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (USER, relay().password))
                                               .encode()).decode())
    check(r.startswith("5"), "AUTH before STARTTLS refused (%s)" % r.split("\n")[0])
    r = c.cmd("X" * 600)
    check(r.startswith("500 5.5.2"), "command line longer than 512: 500 5.5.2")
    r = c.cmd("NOOP")
    check(r.startswith("250"), "the session goes on after an over-long line")
    c.close()


N = 50  # transactions pipelined in one write


@harness.case(6, "PIPELINING: 50 transactions in one write after AUTH")
def pipelining():
    relay().expected += N
    c = Conn()
    c.login()
    batch = ""
    for i in range(N):
        batch += ("MAIL FROM:<%s>\r\nRCPT TO:<r%d@example.org>\r\nDATA\r\n" % (USER, i))
        batch += "Subject: pipelined %d\r\nFrom: %s\r\n\r\nbody %d\r\n.\r\n" % (i, USER, i)
    c.send(batch)
    replies = [c.reply() for _ in range(N * 4)]
    ok_queued = sum(1 for r in replies if r.startswith("250 2.0.0 Ok: queued as"))
    check(ok_queued == N, "PIPELINING: %d transactions in one write, %d queued" % (N, ok_queued))
    c.cmd("QUIT")
    c.close()


@harness.fixture
def smuggling():
    """SMTP smuggling tried on one session, and a data line over the limit: the replies."""
    out = {}
    c = Conn()
    c.login()
    c.cmd("MAIL FROM:<%s>" % USER)
    c.cmd("RCPT TO:<victim@example.org>")
    c.cmd("DATA")
    # A bare-LF "end of data" must neither end the message nor start a second one.
    c.send("Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<admin@example.com>\n"
           "RCPT TO:<x@example.org>\nDATA\nSubject: smuggled\n\nsmuggled body\n.\n\r\n.\r\n")
    out["bare LF"] = c.reply()
    out["NOOP"] = c.cmd("NOOP")
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n" % USER)
    c.reply(), c.reply(), c.reply()
    c.send("Subject: cr\r\n\r\nfirst\r.\rsecond\r\n.\r\n")
    out["bare CR"] = c.reply()
    # A data line longer than 1000 bytes.
    c.send("MAIL FROM:<%s>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n" % USER)
    c.reply(), c.reply(), c.reply()
    c.send("Subject: long\r\n\r\n" + "y" * 1200 + "\r\n.\r\n")
    out["long line"] = c.reply()
    c.cmd("QUIT")
    c.close()
    return out


@harness.case(7, "SMTP smuggling with a bare LF or CR is refused; so is an over-long data line")
def smuggling_refused():
    r = smuggling()
    check(r["bare LF"].startswith("5"), "bare-LF smuggling attempt refused (%s)" % r["bare LF"])
    check(r["NOOP"].startswith("250"),
          "exactly one reply for the smuggling attempt; session goes on")
    check(r["bare CR"].startswith("5"), "bare-CR smuggling attempt refused (%s)" % r["bare CR"])
    check(r["long line"].startswith("500 5.5.2"),
          "data line longer than the limit refused (%s)" % r["long line"])


DOTS = ("Subject: dots\r\nFrom: %s\r\n\r\n.leading dot\r\n..two dots\r\n.\tdot tab\r\n"
        "middle . dot\r\n.\r\n\r\n. \r\nend\r\n" % USER)


@harness.fixture
def smtplib_session():
    """One smtplib session: 500 recipients, a 10 MB message, a too-big one, dot lines, two From:
    fields the user may not send as, a message after them. What became of each (an exception,
    or what sendmail returned)."""
    out = {}
    # The big messages are built before connecting: on a loaded machine that takes longer than
    # the timeout.
    big_body = ("z" * 998 + "\r\n") * 10000  # ~10 MB
    big = ("Subject: big\r\nFrom: %s\r\n\r\n" % USER + big_body).encode()
    huge = big + big_body[:3000000].encode()
    smtp = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    smtp.starttls(context=ssl._create_unverified_context())
    smtp.login(USER, relay().password)
    rcpts = ["r%03d@example.net" % i for i in range(500)]
    relay().expected += 4  # 500 recipients, 10 MB, dots, the message after the refused spoof
    out["many"] = smtp.sendmail(USER, rcpts, "Subject: many\r\nFrom: %s\r\n\r\nhello\r\n" % USER)
    out["big"] = smtp.sendmail(USER, ["big@example.org"], big)

    def refusal(rcpt, message):
        try:
            smtp.sendmail(USER, [rcpt], message)
            return None
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
            return e

    out["huge"] = refusal("huge@example.org", huge)
    smtp.sendmail(USER, ["dots@example.org"], DOTS)
    # The signing domain is bound to the user (header_from = "owned"): a From: it may not send as
    # is refused at the end of DATA, and the session goes on.
    out["spoof"] = refusal("x@example.org",
                           "Subject: spoof\r\nFrom: CEO <ceo@other.test>\r\n\r\nhi\r\n")
    # A comment holding the user's own address does not hide the real From (the signer would
    # take other.test's domain from it).
    out["comment"] = refusal("x@example.org", "Subject: spoof\r\nFrom: ceo@other.test (CEO <%s>)"
                             "\r\n\r\nhi\r\n" % USER)
    out["after"] = smtp.sendmail(USER, ["after@example.org"],
                                 "Subject: after\r\nFrom: Someone <%s>\r\n\r\nhi\r\n" % USER)
    smtp.quit()
    return out


@harness.case(8, "smtplib: 500 recipients, 10 MB, too big, a From: the user may not send as")
def smtplib_limits():
    out = smtplib_session()
    check(out["many"] == {}, "500 recipients accepted")
    check(True, "a 10 MB message is accepted")
    e = out["huge"]
    if e is None:
        check(False, "a 13 MB message is refused (limit 12 MB)")
    elif isinstance(e, smtplib.SMTPDataError):
        check(e.smtp_code == 552, "a 13 MB message is refused with 552 (%s)" % e.smtp_code)
    else:
        check(e.smtp_code == 552, "a 13 MB message is refused at MAIL with 552")
    e = out["spoof"]
    if not isinstance(e, smtplib.SMTPDataError):
        check(False, "a From: the user may not send as is refused")
    else:
        check(e.smtp_code == 550 and b"5.7.1" in e.smtp_error,
              "a From: the user may not send as is refused with 550 5.7.1 (%s %r)" %
              (e.smtp_code, e.smtp_error))
    e = out["comment"]
    if not isinstance(e, smtplib.SMTPDataError):
        check(False, "a From: hiding behind a comment is refused")
    else:
        check(e.smtp_code == 550, "a From: hiding behind a comment is refused (%s)" % e.smtp_code)
    check(True, "the session goes on after the refusal")


@harness.case(9, "an idle client is timed out with 421 4.4.2")
def idle_timeout():
    c = Conn()
    c.reply()
    c.cmd("EHLO client.test")
    start = time.time()
    try:
        r = c.reply()
    except EOFError:
        r = ""
    check(r.startswith("421 4.4.2") and time.time() - start < 15,
          "idle client timed out with 421 4.4.2 after %.1f s" % (time.time() - start))
    c.close()


def peer_cert(port):
    s = ssl._create_unverified_context().wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10))
    der = s.getpeercert(binary_form=True)
    s.close()
    return der


@harness.case(10, "SIGHUP reloads the certificate, a TLS session open meanwhile; a bad one is not")
def certificate_reload():
    old_cert = peer_cert(tls_port())
    held = Conn(port=tls_port(), implicit_tls=True)
    held.reply()
    held.cmd("EHLO client.test")
    conf_dir = initialized().conf_dir
    cert_path = os.path.join(conf_dir, "tls", "cert.pem")
    key_path = os.path.join(conf_dir, "tls", "key.pem")
    gen = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-days", "2", "-subj", "/CN=relay.test", "-keyout", key_path + ".new",
               "-out", cert_path + ".new"])
    assert gen.returncode == 0, gen.stderr
    os.replace(key_path + ".new", key_path)
    os.replace(cert_path + ".new", cert_path)
    relay().signal(signal.SIGHUP)
    new_cert = old_cert
    for _ in range(50):
        time.sleep(0.1)
        new_cert = peer_cert(tls_port())
        if new_cert != old_cert:
            break
    check(new_cert != old_cert, "after SIGHUP new connections get the new certificate")
    check(held.cmd("NOOP").startswith("250"), "the session opened before SIGHUP still works")
    held.cmd("QUIT")
    held.close()
    # A bad certificate is refused and the current one kept.
    good = open(cert_path).read()
    open(cert_path, "w").write("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    relay().signal(signal.SIGHUP)
    time.sleep(0.5)
    check(peer_cert(tls_port()) == new_cert, "a bad certificate on SIGHUP keeps the current one")
    open(cert_path, "w").write(good)  # what relayd runs with, for a start after this case


@harness.case(11, "connections per client address: 40 in all, the rest get 421 4.7.0")
def connections_per_address():
    conns, refused_conns = [], 0
    for _ in range(60):
        c = Conn()
        r = c.reply()
        if r.startswith("421 4.7.0"):
            refused_conns += 1
            c.close()
        else:
            conns.append(c)
    check(len(conns) <= 40 and refused_conns >= 20,
          "connections per address limited: %d open, %d refused with 421 4.7.0"
          % (len(conns), refused_conns))
    for c in conns:
        c.close()
    time.sleep(0.3)


@harness.case(12, "password guessing is slowed, then the address refused (a relayd of its own)")
def password_guessing():
    # The user ends blocked: the other cases' relayd must not be this one.
    init = Init(os.path.join(TMP, "guessing"))
    r = harness.enter(init.relayd(os.path.join(TMP, "guessing.log")))
    # What the cases before this one left on the shared relayd: a wrong password from the
    # address, which the user's successful logins then cleared from the user's own count (not
    # from the address's). 5 more failures reach both the user's limit (5) and the address's (6).
    c = Conn(relay_=r)
    c.reply()
    c.cmd("EHLO client.test")
    c.starttls()
    c.cmd("EHLO client.test")
    wrong = c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0wrong" % USER).encode()).decode())
    assert wrong.startswith("535"), wrong
    c.close()
    c = Conn(relay_=r)
    c.login()
    c.close()

    c = Conn(relay_=r)
    c.reply()
    c.cmd("EHLO client.test")
    c.starttls()
    c.cmd("EHLO client.test")
    times = []
    for i in range(5):
        t0 = time.time()
        reply = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0app@example.com\0guess%d" % i).decode())
        times.append(time.time() - t0)
        check(reply.startswith("535"), "guess %d refused (%s)" % (i + 1, reply))
    check(times[-1] >= 0.25, "repeated failures are answered slowly (%.2f s)" % times[-1])
    reply = c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (USER, r.password))
                                                   .encode()).decode())
    check(reply.startswith("535") or reply.startswith("454"),
          "after 5 failures even the right password is refused (%s)" % reply)
    c.close()
    c = Conn(relay_=r)
    try:
        reply = c.reply()
    except (EOFError, OSError):
        reply = ""
    check(reply.startswith("421 4.7.0"), "a blocked address's new connection gets 421 (%s)"
          % reply)
    c.close()


# Signed once, at acceptance, with each key --init made (RFC 6376, RFC 8463 dual signing).
def signature_algorithms(message):
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = re.findall(r"^DKIM-Signature:.*(?:\r\n[ \t].*)*", head, re.M | re.I)
    return sorted(re.search(r"\ba=([\w-]+)", f).group(1) for f in fields)


@harness.case(13, "after a clean stop the spool holds what was queued, byte for byte, signed")
def spool():
    # What this case looks for; the other cases' messages are counted when they ran.
    smuggling()
    smtplib_session()
    expected = relay().expected
    code = relay().stop()
    check(code == 0, "SIGTERM: clean exit 0")
    out_dir = os.path.join(TMP, "dump")
    dump = run([SPOOL_DUMP, os.path.join(initialized().conf_dir, "spool"), out_dir])
    check(dump.returncode == 0, "spool readable: " + dump.stderr.strip())
    messages = {}
    for name in os.listdir(out_dir):
        if name.endswith(".eml"):
            messages[name[:-4]] = open(os.path.join(out_dir, name), "rb").read()
    check(len(messages) == expected,
          "spool holds %d messages (expected %d)" % (len(messages), expected))
    check(not any(b"smuggled" in m for m in messages.values()),
          "nothing smuggled reached the spool")
    dots = [m for m in messages.values() if b"Subject: dots" in m]
    if dots:
        body = dots[0].split(b"\r\n\r\n", 1)[1]
        want = DOTS.split("\r\n\r\n", 1)[1].encode()
        check(body == want, "lines starting with '.' arrive in the queue byte-for-byte")
    else:
        check(False, "the dots message is in the spool")
    any_msg = dots[0] if dots else b""
    check(any_msg.startswith(b"Received: from client.test") and b"ESMTPSA" in any_msg,
          "Received header with ESMTPSA first")
    check(b"Message-ID:" in any_msg or b"Message-Id:" in any_msg, "Message-ID added when missing")
    check(b"\r\nDate:" in any_msg, "Date added when missing")
    many = [n for n in os.listdir(out_dir) if n.endswith(".env") and
            open(os.path.join(out_dir, n)).read().count("\nto ") == 500]
    check(len(many) == 1, "the 500-recipient envelope is in the spool")
    check(not any(b"Subject: spoof" in m for m in messages.values()),
          "the message with a From: the user may not send as is not in the spool")

    dual = [n for n, m in messages.items()
            if signature_algorithms(m) == ["ed25519-sha256", "rsa-sha256"]]
    check(messages and len(dual) == len(messages),
          "every message in the spool is signed RSA + Ed25519 (%d of %d)"
          % (len(dual), len(messages)))
    try:
        import dkim
    except ImportError:
        dkim = None
        print("note: python3-dkim is missing; the signatures are not verified")
    if dkim is not None:
        records = initialized().dkim_records

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return records.get(name.rstrip("."), "").encode()

        bad_sigs = []
        for name, m in messages.items():
            d = dkim.DKIM(m)
            for idx in range(len(signature_algorithms(m))):
                if not d.verify(idx=idx, dnsfunc=dnsfunc):
                    bad_sigs.append("%s#%d" % (name, idx))
        check(not bad_sigs, "every signature verifies with the records --init printed (failed: %s)"
              % bad_sigs[:5])


harness.main()
