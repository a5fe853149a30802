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

MTA-STS: a test CA signs the certificates of a second receiver (mx.enforce.example and
mx.unlisted.example) and of an HTTPS server (python's http.server) that serves each domain's
policy at https://mta-sts.<domain>/.well-known/mta-sts.txt; a third receiver shows a self-signed
certificate (mx.badcert.example, mx.testing.example). The zone publishes _mta-sts TXT records.
Shows: an enforce policy with a certificate valid for the MX delivers, logged as mta-sts; an
enforce policy with a certificate that is not valid defers, and so does one whose mx patterns do
not name the MX; an MX the policy does not list is passed over for one it lists; a testing policy
delivers anyway; the policies are kept in <spool>/mta-sts and hold after a restart while the
HTTPS server is down.

REQUIRETLS (RFC 8689): the relay offers it after STARTTLS; a message submitted with it goes to an
MX its domain's MTA-STS policy lists, with a certificate valid for it, that offers REQUIRETLS (and
gets the parameter); it bounces with 5.7.30 from one that does not offer it, whose certificate is
not valid, or that neither DNSSEC nor MTA-STS vouches for. A message that says `TLS-Required: No`
goes in plain text to a remembered domain whose STARTTLS is gone.

TLS reporting (RFC 8460), with a report window of a few seconds: rpt.example (enforce, a valid
certificate) and rptfail.example (testing, a self-signed one) publish _smtp._tls records; after a
window each gets its report by mail (to a receiver, MIME multipart/report with the gzip) and by
HTTPS POST (to a server the test CA vouches for), with the right policy, counts and failure type.

usage: tls_policy_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import email
import gzip
import http.server
import json
import os
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import aiosmtpd.smtp

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
GOOD_IP, BAD_IP, HTTPS_IP = "127.0.0.5", "127.0.0.4", "127.0.0.3"
RT_IP, NO_RT_IP = "127.0.0.6", "127.0.0.7"  # receivers that offer REQUIRETLS, and not
REPORTS_IP = "127.0.0.8"  # reports.example: its MX and its HTTPS report server
DEAD_IP = "127.0.0.9"  # nothing listens there
MX_PORT = local_dns.free_port([SINK_IP, GOOD_IP, BAD_IP, RT_IP, NO_RT_IP, REPORTS_IP])
REPORTS_HTTPS_PORT = local_dns.free_port([REPORTS_IP])
REPORT_WINDOW_S = 3
HTTPS_PORT = local_dns.free_port([HTTPS_IP])
POLICIES = {
    "enforce.example": "mode: enforce\r\nmx: mx.enforce.example\r\n",
    "badcert.example": "mode: enforce\r\nmx: *.badcert.example\r\n",
    "testing.example": "mode: testing\r\nmx: mx.testing.example\r\n",
    "unlisted.example": "mode: enforce\r\nmx: mx.elsewhere.example\r\n",
    "mixed.example": "mode: enforce\r\nmx: mx.mixed.example\r\n",
    "rpt.example": "mode: enforce\r\nmx: mx.rpt.example\r\n",
    "rptfail.example": "mode: testing\r\nmx: mx.rptfail.example\r\n",
    # REQUIRETLS needs an MX that DNSSEC or MTA-STS vouches for (RFC 8689 §4.2.1): testing mode
    # is enough.
    # Its policy server's first address takes no connection: the second one serves it.
    "twoaddr.example": "mode: enforce\r\nmx: mx.twoaddr.example\r\n",
    "rt-ok.example": "mode: testing\r\nmx: mx.rt-ok.example\r\n",
    "rt-no.example": "mode: testing\r\nmx: mx.rt-no.example\r\n",
    "rt-bad.example": "mode: testing\r\nmx: mx.rt-bad.example\r\n",
}
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
SINK = local_smtp.Sink()


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=TMP)


