#!/usr/bin/python3
"""End-to-end pipelining across transactions (RFC 2920 §3.1): relayd delivers several messages
over one connection and writes the next message's MAIL/RCPT/DATA right after a body's "." without
waiting for its final reply.

  probe (127.0.0.2, .3, .5): a small SMTP server written here that offers PIPELINING, answers
      its greeting late (so that every message is queued before the first transaction) and, after
      each end of data, waits up to PROBE_WAIT_S before its final reply: bytes arriving in that
      window are the client's next commands, sent without waiting (pipelined). It answers 554 to
      the "." of the message whose subject says "reject at dot". At tlspipe.test it offers
      STARTTLS, so the pipelined commands go through relayd's TLS path. At droppipe.test
      (127.0.0.6) its first connection closes after the first end of data without a reply, with
      the next transaction already sent behind it.
  Postfix's smtp-sink (127.0.0.4, Debian package postfix; it offers PIPELINING): each message
      dumped to a file, so that each is counted.

Checks: every message arrives exactly once over one connection per site; at pipe.test every
message but the last is pipelined (also over TLS), and the one after the rejected "." still goes;
with
pipeline_transactions = false (nopipe.test) none is; a connection lost with two messages open
leaves both to a retry that delivers each once, the one whose "." got no reply logged as a possible
duplicate; smtp-sink gets each of its messages once.

Every site's messages are submitted together in one session, once, whichever cases run (the
traffic fixture): each case then checks one site.

usage: pipeline_test.py RELAYD [--case N[,M...]] [--list]
"""
import glob
import json
import os
import re
import select
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
SINK = "/usr/sbin/smtp-sink"
TMP = harness.scratch("pipeline-")
PROBE_IPS = {"pipe": "127.0.0.2", "nopipe": "127.0.0.3", "tlspipe": "127.0.0.5",
             "droppipe": "127.0.0.6"}
SINK_IP = "127.0.0.4"
GREETING_DELAY_S = 2.0
PROBE_WAIT_S = 0.5



# --- the probe server ----------------------------------------------------------------------------
lock = threading.Lock()
probe_messages = []  # dicts: site, connection, subject, pipelined, reply
probe_connections = {site: 0 for site in PROBE_IPS}
probe_tls = []  # sites whose messages came over TLS


def serve_probe(conn, site, number):
    buf = b""
    tls = False

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        text, buf = buf.split(b"\r\n", 1)
        return text

    def send(text):
        conn.sendall(text.encode() + b"\r\n")

    time.sleep(GREETING_DELAY_S)
    send("220 probe ESMTP")
    while True:
        cmd = line()
        if cmd is None:
            return
        verb = cmd[:4].upper()
        if verb == b"EHLO":
            starttls = "250-STARTTLS\r\n" if site == "tlspipe" and not tls else ""
            send("250-probe\r\n250-PIPELINING\r\n%s250-8BITMIME\r\n250 SIZE 2000000" % starttls)
        elif cmd.upper() == b"STARTTLS" and site == "tlspipe" and not tls:
            send("220 go ahead")
            conn = tls_context().wrap_socket(conn, server_side=True)
            buf, tls = b"", True
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            send("250 ok")
        elif verb == b"DATA":
            send("354 go")
            body, size = [], 0
            while True:
                l = line()
                if l is None:
                    return
                if l == b".":
                    break
                body.append(l)
                size += len(l) + 2
            subject = next((l.decode(errors="replace")[9:] for l in body
                            if l.lower().startswith(b"subject: ")), "")
            # Anything the client sends before this reply was written without waiting for it.
            pipelined = (bool(buf) or (tls and conn.pending() > 0) or
                         bool(select.select([conn], [], [], PROBE_WAIT_S)[0]))
            if site == "droppipe" and number == 1:
                # Connection lost with the message's final reply and the next transaction open.
                with lock:
                    probe_messages.append({"site": site, "connection": number, "subject": subject,
                                           "pipelined": pipelined, "reply": "", "tls": tls,
                                           "size": size})
                return
            reply = "554 5.7.1 rejected at dot" if "reject at dot" in subject else "250 2.0.0 ok"
            with lock:
                probe_messages.append({"site": site, "connection": number, "subject": subject,
                                       "pipelined": pipelined, "reply": reply[:3], "tls": tls,
                                       "size": size})
            send(reply)
        elif verb == b"QUIT":
            send("221 bye")
            return
        else:
            send("502 5.5.2 what")


@harness.fixture
def tls_context():
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.tlspipe.test", "-keyout", TMP + "/mx.key",
                    "-out", TMP + "/mx.crt"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TMP + "/mx.crt", TMP + "/mx.key")
    return context


