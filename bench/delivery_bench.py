#!/usr/bin/python3
"""Delivery benchmarks: one relayd delivering to bench/smtp_sink on loopback, MX records from
unbound (Debian), messages submitted by bench/smtp_load (AUTH PLAIN without TLS on loopback).

  concurrency: a slow sink (--delay-ms on every reply, the greeting included) listening on
      SITES addresses 127.0.1.x, one recipient domain per address, and a [[shaping]] rule raising
      connections_max for them, so that relayd opens one outbound session per queued message.
      Prints the most sessions open at once (established TCP connections to the sink's port, from
      /proc/net/tcp), relayd's resident memory per session, and every delivery relayd deferred
      before the end of the run (from its delivery log), with the reasons. With TLS the sink
      offers STARTTLS, relayd's opportunistic TLS takes it, and the memory per session is taken
      once the sink counts most sessions as TLS sessions (the handshake is never delayed, every
      reply is: greeting, EHLO and STARTTLS come first, so that is after 3 delays).
  rate: the queue is filled first with delivery disabled, then relayd restarts with delivery
      enabled and drains it to a fast sink, once with connection reuse (the default rule, up to
      100 messages per connection) and once without (messages_per_connection_max = 1). Prints
      messages/s (first to last arrival at the sink) and relayd's CPU seconds per 1,000 messages.
      With --compare-pipelining, a third drain with reuse but pipeline_transactions = false (the
      next MAIL waits for the previous message's final reply instead of following its ".",
      RFC 2920 §3.1), and the ratios of the default (pipelined) to it. --reply-delay-ms D holds
      every reply batch of the sink back D ms, a round trip's cost, so that round trips show.
      With TLS the sink offers STARTTLS and every delivery uses it (relayd resumes TLS sessions
      per destination host).

  --tls off|on|both: plain SMTP to the sink, STARTTLS, or both in one run with TLS / plain
      ratios (the same queue size, sites and sink for each).

usage:
  delivery_bench.py RELAYD SMTP_SINK SMTP_LOAD concurrency [--messages N] [--sites S]
      [--delay-ms D] [--time-limit-s T] [--expect-min-sessions M] [--tls off|on|both]
  delivery_bench.py RELAYD SMTP_SINK SMTP_LOAD rate [--messages N] [--sites S]
      [--time-limit-s T] [--tls off|on|both] [--compare-pipelining] [--reply-delay-ms D]
Bounded: every run stops after --time-limit-s and everything it started is stopped.
"""
import argparse
import calendar
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
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import relayd_process  # noqa: E402

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
parser.add_argument("--compare-pipelining", action="store_true",
                    help="rate: also drain with pipeline_transactions = false")
parser.add_argument("--reply-delay-ms", type=int, default=0,
                    help="rate: the sink holds every reply batch back this long (a round trip)")
parser.add_argument("--expect-min-sessions", type=int, default=0,
                    help="exit 1 when fewer sessions were open at once (smoke test)")
parser.add_argument("--tls", choices=["off", "on", "both"], default="off",
                    help="the sink offers STARTTLS (on), or run plain and TLS (both)")
parser.add_argument("--sink-threads", type=int, default=2)
parser.add_argument("--family", default="",
                    help='relayd\'s [delivery] family ("ipv4-only": no AAAA lookups; the test zone '
                    'has A records only); default: what relayd --init writes')
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


