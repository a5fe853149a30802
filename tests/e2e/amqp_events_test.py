#!/usr/bin/python3
"""End-to-end: events to RabbitMQ ([[events.amqp]], relay/events/amqp_sink.h).

relayd on loopback delivers through a real DNS server (unbound) to a real receiver (aiosmtpd) that
refuses gone@example.org for good, later@example.org for now, and takes everything else; its
events go to a private RabbitMQ node (Debian's rabbitmq-server, tools/testing/local_rabbitmq.py)
through an [[events.amqp]] sink, read back with pika (python3-pika), a client the relay does not
share code with:

  exchange relay.events (topic, declared durable by relayd)
    queue all-events   bound "#"            every event
    queue bounces      bound "*.bounced"    what a consumer of one kind binds

Shows: each event is one persistent JSON message with routing key "<tenant>.<event>" and
message_id the event's id; a broker stopped mid-run and started again (the same node and database,
so the durable queue and what it held survive) costs no event; a kill -9 of relayd while it
publishes costs no event. Repeats are allowed (at least once) and counted; the figures are printed.

usage: amqp_events_test.py RELAYD [--case N[,M...]] [--list]
"""
import json
import os
import re
import signal
import smtplib
import ssl
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_rabbitmq  # noqa: E402
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

import pika  # noqa: E402  (python3-pika)

RELAYD = harness.args()[0]
TMP = harness.scratch("amqp-events-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
EXCHANGE = "relay.events"
WAIT_S = 60


def reply_for(address):
    if address.startswith("gone@"):
        return "550 5.1.1 The email account that you tried to reach does not exist."
    if address.startswith("later@"):
        return "451 4.3.0 Mailbox busy, try again later"
    return None


@harness.fixture
def broker():
    b = local_rabbitmq.Broker(TMP)
    harness.stop_at_exit(b)
    harness.on_failure(lambda: print("rabbitmq-server log:\n" + b.log()[-3000:]))
    return b.start()


class Consumer:
    """What reached the queues, kept here: each drain() takes every message the broker holds
    (basic.get, acknowledged), so a broker that goes away keeps nothing the test has not seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = {"all-events": [], "bounces": []}  # queue -> [dict]

    def setup(self):
        with self.channel() as ch:
            ch.exchange_declare(EXCHANGE, "topic", durable=True)
            for queue, key in (("all-events", "#"), ("bounces", "*.bounced")):
                ch.queue_declare(queue, durable=True)
                ch.queue_bind(queue, EXCHANGE, key)

    class channel:  # noqa: N801  (a context manager around one connection)
        def __enter__(self):
            self.connection = pika.BlockingConnection(pika.URLParameters(broker().url))
            return self.connection.channel()

        def __exit__(self, *exc):
            self.connection.close()

    def drain(self):
        """Takes what the queues hold; returns the messages of all-events seen so far. A broker
        that is down gives nothing new."""
        try:
            with self.channel() as ch:
                for queue in self.messages:
                    while True:
                        method, props, body = ch.basic_get(queue, auto_ack=True)
                        if method is None:
                            break
                        m = {"routing_key": method.routing_key, "message_id": props.message_id,
                             "content_type": props.content_type,
                             "delivery_mode": props.delivery_mode, "type": props.type,
                             "headers": props.headers or {}, "body": json.loads(body)}
                        with self.lock:
                            self.messages[queue].append(m)
        except pika.exceptions.AMQPError:
            pass
        with self.lock:
            return list(self.messages["all-events"])

    def of(self, queue):
        with self.lock:
            return list(self.messages[queue])


@harness.fixture
def consumer():
    c = Consumer()
    broker()
    c.setup()
    return c


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


@harness.fixture
def config():
    """(the config's path, app@example.com's password)."""
    amqp = ("\n[[events.amqp]]\nname = \"bus\"\nurl = %s\ntenants = [\"*\"]\nexchange = %s\n"
            "batch_wait_ms = 200\nretry_initial_ms = 200\nretry_ms_max = 1000\n"
            "timeout_ms = 5000\nheartbeat_s = 10\n"
            % (json.dumps(broker().url), json.dumps(EXCHANGE)))
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0}}), append=amqp)


@harness.fixture
def relay():
    sink()
    consumer()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


COUNTER = [0]


def submit(rcpts, count=1):
    """Sends `count` messages to `rcpts`, each with a Message-ID of its own; returns them."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    ids = []
    for _ in range(count):
        COUNTER[0] += 1
        mid = "<amqp-%d-%d@example.com>" % (os.getpid(), COUNTER[0])
        s.sendmail("app@example.com", rcpts,
                   "From: app@example.com\r\nTo: %s\r\nMessage-ID: %s\r\nSubject: events\r\n\r\n"
                   "Hi.\r\n" % (", ".join(rcpts), mid))
        ids.append(mid)
    s.quit()
    return ids


def wait_for(predicate, what, wait_s=WAIT_S, poll_s=0.2):
    deadline = time.time() + wait_s
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll_s)
    check(False, "within %d s: %s" % (wait_s, what))
    return None


