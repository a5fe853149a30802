#!/usr/bin/python3
"""End-to-end: DANE (RFC 7672, issue 17 item 2) against a DNSSEC-signed zone.

The zone dane.test is signed with Debian's ldnsutils and served by an authoritative unbound
behind a validating one (the test's trust anchor), which relayd uses as its DNS server on
loopback, so it believes the AD bit (dnssec_trust_ad = "auto"). The zone gives each recipient
domain one MX and publishes TLSA records at _25._tcp.<mx>. Three aiosmtpd receivers share one
port: 127.0.0.2 shows a self-signed certificate, 127.0.0.3 a certificate a test CA signed (with
the CA in its chain), 127.0.0.4 offers no STARTTLS.

Shows: a DANE-EE record that matches the certificate's key delivers, logged and counted as dane;
a DANE-TA record naming the CA delivers when the certificate names the MX, and defers when it
does not; a record that does not match defers and nothing reaches the MX; a host whose TLSA set
has no usable record gets TLS without authentication (and no mail without TLS), a host that
offers no STARTTLS defers; an unsigned zone with the same wrong record stays opportunistic.

usage: dane_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import hashlib
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
TMP = harness.scratch("dane-")
EE_IP, TA_IP, PLAIN_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
MX_PORT = local_dns.free_port([EE_IP, TA_IP, PLAIN_IP])
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
SINK = local_smtp.Sink()


def openssl(*args):
    return subprocess.run(["openssl"] + list(args), check=True, capture_output=True,
                          cwd=TMP).stdout


def der_of(cert):
    return openssl("x509", "-in", cert, "-outform", "DER")


def spki_of(cert):
    pem = openssl("x509", "-in", cert, "-noout", "-pubkey")
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], check=True,
                          capture_output=True, input=pem).stdout


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@harness.fixture
def certs():
    """{"ee": (cert, key) self-signed for mx.ee.dane.test, "ta": (chain, key) signed by the test
    CA for mx.ta.dane.test, "ca": the CA's certificate}."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=mx.ee.dane.test", "-keyout", "ee.key", "-out", "ee.crt")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=relay test CA", "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
    open(TMP + "/ta.ext", "w").write("subjectAltName=DNS:mx.ta.dane.test\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.ta.dane.test",
            "-keyout", "ta.key", "-out", "ta.csr")
    openssl("x509", "-req", "-in", "ta.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ta.ext", "-out", "ta.crt")
    # The server sends its certificate and the CA's (RFC 7672 §3.2.1 asks for the TA in the chain).
    with open(TMP + "/ta-chain.crt", "w") as f:
        f.write(open(TMP + "/ta.crt").read() + open(TMP + "/ca.crt").read())
    return {"ee": (TMP + "/ee.crt", TMP + "/ee.key"),
            "ta": (TMP + "/ta-chain.crt", TMP + "/ta.key"), "ca": TMP + "/ca.crt"}


def mx(domain, host, ip):
    """Zone lines: `domain` has one MX, `host`, at `ip`."""
    return ["%s. 300 IN MX 10 %s." % (domain, host), "%s. 300 IN A %s" % (host, ip)]


def tlsa(host, usage, selector, mtype, data):
    return "_25._tcp.%s. 300 IN TLSA %d %d %d %s" % (host, usage, selector, mtype, data)


@harness.fixture
def dns_port():
    ee_key = sha256(spki_of(certs()["ee"][0]))
    ca_cert = sha256(der_of(certs()["ca"]))
    wrong = sha256(b"not the key")
    records = []
    records += mx("ee.dane.test", "mx.ee.dane.test", EE_IP)
    records.append(tlsa("mx.ee.dane.test", 3, 1, 1, ee_key))
    records += mx("ta.dane.test", "mx.ta.dane.test", TA_IP)
    records.append(tlsa("mx.ta.dane.test", 2, 0, 1, ca_cert))
    # The CA vouches for mx.ta.dane.test only: a host of another name with the same certificate.
    records += mx("taname.dane.test", "mx.taname.dane.test", TA_IP)
    records.append(tlsa("mx.taname.dane.test", 2, 0, 1, ca_cert))
    records += mx("wrong.dane.test", "mx.wrong.dane.test", EE_IP)
    records.append(tlsa("mx.wrong.dane.test", 3, 1, 1, wrong))
    # PKIX-EE (usage 1) is not for SMTP (RFC 7672 §3.1.3): a set with nothing usable, which still
    # makes TLS mandatory (§2.2).
    records += mx("unusable.dane.test", "mx.unusable.dane.test", EE_IP)
    records.append(tlsa("mx.unusable.dane.test", 1, 1, 1, ee_key))
    records += mx("unusableplain.dane.test", "mx.unusableplain.dane.test", PLAIN_IP)
    records.append(tlsa("mx.unusableplain.dane.test", 1, 1, 1, ee_key))
    records += mx("strip.dane.test", "mx.strip.dane.test", PLAIN_IP)
    records.append(tlsa("mx.strip.dane.test", 3, 1, 1, ee_key))
    # A signed domain without TLSA records: opportunistic, as before.
    records += mx("none.dane.test", "mx.none.dane.test", EE_IP)
    signed, anchor = local_dns.sign_zone(TMP, "dane.test", records)
    # The same wrong record in a zone nobody signed: not validated, so not used.
    plain = ('  local-zone: "unsigned.example." static\n'
             '  local-data: "unsigned.example. 300 IN MX 10 mx.unsigned.example."\n'
             '  local-data: "mx.unsigned.example. 300 IN A %s"\n'
             '  local-data: "%s"\n' % (EE_IP, tlsa("mx.unsigned.example", 3, 1, 1, wrong)))
    with local_dns.validating_unbound(TMP, [("dane.test", signed, anchor)], plain) as port:
        yield port


@harness.fixture
def sinks():
    def context(pair):
        c = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        c.load_cert_chain(*pair)
        return c
    started = []
    for ip, tls in ((EE_IP, context(certs()["ee"])), (TA_IP, context(certs()["ta"])),
                    (PLAIN_IP, None)):
        s = local_smtp.Controller(SINK, hostname=ip, port=MX_PORT, ready_timeout=10,
                                  tls_context=tls)
        s.start()
        started.append(harness.stop_at_exit(s, "stop", name="sink " + ip))
    return started


@harness.fixture
def conf():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("dn-", dir="/tmp") + "/control.sock",
         "tls_policy": {"downgrade_memory": False, "mta_sts": False, "dane": True,
                        "dnssec_trust_ad": "auto"}}))


