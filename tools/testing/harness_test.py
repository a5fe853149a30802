#!/usr/bin/python3
"""tools/testing/harness.py stops what a test started however the test ends: at a normal finish
(with the summary line and exit status of checks.finish), on an uncaught exception and on
SIGTERM; newest first; a stop that fails does not keep the others from running."""
import os
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, finish  # noqa: E402

TMP = tempfile.mkdtemp(prefix="harness-", dir=os.environ.get("TEST_TMPDIR"))

CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    sys.path.insert(0, %(here)r)
    import harness
    from harness import check
    sleeper = harness.stop_at_exit(subprocess.Popen(["sleep", "300"]))
    open(%(pidfile)r, "w").write(str(sleeper.pid))

    class Stopped:
        def stop(self):
            raise AssertionError("SMTP daemon not running")  # aiosmtpd's, once stopped

    harness.stop_at_exit(Stopped())
    order = []
    harness.at_exit("first", lambda: open(%(log)r, "a").write("first\\n"))
    harness.at_exit("broken", lambda: 1 / 0)
    harness.at_exit("last", lambda: open(%(log)r, "a").write("last\\n"))
    how = sys.argv[1]
    if how == "exception":
        raise RuntimeError("the test broke")
    if how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    check(how == "pass", "the check")
    harness.finish()
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent is gone is reaped by init soon: wait for it to go.
    return True


def run(how):
    pidfile, log = "%s/%s.pid" % (TMP, how), "%s/%s.log" % (TMP, how)
    script = "%s/child.py" % TMP
    open(script, "w").write(CHILD % {"here": HERE, "pidfile": pidfile, "log": log})
    t0 = time.time()
    r = subprocess.run([sys.executable, script, how], capture_output=True, text=True, timeout=60)
    pid = int(open(pidfile).read())
    for _ in range(100):
        if not alive(pid):
            break
        time.sleep(0.05)
    stops = open(log).read() if os.path.exists(log) else ""
    return r, alive(pid), stops, time.time() - t0


for how, code in (("pass", 0), ("fail", 1), ("exception", 1), ("sigterm", 1)):
    r, sleeper_alive, stops, took = run(how)
    check(r.returncode == code, "%s: exit status %d (%d): %s" % (how, code, r.returncode,
                                                                 r.stderr.strip()[-200:]))
    check(not sleeper_alive, "%s: the started process is stopped" % how)
    check(stops == "last\nfirst\n", "%s: every stop ran, newest first (%r)" % (how, stops))
    check(took < 20, "%s: nothing waited for the sleeper (%.1f s)" % (how, took))
    if how in ("pass", "fail"):
        check(("1 checks, %d failed" % code) in r.stdout, "%s: the summary line (%r)"
              % (how, r.stdout.strip()[-80:]))
    check("stopping broken" in r.stderr, "%s: the failing stop is named" % how)
finish()