def listen_probe(site, ip, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(16)

    def accept_loop():
        while True:
            conn, _ = s.accept()
            with lock:
                probe_connections[site] += 1
                number = probe_connections[site]
            threading.Thread(target=lambda: (serve_probe(conn, site, number), conn.close()),
                             daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


MX_PORT = local_dns.free_port(list(PROBE_IPS.values()) + [SINK_IP])
N_PIPE, N_NOPIPE, N_TLS, N_DROP, N_SINK = 8, 3, 4, 3, 20
REJECTED = 3  # pipe.test message whose "." gets 554
LARGE = 5  # pipe.test message of about 630 KB: its body takes several writes, the commands the last
# The subjects each site must receive, once each.
EXPECTED = {site: ["%s %d%s" % (site, i, " reject at dot" if site == "pipe" and i == REJECTED
                                else "") for i in range(n)]
            for site, n in (("pipe", N_PIPE), ("nopipe", N_NOPIPE), ("tlspipe", N_TLS),
                            ("droppipe", N_DROP), ("sink", N_SINK))}


@harness.fixture
def receivers():
    """The probe on its addresses and smtp-sink, until the end."""
    tls_context()
    for site, ip in PROBE_IPS.items():
        listen_probe(site, ip, MX_PORT)  # daemon threads: they end with the test
    os.makedirs(TMP + "/sink")
    sink = subprocess.Popen([SINK, "-u", "root", "-d", TMP + "/sink/%M.",
                             "%s:%d" % (SINK_IP, MX_PORT), "64"],
                            stdout=open(TMP + "/sink.log", "w"), stderr=subprocess.STDOUT)
    try:
        yield sink
    finally:
        harness.stop_process(sink)


@harness.fixture
def relay():
    """relayd, its DNS server and the receivers."""
    receivers()
    zones = """
  local-zone: "test." static
  local-data: "pipe.test. 300 IN MX 10 mx.pipe.test."
  local-data: "mx.pipe.test. 300 IN A {pipe}"
  local-data: "nopipe.test. 300 IN MX 10 mx.nopipe.test."
  local-data: "mx.nopipe.test. 300 IN A {nopipe}"
  local-data: "tlspipe.test. 300 IN MX 10 mx.tlspipe.test."
  local-data: "mx.tlspipe.test. 300 IN A {tlspipe}"
  local-data: "droppipe.test. 300 IN MX 10 mx.droppipe.test."
  local-data: "mx.droppipe.test. 300 IN A {droppipe}"
  local-data: "sink.test. 300 IN MX 10 mx.sink.test."
  local-data: "mx.sink.test. 300 IN A {sink}"
""".format(sink=SINK_IP, **PROBE_IPS)
    with local_dns.unbound(TMP, zones) as dns_port:
        conf_path, password = relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
            relayd_process.loopback(dns_port, MX_PORT, shards=1),
            # A quick retry for the messages of the dropped connection.
            {"retry": {"intervals_s": [1, 1, 3600], "jitter_fraction": 0.0},
             "control_socket": harness.scratch("pl-", dir="/tmp") + "/control.sock"}),
            # One connection per site, so that every message goes over the same one.
            append="""
[[shaping]]
name = "pipe-test"
domains = ["pipe.test", "tlspipe.test", "droppipe.test", "sink.test"]
connections_max = 1

[[shaping]]
name = "nopipe-test"
domains = ["nopipe.test"]
connections_max = 1
pipeline_transactions = false
""")
        with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
            harness.on_failure(lambda: print(r.log()[-5000:]))
            r.password = password
            yield r


def sink_subjects():
    out = []
    for name in os.listdir(TMP + "/sink"):
        text = open(os.path.join(TMP, "sink", name), errors="replace").read()
        m = re.search(r"^Subject: (.*)$", text, re.M)
        out.append(m.group(1).strip() if m else "")
    return out


