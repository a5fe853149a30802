#!/usr/bin/env python3
"""End-to-end test of the submission server: relayd on loopback, driven by swaks, Python's smtplib
and raw sockets; accepted messages are read back from the spool with spool_dump. The configuration
is `relayd --init`'s own, DKIM keys included: every message accepted must be signed with both, and
verify (python3-dkim) against the records --init printed.

usage: submission_test.py RELAYD SPOOL_DUMP
"""
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import relayd_process  # noqa: E402  (the project's own helper, found through the path above)
import harness  # noqa: E402
from harness import check, failures  # noqa: E402,F401

RELAYD, SPOOL_DUMP = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="e2e-", dir=os.environ.get("TEST_TMPDIR"))
CONF_DIR = os.path.join(TMP, "relay")
USER, DOMAIN = "app@example.com", "example.com"


def run(cmd, timeout=60, input=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)


# --- configuration: the default one, with test ports, a small timeout and size limit ---
init = run([RELAYD, "--init", CONF_DIR, "--domain", DOMAIN, "--hostname", "relay.test"])
assert init.returncode == 0, init.stderr
PASSWORD = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
conf_path = os.path.join(CONF_DIR, "relayd.toml")
conf = open(conf_path).read()

# --init made two DKIM keys, named them in the config and printed their TXT records, as zone-file
# lines: "<selector>._domainkey.<domain>. IN TXT "v=DKIM1; k=rsa; p=..." "..."".
DKIM_RECORDS = {}
for owner, strings in re.findall(r'^(\S+)\. IN TXT ((?:"[^"]*" ?)+)$', init.stdout, re.M):
    DKIM_RECORDS[owner] = "".join(re.findall(r'"([^"]*)"', strings))
check(sorted(r.split(";")[1].strip() for r in DKIM_RECORDS.values()) == ["k=ed25519", "k=rsa"],
      "relayd --init prints an RSA and an Ed25519 DKIM record: %s" % sorted(DKIM_RECORDS))
keys = re.findall(r'^\[\[dkim\.key\]\]\ndomain = "([^"]+)"\nselector = "([^"]+)"\nkey = "([^"]+)"$',
                  conf, re.M)
check(sorted("%s._domainkey.%s" % (s, d) for d, s, _ in keys) == sorted(DKIM_RECORDS),
      "the config names one [[dkim.key]] per record printed")
check(keys and all(stat.S_IMODE(os.stat(os.path.join(CONF_DIR, k)).st_mode) == 0o600
                   for _, _, k in keys), "the private keys exist, mode 0600")
help_run = run([RELAYD, "--help"])
check(help_run.returncode == 0 and help_run.stdout.startswith("usage: relayd") and
      "--no-dkim" in help_run.stdout and help_run.stderr == "",
      "relayd --help: the usage on stdout, exit 0")
bad = run([RELAYD, "--bogus"])
check(bad.returncode == 2 and "usage: relayd" in bad.stderr and bad.stdout == "",
      "a wrong argument: the usage on stderr, exit 2")
relayd_process.configure(conf_path, {
    "submission": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
    "limits": {"command_timeout_ms": 4000, "message_bytes_max": 12000000,
               "connections_per_ip_max": 40},
    "shards": 2,
    "delivery": {"enabled": False},  # accept and queue only
    "auth": {"failures_before_delay": 2, "failure_delay_ms": 300, "failures_before_block": 6},
    "queue": {"segment_bytes": 32 << 20}})

log_path = os.path.join(TMP, "relayd.log")


def log_text():
    return open(log_path).read()


relayd, ready = relayd_process.start(RELAYD, conf_path, log_path)
harness.stop_at_exit(relayd)
if ready is None:
    print(log_text())
    sys.exit("relayd did not start")
PORT = relayd_process.port(ready, "submission (STARTTLS)")
TLS_PORT = relayd_process.port(ready, "submissions (TLS)")
print("relayd listening on", PORT, TLS_PORT)
check(" on ;" not in ready and "port 25" not in ready,
      "the ready line leaves out port 25, where nothing listens")


