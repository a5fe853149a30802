"""relayd as the project's end-to-end tests start it: `relayd --config PATH`, its output appended
to one log file, ready once it logs a new "relayd ready" line, which names the port of every
listener (port 0 in the config means the kernel chose one).

    import relayd_process
    proc, ready = relayd_process.start(RELAYD, conf_path, log_path)
    port = relayd_process.port(ready, "submission (STARTTLS)")   # or "port 25 (receive)"
"""
import re
import subprocess
import time


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


def port(ready_line, listener):
    """The first port `listener` ("submission (STARTTLS)", "submissions (TLS)", "port 25
    (receive)") is bound to, from the ready line; None when it has none."""
    m = re.search(re.escape(listener) + r" on [^;]*?:(\d+)", ready_line)
    return int(m.group(1)) if m else None
