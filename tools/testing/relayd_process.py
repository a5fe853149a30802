"""relayd as the project's end-to-end tests and benchmarks configure and start it: `relayd --init
DIR`, then the config it wrote edited for loopback (init), then `relayd --config PATH` with its
output appended to one log file, ready once it logs a new "relayd ready" line, which names the
port of every listener (port 0 in the config means the kernel chose one).

    import relayd_process
    conf_path, password = relayd_process.init(
        RELAYD, TMP + "/relay", relayd_process.loopback(DNS_PORT, MX_PORT) + [(old, new), ...])
    proc, ready = relayd_process.start(RELAYD, conf_path, log_path)
    port = relayd_process.port(ready, "submission (STARTTLS)")   # or "port 25 (receive)"
"""
import re
import subprocess
import time


def loopback(dns_port, mx_port, shards=2, grace_ms=2000, metrics_port=0):
    """The edits every end-to-end test makes to what `relayd --init` writes: listeners on ports the
    kernel chooses (no implicit-TLS port), `shards` shards, 8 MiB segments, the test's DNS server
    and MX port, a short stop grace, and the metrics endpoint on `metrics_port` (0: any free one,
    so that tests running at once, or a relayd on the machine, do not meet on 9587)."""
    return [('listen = ["127.0.0.1:2587"]', 'listen = ["127.0.0.1:0"]'),
            ('listen_tls = ["127.0.0.1:2465"]', "listen_tls = []"),
            ('listen = "127.0.0.1:9587"', 'listen = "127.0.0.1:%d"' % metrics_port),
            ("shards = 0", "shards = %d" % shards),
            ("segment_bytes = 67108864", "segment_bytes = 8388608"),
            ("dns_servers = []", 'dns_servers = ["127.0.0.1:%d"]' % dns_port),
            ("mx_port = 25", "mx_port = %d" % mx_port),
            ("grace_ms = 10000", "grace_ms = %d" % grace_ms)]


def init(relayd, conf_dir, edits, append="", domain="example.com", hostname="relay.example.com",
         dkim=False):
    """`relayd --init conf_dir`, then each (old, new) of `edits` replaced in the config it wrote and
    `append` added at its end. An `old` that is not in the config raises: the test would otherwise
    run on a default it did not mean. Without `dkim` it passes --no-dkim: tests and benchmarks sign
    with the keys they configure themselves, or not at all. Returns (config path, the password
    --init gave the user)."""
    out = subprocess.run([relayd, "--init", conf_dir, "--domain", domain, "--hostname", hostname]
                         + ([] if dkim else ["--no-dkim"]),
                         capture_output=True, text=True, check=True).stdout
    password = re.search(r"Password:\s+(\S+)", out)
    conf_path = conf_dir + "/relayd.toml"
    conf = open(conf_path).read()
    for old, new in edits:
        if old not in conf:
            raise RuntimeError("relayd --init's config has no %r" % old)
        conf = conf.replace(old, new)
    open(conf_path, "w").write(conf + append)
    return conf_path, password.group(1) if password else None


def _ready_lines(log_path):
    try:
        return [l for l in open(log_path, errors="replace") if "relayd ready: " in l]
    except FileNotFoundError:
        return []


def start(relayd, conf_path, log_path, timeout_s=30):
    """Starts relayd and waits for its ready line (a new one: earlier runs may have written theirs
    to the same log). Returns (process, the ready line), or (process, None) when it exited or was
    not ready within timeout_s."""
    before = len(_ready_lines(log_path))
    p = subprocess.Popen([relayd, "--config", conf_path], stdout=open(log_path, "a"),
                         stderr=subprocess.STDOUT)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        lines = _ready_lines(log_path)
        if len(lines) > before:
            return p, lines[-1]
        if p.poll() is not None:
            break
        time.sleep(0.1)
    return p, None


def rss_bytes(pid):
    """The resident memory of process `pid` (VmRSS from /proc), in bytes."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def port(ready_line, listener):
    """The first port `listener` ("submission (STARTTLS)", "submissions (TLS)", "port 25
    (receive)") is bound to, from the ready line; None when it has none."""
    m = re.search(re.escape(listener) + r" on [^;]*?:(\d+)", ready_line)
    return int(m.group(1)) if m else None