def swaks(*args, port=None):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % (port or PORT), "--timeout", "20",
           "--helo", "client.test"] + list(args)
    r = run(cmd)
    return r.returncode, r.stdout + r.stderr


def queued(output):
    return re.findall(r"250 2\.0\.0 Ok: queued as (\S+)", output)


# --- swaks: the three ways in ---
rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                "--from", USER, "--to", "someone@example.org", "--header", "Subject: plain")
check(rc == 0 and len(queued(out)) == 1, "STARTTLS + AUTH PLAIN is queued")
check("TLSv1.3" in out or "TLS" in out, "STARTTLS negotiated")

rc, out = swaks("--tls", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
                "--from", "news@example.com", "--to", "someone@example.org")
check(rc == 0 and len(queued(out)) == 1, "STARTTLS + AUTH LOGIN, another address of the domain")

rc, out = swaks("--tlsc", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                "--from", USER, "--to", "someone@example.org", port=TLS_PORT)
check(rc == 0 and len(queued(out)) == 1, "implicit TLS (465) + AUTH PLAIN is queued")

rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", "wrong",
                "--from", USER, "--to", "someone@example.org")
check("535 5.7.8" in out and not queued(out), "wrong password: 535 5.7.8")

rc, out = swaks("--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                "--from", "ceo@other.org", "--to", "someone@example.org")
check("550 5.7.1" in out and not queued(out), "sending as someone else: 550 5.7.1")

rc, out = swaks("--from", USER, "--to", "someone@example.org")
check("530 5.7.0" in out and not queued(out), "relaying without AUTH: 530 5.7.0")

rc, out = swaks("--tls", "--from", USER, "--to", "someone@example.org")
check("530 5.7.0" in out and not queued(out), "TLS but no AUTH: still 530 5.7.0")


# --- raw sockets ---
class Conn:
    def __init__(self, port=None, implicit_tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port or PORT), timeout=20)
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

    def login(self):
        self.reply()  # greeting
        self.cmd("EHLO client.test")
        self.starttls()
        self.cmd("EHLO client.test")
        token = base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode()
        r = self.cmd("AUTH PLAIN " + token)
        assert r.startswith("235"), r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


c = Conn()
c.reply()
ehlo = c.cmd("EHLO client.test")
check("AUTH" not in ehlo and "STARTTLS" in ehlo, "AUTH is not offered before STARTTLS")
r = c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode())
check(r.startswith("5"), "AUTH before STARTTLS refused (%s)" % r.split("\n")[0])
r = c.cmd("X" * 600)
check(r.startswith("500 5.5.2"), "command line longer than 512: 500 5.5.2")
r = c.cmd("NOOP")
check(r.startswith("250"), "the session goes on after an over-long line")
c.close()

# PIPELINING: many transactions in one write after AUTH.
c = Conn()
c.login()
N = 50
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

# SMTP smuggling: a bare-LF "end of data" must neither end the message nor start a second one.
c = Conn()
c.login()
c.cmd("MAIL FROM:<%s>" % USER)
c.cmd("RCPT TO:<victim@example.org>")
c.cmd("DATA")
c.send("Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<admin@example.com>\nRCPT TO:<x@example.org>\n"
       "DATA\nSubject: smuggled\n\nsmuggled body\n.\n\r\n.\r\n")
r = c.reply()
check(r.startswith("5"), "bare-LF smuggling attempt refused (%s)" % r)
r = c.cmd("NOOP")
check(r.startswith("250"), "exactly one reply for the smuggling attempt; session goes on")
c.send("MAIL FROM:<%s>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n" % USER)
c.reply(), c.reply(), c.reply()
c.send("Subject: cr\r\n\r\nfirst\r.\rsecond\r\n.\r\n")
r = c.reply()
check(r.startswith("5"), "bare-CR smuggling attempt refused (%s)" % r)
# A data line longer than 1000 bytes.
c.send("MAIL FROM:<%s>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n" % USER)
c.reply(), c.reply(), c.reply()
c.send("Subject: long\r\n\r\n" + "y" * 1200 + "\r\n.\r\n")
r = c.reply()
check(r.startswith("500 5.5.2"), "data line longer than the limit refused (%s)" % r)
c.cmd("QUIT")
c.close()

