#!/usr/bin/python3
"""Fairness benchmark (issue 16, item 2): a newsletter must not delay a password reset.

One relayd on loopback delivers to bench/smtp_sink through unbound (Debian) MX records; the one
destination site is throttled by a [[shaping]] rule (--site-rate messages per second). Tenant
"bulk" (bulk@bulk.test, priority "bulk") injects --bulk messages with bench/smtp_load as fast as
the relay takes them; meanwhile tenant "shop" (tx@shop.test, priority "transactional") sends one
message every 1/--tx-rate seconds for --tx-seconds, over SMTP from this script. Printed: the
transactional messages' time from acceptance to delivery (relayd's delivery log: the "received"
line, written when the message is queued, to the "delivered" line, written on the sink's 250),
p50, p99 and the maximum, and how many were not delivered by the end of the run (counted as
slower than every delivered one).

Each RELAYD given is run in turn on a fresh spool, in the same run: name the previous build's
binary first to show the baseline (FIFO ready queues), e.g.
  fairness.py --relayd old=/tmp/bench-old/relay/relayd --relayd new=bazel-bin/relay/relayd ...
A build that does not know [[tenants]] runs without them (its config would be refused);
--without-tenants NAME runs a build that way too (its tenants are then the two sending domains,
both of class normal and weight 1). The same binary may be named twice, e.g.
  --relayd fifo=OLD --relayd domains=NEW --relayd tenants=NEW --without-tenants domains

usage: fairness.py --relayd NAME=PATH [--relayd ...] [--without-tenants NAME] SMTP_SINK SMTP_LOAD
           [--bulk N] [--site-rate R] [--tx-rate R] [--tx-seconds S] [--time-limit-s T]
Bounded: each run stops after --time-limit-s and everything it started is stopped. Loopback only.
"""
import argparse
import calendar
import json
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import relayd_process  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--relayd", action="append", required=True, help="NAME=PATH, in run order")
parser.add_argument("smtp_sink")
parser.add_argument("smtp_load")
parser.add_argument("--bulk", type=int, default=200000)
parser.add_argument("--site-rate", type=float, default=200)
parser.add_argument("--tx-rate", type=float, default=10)
parser.add_argument("--tx-seconds", type=float, default=30)
parser.add_argument("--settle-s", type=float, default=5, help="bulk injection before the first tx")
parser.add_argument("--time-limit-s", type=float, default=240)
parser.add_argument("--size", default="1K")
parser.add_argument("--without-tenants", action="append", default=[], metavar="NAME",
                    help="run the build NAME without [[tenants]] (repeatable)")
parser.add_argument("--expect-p99-ms", type=float, default=0,
                    help="exit 1 when the last build's transactional p99 is above this (smoke)")
args = parser.parse_args()

TMP = tempfile.mkdtemp(prefix="fairness-bench-", dir=os.environ.get("TEST_TMPDIR"))
SOCK_DIR = tempfile.mkdtemp(prefix="fb-", dir="/tmp")
SITE_IP = "127.0.1.1"
DOMAIN = "throttled.bench.test"
children = []


def spawn(argv, log):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    children.append(p)
    return p


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def cleanup():
    for p in children:
        stop(p, 10)
    shutil.rmtree(SOCK_DIR, ignore_errors=True)


def fail(why):
    print("FAIL: " + why, flush=True)
    cleanup()
    sys.exit(1)


def wait_for(pred, seconds, step=0.1):
    end = time.time() + seconds
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# --- DNS and the sink, shared by every run -----------------------------------------------------
zone = ('  local-zone: "bench.test." static\n'
        '  local-data: "%s. 3600 IN MX 10 mx.%s."\n  local-data: "mx.%s. 3600 IN A %s"\n'
        % (DOMAIN, DOMAIN, DOMAIN, SITE_IP))
try:
    _, DNS_PORT = local_dns.start_unbound(TMP, zone,
                                          spawn=lambda argv: spawn(argv, TMP + "/unbound.out"))