@harness.fixture
def relay():
    sinks()
    with relayd_process.Relayd(RELAYD, conf()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-4000:]))
        yield r


def submit(rcpt):
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", conf()[1])
    s.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\nSubject: dane\r\n"
               "Message-ID: <%s@client.test>\r\n\r\nHi.\r\n" % (rcpt, time.time_ns()))
    s.quit()


def line(event, rcpt):
    """The latest `event` line of the delivery log for `rcpt` ({} when none comes)."""
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        found = [e for e in relayd_process.delivery_events(TMP + "/relay")
                 if e.get("event") == event and e.get("recipient") == rcpt]
        if found:
            return found[-1]
        time.sleep(0.2)
    check(False, "within %d s: a %s line for %s" % (WAIT_S, event, rcpt))
    return {}


def metric(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()
    m = re.search("^" + re.escape(name) + r" (\d+)$", body, re.M)
    return int(m.group(1)) if m else 0


@harness.case(1, "DANE-EE and DANE-TA records that match deliver, logged and counted as dane")
def matching():
    submit("a@ee.dane.test")
    submit("a@ta.dane.test")
    got = line("delivered", "a@ee.dane.test")
    check(got.get("tls", {}).get("mode") == "dane",
          "DANE-EE, the certificate's key: delivered as dane: %s" % got.get("tls"))
    got = line("delivered", "a@ta.dane.test")
    check(got.get("tls", {}).get("mode") == "dane",
          "DANE-TA, the CA of a certificate for the MX: delivered as dane: %s" % got.get("tls"))
    check(metric('relay_delivered_by_tls_total{mode="dane"}') >= 2, "counted as dane")
    submit("a@none.dane.test")
    got = line("delivered", "a@none.dane.test")
    check(got.get("tls", {}).get("mode") == "opportunistic",
          "a signed domain without TLSA records: opportunistic: %s" % got.get("tls"))


@harness.case(2, "a TLSA record that does not match defers; nothing reaches the MX")
def mismatch():
    submit("a@wrong.dane.test")
    held = line("deferred", "a@wrong.dane.test")
    check("TLSA records of mx.wrong.dane.test do not authenticate its certificate" in str(held)
          and held.get("category") == "bad-connection", "deferred with the reason: %s" % held)
    check(not SINK.delivered_to("a@wrong.dane.test"), "nothing reached the MX")
    submit("a@taname.dane.test")
    held = line("deferred", "a@taname.dane.test")
    check("DANE-TA" in str(held) and "mx.taname.dane.test" in str(held),
          "DANE-TA with a certificate for another name: deferred: %s" % held)
    check(not SINK.delivered_to("a@taname.dane.test"), "nothing reached that MX")


@harness.case(3, "no usable TLSA record: TLS without authentication; no STARTTLS: deferred")
def unusable():
    submit("a@unusable.dane.test")
    got = line("delivered", "a@unusable.dane.test")
    check(got.get("tls", {}).get("mode") == "opportunistic",
          "a TLSA set with nothing usable: delivered over TLS, not authenticated: %s"
          % got.get("tls"))
    submit("a@unusableplain.dane.test")
    held = line("deferred", "a@unusableplain.dane.test")
    check("publishes TLSA records (DANE): TLS is required" in str(held),
          "and TLS stays mandatory: no STARTTLS defers: %s" % held)
    check(not SINK.delivered_to("a@unusableplain.dane.test"), "nothing went in plain text")
    submit("a@strip.dane.test")
    held = line("deferred", "a@strip.dane.test")
    check("publishes TLSA records (DANE): TLS is required" in str(held) and
          "offered no STARTTLS" in str(held), "STARTTLS stripped: deferred: %s" % held)
    check(not SINK.delivered_to("a@strip.dane.test"), "nothing went in plain text")


@harness.case(4, "an unsigned zone's TLSA records are not used: opportunistic TLS")
def unsigned():
    submit("a@unsigned.example")
    got = line("delivered", "a@unsigned.example")
    check(got.get("tls", {}).get("mode") == "opportunistic",
          "the wrong record of an unsigned zone is ignored: %s" % got.get("tls"))


harness.main()