@harness.fixture
def traffic():
    """Every site's messages submitted in one session and delivered (or 30 s gone): (what the
    probe saw, its connections per site)."""
    r = relay()
    s = smtplib.SMTP("127.0.0.1", r.port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", r.password)
    for site, subjects in EXPECTED.items():
        for i, subject in enumerate(subjects):
            rcpt = "user%d@%s.test" % (i, site)
            filler = ("." + "x" * 75 + "\r\n") * 8000 if site == "pipe" and i == LARGE else ""
            s.sendmail("app@example.com", [rcpt],
                       "From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\nbody %d\r\n"
                       ".leading dot\r\n%s" % (rcpt, subject, i, filler))
    s.quit()

    def done():
        with lock:
            probed = len(probe_messages)
            answered = sum(1 for m in probe_messages if m["site"] == "droppipe" and m["reply"])
        return (probed >= N_PIPE + N_NOPIPE + N_TLS + N_DROP + 1 and answered >= N_DROP and
                len(sink_subjects()) >= N_SINK)

    deadline = time.time() + 30
    while time.time() < deadline and not done():
        time.sleep(0.1)
    time.sleep(1)  # anything delivered twice would show up now

    with lock:
        return list(probe_messages), dict(probe_connections)


def check_site(site):
    """The checks every probe site shares: its messages once each, over one connection; returns
    what the probe saw of them and how many were pipelined."""
    seen, connections = traffic()
    got = [m for m in seen if m["site"] == site]
    subjects = [m["subject"] for m in got]
    check(sorted(subjects) == sorted(EXPECTED[site]),
          "%s.test: each of its %d messages exactly once (%d seen)"
          % (site, len(EXPECTED[site]), len(subjects)))
    check(connections[site] == 1, "%s.test: one connection (%d)" % (site, connections[site]))
    return got, sum(1 for m in got if m["pipelined"])


@harness.case(1, "pipe.test: every message but the last pipelined, past a 554 and a large body")
def pipe():
    got, pipelined = check_site("pipe")
    check(pipelined == N_PIPE - 1,
          "pipe.test: the next MAIL came before the final reply for every message but the "
          "last (%d of %d)" % (pipelined, N_PIPE))
    after = [m for m in got if m["subject"] == EXPECTED["pipe"][REJECTED + 1]]
    check(len(after) == 1 and after[0]["reply"] == "250",
          "pipe.test: the message after the 554 to the \".\" was delivered")
    large = [m for m in got if m["subject"] == EXPECTED["pipe"][LARGE]]
    check(len(large) == 1 and large[0]["size"] > 8000 * 78 and large[0]["pipelined"],
          "pipe.test: a large body (%s bytes, dot-stuffed lines) followed by the next "
          "MAIL" % (large[0]["size"] if large else "no"))


@harness.case(2, "nopipe.test (pipeline_transactions = false): none pipelined")
def nopipe():
    _, pipelined = check_site("nopipe")
    check(pipelined == 0, "nopipe.test (pipeline_transactions = false): none pipelined "
          "(%d)" % pipelined)


@harness.case(3, "tlspipe.test: pipelined over STARTTLS")
def tlspipe():
    got, pipelined = check_site("tlspipe")
    check(all(m["tls"] for m in got) and pipelined == N_TLS - 1,
          "tlspipe.test: over STARTTLS, every message but the last pipelined (%d of %d)"
          % (pipelined, N_TLS))


@harness.case(4, "droppipe.test: a connection lost with two messages open, retried once each")
def droppipe():
    seen, connections = traffic()
    got = [m for m in seen if m["site"] == "droppipe"]
    dropped = [m for m in got if not m["reply"]]
    check(len(dropped) == 1 and dropped[0]["pipelined"] and dropped[0]["connection"] == 1,
          "droppipe.test: the first connection dropped after a \".\" with the next MAIL behind it")
    delivered = sorted(m["subject"] for m in got if m["reply"] == "250")
    check(delivered == sorted(EXPECTED["droppipe"]),
          "droppipe.test: after the retry each message delivered exactly once (%s)" % delivered)
    check(connections["droppipe"] >= 2, "droppipe.test: retried over a new connection (%d)"
          % connections["droppipe"])
    # The message whose "." got no reply may have been taken (RFC 1047): its second delivery is
    # logged as a possible duplicate, and no other delivery is.
    flagged, unflagged = set(), set()
    for path in glob.glob(TMP + "/relay/log/delivery-*.log"):
        for line in open(path):
            rec = json.loads(line)
            if rec.get("event") == "delivered" and rec["recipient"].endswith("@droppipe.test"):
                (flagged if rec.get("possible_duplicate") else unflagged).add(rec["recipient"])
    expected_flagged = {"user%s@droppipe.test" % m["subject"].split()[1] for m in dropped}
    check(flagged == expected_flagged and len(unflagged) == N_DROP - 1,
          "droppipe.test: the delivery after the unanswered \".\" says possible_duplicate (%s), "
          "the others do not (%d)" % (sorted(flagged), len(unflagged)))


@harness.case(5, "Postfix's smtp-sink gets each of its messages once")
def smtp_sink():
    traffic()
    subjects = sink_subjects()
    check(sorted(subjects) == sorted(EXPECTED["sink"]),
          "smtp-sink: each of its %d messages exactly once (%d dumped)" % (N_SINK, len(subjects)))


harness.main()