@harness.fixture
def ca():
    """The test CA's certificate file, and a function making a key and certificate it signs for
    some DNS names: (cert path, key path)."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=relay test CA", "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")

    def issue(name, *dns_names):
        open(TMP + "/%s.ext" % name, "w").write(
            "subjectAltName=" + ",".join("DNS:" + n for n in dns_names) + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + dns_names[0],
                "-keyout", name + ".key", "-out", name + ".csr")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt")
        return TMP + "/" + name + ".crt", TMP + "/" + name + ".key"
    return TMP + "/ca.crt", issue


class PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        domain = self.headers.get("Host", "").split(":")[0][len("mta-sts."):]
        body = POLICIES.get(domain)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        data = ("version: STSv1\r\n" + body + "max_age: 86400\r\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class PolicyServer:
    """https://mta-sts.<domain>/.well-known/mta-sts.txt for each domain of POLICIES."""

    def __init__(self):
        cert, key = ca()[1]("https", *["mta-sts." + d for d in POLICIES])
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self.server = http.server.ThreadingHTTPServer((HTTPS_IP, HTTPS_PORT), PolicyHandler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@harness.fixture
def dns_port():
    zones = local_dns.mx_zones(("secure.example", "plain.example"), SINK_IP)
    zones += local_dns.mx_zones(("enforce.example", "unlisted.example"), GOOD_IP)
    zones += local_dns.mx_zones(("badcert.example", "testing.example"), BAD_IP)
    # mixed.example: its preferred MX is not in its policy (as an attacker would make it), the
    # second one is.
    zones += ('  local-zone: "mixed.example." static\n'
              '  local-data: "mixed.example. 300 IN MX 10 evil.mixed.example."\n'
              '  local-data: "mixed.example. 300 IN MX 20 mx.mixed.example."\n'
              '  local-data: "evil.mixed.example. 300 IN A %s"\n'
              '  local-data: "mx.mixed.example. 300 IN A %s"\n' % (BAD_IP, GOOD_IP))
    zones += local_dns.mx_zones(("rpt.example",), GOOD_IP)
    zones += local_dns.mx_zones(("rptfail.example",), BAD_IP)
    zones += local_dns.mx_zones(("reports.example",), REPORTS_IP)
    zones += '  local-data: "reports.example. 300 IN A %s"\n' % REPORTS_IP
    for domain in ("rpt.example", "rptfail.example", "rptfetch.example"):
        zones += ("  local-data: '_smtp._tls.%s. 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@"
                  "reports.example,https://reports.example:%d/v1/tlsrpt\"'\n"
                  % (domain, REPORTS_HTTPS_PORT))
    zones += local_dns.mx_zones(("rt-ok.example", "rt-none.example"), RT_IP)
    zones += local_dns.mx_zones(("rt-no.example",), NO_RT_IP)
    zones += local_dns.mx_zones(("rt-bad.example", "tlsno.example"), SINK_IP)
    zones += local_dns.mx_zones(("twoaddr.example",), GOOD_IP)
    # rptfetch.example publishes _mta-sts and _smtp._tls records, but its policy server has no
    # policy for it (404): a fetch error to report.
    zones += local_dns.mx_zones(("rptfetch.example",), GOOD_IP)
    zones += ("  local-data: '_mta-sts.rptfetch.example. 300 IN TXT \"v=STSv1; id=1\"'\n"
              '  local-data: "mta-sts.rptfetch.example. 300 IN A %s"\n' % HTTPS_IP)
    # Addresses in the order given, so that the dead one comes first.
    zones += "  rrset-roundrobin: no\n"
    zones += '  local-data: "mta-sts.twoaddr.example. 300 IN A %s"\n' % DEAD_IP
    for domain in POLICIES:
        zones += "  local-data: '_mta-sts.%s. 300 IN TXT \"v=STSv1; id=1\"'\n" % domain
        zones += '  local-data: "mta-sts.%s. 300 IN A %s"\n' % (domain, HTTPS_IP)
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def conf():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("tp-", dir="/tmp") + "/control.sock",
         "delivery": {"tls_ca_file": ca()[0]},
         "tls_policy": {"downgrade_memory": True, "memory_days": 30, "mta_sts_ca_file": ca()[0],
                        "mta_sts_port": HTTPS_PORT, "report_interval_s": REPORT_WINDOW_S,
                        "report_ca_file": ca()[0], "report_organization": "relay test",
                        "report_from": "tls-reports@example.com"}}), dkim=True)


@harness.fixture
def relay():
    with relayd_process.Relayd(RELAYD, conf()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-4000:]))
        yield r


def submit(rcpt, mail_options=(), fields=""):
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", conf()[1])
    s.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\nSubject: tls\r\n"
               "Message-ID: <%s@client.test>\r\n%s\r\nHi.\r\n" % (rcpt, time.time_ns(), fields),
               mail_options=list(mail_options))
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