def established_to(port, pid):
    """Established TCP connections of process `pid` whose remote port is `port` (relayd's side of
    each session): its socket descriptors matched by inode against /proc/net/tcp, so that other
    processes' connections to the same port number are not counted."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    # A set: /proc/net/tcp read while connections come and go can list a socket twice.
    seen = set()
    hexport = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[2].endswith(hexport) and parts[3] == "01" and parts[9] in inodes:
                    seen.add(parts[9])
    return len(seen)


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
# Two threads: with one, a loaded machine leaves thousands of connections in the accept queue.
sink_args = [args.smtp_sink, "--listen-range", "%s-%s:%d" % (SITE_IPS[0], SITE_IPS[-1], SINK_PORT),
             "--threads", str(args.sink_threads), "--stats-interval-s", "0",
             "--port-file", TMP + "/sink.port", "--json-file", TMP + "/sink.json"]
if args.mode == "concurrency":
    sink_args += ["--delay-ms", str(args.delay_ms)]
elif args.reply_delay_ms > 0:
    sink_args += ["--delay-ms", str(args.reply_delay_ms)]
TLS_RUNS = {"off": [False], "on": [True], "both": [False, True]}[args.tls]

# --- relayd ------------------------------------------------------------------------------------
conf_dir = TMP + "/relay"
conf_path, PASSWORD = relayd_process.init(args.relayd, conf_dir, {
    "submission": {"listen": ["127.0.0.1:0"], "listen_tls": [], "auth_requires_tls": False},
    "shards": args.shards,
    "queue": {"fsync": False},
    "delivery": {"dns_servers": ["127.0.0.1:%d" % DNS_PORT],
                 "family": args.family if args.family else "ipv4-first",
                 "mx_port": SINK_PORT},
    "control_socket": SOCK_DIR + "/control.sock",
    # The delivery log is kept in concurrency mode only, to count deferrals.
    "log": {"dir": "log" if args.mode == "concurrency" else ""}})
base_conf = open(conf_path).read()


def write_conf(enabled, shaping):
    open(conf_path, "w").write(base_conf)
    relayd_process.configure(conf_path, {"delivery": {"enabled": enabled}}, append=shaping)


def slug(tag):
    return re.sub(r"[^a-z0-9]+", "-", tag.lower())


def start_relayd(tag):
    log = "%s/relayd-%s.log" % (TMP, slug(tag))
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


def queued_run(shaping, tag, tls):
    """Fills the queue with delivery disabled, then restarts relayd with delivery enabled and the
    sink up; returns (relayd, sink, fill seconds, RSS KiB with the full queue and no sessions)."""
    shutil.rmtree(conf_dir + "/spool", ignore_errors=True)  # each run starts from an empty queue
    shutil.rmtree(conf_dir + "/log", ignore_errors=True)
    write_conf(False, shaping)
    relayd, port, _ = start_relayd(tag + "-fill")
    fill_s = fill_queue(port, args.messages)
    rss_full_kib = proc_status_kib(relayd.pid, "VmRSS")
    stop(relayd)
    if relayd.returncode != 0:
        fail("relayd (queue only) exited with %d" % relayd.returncode)
    sink = spawn(sink_args + (["--starttls"] if tls else []),
                 "%s/sink-%s.log" % (TMP, slug(tag)))
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


def sink_stats(sink, log):
    """The sink's running counters from the stats line SIGUSR1 makes it print."""
    sink.send_signal(signal.SIGUSR1)
    time.sleep(0.05)
    lines = [l for l in open(log).read().splitlines() if l.startswith("sink: t=")]
    return dict(re.findall(r"(\w+)=(\d+)", lines[-1])) if lines else {}


