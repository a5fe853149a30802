"""relayd as the project's end-to-end tests and benchmarks configure and start it: `relayd --init
DIR`, then the configuration it wrote changed as data (settings: nested dicts of the TOML tables,
merged over what --init wrote), then `relayd --config PATH` with its output appended to one log
file, ready once it logs a new "relayd ready" line, which names the port of every listener (port 0
in the config means the kernel chose one).

    import relayd_process
    conf_path, password = relayd_process.init(
        RELAYD, TMP + "/relay", relayd_process.merged(
            relayd_process.loopback(DNS_PORT, MX_PORT), {"retry": {"intervals_s": [1, 1, 3600]}}))
    proc, ready = relayd_process.start(RELAYD, conf_path, log_path)
    port = relayd_process.port(ready, "submission (STARTTLS)")   # or "port 25 (receive)"

or, as a context manager that stops it (SIGTERM, then SIGKILL) however the block ends:

    with relayd_process.Relayd(RELAYD, conf_path, log_path) as relay:
        relay.port("port 25 (receive)"), relay.restart(), relay.stop() == 0
"""
import glob
import json
import re
import signal
import subprocess
import time
import tomllib


def loopback(dns_port, mx_port, shards=2, grace_ms=2000, metrics_port=0):
    """The settings every end-to-end test changes in what `relayd --init` writes: listeners on
    ports the kernel chooses (no implicit-TLS port), `shards` shards, 8 MiB segments, the test's
    DNS server and MX port, a short stop grace, and the metrics endpoint on `metrics_port` (0: any
    free one, so that tests running at once, or a relayd on the machine, do not meet on 9587)."""
    return {"shards": shards,
            "submission": {"listen": ["127.0.0.1:0"], "listen_tls": []},
            "metrics": {"listen": "127.0.0.1:%d" % metrics_port},
            "queue": {"segment_bytes": 8 << 20},
            "delivery": {"dns_servers": ["127.0.0.1:%d" % dns_port], "mx_port": mx_port},
            "shutdown": {"grace_ms": grace_ms}}


def merged(*settings):
    """The settings merged left to right: tables merge key by key, anything else is replaced."""
    out = {}
    for s in settings:
        for key, value in s.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = value
    return out


def _key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join("%s = %s" % (_key(k), _value(x)) for k, x in v.items()) + " }"
    raise TypeError("no TOML for %r" % (v,))


def _tables_list(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def to_toml(table, path=""):
    """`table` (what tomllib reads) as TOML text: plain keys, then sub-tables, then arrays of
    tables."""
    lines = []
    for k, v in table.items():
        if not isinstance(v, dict) and not _tables_list(v):
            lines.append("%s = %s" % (_key(k), _value(v)))
    for k, v in table.items():
        name = (path + "." if path else "") + _key(k)
        if isinstance(v, dict):
            lines.append("\n[%s]" % name)
            lines.append(to_toml(v, name))
        elif _tables_list(v):
            for item in v:
                lines.append("\n[[%s]]" % name)
                lines.append(to_toml(item, name))
    return "\n".join(l for l in lines if l != "")


def configure(conf_path, settings, append=""):
    """Merges `settings` into the configuration at conf_path and writes it back (without its
    comments), `append` (TOML text) added at its end. A misspelt key needs no check here: relayd
    refuses to start on a key it does not know, naming it."""
    with open(conf_path, "rb") as f:
        conf = tomllib.load(f)
    open(conf_path, "w").write(to_toml(merged(conf, settings)) + "\n" + append)


def init(relayd, conf_dir, settings, append="", domain="example.com",
         hostname="relay.example.com", dkim=False):
    """`relayd --init conf_dir`, then `settings` merged into the config it wrote (configure) and
    `append` added at its end. Without `dkim` it passes --no-dkim: tests and benchmarks sign with
    the keys they configure themselves, or not at all. Returns (config path, the password --init
    gave the user)."""
    out = subprocess.run([relayd, "--init", conf_dir, "--domain", domain, "--hostname", hostname]
                         + ([] if dkim else ["--no-dkim"]),
                         capture_output=True, text=True, check=True).stdout
    password = re.search(r"Password:\s+(\S+)", out)
    conf_path = conf_dir + "/relayd.toml"
    configure(conf_path, settings, append)
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


def delivery_events(conf_dir):
    """Every line of the delivery logs of the relayd configured in conf_dir (its log/ directory,
    one file per shard), parsed; a line cut short by a write in progress is left out."""
    out = []
    for path in sorted(glob.glob(conf_dir + "/log/delivery-*.log")):
        for line in open(path, encoding="utf-8"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def rss_bytes(pid):
    """The resident memory of process `pid` (VmRSS from /proc), in bytes."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def port(ready_line, listener):
    """The first port `listener` ("submission (STARTTLS)", "submissions (TLS)", "port 25
    (receive)") is bound to, from the ready line; None when it has none."""
    m = re.search(re.escape(listener) + r" on [^;]*?:(\d+)", ready_line)
    return int(m.group(1)) if m else None


class Relayd:
    """relayd started from `conf_path`, its output appended to `log_path`; a context manager whose
    exit stops it. start() raises RuntimeError, with the end of the log, when relayd exits or is
    not ready within timeout_s (the process is stopped then)."""

    def __init__(self, relayd, conf_path, log_path, timeout_s=30):
        self.relayd, self.conf_path, self.log_path = relayd, conf_path, log_path
        self.timeout_s = timeout_s
        self.proc = None  # the running (or last) relayd process
        self.ready = None  # its "relayd ready" line

    def start(self):
        self.proc, self.ready = start(self.relayd, self.conf_path, self.log_path, self.timeout_s)
        if self.ready is None:
            self.stop(timeout_s=5)
            raise RuntimeError("relayd did not start (exit %s); the end of %s:\n%s"
                               % (self.proc.returncode, self.log_path, self.log()[-3000:]))
        return self

    def stop(self, timeout_s=30):
        """SIGTERM, then SIGKILL when relayd has not exited within timeout_s; returns its exit
        status (negative: the signal that ended it). A relayd that has exited is left be."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart(self):
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def signal(self, signum):
        self.proc.send_signal(signum)

    def port(self, listener="submission (STARTTLS)"):
        """The port of `listener` in the ready line of the current start (see port())."""
        return port(self.ready, listener)

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self if self.running() else self.start()

    def __exit__(self, *exc):
        self.stop()