@harness.case(3, "MTA-STS: enforce delivers over verified TLS, refuses a bad certificate or MX")
def mta_sts():
    good_cert, good_key = ca()[1]("mx-good", "mx.enforce.example", "mx.unlisted.example",
                                  "mx.mixed.example", "mx.twoaddr.example")
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    good.load_cert_chain(good_cert, good_key)
    policies = PolicyServer()
    good_sink = local_smtp.Controller(SINK, hostname=GOOD_IP, port=MX_PORT, ready_timeout=10,
                                      tls_context=good)
    good_sink.start()
    bad_sink = local_smtp.start(SINK, BAD_IP, MX_PORT, TMP)  # a self-signed certificate
    try:
        for rcpt in ("a@enforce.example", "a@badcert.example", "a@testing.example",
                     "a@unlisted.example", "a@mixed.example", "a@twoaddr.example"):
            submit(rcpt)
        got = line("delivered", "a@enforce.example")
        check(got.get("tls", {}).get("mode") == "mta-sts",
              "enforce, valid certificate: delivered, logged as mta-sts: %s" % got.get("tls"))
        held = line("deferred", "a@badcert.example")
        check("MTA-STS policy of badcert.example" in str(held) and "not valid" in str(held),
              "enforce, self-signed certificate: deferred with the reason: %s" % held)
        check(not SINK.delivered_to("a@badcert.example"), "nothing reached that MX")
        got = line("delivered", "a@testing.example")
        check(got.get("tls", {}).get("mode") == "opportunistic",
              "testing: delivered anyway: %s" % got.get("tls"))
        check("MTA-STS testing: " in relay().log(), "and the failure is logged")
        held = line("deferred", "a@unlisted.example")
        check("matches its MTA-STS policy" in str(held) and "mx.elsewhere.example" in str(held),
              "enforce, MX not in the policy: deferred: %s" % held)
        got = line("delivered", "a@mixed.example")
        check(got.get("mx") == "mx.mixed.example" and got.get("tls", {}).get("mode") == "mta-sts",
              "an MX the policy does not list is passed over for one it lists: %s" % got)
        got = line("delivered", "a@twoaddr.example")
        check(got.get("tls", {}).get("mode") == "mta-sts" and
              "trying another address" in relay().log(),
              "the policy server's first address refused the connection, the second served the "
              "policy: %s" % got.get("tls"))
        check(metric('relay_delivered_by_tls_total{mode="mta-sts"}') >= 2, "counted as mta-sts")
    finally:
        policies.stop()
    # The policies outlive a restart, and hold while their server is down.
    relay().stop()
    cached = open(TMP + "/relay/spool/mta-sts").read()
    check(re.search(r"^enforce\.example\t1\t\d+\tenforce\t86400\tmx\.enforce\.example$",
                    cached, re.M), "kept on disk: %r" % cached)
    relay().start()
    try:
        submit("b@badcert.example")
        held = line("deferred", "b@badcert.example")
        check("MTA-STS policy of badcert.example" in str(held),
              "after a restart, with the policy server down, still enforced: %s" % held)
        submit("b@enforce.example")
        got = line("delivered", "b@enforce.example")
        check(got.get("tls", {}).get("mode") == "mta-sts", "and delivered as mta-sts: %s" % got)
    finally:
        good_sink.stop()
        bad_sink.stop()


REQUIRETLS_SEEN = []  # the MAIL FROM lines a REQUIRETLS receiver got with the parameter


class RequireTlsSmtp(aiosmtpd.smtp.SMTP):
    """aiosmtpd offering REQUIRETLS (RFC 8689 §4.1): in the EHLO reply, and as a MAIL parameter,
    noted in REQUIRETLS_SEEN."""

    async def smtp_EHLO(self, hostname):
        self._ehlo_extra = True
        return await super().smtp_EHLO(hostname)

    async def push(self, status):
        if getattr(self, "_ehlo_extra", False) and status.startswith("250 "):
            self._ehlo_extra = False
            await super().push("250-REQUIRETLS")
        return await super().push(status)

    async def smtp_MAIL(self, arg):
        if arg and re.search(r"\sREQUIRETLS(\s|$)", arg, re.I):
            REQUIRETLS_SEEN.append(arg)
            arg = re.sub(r"\sREQUIRETLS(?=\s|$)", "", arg, flags=re.I)
        return await super().smtp_MAIL(arg)


class RequireTlsController(local_smtp.Controller):
    def factory(self):
        return RequireTlsSmtp(self.handler, **self.SMTP_kwargs)


@harness.case(4, "REQUIRETLS: verified TLS to a receiver that offers it, else a 5.7.30 bounce")
def requiretls():
    policies = PolicyServer()
    try:
        requiretls_with_policies()
    finally:
        policies.stop()


