#!/usr/bin/python3
"""End-to-end metrics: relayd with its [metrics] endpoint on loopback, a real DNS server
(unbound) and a real SMTP receiver (aiosmtpd with STARTTLS). /metrics is parsed with Debian's
prometheus_client parser (which refuses an invalid exposition) before and after mail flows, and
every counter the mail should move is checked against the exact amount it should move by.

The cases share one relayd; the mail case measures its counters from a scrape of its own, so
that it runs alone.

usage: metrics_test.py RELAYD [--case N[,M...]] [--list]
"""
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("metrics-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()

# --- the receiver: one aiosmtpd with STARTTLS; reject.test recipients get 550 -------------------
sink = local_smtp.Sink(lambda rcpt: "550 5.1.1 <%s>: no such user here" % rcpt
                       if rcpt.endswith("@reject.test") else None)


@harness.fixture
def receiver():
    with local_smtp.serving(sink, SINK_IP, MX_PORT, TMP) as controller:
        yield controller


@harness.fixture
def dns_port():
    zones = """
  local-zone: "test." static
  local-zone: "example.com." static
  local-data: "good.test. 300 IN MX 10 mx.good.test."
  local-data: "mx.good.test. 300 IN A {ip}"
  local-data: "reject.test. 300 IN MX 10 mx.reject.test."
  local-data: "mx.reject.test. 300 IN A {ip}"
  local-data: "example.com. 300 IN MX 10 mx.example.com."
  local-data: "mx.example.com. 300 IN A {ip}"
""".format(ip=SINK_IP)
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def initialized():
    """relayd --init's configuration: (its path, the user's password, its text)."""
    conf_dir = TMP + "/relay"
    # --no-dkim: the test configures its own two keys below and counts the signatures they make.
    init = subprocess.run([RELAYD, "--init", conf_dir, "--domain", "example.com", "--hostname",
                           "relay.example.com", "--no-dkim"],
                          capture_output=True, text=True, check=True)
    password = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
    conf_path = conf_dir + "/relayd.toml"
    return conf_path, password, open(conf_path).read()


@harness.fixture
def config():
    """The configuration relayd runs with: the test's ports, DNS server and two DKIM keys, RSA and
    Ed25519 for the same domain (dual signing); (its path, the user's password)."""
    conf_path, password, _ = initialized()
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", TMP + "/rsa.pem"], check=True, capture_output=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", TMP + "/ed.pem"],
                   check=True, capture_output=True)
    relayd_process.configure(conf_path, relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"control_socket": harness.scratch("mt-", dir="/tmp") + "/control.sock"}), append="""
[[dkim.key]]
domain = "example.com"
selector = "rsa"
key = "{tmp}/rsa.pem"

[[dkim.key]]
domain = "example.com"
selector = "ed"
key = "{tmp}/ed.pem"
""".format(tmp=TMP))
    return conf_path, password


@harness.fixture
def relay():
    receiver()
    conf_path, password = config()
    with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print("--- relayd log ---\n" + r.log()))
        # The endpoint starts after the ready line.
        for _ in range(100):
            if "metrics on http://" in r.log():
                break
            time.sleep(0.1)
        if "metrics on http://" not in r.log():
            raise RuntimeError("relayd started without its metrics endpoint")
        r.password = password
        yield r


def http(method, path):
    """(status, headers text, body) of one request to the endpoint."""
    s = socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=10)
    s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % (method, path)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, head.decode(), body.decode()


def scrape():
    """{(sample name, sorted labels): value}; fails the test if the text does not parse."""
    status, head, body = http("GET", "/metrics")
    if status != 200 or "Content-Type: text/plain; version=0.0.4" not in head:
        check(False, "GET /metrics: 200, text format 0.0.4")
    samples = {}
    try:
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    except Exception as e:  # the parser raises ValueError and friends on invalid input
        check(False, "exposition parses: %s" % e)
        print(body)
    return samples, body


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return pred()


def submit(rcpts, subject):
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", relay().password)
    msg = ("From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\nHello from the metrics "
           "test.\r\n" % (", ".join(rcpts), subject))
    s.sendmail("app@example.com", rcpts, msg)
    s.quit()


delivered_to = sink.delivered_to


@harness.case(1, "relayd --init writes a commented [metrics] section")
def init_section():
    base_conf = initialized()[2]
    check('[metrics]\n' in base_conf and 'listen = "127.0.0.1:9587"' in base_conf,
          "relayd --init writes a commented [metrics] section")