except RuntimeError as e:
    fail(str(e))
SINK_PORT = local_dns.free_port([SITE_IP])
spawn([args.smtp_sink, "--listen", "%s:%d" % (SITE_IP, SINK_PORT), "--threads", "1",
       "--stats-interval-s", "0"], TMP + "/sink.log")

TENANTS = """
[[tenants]]
name = "bulk"
users = ["bulk@bulk.test"]
priority = "bulk"

[[tenants]]
name = "shop"
users = ["tx@shop.test"]
priority = "transactional"
"""
SHAPING = """
[[shaping]]
name = "throttled"
domains = ["%s"]
connections_max = 4
messages_per_second = %g
""" % (DOMAIN, args.site_rate)


def knows_tenants(relayd):
    """Whether this build reads [[tenants]] (a previous build refuses the key)."""
    d = tempfile.mkdtemp(prefix="probe-", dir=TMP)
    conf, _ = relayd_process.init(relayd, d, {
        "submission": {"listen": ["127.0.0.1:0"], "listen_tls": []},
        "control_socket": SOCK_DIR + "/probe.sock"}, append=TENANTS)
    p, ready = relayd_process.start(relayd, conf, d + "/relayd.log")
    stop(p)
    return ready is not None


def configure(relayd, conf_dir, tenants):
    conf, password = relayd_process.init(relayd, conf_dir, {
        "submission": {"listen": ["127.0.0.1:0"], "listen_tls": [], "auth_requires_tls": False},
        "shards": 2,
        "delivery": {"dns_servers": ["127.0.0.1:%d" % DNS_PORT], "family": "ipv4-only",
                     "mx_port": SINK_PORT},
        "control_socket": SOCK_DIR + "/control-%s.sock" % os.path.basename(conf_dir),
        "log": {"dir": "log"}}, append=SHAPING + (TENANTS if tenants else ""),
        domain="bulk.test")
    return conf, password


def start_relayd(relayd, conf, log):
    p = spawn([relayd, "--config", conf], log)

    def port():
        m = re.search(r"submission \(STARTTLS\) on 127\.0\.0\.1:(\d+)", open(log).read())
        return int(m.group(1)) if m else (p.poll() is not None and -1)

    got = wait_for(port, 60)
    if not got or got < 0:
        print(open(log).read()[-3000:])
        fail("relayd did not start")
    return p, got


def send_transactional(port, password, sent):
    """One message every 1/tx_rate s from tx@shop.test; appends (Message-ID, time) to `sent`."""
    period = 1.0 / args.tx_rate
    start = time.time()
    n = 0
    while time.time() - start < args.tx_seconds:
        due = start + n * period
        if due > time.time():
            time.sleep(due - time.time())
        mid = "tx%d.%d@shop.test" % (n, time.time_ns())
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname="shop.test", timeout=30)
            s.login("tx@shop.test", password)
            s.sendmail("tx@shop.test", ["user%d@%s" % (n, DOMAIN)],
                       "From: tx@shop.test\r\nTo: user%d@%s\r\nSubject: your reset link\r\n"
                       "Message-ID: <%s>\r\n\r\nHi.\r\n" % (n, DOMAIN, mid))
            s.quit()
            sent.append((mid, time.time()))
        except (OSError, smtplib.SMTPException) as e:
            print("transactional message %d: %s" % (n, e), flush=True)
        n += 1