def requiretls_with_policies():
    cert, key = ca()[1]("mx-rt", "mx.rt-ok.example", "mx.rt-no.example", "mx.rt-none.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    rt = harness.stop_at_exit(RequireTlsController(SINK, hostname=RT_IP, port=MX_PORT,
                                                   ready_timeout=10, tls_context=context),
                              "stop", name="REQUIRETLS sink")
    rt.start()
    no_rt = harness.stop_at_exit(local_smtp.Controller(SINK, hostname=NO_RT_IP, port=MX_PORT,
                                                       ready_timeout=10, tls_context=context),
                                 "stop", name="sink without REQUIRETLS")
    no_rt.start()
    # The relay offers it on submission after STARTTLS, not before.
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.ehlo()
    check(not s.has_extn("requiretls"), "not offered before STARTTLS")
    s.starttls(context=ssl._create_unverified_context())
    s.ehlo()
    check(s.has_extn("requiretls"), "offered after STARTTLS")
    s.quit()
    with local_smtp.serving(SINK, SINK_IP, MX_PORT, TMP):  # a self-signed certificate
        submit("a@rt-ok.example", ["REQUIRETLS"])
        submit("a@rt-no.example", ["REQUIRETLS"])
        submit("a@rt-bad.example", ["REQUIRETLS"])
        submit("a@rt-none.example", ["REQUIRETLS"])
        got = line("delivered", "a@rt-ok.example")
        check(got.get("tls", {}).get("mode") == "mta-sts" and
              any("app@example.com" in m for m in REQUIRETLS_SEEN),
              "an MX its MTA-STS policy lists, verified TLS, REQUIRETLS offered: delivered with the "
              "parameter: %s %s"
              % (got.get("tls"), REQUIRETLS_SEEN))
        bounced = line("bounced", "a@rt-no.example")
        check("does not offer REQUIRETLS" in str(bounced) and "5.7.30" in str(bounced),
              "a receiver without REQUIRETLS: bounced with 5.7.30: %s" % bounced)
        check(not SINK.delivered_to("a@rt-no.example"), "nothing reached it")
        bounced = line("bounced", "a@rt-bad.example")
        check("REQUIRETLS" in str(bounced) and "is not valid for it" in str(bounced),
              "a certificate not valid for the MX: bounced: %s" % bounced)
        check(not SINK.delivered_to("a@rt-bad.example"), "nothing reached that MX either")
        bounced = line("bounced", "a@rt-none.example")
        check("neither DNSSEC nor an MTA-STS policy vouches for mx.rt-none.example" in
              str(bounced), "an MX nothing vouches for (no DNSSEC, no MTA-STS): bounced: %s"
              % bounced)
        check(not SINK.delivered_to("a@rt-none.example"), "nothing reached it, valid certificate "
              "and REQUIRETLS notwithstanding")
        # TLS-Required: No (RFC 8689 §5): first a TLS delivery puts tlsno.example in the memory.
        submit("a@tlsno.example")
        line("delivered", "a@tlsno.example")
    with local_smtp.serving(SINK, SINK_IP, MX_PORT, TMP, tls=False):
        submit("b@tlsno.example", fields="TLS-Required: No\r\n")
        got = line("delivered", "b@tlsno.example")
        check(got.get("tls") == {"mode": "none"},
              "TLS-Required: No: delivered in plain text to a remembered domain: %s" % got)
        check(b"TLS-Required: No" in SINK.delivered_to("b@tlsno.example")[0][2],
              "the field travels on")
        submit("c@tlsno.example")
        held = line("deferred", "c@tlsno.example")
        check("TLS is required for tlsno.example" in str(held),
              "without the field, the memory holds: %s" % held)


class ReportHandler(http.server.BaseHTTPRequestHandler):
    posts = []  # (path, content type, body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ReportHandler.posts.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def report_policies(gzipped):
    """The report's policies by domain, from its gzip."""
    report = json.loads(gzip.decompress(gzipped))
    check(report.get("organization-name") == "relay test" and "report-id" in report and
          report.get("date-range", {}).get("start-datetime", "").endswith("Z"),
          "an RFC 8460 report: %s" % {k: v for k, v in report.items() if k != "policies"})
    return {p["policy"]["policy-domain"]: p for p in report.get("policies", [])}