# 500 recipients, a 10 MB message, a too-big message, and dot lines, through smtplib. The big
# messages are built before connecting: on a loaded machine that takes longer than the timeout.
big_body = ("z" * 998 + "\r\n") * 10000  # ~10 MB
big = ("Subject: big\r\nFrom: %s\r\n\r\n" % USER + big_body).encode()
huge = big + big_body[:3000000].encode()
smtp = smtplib.SMTP("127.0.0.1", PORT, local_hostname="client.test", timeout=30)
smtp.starttls(context=ssl._create_unverified_context())
smtp.login(USER, PASSWORD)
rcpts = ["r%03d@example.net" % i for i in range(500)]
refused = smtp.sendmail(USER, rcpts, "Subject: many\r\nFrom: %s\r\n\r\nhello\r\n" % USER)
check(refused == {}, "500 recipients accepted")
smtp.sendmail(USER, ["big@example.org"], big)
check(True, "a 10 MB message is accepted")
try:
    smtp.sendmail(USER, ["huge@example.org"], huge)
    check(False, "a 13 MB message is refused (limit 12 MB)")
except smtplib.SMTPDataError as e:
    check(e.smtp_code == 552, "a 13 MB message is refused with 552 (%s)" % e.smtp_code)
except smtplib.SMTPSenderRefused as e:
    check(e.smtp_code == 552, "a 13 MB message is refused at MAIL with 552")
DOTS = ("Subject: dots\r\nFrom: %s\r\n\r\n.leading dot\r\n..two dots\r\n.\tdot tab\r\n"
        "middle . dot\r\n.\r\n\r\n. \r\nend\r\n" % USER)
smtp.sendmail(USER, ["dots@example.org"], DOTS)
# The signing domain is bound to the user (header_from = "owned"): a From: it may not send as is
# refused at the end of DATA, and the session goes on.
try:
    smtp.sendmail(USER, ["x@example.org"],
                  "Subject: spoof\r\nFrom: CEO <ceo@other.test>\r\n\r\nhi\r\n")
    check(False, "a From: the user may not send as is refused")
except smtplib.SMTPDataError as e:
    check(e.smtp_code == 550 and b"5.7.1" in e.smtp_error,
          "a From: the user may not send as is refused with 550 5.7.1 (%s %r)" %
          (e.smtp_code, e.smtp_error))
# A comment holding the user's own address does not hide the real From (the signer would take
# other.test's domain from it).
try:
    smtp.sendmail(USER, ["x@example.org"],
                  "Subject: spoof\r\nFrom: ceo@other.test (CEO <%s>)\r\n\r\nhi\r\n" % USER)
    check(False, "a From: hiding behind a comment is refused")
except smtplib.SMTPDataError as e:
    check(e.smtp_code == 550, "a From: hiding behind a comment is refused (%s)" % e.smtp_code)
smtp.sendmail(USER, ["after@example.org"],
              "Subject: after\r\nFrom: Someone <%s>\r\n\r\nhi\r\n" % USER)
check(True, "the session goes on after the refusal")
smtp.quit()

# A slow client is timed out (command_timeout_ms = 1500).
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

# SIGHUP certificate reload while a TLS session is open.
def peer_cert(port):
    s = ssl._create_unverified_context().wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10))
    der = s.getpeercert(binary_form=True)
    s.close()
    return der


old_cert = peer_cert(TLS_PORT)
held = Conn(port=TLS_PORT, implicit_tls=True)
held.reply()
held.cmd("EHLO client.test")
cert_path = os.path.join(CONF_DIR, "tls", "cert.pem")
key_path = os.path.join(CONF_DIR, "tls", "key.pem")
gen = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-days", "2", "-subj", "/CN=relay.test", "-keyout", key_path + ".new",
           "-out", cert_path + ".new"])
