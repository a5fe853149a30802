#!/usr/bin/python3
"""End-to-end: events and webhooks (issue 15, item 5).

relayd on loopback delivers through a real DNS server (unbound) to a real receiver (aiosmtpd)
that refuses gone@example.org for good and takes everything else, and posts its events to three
webhooks served by an HTTPS receiver in this process (Python's http.server with a certificate
made by openssl for 127.0.0.1, given to relayd as the webhooks' CA file):

  /tenant   tenants = ["example.com"]      every event of the relay's only sending domain
  /other    tenants = ["other.example"]    a tenant that sends nothing: must get nothing
  /bounces  tenants = ["*"], events = ["bounced"]

The receiver checks every post's HMAC-SHA256 signature and can be told to answer 503. Shows: the
events arrive signed, with tenant, queue id, message id and category; each webhook gets only its
tenants' events and types; an endpoint down for a while gets every event once it is back; a
kill -9 of relayd loses no event whose outcome was durable; the metrics say what waits; a fourth
webhook (/untrusted) that trusts another certificate than the receiver's posts nothing.

usage: events_test.py RELAYD [--case N[,M...]] [--list]
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("events-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
HOOK_PORT = local_dns.free_port()
SECRET = "a-webhook-secret-of-some-length"
WAIT_S = 40


def reply_for(address):
    return "550 5.1.1 The email account that you tried to reach does not exist." \
        if address.startswith("gone@") else None


class Receiver(http.server.ThreadingHTTPServer):
    """Records the events posted to each path, by id; answers 503 while `failing`."""
    daemon_threads = True

    def __init__(self, port, cert, key):
        super().__init__(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.lock = threading.Lock()
        self.events = {}  # path -> {id: event}
        self.posts = 0
        self.refused = 0
        self.bad = []  # what was wrong with a post (signature, headers, JSON)
        self.failing = False

    def by(self, path):
        with self.lock:
            return list(self.events.get(path, {}).values())


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        r = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        stamp = self.headers.get("X-Relay-Timestamp", "")
        mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        problem = None
        if self.headers.get("X-Relay-Signature") != "sha256=" + mac:
            problem = "signature %s" % self.headers.get("X-Relay-Signature")
        elif abs(time.time() - int(stamp or 0)) > 300:
            problem = "timestamp %s" % stamp
        with r.lock:
            r.posts += 1
            if problem:
                r.bad.append(problem)
            if r.failing or problem:
                r.refused += 1
                self.send_response(503)
                self.end_headers()
                return
            try:
                batch = json.loads(body)
                for e in batch["events"]:
                    r.events.setdefault(self.path, {})[e["id"]] = e
            except (ValueError, KeyError) as e:
                r.bad.append("JSON: %s" % e)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def make_certificate(name):
    cert, key = TMP + "/%s.crt" % name, TMP + "/%s.key" % name
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-days", "2", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


@harness.fixture
def certificate():
    """The receiver's certificate, the CA file of the webhooks that trust it."""
    return make_certificate("hook")


@harness.fixture
def stranger_certificate():
    """A certificate for the same address that the receiver does not use."""
    return make_certificate("stranger")


@harness.fixture
def receiver():
    cert, key = certificate()
    r = Receiver(HOOK_PORT, cert, key)
    thread = threading.Thread(target=r.serve_forever, daemon=True)
    thread.start()
    harness.at_exit("webhook receiver", r.shutdown)
    return r


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


def webhook(name, path, tenants, events=None, ca_file=None):
    text = "\n[[events.webhook]]\nname = %s\nurl = %s\ntenants = %s\nsecret = %s\n" % (
        json.dumps(name), json.dumps("https://127.0.0.1:%d%s" % (HOOK_PORT, path)),
        json.dumps(tenants), json.dumps(SECRET))
    text += "ca_file = %s\nbatch_wait_ms = 200\nretry_initial_ms = 200\nretry_ms_max = 1000\n" % (
        json.dumps(ca_file or certificate()[0]))
    if events:
        text += "events = %s\n" % json.dumps(events)
    return text


@harness.fixture
def config():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0}}),
        append=webhook("tenant", "/tenant", ["example.com"]) +
        webhook("other", "/other", ["other.example"]) +
        webhook("bounces", "/bounces", ["*"], ["bounced"]) +
        webhook("untrusted", "/untrusted", ["*"], ca_file=stranger_certificate()[0]))


@harness.fixture
def relay():
    sink()
    receiver()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


COUNTER = [0]