def log_lines(conf_dir):
    out = []
    for path in sorted(os.listdir(conf_dir + "/log")) if os.path.isdir(conf_dir + "/log") else []:
        for line in open(os.path.join(conf_dir, "log", path), errors="replace"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def unix_s(ts):
    """"2026-12-07T12:39:06.468Z" -> seconds since the epoch."""
    base, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def latencies(conf_dir, senders):
    """Acceptance-to-delivery seconds of messages from `senders`, and how many never arrived."""
    received, delivered = {}, {}
    for e in log_lines(conf_dir):
        if e.get("sender") not in senders:
            continue
        if e.get("event") == "received":
            received[e["queue_id"]] = unix_s(e["ts"])
        elif e.get("event") == "delivered":
            delivered[e["queue_id"]] = unix_s(e["ts"])
    done = sorted(delivered[q] - received[q] for q in received if q in delivered)
    return done, len(received) - len(done)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("inf")
    return sorted_values[min(len(sorted_values) - 1, int(round(p * (len(sorted_values) - 1))))]


def run(name, relayd):
    tenants = name not in args.without_tenants and knows_tenants(relayd)
    conf_dir = TMP + "/relay-" + name
    conf, password = configure(relayd, conf_dir, tenants)
    # The second user, tx@shop.test, with the same password (relayd --init made one user).
    users = open(conf_dir + "/users").read()
    user = [l for l in users.splitlines() if l and not l.startswith("#")][0].split()
    with open(conf_dir + "/users", "a") as f:
        f.write("bulk@bulk.test %s @bulk.test\ntx@shop.test %s @shop.test\n" % (user[1], user[1]))
    p, port = start_relayd(relayd, conf, "%s/relayd-%s.log" % (TMP, name))
    t0 = time.time()
    load = subprocess.Popen(
        [args.smtp_load, "--target", "127.0.0.1:%d" % port, "--count", str(args.bulk),
         "--duration-s", str(args.time_limit_s / 2), "--connections", "8", "--size", args.size,
         "--from", "bulk@bulk.test", "--auth-user", "bulk@bulk.test", "--auth-password",
         password, "--domains", DOMAIN + ":1"],
        stdout=open("%s/load-%s.json" % (TMP, name), "w"), stderr=subprocess.DEVNULL)
    children.append(load)
    time.sleep(args.settle_s)
    sent = []
    sender = threading.Thread(target=send_transactional, args=(port, password, sent))
    sender.start()
    sender.join()
    # The transactional messages still on their way get the rest of the run.
    deadline = t0 + args.time_limit_s
    wait_for(lambda: latencies(conf_dir, {"tx@shop.test"})[1] == 0, max(0, deadline - time.time()),
             step=0.5)
    done, missing = latencies(conf_dir, {"tx@shop.test"})
    bulk_done, bulk_waiting = latencies(conf_dir, {"bulk@bulk.test"})
    stop(load)
    stop(p)
    summary = {}
    try:
        summary = json.loads(open("%s/load-%s.json" % (TMP, name)).read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        pass
    return {"name": name, "tenants": tenants, "tx_sent": len(sent), "tx_delivered": len(done),
            "tx_missing": missing, "p50_ms": percentile(done, 0.5) * 1000,
            "p99_ms": (percentile(done, 0.99) if missing == 0 else float("inf")) * 1000,
            "max_ms": (done[-1] if done and missing == 0 else float("inf")) * 1000,
            "bulk_accepted": summary.get("accepted", 0), "bulk_delivered": len(bulk_done),
            "bulk_queued_at_end": bulk_waiting}


def main():
    results = []
    for spec in args.relayd:
        name, _, path = spec.partition("=")
        r = run(name, path)
        results.append(r)
        print(json.dumps(r), flush=True)
    print("\n%-10s %-8s %9s %9s %9s %9s %12s %12s" % (
        "build", "tenants", "tx sent", "p50 ms", "p99 ms", "max ms", "bulk taken",
        "bulk queued"))
    for r in results:
        print("%-10s %-8s %9d %9.0f %9.0f %9.0f %12d %12d" % (
            r["name"], "yes" if r["tenants"] else "no", r["tx_sent"], r["p50_ms"], r["p99_ms"],
            r["max_ms"], r["bulk_accepted"], r["bulk_queued_at_end"]))
    cleanup()
    print("kept in " + TMP)
    if args.expect_p99_ms and not results[-1]["p99_ms"] <= args.expect_p99_ms:
        print("FAIL: transactional p99 %.0f ms > %.0f ms" % (results[-1]["p99_ms"],
                                                           args.expect_p99_ms))
        sys.exit(1)


main()