@harness.case(2, "a public metrics address without allow_public is refused at start")
def public_refused():
    conf_path, _ = config()
    bad_path = os.path.dirname(conf_path) + "/public.toml"
    shutil.copy(conf_path, bad_path)
    relayd_process.configure(bad_path, {"metrics": {"listen": "0.0.0.0:%d" % METRICS_PORT}})
    bad = subprocess.run([RELAYD, "--config", bad_path], capture_output=True, text=True,
                         timeout=30)
    check(bad.returncode == 2 and "not a loopback address" in bad.stderr + bad.stdout,
          "metrics.listen on 0.0.0.0 refused without allow_public")


@harness.case(3, "/metrics parses and says what it must before any mail; /healthz, 404, 405")
def first_scrape():
    relay()
    before, text = scrape()
    check(len(before) > 50, "first scrape: %d samples parsed by prometheus_client" % len(before))
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    check(all(n.startswith("relay_") for n, _ in families), "every metric has the relay_ prefix")
    check(all(("# HELP %s " % n) in text for n, _ in families), "every metric has HELP")
    check(value(before, "relay_build_info", version="dev") == 1, "relay_build_info")
    start = value(before, "relay_process_start_time_seconds")
    check(abs(start - time.time()) < 120, "relay_process_start_time_seconds is about now")
    check(("relay_recipients_delivered_total", (("site", "google"), ("source", "default")))
          in before, "recipient series labelled by shaping rule and source exist before any mail")
    check(not re.search(r'site="[^"]*\.test"', text), "no recipient domain becomes a label")

    status, _, body = http("GET", "/healthz")
    check(status == 200 and body == "ok\n", "GET /healthz: 200 ok")
    check(http("GET", "/nope")[0] == 404, "unknown path: 404")
    check(http("POST", "/metrics")[0] == 405, "POST /metrics: 405")


@harness.case(4, "the endpoint answers after an idle minute")
def idle_minute():
    # The endpoint's thread slept without a timer, and the request's 5 s timeout used to be armed
    # from the time it fell asleep and fire at once (408 or no reply).
    relay()
    time.sleep(61)
    status, _, body = http("GET", "/healthz")
    check(status == 200 and body == "ok\n", "GET /healthz after an idle minute: 200 ok")
    status, _, body = http("GET", "/metrics")
    check(status == 200 and "relay_build_info" in body, "GET /metrics right after it: 200")