def kinds(messages):
    """{(event, message_id, recipient)} of the events in `messages`."""
    return {(m["body"]["event"], m["body"].get("message_id"), m["body"].get("recipient"))
            for m in messages}


def of_messages(messages, message_ids):
    return [m for m in messages if m["body"].get("message_id") in message_ids]


def repeats(messages):
    """How many messages repeat an event id already seen."""
    ids = [m["message_id"] for m in messages]
    return len(ids) - len(set(ids))


def metrics():
    return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()


def metric(body, series):
    m = re.search("^" + re.escape(series) + r" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def settled():
    """Whether every message the relay received has an outcome in the delivery log."""
    events = relayd_process.delivery_events(TMP + "/relay")
    received = {e.get("queue_id") for e in events if e.get("event") == "received"}
    done = {e.get("queue_id") for e in events
            if e.get("event") in ("delivered", "bounced", "deferred")}
    return len(received) > 0 and received <= done


@harness.case(1, "each event is one persistent message: key <tenant>.<event>, message_id its id")
def events_arrive():
    relay()
    good = submit(["fine@example.org"], count=3)
    bad = submit(["gone@example.org"])
    slow = submit(["later@example.org"])
    expected = {(k, m, "fine@example.org") for m in good for k in ("received", "delivered")} | \
        {("received", bad[0], "gone@example.org"), ("bounced", bad[0], "gone@example.org"),
         ("dsn_sent", bad[0], "app@example.com"),
         ("received", slow[0], "later@example.org"), ("deferred", slow[0], "later@example.org")}
    got = wait_for(lambda: expected <= kinds(consumer().drain()) and
                   kinds(of_messages(consumer().drain(), good + bad + slow)),
                   "every event of the five messages in all-events")
    check(got == expected, "exactly the events of the five messages: %s" % (got ^ expected))
    messages = of_messages(consumer().drain(), good + bad + slow)
    print("case 1: %d events expected, %d messages, %d repeats"
          % (len(expected), len(messages), repeats(messages)))
    check(all(m["routing_key"] == "example_com." + m["body"]["event"] for m in messages),
          "routing keys are example_com.<event>: %s" % sorted({m["routing_key"] for m in messages}))
    check(all(m["message_id"] == m["body"]["id"] and re.fullmatch(r"\d+-\d+-\d+", m["message_id"])
              for m in messages), "each message_id is the event's id")
    check(all(m["delivery_mode"] == 2 and m["content_type"] == "application/json" and
              m["type"] == m["body"]["event"] and m["headers"].get("tenant") == "example.com"
              for m in messages), "persistent JSON, type the event, a tenant header")
    bounced = [m for m in messages if m["body"]["event"] == "bounced"]
    check(bounced and bounced[0]["body"].get("category") == "bad-mailbox",
          "the bounce carries its category: %s" % bounced[:1])
    bounces = of_messages(consumer().of("bounces"), bad)
    check([m["body"]["event"] for m in bounces] == ["bounced"],
          "the queue bound *.bounced got the bounce alone: %s"
          % [m["routing_key"] for m in bounces])
    body = metrics()
    sent = metric(body, 'relay_amqp_events_sent_total{amqp="bus"}') or 0
    check(sent >= len(expected), "relay_amqp_events_sent_total counts them: %s" % sent)
    check(metric(body, 'relay_amqp_unroutable_events_total{amqp="bus"}') == 0,
          "none unroutable (every key matches '#')")


@harness.case(2, "a broker stopped mid-run and started again loses no event")
def broker_restart():
    relay()
    # Published and acknowledged before the stop, not yet read: kept by the broker (durable queue,
    # persistent messages).
    before = submit(["fine@example.org"], count=10)
    wait_for(settled, "the first 10 delivered")
    wait_for(lambda: metric(metrics(), 'relay_amqp_pending_events{amqp="bus"}') == 0,
             "the sink has published every event so far")
    broker().stop()
    during = submit(["fine@example.org"], count=20)
    wait_for(settled, "the 20 sent while the broker is down delivered")
    def waiting():
        body = metrics()
        pending = metric(body, 'relay_amqp_pending_events{amqp="bus"}') or 0
        failures = metric(body, 'relay_amqp_failures_total{amqp="bus"}') or 0
        return (pending, failures) if pending >= 40 and failures >= 2 else None

    pending, failures = wait_for(waiting, "the metrics say what waits") or (0, 0)
    print("case 2: the broker down: %d events pending, %d failed batches" % (pending, failures))
    broker().start()
    expected = {(k, m, "fine@example.org") for m in before + during
                for k in ("received", "delivered")}
    got = wait_for(lambda: expected <= kinds(consumer().drain()),
                   "the 60 events of the 30 messages after the broker's restart")
    check(bool(got), "every event of the 30 messages, before and during the outage, arrives")
    messages = of_messages(consumer().drain(), before + during)
    print("case 2: %d events expected, %d messages, %d repeats"
          % (len(expected), len(messages), repeats(messages)))
    wait_for(lambda: metric(metrics(), 'relay_amqp_oldest_pending_age_seconds{amqp="bus"}') == 0,
             "nothing waits any more")
    connections = metric(metrics(), 'relay_amqp_connections_total{amqp="bus"}') or 0
    check(connections >= 2, "the sink opened a new connection: %s" % connections)


@harness.case(3, "kill -9 of relayd while it takes mail and publishes loses no event")
def crash_loses_nothing():
    r = relay()
    password = config()[1]
    port = r.port()
    # Enough mail that taking it lasts longer than the sink's first batches (batch_wait_ms 200).
    mids = ["<crash-%d-%d@example.com>" % (os.getpid(), i) for i in range(300)]
    accepted = []  # the Message-IDs whose 250 came back before the kill

    def send():
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30)
            s.starttls(context=ssl._create_unverified_context())
            s.login("app@example.com", password)
            for mid in mids:
                s.sendmail("app@example.com", ["fine@example.org"],
                           "From: app@example.com\r\nTo: fine@example.org\r\nMessage-ID: %s\r\n"
                           "Subject: crash\r\n\r\nHi.\r\n" % mid)
                accepted.append(mid)
        except (OSError, smtplib.SMTPException):
            pass  # the kill

    consumer().drain()  # all-events is empty: what comes now is this stream's
    with consumer().channel() as ch:
        sender = threading.Thread(target=send)
        sender.start()
        # Killed as soon as the first of these events is in the queue (one cheap look at its
        # depth each time): the sink is publishing while the shards take mail and deliver it.
        wait_for(lambda: ch.queue_declare("all-events", passive=True).method.message_count > 0,
                 "the first event of the stream", poll_s=0.01)
        r.proc.send_signal(signal.SIGKILL)
    r.proc.wait()
    sender.join()
    arrived = len(of_messages(consumer().drain(), mids))
    print("case 3: killed with %d messages accepted of %d sent, %d of their %d events in the queue"
          % (len(accepted), len(mids), arrived, 2 * len(accepted)))
    check(0 < len(accepted) < len(mids) or arrived < 2 * len(accepted),
          "killed mid-stream: mail still coming in or events still to publish")
    r.start()
    expected = {(k, m, "fine@example.org") for m in accepted for k in ("received", "delivered")}
    got = wait_for(lambda: expected <= kinds(consumer().drain()),
                   "the events of the %d accepted messages after kill -9 and restart"
                   % len(accepted))
    check(bool(got), "every event of the accepted messages arrives after kill -9 and restart")
    messages = of_messages(consumer().drain(), accepted)
    print("case 3: %d events expected, %d messages, %d repeats"
          % (len(expected), len(messages), repeats(messages)))
    body = metrics()
    dropped = (metric(body, "relay_events_dropped_total"),
               metric(body, "relay_events_journal_dropped_total"),
               metric(body, "relay_events_journal_write_errors_total"))
    check(dropped == (0, 0, 0), "no event dropped, no journal write failed: %s" % (dropped,))


harness.main()
