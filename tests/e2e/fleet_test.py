#!/usr/bin/python3
"""End-to-end: a fleet of three relayd nodes sharing one Redis ([cluster], issue 18).

Three relayd nodes on loopback (two shards each, the same egress source name, as nodes behind
one NAT address are), one redis-server, a real DNS server (unbound) and a real receiver (aiosmtpd,
counting its connections at once and stamping each message's arrival). Shows: a site limited to
6 connections fleet-wide never sees more than 6 while all three nodes have mail for it; a 30/s
site rate holds for the fleet within 10% (Redis calls per message at volume: bench/compare
--systems relayd-fleet3); a suspension caused by a reply on one node stops the site on all three within a second;
a suppression added through node A is refused on node C; Redis killed mid-run and restarted: the
nodes go on at their share (still at most 6 connections), then share again, and every message
arrives exactly once; `relayctl cluster status` lists the nodes; every event of every node
reaches one RabbitMQ queue (a private rabbitmq-server, read with pika), none lost over a kill -9
of a node.

usage: fleet_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import asyncio
import json
import os
import signal
import re
import smtplib
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_rabbitmq  # noqa: E402
import local_redis  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402
import pika  # noqa: E402  (python3-pika)

RELAYD, RELAYCTL = harness.args()[0], harness.args()[1]
TMP = harness.scratch("fleet-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
NODES = ("a", "b", "c")
DOMAINS = ("conn.example", "rate.example", "susp.example", "supp.example", "outage.example",
           "events.example")
EXCHANGE = "relay.fleet"
QUEUE = "fleet-events"
WAIT_S = 60


class Sink:
    """Accepts everything but the first try of limited@ addresses (421 4.7.28); delays each
    DATA of some domains; counts the connections open at once per domain (a connection counts for
    the domain of its first RCPT, until it closes) and records (arrival time, recipient,
    Message-ID) of every message."""

    def reset_max(self, domain):
        """The most at once counts from now on."""
        with self.lock:
            self.open_max[domain] = self.open.get(domain, 0)

    def __init__(self):
        self.lock = threading.Lock()
        self.open = {}      # domain -> connections open now
        self.open_max = {}  # domain -> the most at once
        self.received = []  # (time, rcpt, message-id)
        self.refused = []   # (time, rcpt)
        self.delay_s = {}   # domain -> seconds each DATA takes

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rsplit("@", 1)[-1]
        with self.lock:
            if getattr(server, "counted_domain", None) is None:
                server.counted_domain = domain
                self.open[domain] = self.open.get(domain, 0) + 1
                self.open_max[domain] = max(self.open_max.get(domain, 0), self.open[domain])
            if address.startswith("limited@") and address not in [r[1] for r in self.refused]:
                self.refused.append((time.time(), address))
                return "421 4.7.28 Our system has detected an unusual rate of mail from your IP"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        domain = envelope.rcpt_tos[0].rsplit("@", 1)[-1]
        if self.delay_s.get(domain):
            await asyncio.sleep(self.delay_s[domain])
        mid = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", envelope.content)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.received.append((time.time(), rcpt, mid.group(1).decode() if mid else ""))
        return "250 2.0.0 OK stored"

    def arrivals(self, domain):
        with self.lock:
            return [r for r in self.received if r[1].endswith("@" + domain)]


class CountingController(Controller):
    """aiosmtpd whose sessions, once counted for a domain (Sink.handle_RCPT), count down when
    their connection closes."""

    def factory(self):
        sink = self.handler

        class Counted(SMTP):
            def connection_lost(self, error):
                domain = getattr(self, "counted_domain", None)
                if domain is not None:
                    self.counted_domain = None
                    with sink.lock:
                        sink.open[domain] -= 1
                super().connection_lost(error)

        return Counted(self.handler, **self.SMTP_kwargs)


@harness.fixture
def sink():
    s = Sink()
    controller = CountingController(s, hostname=SINK_IP, port=MX_PORT, ready_timeout=10)
    controller.start()
    harness.stop_at_exit(controller, name="sink")
    return s


@harness.fixture
def dns_port():
    return harness.enter(local_dns.unbound(TMP, local_dns.mx_zones(DOMAINS, SINK_IP)),
                         name="unbound")


@harness.fixture
def redis():
    return harness.stop_at_exit(local_redis.Redis(TMP), name="redis-server")


@harness.fixture
def broker():
    """The broker, with the exchange and a durable queue bound to every routing key."""
    b = local_rabbitmq.Broker(TMP)
    harness.stop_at_exit(b)
    harness.on_failure(lambda: print("rabbitmq-server log:\n" + b.log()[-3000:]))
    b.start()
    connection = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = connection.channel()
    ch.exchange_declare(EXCHANGE, "topic", durable=True)
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_bind(QUEUE, EXCHANGE, "#")
    connection.close()
    return b


EVENTS = []  # every event body taken from the queue so far, with its AMQP message_id


def drain_events():
    """Takes what the queue holds (acknowledged); returns every event taken so far."""
    connection = pika.BlockingConnection(pika.URLParameters(broker().url))
    ch = connection.channel()
    while True:
        method, props, body = ch.basic_get(QUEUE, auto_ack=True)
        if method is None:
            break
        EVENTS.append((props.message_id, json.loads(body)))
    connection.close()
    return EVENTS


SHAPING = """
[[shaping]]
name = "conn"
domains = ["conn.example", "outage.example"]
connections_max = 6