def deferrals(before_unix_s):
    """Deferred and bounced deliveries in relayd's delivery log before `before_unix_s`, by reason:
    any of them means a session the run wanted was not held."""
    reasons, n = {}, 0
    for path in sorted(os.listdir(conf_dir + "/log")) if os.path.isdir(conf_dir + "/log") else []:
        for line in open(os.path.join(conf_dir, "log", path)):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") not in ("deferred", "bounced"):
                continue
            ts = calendar.timegm(time.strptime(e["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
            if ts >= before_unix_s:
                continue
            n += 1
            r = e.get("reply")
            why = ("%s %s %s" % (r.get("code", ""), r.get("enhanced", ""), r.get("text", ""))
                   if isinstance(r, dict) else e["event"])[:100]
            reasons[why] = reasons.get(why, 0) + 1
    return n, reasons


def concurrency_run(tls):
    label = "TLS" if tls else "plain"
    # One connection per message: the limit is above any site's share on any shard (a site gets
    # about messages/sites messages, but the generator picks domains at random, so some get more).
    shaping = """
[[shaping]]
name = "bench-sites"
mx_suffixes = ["bench.test"]
connections_max = 10000
greeting_timeout_ms = %d
command_timeout_ms = %d
tls_handshake_timeout_ms = %d
""" % ((args.delay_ms * 4 + 60000,) * 3)
    relayd, sink, fill_s, rss_full, log = queued_run(shaping, "concurrency " + label, tls)
    sink_log = "%s/sink-%s.log" % (TMP, slug("concurrency " + label))
    print("queue filled: %d messages in %.1fs; relayd RSS with the full queue %.1f MiB"
          % (args.messages, fill_s, rss_full / 1024.0), flush=True)
    t0 = time.time()
    rss_start = proc_status_kib(relayd.pid, "VmRSS")
    peak, peak_rss, peak_t, fds = 0, 0, 0.0, 0
    tls_n, tls_rss, tls_t, last_stats = 0, 0, 0.0, 0.0
    # Sessions stay open for the sink's reply delays; sample until the count has been falling, or
    # with TLS until most sessions have finished their handshake.
    end = t0 + min(args.time_limit_s, args.delay_ms / 1000.0 * (4 if tls else 2) + 30)
    while time.time() < end:
        n = established_to(SINK_PORT, relayd.pid)
        if n > peak:
            peak, peak_t = n, time.time() - t0
            peak_rss = proc_status_kib(relayd.pid, "VmRSS")
            fds = len(os.listdir("/proc/%d/fd" % relayd.pid))
        if tls and time.time() - last_stats > 1:
            last_stats = time.time()
            t = int(sink_stats(sink, sink_log).get("tls_sessions", 0))
            if t > tls_n:
                tls_n, tls_t = t, time.time() - t0
                tls_rss = proc_status_kib(relayd.pid, "VmRSS")
            if peak > 0 and tls_n >= 0.95 * peak:
                break
        if not tls and peak > 0 and n < peak / 2 and time.time() - t0 > args.delay_ms / 1000.0:
            break
        if relayd.poll() is not None:
            break
        time.sleep(0.25)
    stop_at = time.time()
    alive = relayd.poll() is None
    cpu = cpu_seconds(relayd.pid) if alive else 0
    t_stop = time.time()
    stop(relayd)
    stop_s = time.time() - t_stop
    summary = sink_summary(sink)
    deferred, reasons = deferrals(stop_at)
    if os.path.isdir(conf_dir + "/log"):  # kept with --keep; the next run starts a new log
        os.rename(conf_dir + "/log", "%s/delivery-log-%s" % (TMP, slug(label)))
    errors = [l for l in open(log).read().splitlines() if "rror" in l or "EMFILE" in l]
    per_session = (peak_rss - rss_full) * 1024.0 / peak if peak else 0
    per_tls_session = (tls_rss - rss_full) * 1024.0 / tls_n if tls_n else 0
    print("concurrency (%s): %d messages to %d sites, sink delay %d ms per reply, %d shards"
          % (label, args.messages, args.sites, args.delay_ms, args.shards))
    print("  most sessions open at once: %d (after %.1fs; relayd had %d descriptors open)"
          % (peak, peak_t, fds))
    print("  relayd RSS: %.1f MiB with the full queue (delivery off), %.1f MiB at restart, "
          "%.1f MiB at the peak: %.0f bytes per session"
          % (rss_full / 1024.0, rss_start / 1024.0, peak_rss / 1024.0, per_session))
    if tls:
        print("  TLS sessions at the sink: %d (after %.1fs); relayd RSS then %.1f MiB: %.0f bytes "
              "per TLS session" % (tls_n, tls_t, tls_rss / 1024.0, per_tls_session))
    print("  deliveries deferred or bounced during the run: %d%s"
          % (deferred, "".join("\n    %d x %s" % (v, k) for k, v in
                               sorted(reasons.items(), key=lambda x: -x[1])[:5])))
    print("  relayd CPU %.2fs; sink accepted %s messages over %s connections; relayd took %.1fs "
          "to stop after SIGTERM (exit %s); %d error lines"
          % (cpu, summary.get("messages"), summary.get("connections"), stop_s,
             relayd.returncode, len(errors)))
    for l in errors[:5]:
        print("    " + l)
    result = {"bench": "delivery_concurrency", "tls": tls, "messages": args.messages,
              "sites": args.sites, "delay_ms": args.delay_ms, "sessions_peak": peak,
              "rss_full_queue_kib": rss_full, "rss_peak_kib": peak_rss,
              "rss_per_session_bytes": round(per_session), "tls_sessions": tls_n,
              "rss_per_tls_session_bytes": round(per_tls_session), "deferred": deferred,
              "stop_s": round(stop_s, 1), "relayd_alive": alive}
    print(json.dumps(result), flush=True)
    if not alive:
        fail("relayd died during the run")
    if peak < args.expect_min_sessions:
        fail("only %d sessions open at once, expected at least %d"
             % (peak, args.expect_min_sessions))
    if tls and tls_n < 0.9 * peak:
        fail("only %d of %d sessions reached TLS" % (tls_n, peak))
    return result


def concurrency():
    results = [concurrency_run(tls) for tls in TLS_RUNS]
    if len(results) == 2 and results[0]["rss_per_session_bytes"]:
        print("  TLS / plain: %.2fx the memory per session"
              % (results[1]["rss_per_tls_session_bytes"] / results[0]["rss_per_session_bytes"]))


def drain(shaping, tag, tls):
    relayd, sink, fill_s, _, log = queued_run(shaping, tag, tls)
    # relayd starts delivering as soon as it has recovered the queue: count its whole CPU time
    # (recovery included) and take the rate from the sink's first and last arrival.
    cpu0, t0 = 0.0, time.time()
    # The sink's stats line on SIGUSR1 carries its message count.
    sink_log = "%s/sink-%s.log" % (TMP, slug(tag))

    def delivered():
        return int(sink_stats(sink, sink_log).get("messages", 0)) >= args.messages

    done = wait_for(delivered, args.time_limit_s, step=0.2)
    wall = time.time() - t0
    cpu = cpu_seconds(relayd.pid) - cpu0 if relayd.poll() is None else float("nan")
    stop(relayd)
    summary = sink_summary(sink)
    got = summary.get("messages", 0)
    rate = summary.get("arrival_rate_per_s", 0)
    per_k = cpu / max(got, 1) * 1000
    print("  %-40s %6d delivered over %5d connections (%5d TLS, %5d resumed) in %6.2fs: %7.0f "
          "messages/s, relayd CPU %.3fs per 1,000 messages (queue filled in %.1fs)"
          % (tag, got, summary.get("connections", 0), summary.get("tls_sessions", 0),
             summary.get("tls_resumed", 0), wall, rate, per_k, fill_s), flush=True)
    if not done:
        print(open(log).read()[-2000:])
        fail("%s: only %d of %d messages arrived within %.0fs"
             % (tag, got, args.messages, args.time_limit_s))
    if tls and summary.get("tls_sessions", 0) < summary.get("connections", 0):
        fail("%s: %d of %d connections used TLS" % (tag, summary.get("tls_sessions", 0),
                                                     summary.get("connections", 0)))
    return {"case": tag, "tls": tls, "delivered": got,
            "connections": summary.get("connections", 0),
            "tls_sessions": summary.get("tls_sessions", 0),
            "messages_per_s": rate, "cpu_s_per_1000": round(per_k, 4)}


def rate():
    print("rate: %d messages of %s to %d sites from a full queue, %d shards, sink reply delay %d ms"
          % (args.messages, args.size, args.sites, args.shards, args.reply_delay_ms), flush=True)
    results = {}
    for tls in TLS_RUNS:
        label = "TLS" if tls else "plain"
        results[(tls, True)] = drain("", "%s, reuse (100 messages/connection)" % label, tls)
        results[(tls, False)] = drain("""
[[shaping]]
name = "bench-sites"
mx_suffixes = ["bench.test"]
messages_per_connection_max = 1
""", "%s, no reuse (1 message/connection)" % label, tls)
        reuse, single = results[(tls, True)], results[(tls, False)]
        if reuse["messages_per_s"] and single["messages_per_s"]:
            print("  %s: reuse / no reuse: %.2fx the rate, %.2fx the CPU per message"
                  % (label, reuse["messages_per_s"] / single["messages_per_s"],
                     reuse["cpu_s_per_1000"] / max(single["cpu_s_per_1000"], 1e-9)))
        if args.compare_pipelining:
            results[(tls, "unpipelined")] = unpipelined = drain("""
[[shaping]]
name = "bench-sites"
mx_suffixes = ["bench.test"]
pipeline_transactions = false
""", "%s, reuse, not pipelined" % label, tls)
            if reuse["messages_per_s"] and unpipelined["messages_per_s"]:
                print("  %s: pipelined / not pipelined (both with reuse): %.2fx the rate, %.2fx "
                      "the CPU per message"
                      % (label, reuse["messages_per_s"] / unpipelined["messages_per_s"],
                         reuse["cpu_s_per_1000"] / max(unpipelined["cpu_s_per_1000"], 1e-9)))
    if len(TLS_RUNS) == 2:
        for reuse in (True, False):
            p, t = results[(False, reuse)], results[(True, reuse)]
            if p["messages_per_s"] and t["messages_per_s"]:
                print("  TLS / plain, %s: %.2fx the rate, %.2fx the CPU per message"
                      % ("reuse" if reuse else "no reuse",
                         t["messages_per_s"] / p["messages_per_s"],
                         t["cpu_s_per_1000"] / max(p["cpu_s_per_1000"], 1e-9)))
    print(json.dumps({"bench": "delivery_rate", "messages": args.messages, "size": args.size,
                      "results": list(results.values())}))


try:
    concurrency() if args.mode == "concurrency" else rate()
finally:
    cleanup()
if args.keep:
    print("logs kept in " + TMP)
else:
    shutil.rmtree(TMP, ignore_errors=True)