assert gen.returncode == 0, gen.stderr
os.replace(key_path + ".new", key_path)
os.replace(cert_path + ".new", cert_path)
relayd.send_signal(signal.SIGHUP)
new_cert = old_cert
for _ in range(50):
    time.sleep(0.1)
    new_cert = peer_cert(TLS_PORT)
    if new_cert != old_cert:
        break
check(new_cert != old_cert, "after SIGHUP new connections get the new certificate")
check(held.cmd("NOOP").startswith("250"), "the session opened before SIGHUP still works")
held.cmd("QUIT")
held.close()
# A bad certificate is refused and the current one kept.
open(cert_path, "w").write("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
relayd.send_signal(signal.SIGHUP)
time.sleep(0.5)
check(peer_cert(TLS_PORT) == new_cert, "a bad certificate on SIGHUP keeps the current one")

# Connections per client address: 40 in all (20 per shard); the rest get 421 4.7.0.
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

# Password guessing: failures are slowed, then the address is refused. The logins above cleared
# the earlier wrong password from app@example.com's own count but not from the address's: 5 more
# failures reach both the user's limit (5) and the address's (6).
c = Conn()
c.reply()
c.cmd("EHLO client.test")
c.starttls()
c.cmd("EHLO client.test")
times = []
for i in range(5):
    t0 = time.time()
    r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0app@example.com\0guess%d" % i).decode())
    times.append(time.time() - t0)
    check(r.startswith("535"), "guess %d refused (%s)" % (i + 1, r))
check(times[-1] >= 0.25, "repeated failures are answered slowly (%.2f s)" % times[-1])
r = c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (USER, PASSWORD)).encode()).decode())
check(r.startswith("535") or r.startswith("454"),
      "after 5 failures even the right password is refused (%s)" % r)
c.close()
c = Conn()
try:
    r = c.reply()
except (EOFError, OSError):
    r = ""
check(r.startswith("421 4.7.0"), "a blocked address's new connection gets 421 (%s)" % r)
c.close()

# --- stop cleanly, then read the spool back ---
relayd.send_signal(signal.SIGTERM)
try:
    code = relayd.wait(timeout=30)
except subprocess.TimeoutExpired:
    relayd.kill()
    code = -1
check(code == 0, "SIGTERM: clean exit 0")
out_dir = os.path.join(TMP, "dump")
dump = run([SPOOL_DUMP, os.path.join(CONF_DIR, "spool"), out_dir])
check(dump.returncode == 0, "spool readable: " + dump.stderr.strip())
messages = {}
for name in os.listdir(out_dir):
    if name.endswith(".eml"):
        messages[name[:-4]] = open(os.path.join(out_dir, name), "rb").read()
# swaks x3, pipelined, 500 recipients, 10 MB, dots, the message after the refused spoof
expected = 3 + N + 1 + 1 + 1 + 1
check(len(messages) == expected, "spool holds %d messages (expected %d)" % (len(messages), expected))
check(not any(b"smuggled" in m for m in messages.values()), "nothing smuggled reached the spool")
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


# Signed once, at acceptance, with each key --init made (RFC 6376, RFC 8463 dual signing).
def signature_algorithms(message):
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = re.findall(r"^DKIM-Signature:.*(?:\r\n[ \t].*)*", head, re.M | re.I)
    return sorted(re.search(r"\ba=([\w-]+)", f).group(1) for f in fields)


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
    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        return DKIM_RECORDS.get(name.rstrip("."), "").encode()

    bad_sigs = []
    for name, m in messages.items():
        d = dkim.DKIM(m)
        for idx in range(len(signature_algorithms(m))):
            if not d.verify(idx=idx, dnsfunc=dnsfunc):
                bad_sigs.append("%s#%d" % (name, idx))
    check(not bad_sigs, "every signature verifies with the records --init printed (failed: %s)"
          % bad_sigs[:5])

if failures:
    print(log_text()[-5000:])
else:
    shutil.rmtree(TMP, ignore_errors=True)
harness.finish()
