#!/usr/bin/python3
"""Delivery benchmarks: one relayd delivering to bench/smtp_sink on loopback, MX records from
unbound (Debian), messages submitted by bench/smtp_load (AUTH PLAIN without TLS on loopback).

  concurrency: a slow sink (--delay-ms on every reply, the greeting included) listening on
      SITES addresses 127.0.1.x, one recipient domain per address, and a [[shaping]] rule raising
      connections_max for them, so that relayd opens one outbound session per queued message.
      Prints the most sessions open at once (established TCP connections to the sink's port, from
      /proc/net/tcp) and relayd's resident memory per session.
  rate: the queue is filled first with delivery disabled, then relayd restarts with delivery
      enabled and drains it to a fast sink, once with connection reuse (the default rule, up to
      100 messages per connection) and once without (messages_per_connection_max = 1). Prints
      messages/s (first to last arrival at the sink) and relayd's CPU seconds per 1,000 messages.
      Plain SMTP only: smtp_sink has no TLS driver (it never offers STARTTLS).

usage:
  delivery_bench.py RELAYD SMTP_SINK SMTP_LOAD concurrency [--messages N] [--sites S]
      [--delay-ms D] [--time-limit-s T] [--expect-min-sessions M]
  delivery_bench.py RELAYD SMTP_SINK SMTP_LOAD rate [--messages N] [--sites S]
      [--time-limit-s T]
Bounded: every run stops after --time-limit-s and everything it started is stopped.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helper, found through the path above)

parser = argparse.ArgumentParser()
parser.add_argument("relayd")
parser.add_argument("smtp_sink")
parser.add_argument("smtp_load")
parser.add_argument("mode", choices=["concurrency", "rate"])
parser.add_argument("--messages", type=int, default=10000)
parser.add_argument("--sites", type=int, default=50)
parser.add_argument("--delay-ms", type=int, default=20000)
parser.add_argument("--time-limit-s", type=float, default=120)
parser.add_argument("--size", default="1K")
parser.add_argument("--shards", type=int, default=2)
parser.add_argument("--keep", action="store_true", help="keep the logs (the path is printed)")
parser.add_argument("--expect-min-sessions", type=int, default=0,
                    help="exit 1 when fewer sessions were open at once (smoke test)")
args = parser.parse_args()
if not 1 <= args.sites <= 250:
    sys.exit("--sites must be 1..250 (addresses 127.0.1.1..127.0.1.250)")

TMP = tempfile.mkdtemp(prefix="delivery-bench-", dir=os.environ.get("TEST_TMPDIR"))
SOCK_DIR = tempfile.mkdtemp(prefix="db-", dir="/tmp")
children = []


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def spawn(argv, log):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                         preexec_fn=raise_nofile)
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


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established_to(port):
    """Established TCP connections whose remote port is `port` (relayd's side of each session)."""
    n = 0
    hexport = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[2].endswith(hexport) and parts[3] == "01":
                    n += 1
    return n


SITE_IPS = ["127.0.1.%d" % i for i in range(1, args.sites + 1)]
DOMAINS = ["d%d.bench.test" % i for i in range(1, args.sites + 1)]

# --- DNS ---------------------------------------------------------------------------------------
zone = '  local-zone: "bench.test." static\n' + "".join(
    '  local-data: "%s. 3600 IN MX 10 mx.%s."\n  local-data: "mx.%s. 3600 IN A %s"\n'
    % (d, d, d, ip) for d, ip in zip(DOMAINS, SITE_IPS))
try:
    unbound, DNS_PORT = local_dns.start_unbound(
        TMP, zone, spawn=lambda argv: spawn(argv, TMP + "/unbound.out"))
except RuntimeError as e:
    fail(str(e))

# --- the sink ----------------------------------------------------------------------------------
SINK_PORT = local_dns.free_port()
sink_args = [args.smtp_sink, "--listen-range", "%s-%s:%d" % (SITE_IPS[0], SITE_IPS[-1], SINK_PORT),
             "--threads", "1", "--stats-interval-s", "0",
             "--port-file", TMP + "/sink.port", "--json-file", TMP + "/sink.json"]
if args.mode == "concurrency":
    sink_args += ["--delay-ms", str(args.delay_ms)]

# --- relayd ------------------------------------------------------------------------------------
conf_dir = TMP + "/relay"
init = subprocess.run([args.relayd, "--init", conf_dir, "--domain", "example.com", "--hostname",
                       "relay.example.com"], capture_output=True, text=True, check=True)
PASSWORD = re.search(r"Password:\s+(\S+)", init.stdout).group(1)
conf_path = conf_dir + "/relayd.toml"
base_conf = open(conf_path).read()
for old, new in (('listen = ["127.0.0.1:2587"]', 'listen = ["127.0.0.1:0"]'),
                 ('listen_tls = ["127.0.0.1:2465"]', "listen_tls = []"),
                 ("auth_requires_tls = true", "auth_requires_tls = false"),
                 ("shards = 0", "shards = %d" % args.shards),
                 ("fsync = true", "fsync = false"),
                 ("dns_servers = []", 'dns_servers = ["127.0.0.1:%d"]' % DNS_PORT),
                 ("mx_port = 25", "mx_port = %d" % SINK_PORT),
                 ('control_socket = "control.sock"',
                  'control_socket = "%s/control.sock"' % SOCK_DIR),
                 ('dir = "log"', 'dir = ""')):
    if old not in base_conf:
        fail("the default config no longer has %r" % old)
    base_conf = base_conf.replace(old, new)


def write_conf(enabled, shaping):
    conf = base_conf.replace("enabled = true", "enabled = %s" % ("true" if enabled else "false"))
    open(conf_path, "w").write(conf + shaping)


def start_relayd(tag):
    log = "%s/relayd-%s.log" % (TMP, re.sub(r"[^a-z0-9]+", "-", tag))
    p = spawn([args.relayd, "--config", conf_path], log)

    def port():
        m = re.search(r"submission \(STARTTLS\) on 127\.0\.0\.1:(\d+)", open(log).read())
        return int(m.group(1)) if m else (p.poll() is not None and -1)

    got = wait_for(port, 60)
    if not got or got < 0:
        print(open(log).read()[-3000:])
        fail("relayd did not start")
    return p, got, log


def fill_queue(port, count):
    """Submits `count` messages spread over DOMAINS with smtp_load; returns the seconds taken."""
    t0 = time.time()
    r = subprocess.run([args.smtp_load, "--target", "127.0.0.1:%d" % port, "--count", str(count),
                        "--duration-s", str(args.time_limit_s), "--connections", "8",
                        "--size", args.size, "--from", "app@example.com",
                        "--auth-user", "app@example.com", "--auth-password", PASSWORD,
                        "--domains", ",".join("%s:1" % d for d in DOMAINS)],
                       capture_output=True, text=True, timeout=args.time_limit_s + 30)
    summary = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    accepted = summary.get("accepted", 0)
    if r.returncode != 0 or accepted < count:
        print(r.stdout[-2000:], r.stderr[-2000:])
        fail("smtp_load submitted %s of %d messages" % (accepted, count))
    return time.time() - t0


def queued_run(shaping, tag):
    """Fills the queue with delivery disabled, then restarts relayd with delivery enabled and the
    sink up; returns (relayd, sink, fill seconds, RSS KiB with the full queue and no sessions)."""
    write_conf(False, shaping)
    relayd, port, _ = start_relayd(tag + "-fill")
    fill_s = fill_queue(port, args.messages)
    rss_full_kib = proc_status_kib(relayd.pid, "VmRSS")
    stop(relayd)
    if relayd.returncode != 0:
        fail("relayd (queue only) exited with %d" % relayd.returncode)
    sink = spawn(sink_args, "%s/sink-%s.log" % (TMP, re.sub(r"[^a-z0-9]+", "-", tag)))
    if not wait_for(lambda: os.path.exists(TMP + "/sink.port"), 10):
        fail("smtp_sink did not start")
    write_conf(True, shaping)
    relayd, _, log = start_relayd(tag)
    return relayd, sink, fill_s, rss_full_kib, log


def sink_summary(sink):
    stop(sink)
    try:
        return json.load(open(TMP + "/sink.json"))
    except (OSError, ValueError):
        return {}
    finally:
        for f in ("/sink.json", "/sink.port"):
            if os.path.exists(TMP + f):
                os.remove(TMP + f)


def concurrency():
    per_site = -(-args.messages // args.sites)
    shaping = """
[[shaping]]
name = "bench-sites"
mx_suffixes = ["bench.test"]
connections_max = %d
greeting_timeout_ms = %d
""" % (min(10000, per_site * args.shards), args.delay_ms * 4 + 60000)
    relayd, sink, fill_s, rss_full, log = queued_run(shaping, "concurrency")
    print("queue filled: %d messages in %.1fs; relayd RSS with the full queue %.1f MiB"
          % (args.messages, fill_s, rss_full / 1024.0), flush=True)
    t0 = time.time()
    rss_start = proc_status_kib(relayd.pid, "VmRSS")
    peak, peak_rss, peak_t, fds = 0, 0, 0.0, 0
    # Sessions stay open for the sink's greeting delay; sample until the count has been falling.
    end = t0 + min(args.time_limit_s, args.delay_ms / 1000.0 * 2 + 30)
    while time.time() < end:
        n = established_to(SINK_PORT)
        if n > peak:
            peak, peak_t = n, time.time() - t0
            peak_rss = proc_status_kib(relayd.pid, "VmRSS")
            fds = len(os.listdir("/proc/%d/fd" % relayd.pid))
        if peak > 0 and n < peak / 2 and time.time() - t0 > args.delay_ms / 1000.0:
            break
        if relayd.poll() is not None:
            break
        time.sleep(0.25)
    alive = relayd.poll() is None
    cpu = cpu_seconds(relayd.pid) if alive else 0
    stop(relayd)
    summary = sink_summary(sink)
    errors = [l for l in open(log).read().splitlines() if "rror" in l or "EMFILE" in l]
    per_session = (peak_rss - rss_full) * 1024.0 / peak if peak else 0
    print("concurrency: %d messages to %d sites, sink delay %d ms per reply, %d shards"
          % (args.messages, args.sites, args.delay_ms, args.shards))
    print("  most sessions open at once: %d (after %.1fs; relayd had %d descriptors open)"
          % (peak, peak_t, fds))
    print("  relayd RSS: %.1f MiB with the full queue (delivery off), %.1f MiB at restart, "
          "%.1f MiB at the peak: %.0f bytes per session"
          % (rss_full / 1024.0, rss_start / 1024.0, peak_rss / 1024.0, per_session))
    print("  relayd CPU %.2fs; sink accepted %s messages; relayd exit %s; %d error lines"
          % (cpu, summary.get("messages"), relayd.returncode, len(errors)))
    for l in errors[:5]:
        print("    " + l)
    print(json.dumps({"bench": "delivery_concurrency", "messages": args.messages,
                      "sites": args.sites, "delay_ms": args.delay_ms, "sessions_peak": peak,
                      "rss_full_queue_kib": rss_full, "rss_peak_kib": peak_rss,
                      "rss_per_session_bytes": round(per_session), "relayd_alive": alive}))
    if not alive:
        fail("relayd died during the run")
    if peak < args.expect_min_sessions:
        fail("only %d sessions open at once, expected at least %d"
             % (peak, args.expect_min_sessions))


def drain(shaping, tag):
    relayd, sink, fill_s, _, log = queued_run(shaping, tag)
    # relayd starts delivering as soon as it has recovered the queue: count its whole CPU time
    # (recovery included) and take the rate from the sink's first and last arrival.
    cpu0, t0 = 0.0, time.time()
    # The sink's stats line on SIGUSR1 carries its message count.
    sink_log = "%s/sink-%s.log" % (TMP, re.sub(r"[^a-z0-9]+", "-", tag))

    def delivered():
        sink.send_signal(signal.SIGUSR1)
        time.sleep(0.05)
        counts = re.findall(r"messages=(\d+)", open(sink_log).read())
        return counts and int(counts[-1]) >= args.messages

    done = wait_for(delivered, args.time_limit_s, step=0.2)
    wall = time.time() - t0
    cpu = cpu_seconds(relayd.pid) - cpu0 if relayd.poll() is None else float("nan")
    stop(relayd)
    summary = sink_summary(sink)
    got = summary.get("messages", 0)
    rate = summary.get("arrival_rate_per_s", 0)
    per_k = cpu / max(got, 1) * 1000
    print("  %-34s %6d delivered over %5d connections in %6.2fs: %7.0f messages/s, "
          "relayd CPU %.3fs per 1,000 messages (queue filled in %.1fs)"
          % (tag, got, summary.get("connections", 0), wall, rate, per_k, fill_s), flush=True)
    if not done:
        print(open(log).read()[-2000:])
        fail("%s: only %d of %d messages arrived within %.0fs"
             % (tag, got, args.messages, args.time_limit_s))
    return {"case": tag, "delivered": got, "connections": summary.get("connections", 0),
            "messages_per_s": rate, "cpu_s_per_1000": round(per_k, 4)}


def rate():
    print("rate: %d messages of %s to %d sites from a full queue, %d shards, plain SMTP "
          "(smtp_sink has no TLS)" % (args.messages, args.size, args.sites, args.shards),
          flush=True)
    reuse = drain("", "reuse (100 messages/connection)")
    single = drain("""
[[shaping]]
name = "bench-sites"
mx_suffixes = ["bench.test"]
messages_per_connection_max = 1
""", "no reuse (1 message/connection)")
    if reuse["messages_per_s"] and single["messages_per_s"]:
        print("  reuse / no reuse: %.2fx the rate, %.2fx the CPU per message"
              % (reuse["messages_per_s"] / single["messages_per_s"],
                 reuse["cpu_s_per_1000"] / max(single["cpu_s_per_1000"], 1e-9)))
    print(json.dumps({"bench": "delivery_rate", "messages": args.messages, "size": args.size,
                      "results": [reuse, single]}))


try:
    concurrency() if args.mode == "concurrency" else rate()
finally:
    cleanup()
if args.keep:
    print("logs kept in " + TMP)
else:
    shutil.rmtree(TMP, ignore_errors=True)