[[shaping]]
name = "rate"
domains = ["rate.example"]
connections_max = 10
messages_per_second = 30

[[shaping]]
name = "susp"
domains = ["susp.example"]

[[shaping.reply]]
contains = "4.7.28"
suspend_s = 600
"""


EVENTS_CONF = """
[[events.amqp]]
name = "bus"
url = %s
tenants = ["*"]
events = ["received", "delivered"]
exchange = %s
batch_wait_ms = 200
retry_initial_ms = 200
retry_ms_max = 1000
timeout_ms = 5000
"""


@harness.fixture
def nodes():
    """{name: (relayd, config path, password, control socket, metrics port)} for a, b, c."""
    sink()
    out = {}
    for name in NODES:
        conf_dir = "%s/node-%s" % (TMP, name)
        control = harness.scratch("fl-", dir="/tmp") + "/control.sock"
        metrics_port = local_dns.free_port()
        path, password = relayd_process.init(RELAYD, conf_dir, relayd_process.merged(
            relayd_process.loopback(dns_port(), MX_PORT, metrics_port=metrics_port),
            {"control_socket": control,
             "retry": {"intervals_s": [1, 1, 3600], "jitter_fraction": 0.0},
             "cluster": {"redis": "127.0.0.1:%d" % redis().port, "node": name,
                         "fleet_size": 3}}),
            append=SHAPING + EVENTS_CONF % (json.dumps(broker().url), json.dumps(EXCHANGE)))
        r = harness.enter(relayd_process.Relayd(RELAYD, path, "%s/relayd-%s.log" % (TMP, name)),
                          name="relayd " + name)
        harness.on_failure(lambda r=r, name=name: print("--- node %s:\n%s" % (name,
                                                                             r.log()[-4000:])))
        out[name] = (r, path, password, control, metrics_port)
    return out


def submit(node, recipients, sender="app@example.com"):
    """Sends one message to each of `recipients` through `node` over one session; returns the
    recipients refused at RCPT."""
    r, _, password, _, _ = nodes()[node]
    refused = []
    s = smtplib.SMTP("127.0.0.1", r.port(), local_hostname="client.test", timeout=30)
    s.starttls()
    s.login("app@example.com", password)
    for rcpt in recipients:
        body = ("From: %s\r\nTo: %s\r\nSubject: fleet\r\nMessage-ID: <%s-%s@client.test>\r\n\r\n"
                "Hi.\r\n" % (sender, rcpt, node, time.time_ns()))
        try:
            s.sendmail(sender, [rcpt], body)
        except smtplib.SMTPRecipientsRefused:
            refused.append(rcpt)
    s.quit()
    return refused


def submit_all(count, domain, prefix):
    """`count` messages through each node at once (three threads)."""
    threads = [threading.Thread(target=submit, args=(
        n, ["%s-%s-%d@%s" % (prefix, n, i, domain) for i in range(count)])) for n in NODES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def relayctl(node, *args):
    r = subprocess.run([RELAYCTL] + list(args) + ["--config", nodes()[node][1]],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def metric(node, name):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % nodes()[node][4],
                                  timeout=10).read().decode()
    m = re.search(r"(?m)^%s(?:\{[^}]*\})? ([0-9.e+]+)$" % re.escape(name), text)
    return float(m.group(1)) if m else None


def wait_for(predicate, what, seconds=WAIT_S):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    check(False, "within %d s: %s" % (seconds, what))
    return None


@harness.case(1, "a site limited to 6 connections sees at most 6 from the three nodes")
def connections():
    nodes()
    sink().delay_s["conn.example"] = 0.25
    submit_all(30, "conn.example", "c")
    wait_for(lambda: len(sink().arrivals("conn.example")) >= 90, "90 messages at the sink")
    by_node = {n: len([a for a in sink().arrivals("conn.example") if a[2].startswith("<%s-" % n)])
               for n in NODES}
    most = sink().open_max.get("conn.example", 0)
    print("connections at once at the sink: at most %d; delivered per node: %s" % (most, by_node))
    check(most <= 6, "at most 6 connections at once (saw %d)" % most)
    check(most >= 4, "the fleet used its connections (saw at most %d)" % most)
    check(all(v == 30 for v in by_node.values()), "each node delivered its 30: %s" % by_node)
    granted = sum(metric(n, "relay_cluster_leases_granted_total") or 0 for n in NODES)
    check(granted >= 6, "leases came from Redis (%d granted)" % granted)


@harness.case(2, "a 30/s site rate holds for the fleet within 10%")
def rate():
    nodes()
    before = {n: (metric(n, "relay_cluster_redis_round_trips_total"),
                  metric(n, "relay_cluster_tokens_granted_total"),
                  metric(n, "relay_cluster_limit_commands_total")) for n in NODES}
    submit_all(100, "rate.example", "r")
    wait_for(lambda: len(sink().arrivals("rate.example")) >= 300, "300 messages at the sink")
    times = sorted(a[0] for a in sink().arrivals("rate.example"))
    # Past the bucket's first burst (30 tokens), the steady rate.
    steady = (len(times) - 61) / (times[-1] - times[60])
    overall = (len(times) - 1) / (times[-1] - times[0])
    trips = sum(metric(n, "relay_cluster_redis_round_trips_total") - before[n][0] for n in NODES)
    limit_calls = sum(metric(n, "relay_cluster_limit_commands_total") - before[n][2]
                      for n in NODES)
    tokens = sum(metric(n, "relay_cluster_tokens_granted_total") - before[n][1] for n in NODES)
    print("fleet rate: %.1f messages/s steady, %.1f overall (limit 30/s); Redis: %.2f limit "
          "calls (lease, token, warm-up requests) and %.2f round trips (the change stream's "
          "polling every sync_ms included) per message; %d tokens granted"
          % (steady, overall, limit_calls / 300, trips / 300, tokens))
    # The limit holds: never more than 10% over. (Under it is the machine's doing: three relays,
    # a Python receiver and Redis share two cores; a sanity floor shows the limit is not zero.)
    check(steady <= 33, "steady rate at most 10%% over 30/s: %.1f" % steady)
    check(steady >= 20, "steady rate near the limit, not far under: %.1f" % steady)
    # Redis calls per message at volume: bench/compare --systems relayd-fleet3 (at 30/s the
    # stream's polling and the lease requests of nodes short of connections dominate).


@harness.case(3, "a suspension caused by a reply on node a stops the site on b and c within 1 s")
def suspension():
    nodes()
    submit("a", ["limited@susp.example"])
    refused_at = wait_for(lambda: sink().refused and sink().refused[0][0], "the 4.7.28 reply")
    seen = {}
    while time.time() < refused_at + 10 and len(seen) < 2:
        for n in ("b", "c"):
            if n not in seen and "4.7.28" in relayctl(n, "queue", "suspensions")[1]:
                seen[n] = time.time() - refused_at
        time.sleep(0.02)
    print("the suspension reached node b after %s s and node c after %s s"
          % tuple("%.3f" % seen[n] if n in seen else "never" for n in ("b", "c")))
    check(all(n in seen and seen[n] < 1.0 for n in ("b", "c")),
          "on b and c within a second: %s" % seen)
    # Node c holds its mail for the site.
    submit("c", ["ok@susp.example"])
    time.sleep(3)
    check(not sink().arrivals("susp.example"), "nothing reached the suspended site")
    # Resumed on node b: gone everywhere, and node c's held mail goes.
    code, out = relayctl("b", "queue", "resume", "mx.susp.example")
    check(code == 0, "resume on b: %s" % out)
    wait_for(lambda: sink().arrivals("susp.example"), "node c's held mail delivered after the "
             "resume on b", seconds=15)
    wait_for(lambda: "4.7.28" not in relayctl("a", "queue", "suspensions")[1], "lifted on a too",
             seconds=2)
    wait_for(lambda: [a for a in sink().arrivals("susp.example") if a[1].startswith("limited@")],
             "node a's held message delivered when it was lifted there", seconds=15)


@harness.case(4, "a suppression added through node a is refused on node c")
def suppression():
    nodes()
    code, out = relayctl("a", "suppress", "add", "gone@supp.example", "--tenant", "example.com")
    check(code == 0 and "shared with the fleet" in out, "relayctl suppress add on a: %s" % out)
    refused = wait_for(lambda: submit("c", ["gone@supp.example"]), "node c refuses it",
                       seconds=10)
    check(refused == ["gone@supp.example"], "refused at RCPT on c: %s" % refused)
    check(not submit("b", ["kept@supp.example"]), "another address still goes through b")
    code, out = relayctl("b", "suppress", "remove", "gone@supp.example", "--tenant", "example.com")
    check(code == 0, "relayctl suppress remove on b: %s" % out)
    wait_for(lambda: not submit("c", ["gone@supp.example"]), "node c takes it again", seconds=10)


@harness.case(5, "Redis killed mid-run: the nodes keep to their share, then share again; "
                 "every message arrives once")
def outage():
    nodes()
    sink().delay_s["outage.example"] = 0.2
    submit_all(40, "outage.example", "o")
    wait_for(lambda: len(sink().arrivals("outage.example")) >= 20, "the first 20 messages")
    shared_max = sink().open_max.get("outage.example", 0)
    redis().kill()
    wait_for(lambda: all(metric(n, "relay_cluster_shared") == 0 for n in NODES),
             "every node on its share", seconds=15)
    # A node that held more than its share quits the extra connections after their message
    # (0.2 s here); from then on each keeps to ceil(6/3) = 2.
    time.sleep(0.5)
    sink().reset_max("outage.example")
    during = len(sink().arrivals("outage.example"))
    time.sleep(2)
    moved = len(sink().arrivals("outage.example")) - during
    fallback_max = sink().open_max.get("outage.example", 0)
    redis().start()
    wait_for(lambda: all(metric(n, "relay_cluster_shared") == 1 for n in NODES),
             "every node sharing again", seconds=15)
    sink().reset_max("outage.example")
    wait_for(lambda: len(sink().arrivals("outage.example")) >= 120, "all 120 messages")
    time.sleep(1)
    after_max = sink().open_max.get("outage.example", 0)
    ids = [a[2] for a in sink().arrivals("outage.example")]
    print("connections at once: %d with Redis, %d on the shares (Redis down ~2 s, %d messages "
          "went out meanwhile), %d after it came back; %d messages, %d distinct"
          % (shared_max, fallback_max, moved, after_max, len(ids), len(set(ids))))
    check(moved > 0, "delivery went on without Redis")
    check(shared_max <= 6 and fallback_max <= 6 and after_max <= 6,
          "at most 6 connections at once before, during and after")
    check(len(ids) == 120 and len(set(ids)) == 120, "every message exactly once: %d, %d distinct"
          % (len(ids), len(set(ids))))


@harness.case(6, "relayctl cluster status lists the three nodes")
def status():
    nodes()
    code, out = relayctl("b", "cluster", "status")
    print(out)
    check(code == 0, "relayctl cluster status: %s" % out)
    for n in NODES:
        check(re.search(r"(?m)^%s\tup\t\{" % n, out), "node %s up in: %s" % (n, out))
    check('"queued_messages"' in out, "the nodes' queues are shown")


@harness.case(7, "every event of every node reaches RabbitMQ, none lost over a kill -9 of a node")
def events():
    nodes()
    drain_events()
    # Nodes a and c take 40 messages each; node b takes mail until it is killed (kill -9) as soon
    # as its first event is in the queue: it dies taking mail, delivering and publishing.
    accepted_b = []

    def feed_b():
        r, _, password, _, _ = nodes()["b"]
        try:
            s = smtplib.SMTP("127.0.0.1", r.port(), local_hostname="client.test", timeout=30)
            s.starttls()
            s.login("app@example.com", password)
            for i in range(400):
                rcpt = "e-b-%d@events.example" % i
                s.sendmail("app@example.com", [rcpt],
                           "From: app@example.com\r\nTo: %s\r\nSubject: fleet\r\n"
                           "Message-ID: <b-%d.%d@client.test>\r\n\r\nHi.\r\n"
                           % (rcpt, i, time.time_ns()))
                accepted_b.append(rcpt)
        except (OSError, smtplib.SMTPException):
            pass  # the kill

    others = [threading.Thread(target=submit, args=(
        n, ["e-%s-%d@events.example" % (n, i) for i in range(40)])) for n in ("a", "c")]
    feeder = threading.Thread(target=feed_b)
    for t in others + [feeder]:
        t.start()
    wait_for(lambda: any(b.get("recipient", "").startswith("e-b-") for _, b in drain_events()),
             "node b's first event in the queue")
    r = nodes()["b"][0]
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    for t in others + [feeder]:
        t.join()
    killed_with = len(accepted_b)
    r.start()
    expected = {(kind, rcpt) for kind in ("received", "delivered")
                for rcpt in ["e-%s-%d@events.example" % (n, i) for n in ("a", "c")
                             for i in range(40)] + accepted_b}

    def seen():
        return {(body.get("event"), body.get("recipient")) for _, body in drain_events()
                if str(body.get("recipient", "")).endswith("@events.example")}

    wait_for(lambda: expected <= seen(), "the received and delivered events of all 120 messages")
    mine = [(mid, b) for mid, b in EVENTS
            if str(b.get("recipient", "")).endswith("@events.example")]
    by_node = {n: len([1 for _, b in mine if b.get("recipient", "").startswith("e-%s-" % n)])
               for n in NODES}
    repeats = len(mine) - len({mid for mid, _ in mine})
    delivered = len({a[1] for a in sink().arrivals("events.example")})
    print("node b killed with %d messages accepted; events in the queue: %d for %d expected "
          "(%s by node), %d repeats (the batch in flight at the kill, sent again)"
          % (killed_with, len(mine), len(expected), by_node, repeats))
    check(0 < killed_with < 400, "node b was killed while it took mail (%d accepted)" % killed_with)
    check(expected <= seen(), "every event of every node arrived")
    check(delivered >= 80 + killed_with, "every accepted message delivered: %d recipients"
          % delivered)


if __name__ == "__main__":
    harness.main()