def submit(rcpts, count=1):
    """Sends `count` messages to `rcpts`, each with a Message-ID of its own; returns their
    Message-IDs."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    ids = []
    for _ in range(count):
        COUNTER[0] += 1
        mid = "<events-%d-%d@example.com>" % (os.getpid(), COUNTER[0])
        s.sendmail("app@example.com", rcpts,
                   "From: app@example.com\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: events\r\n\r\n"
                   "Hi.\r\n" % (", ".join(rcpts), mid))
        ids.append(mid)
    s.quit()
    return ids


def wait_for(predicate, what, wait_s=WAIT_S):
    deadline = time.time() + wait_s
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (wait_s, what))
    return None


def of_messages(events, message_ids):
    return [e for e in events if e.get("message_id") in message_ids]


def kinds(events):
    """{(event, message_id, recipient)} of `events`."""
    return {(e["event"], e.get("message_id"), e.get("recipient")) for e in events}


def metrics():
    return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()


def metric(body, series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


@harness.fixture
def first_traffic():
    """Three messages delivered and one bounced, sent once: (their Message-IDs, the bounced's)."""
    relay()
    return submit(["fine@example.org"], count=3), submit(["gone@example.org"])


@harness.case(1, "events reach the tenant's webhook, signed, with ids, message id and category")
def events_arrive():
    good, bad = first_traffic()
    expected = {("received", m, "fine@example.org") for m in good} | \
        {("delivered", m, "fine@example.org") for m in good} | \
        {("received", bad[0], "gone@example.org"), ("bounced", bad[0], "gone@example.org"),
         ("dsn_sent", bad[0], "app@example.com")}
    got = wait_for(lambda: expected <= kinds(receiver().by("/tenant")) and
                   kinds(of_messages(receiver().by("/tenant"), good + bad)),
                   "every event of the four messages at /tenant")
    check(got == expected, "exactly the events of the four messages: %s" % (got ^ expected))
    events = of_messages(receiver().by("/tenant"), good + bad)
    check(all(e.get("tenant") == "example.com" and e.get("queue_id") and
              re.fullmatch(r"\d+-\d+-\d+", e["id"]) for e in events),
          "each event has the tenant, a queue id and a journal id")
    bounced = [e for e in events if e["event"] == "bounced"]
    check(bounced and bounced[0].get("category") == "bad-mailbox" and
          bounced[0].get("reply", {}).get("code") == 550,
          "the bounce carries its reply and category: %s" % bounced[:1])
    delivered = [e for e in events if e["event"] == "delivered"]
    check(all(e.get("mx") and e.get("reply", {}).get("code") == 250 for e in delivered),
          "deliveries carry the MX and its reply")
    check(not receiver().bad, "every post was signed right: %s" % receiver().bad[:3])


@harness.case(2, "each webhook gets only its tenants' events and its event types")
def webhooks_filter():
    first_traffic()
    bounces = wait_for(lambda: receiver().by("/bounces"), "the bounce at /bounces")
    check(bounces and {e["event"] for e in bounces} == {"bounced"},
          "/bounces gets bounced events only: %s" % {e["event"] for e in bounces or []})
    time.sleep(1)
    check(receiver().by("/other") == [], "/other (tenant other.example) gets nothing")


@harness.case(3, "an endpoint down for a while gets every event once it is back")
def endpoint_down():
    relay()
    receiver().failing = True
    refused_before = receiver().refused
    ids = submit(["fine@example.org"], count=20)
    wait_for(lambda: receiver().refused >= refused_before + 3, "posts refused while down")
    wait_for(lambda: len([e for e in relayd_process.delivery_events(TMP + "/relay")
                          if e.get("event") == "delivered"]) >= 23, "the 20 deliveries")
    body = metrics()
    pending = metric(body, 'relay_webhook_pending_events{webhook="tenant"}') or 0
    age = metric(body, 'relay_webhook_oldest_pending_age_seconds{webhook="tenant"}') or 0
    failures = metric(body, 'relay_webhook_failures_total{webhook="tenant"}') or 0
    check(pending >= 40 and age > 0 and failures >= 3,
          "the metrics say what waits: pending %s, oldest %s s, failures %s" %
          (pending, age, failures))
    receiver().failing = False
    expected = {(k, m, "fine@example.org") for m in ids for k in ("received", "delivered")}
    got = wait_for(lambda: expected <= kinds(receiver().by("/tenant")),
                   "the 40 events once the endpoint is back")
    check(bool(got), "every event of the 20 messages arrives after the outage")
    wait_for(lambda: metric(metrics(), 'relay_webhook_oldest_pending_age_seconds'
                                       '{webhook="tenant"}') == 0, "nothing waits any more")


@harness.case(4, "kill -9 of relayd loses no event whose outcome was durable")
def crash_loses_nothing():
    r = relay()
    receiver().failing = True
    ids = submit(["fine@example.org"], count=30)
    wait_for(lambda: len({e.get("queue_id") for e in relayd_process.delivery_events(TMP + "/relay")
                          if e.get("event") == "delivered"}) >=
             len({e.get("queue_id") for e in relayd_process.delivery_events(TMP + "/relay")
                  if e.get("event") == "received"}), "every message delivered")
    time.sleep(0.5)  # the outcomes' group commit (outcome_sync_ms)
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    r.start()
    receiver().failing = False
    expected = {(k, m, "fine@example.org") for m in ids for k in ("received", "delivered")}
    got = wait_for(lambda: expected <= kinds(receiver().by("/tenant")),
                   "the 60 events of the 30 messages after the restart")
    check(bool(got), "every event of the 30 messages arrives after kill -9 and restart")
    body = metrics()
    dropped = (metric(body, "relay_events_dropped_total"),
               metric(body, "relay_events_journal_dropped_total"),
               metric(body, "relay_events_journal_write_errors_total"))
    check(dropped == (0, 0, 0), "no event dropped, no journal write failed: %s" % (dropped,))


@harness.case(5, "a webhook whose endpoint's certificate does not verify posts nothing")
def certificate_verified():
    first_traffic()
    failures = wait_for(lambda: metric(metrics(), 'relay_webhook_failures_total'
                                                  '{webhook="untrusted"}'),
                        "failures of the webhook that trusts another certificate")
    check(failures and failures >= 1, "its posts fail: %s" % failures)
    check(receiver().by("/untrusted") == [], "the receiver got nothing at /untrusted")
    log = relay().log()
    check("certificate verify failed" in log or "self-signed certificate" in log or
          "unable to get local issuer certificate" in log or "TLS with 127.0.0.1" in log,
          "the log says the TLS handshake failed: %s" %
          [l for l in log.splitlines() if "untrusted" in l][:2])


harness.main()