@harness.case(5, "mail moves every counter by exactly what it should")
def mail_counters():
    relay()
    before, _ = scrape()

    # One AUTH failure.
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    try:
        s.login("app@example.com", "wrong password")
    except smtplib.SMTPAuthenticationError:
        pass
    s.quit()

    # The first message alone, so that the next ones to good.test find its MX in the cache.
    submit(["a@good.test"], "one")
    check(wait_until(lambda: delivered_to("a@good.test"), 20), "first message delivered")
    submit(["b@good.test"], "two")
    submit(["c@good.test"], "three")
    submit(["d@reject.test"], "four")  # 550: bounced, and a DSN to app@example.com
    check(wait_until(lambda: delivered_to("b@good.test") and delivered_to("c@good.test") and
                     delivered_to("app@example.com"), 30), "the others and the DSN delivered")

    def settled():
        now, _ = scrape.last = scrape()
        return (value(now, "relay_recipients_delivered_total", site="default", source="default") -
                value(before, "relay_recipients_delivered_total", site="default",
                      source="default") >= 4 and
                value(now, "relay_queue_messages") == 0 and
                value(now, "relay_outbound_connections_open") == 0 and
                value(now, "relay_connections_open", listener="submission") == 0)

    check(wait_until(settled, 30), "counters settle: queue empty, connections closed")
    after, text = scrape.last

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    DD = dict(site="default", source="default")
    check(delta("relay_messages_received_total") == 4, "messages received +4")
    check(delta("relay_message_received_bytes_total") > 4 * 100, "received bytes moved")
    check(delta("relay_connections_accepted_total", listener="submission") == 5,
          "connections accepted +5 (4 messages, 1 failed AUTH)")
    check(delta("relay_smtp_sessions_total", listener="submission") == 5, "SMTP sessions +5")
    check(delta("relay_auth_attempts_total", result="success") == 4, "AUTH successes +4")
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN): two refusals.
    check(delta("relay_auth_attempts_total", result="failure") == 2,
          "AUTH failures +2 (got %d)" % delta("relay_auth_attempts_total", result="failure"))
    check(delta("relay_auth_attempts_total", result="error") == 0, "no AUTH errors")
    check(delta("relay_tls_handshakes_total", direction="inbound") == 5,
          "inbound TLS handshakes +5")
    check(delta("relay_tls_handshake_failures_total", direction="inbound") == 0,
          "no inbound TLS failure")
    opened = delta("relay_outbound_connections_opened_total")
    check(opened >= 1 and delta("relay_tls_handshakes_total", direction="outbound") == opened,
          "one outbound TLS handshake per outbound connection (%d)" % opened)
    check(delta("relay_dkim_signatures_total", algorithm="rsa-sha256") == 4, "RSA signatures +4")
    check(delta("relay_dkim_signatures_total", algorithm="ed25519-sha256") == 4,
          "Ed25519 signatures +4")
    check(delta("relay_dkim_signing_seconds_count") == 4 and
          delta("relay_dkim_signing_seconds_sum") > 0,
          "DKIM signing time observed per message")
    check(delta("relay_recipients_delivered_total", **DD) == 4,
          "recipients delivered +4 (3 to good.test, the DSN), site and source labelled")
    check(delta("relay_recipients_bounced_total", **DD) == 1, "recipients bounced +1")
    check(delta("relay_recipients_deferred_total", **DD) == 0, "nothing deferred")
    check(delta("relay_dsn_queued_total") == 1, "one DSN queued")
    check(any(k[0] == "relay_possible_duplicate_outcomes_total" for k in after) and
          delta("relay_possible_duplicate_outcomes_total") == 0,
          "possible duplicates counted, none without a crash or a lost reply")
    syncs = delta("relay_queue_fsync_seconds_count")
    check(syncs >= 1 and delta("relay_queue_fsync_seconds_sum") > 0, "fsync latency observed")
    check(delta("relay_queue_fsync_batch_records_count") == syncs,
          "one batch-size observation per group commit")
    # 4 messages + 1 DSN, and an outcome record per recipient (4 delivered + 1 bounced) at least.
    check(delta("relay_queue_fsync_batch_records_sum") >= 10, "group commits covered every record")
    check(value(after, "relay_queue_fsync_seconds_bucket", le="+Inf") ==
          value(after, "relay_queue_fsync_seconds_count"), "histogram +Inf bucket equals _count")
    check(delta("relay_dns_queries_total") >= 3, "DNS queries sent")
    check(delta("relay_dns_cache_hits_total") >= 1, "DNS cache hits")
    check(delta("relay_dns_failures_total") == 0, "no DNS failures")
    check(value(after, "relay_queue_bytes") > 0, "queue bytes: segment files in use")
    check(value(after, "relay_queue_reserve_segments") >= 1, "reserve segments ready")
    check(("relay_queue_segments_created_on_append_path_total", ()) in after and
          value(after, "relay_queue_segments_created_on_append_path_total") == 0,
          "no segment created on the append path")
    # The series the alert rules in tools/monitoring/ are built on.
    check(delta("relay_recipients_delivered_tls_total", site="default") == 4,
          "recipients delivered over TLS +4 (the sink offers STARTTLS)")
    check(value(after, "relay_queue_oldest_message_age_seconds") == 0,
          "oldest queued message age 0 once the queue is empty")
    check(value(after, "relay_queue_capacity_bytes") >= value(after, "relay_queue_bytes") > 0,
          "queue capacity reported, above the bytes in use")
    avail = value(after, "relay_spool_filesystem_avail_bytes")
    check(0 < avail <= value(after, "relay_spool_filesystem_size_bytes"),
          "spool file system space reported")
    check(all(delta("relay_shard_loop_turns_total", shard=str(i)) >= 1 for i in range(2)),
          "both shards' loop turns move")
    check(value(after, "relay_ready_queue_messages", site="default") == 0 and
          value(after, "relay_site_suspended_queues", site="default") == 0 and
          value(after, "relay_site_suspensions_total", site="default") == 0,
          "no ready message waits, no site suspended")
    check(("relay_queue_segment_creation_failures_total", ()) in after and
          value(after, "relay_queue_segment_creation_failures_total") == 0,
          "no failed segment creation")


@harness.case(6, "the endpoint answers until the shards stop, then goes away with them")
def shutdown():
    check(relay().stop() == 0, "relayd stops cleanly with the endpoint running")
    try:
        socket.create_connection(("127.0.0.1", METRICS_PORT), timeout=2).close()
        check(False, "endpoint closed after shutdown")
    except OSError:
        check(True, "endpoint closed after shutdown")


harness.main()