@harness.case(5, "TLS reports: each policy domain gets its counts, by mail and by HTTPS POST")
def tls_reports():
    good_cert, good_key = ca()[1]("mx-rpt", "mx.rpt.example")
    good = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    good.load_cert_chain(good_cert, good_key)
    policies = PolicyServer()
    harness.stop_at_exit(policies, "stop", name="policy server")
    good_sink = harness.stop_at_exit(local_smtp.Controller(
        SINK, hostname=GOOD_IP, port=MX_PORT, ready_timeout=10, tls_context=good), "stop",
        name="good sink")
    good_sink.start()
    harness.stop_at_exit(local_smtp.start(SINK, BAD_IP, MX_PORT, TMP), "stop", name="bad sink")
    harness.stop_at_exit(local_smtp.start(SINK, REPORTS_IP, MX_PORT, TMP), "stop",
                         name="reports sink")
    cert, key = ca()[1]("reports", "reports.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer((REPORTS_IP, REPORTS_HTTPS_PORT), ReportHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    harness.at_exit("report server", lambda: (server.shutdown(), server.server_close()))
    submit("a@rpt.example")
    submit("a@rptfail.example")
    submit("a@rptfetch.example")
    check(line("delivered", "a@rpt.example").get("tls", {}).get("mode") == "mta-sts",
          "rpt.example: delivered under its policy")
    check(line("delivered", "a@rptfail.example").get("tls", {}).get("mode") == "opportunistic",
          "rptfail.example: a testing policy delivers anyway")
    # The window ends within REPORT_WINDOW_S; then each domain's report goes out.
    def posted():
        domains = set()
        for post in list(ReportHandler.posts):
            try:
                domains |= {p["policy"]["policy-domain"]
                            for p in json.loads(gzip.decompress(post[2]))["policies"]}
            except (OSError, ValueError, KeyError):
                pass
        return domains >= {"rpt.example", "rptfail.example", "rptfetch.example"} and \
            list(ReportHandler.posts)
    got = wait_for(posted, "both domains' reports posted")
    posts = got or []
    check(all(p[0] == "/v1/tlsrpt" and p[1] == "application/tlsrpt+gzip" for p in posts),
          "POSTed as application/tlsrpt+gzip to the rua's path: %s" % [p[:2] for p in posts])
    by_domain = {}
    for p in posts:
        by_domain.update(report_policies(p[2]))
    ok = by_domain.get("rpt.example", {})
    check(ok.get("policy", {}).get("policy-type") == "sts" and
          "mode: enforce" in ok.get("policy", {}).get("policy-string", []) and
          ok.get("summary") == {"total-successful-session-count": 1,
                                "total-failure-session-count": 0},
          "rpt.example: one successful session under its enforce policy: %s" % ok)
    bad = by_domain.get("rptfail.example", {})
    details = bad.get("failure-details", [])
    check(bad.get("summary", {}).get("total-failure-session-count") == 1 and
          bad.get("summary", {}).get("total-successful-session-count") == 0 and
          details and details[0].get("result-type") == "certificate-not-trusted" and
          details[0].get("receiving-mx-hostname") == "mx.rptfail.example" and
          details[0].get("receiving-ip") == BAD_IP and details[0].get("failed-session-count") == 1,
          "rptfail.example: one failed session, certificate-not-trusted at its MX: %s" % bad)
    fetch = by_domain.get("rptfetch.example", {})
    details = fetch.get("failure-details", [{}])
    check(fetch.get("summary", {}).get("total-failure-session-count") == 1 and
          details[0].get("result-type") == "sts-policy-fetch-error",
          "rptfetch.example: its policy could not be fetched: sts-policy-fetch-error: %s" % fetch)
    details = bad.get("failure-details", [])
    # And by mail, through the relay's own queue.
    mails = wait_for(lambda: len(SINK.delivered_to("tlsrpt@reports.example")) >= 3 and
                     SINK.delivered_to("tlsrpt@reports.example"), "the reports by mail")
    seen = {}
    for mail_from, _, content in mails or []:
        message = email.message_from_bytes(content)
        check(mail_from in ("", "<>") and message.get_content_type() == "multipart/report" and
              message.get_param("report-type") == "tlsrpt" and
              message["Subject"].startswith("Report Domain: ") and
              message["TLS-Report-Submitter"], "a multipart/report with its fields: %s"
              % dict(message.items()))
        check("d=example.com" in (message["DKIM-Signature"] or "").replace("\r\n", ""),
              "DKIM-signed by its From domain (RFC 8460 §5.3): %s" % message["DKIM-Signature"])
        for part in message.walk():
            if part.get_content_type() == "application/tlsrpt+gzip":
                check(part.get_filename().endswith(".json.gz"), "named *.json.gz")
                seen.update(report_policies(part.get_payload(decode=True)))
    check(set(seen) >= {"rpt.example", "rptfail.example"} and
          seen["rptfail.example"]["failure-details"] == details,
          "the mailed reports say the same: %s" % sorted(seen))


harness.main()
