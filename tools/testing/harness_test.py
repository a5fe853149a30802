#!/usr/bin/python3
"""tools/testing/harness.py stops what a test started however the test ends: at a normal finish
(with the summary line and exit status of checks.finish), on an uncaught exception and on
SIGTERM; newest first; a stop that fails does not keep the others from running.

Its case runner: every case in number order with a header each, a failed check or a raise in one
case not keeping the next from running (the raise counted as a failure, its traceback printed),
a skip not a failure; cases chosen with --case or E2E_CASES; fixtures started only by the cases
that need them, once, and stopped at exit (also on SIGTERM); a fixture that failed not tried
again."""
import os
import re
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
    import os, signal, subprocess, sys, threading, time
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

# --- the case runner ---------------------------------------------------------------------------
CASES = textwrap.dedent("""
    import os, signal, subprocess, sys, threading, time
    sys.path.insert(0, %(here)r)
    import harness
    from harness import check

    LOG = harness.args()[0]
    SCRATCH = harness.scratch("scratch-", dir=os.path.dirname(LOG))


    def log(line):
        with open(LOG, "a") as f:
            f.write(line + "\\n")


    class Peer:
        def __enter__(self):
            log("peer entered")
            return self

        def __exit__(self, *exc):
            log("peer exited")


    @harness.fixture
    def sleeper():
        log("sleeper started")
        p = subprocess.Popen(["sleep", "300"])
        open(LOG + ".pid", "w").write(str(p.pid))
        try:
            yield p
        finally:
            p.terminate()
            p.wait()
            log("sleeper stopped")


    @harness.fixture
    def slow():
        time.sleep(0.3)
        log("slow made")
        return 1


    @harness.fixture
    def with_threads():
        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        return all(not t.is_alive() for t in threads)


    @harness.fixture
    def broken():
        log("broken tried")
        raise RuntimeError("the peer did not start")


    @harness.case(1, "passes with the sleeper")
    def one():
        check(sleeper().poll() is None, "the sleeper runs")
        harness.enter(Peer())
        threads = [threading.Thread(target=slow) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not with_threads():
            log("with_threads waited for itself")


    @harness.case(2, "fails a check")
    def two():
        check(False, "a check that fails")
        check(True, "a check after it still runs")


    @harness.case(3, "raises")
    def three():
        sleeper()
        raise ZeroDivisionError("the case broke")


    @harness.case(4, "skips")
    def four():
        harness.skip("no such feature here")


    @harness.case(5, "needs the sleeper again, after the raise")
    def five():
        check(sleeper().poll() is None, "the same sleeper still runs")


    @harness.case(6, "needs a fixture that fails")
    def six():
        broken()


    @harness.case(7, "needs it too")
    def seven():
        broken()


    if "sigterm" in harness.args():
        @harness.case(8, "is ended by SIGTERM")
        def eight():
            sleeper()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)

    log("args " + " ".join(harness.args()[1:]))
    log("scratch " + SCRATCH)
    harness.main()
""")


def run_cases(*argv, env_cases=None):
    """Runs the case script with `argv`; returns (completed process, its log, the sleeper's pid or
    None when it never started)."""
    log = "%s/cases-%d.log" % (TMP, time.monotonic_ns())
    script = "%s/cases.py" % TMP
    open(script, "w").write(CASES % {"here": HERE})
    env = dict(os.environ)
    env.pop("E2E_CASES", None)
    if env_cases is not None:
        env["E2E_CASES"] = env_cases
    r = subprocess.run([sys.executable, script, log] + list(argv), capture_output=True,
                       text=True, timeout=60, env=env)
    pid = int(open(log + ".pid").read()) if os.path.exists(log + ".pid") else None
    for _ in range(100):
        if pid is None or not alive(pid):
            break
        time.sleep(0.05)
    return r, open(log).read() if os.path.exists(log) else "", pid


def headers(out):
    return [int(n) for n in re.findall(r"(?m)^== case (\d+): ", out)]


t0 = time.time()
r, log, pid = run_cases("positional", "--flag")
took = time.time() - t0
out = r.stdout
check(r.returncode == 1, "all cases: exit 1 when one failed (%d): %s" % (r.returncode,
                                                                         r.stderr[-200:]))
check(headers(out) == [1, 2, 3, 4, 5, 6, 7], "all cases: in number order, a header each: %s"
      % headers(out))
check("== case 1: passes with the sleeper\n" in out, "the header names the case")
check("Traceback (most recent call last)" in out and "ZeroDivisionError: the case broke" in out,
      "a case that raises: its traceback is printed")
check("FAIL case 3 raised ZeroDivisionError: the case broke" in out,
      "... and it counts as a failed check")
check("ok   a check after it still runs" in out and "ok   the same sleeper still runs" in out,
      "a failed check or a raise does not keep the rest from running")
check("SKIP case 4: no such feature here" in out and "FAIL case 4" not in out,
      "a skip is printed, not counted as a failure")
check("7 checks, 4 failed" in out.splitlines()[-1],
      "the summary line comes last: %r" % out.strip().splitlines()[-1:])
check(log.count("sleeper started") == 1 and log.count("broken tried") == 1,
      "a fixture runs once, however many cases need it, also when it failed: %r" % log)
check(log.count("slow made") == 1, "a fixture runs once when threads need it at the same time")
check("waited for itself" not in log and took < 15,
      "threads started while a fixture is made can make other fixtures (%.1f s)" % took)
check("fixture broken failed earlier: RuntimeError: the peer did not start" in out,
      "the next case that needs a failed fixture is told so")
check(pid is not None and not alive(pid) and log.endswith("peer exited\nsleeper stopped\n"),
      "the fixtures' and harness.enter's peers stop at exit, after the last case, newest first")
scratch = re.search(r"(?m)^scratch (.*)$", log).group(1)
check(os.path.isdir(scratch), "harness.scratch: the directory is kept when a check failed")
check("args positional --flag\n" in log, "harness.args(): the command line less --case")

r, log, pid = run_cases("--case", "4")
check(r.returncode == 0 and headers(r.stdout) == [4] and "0 checks, 0 failed" in r.stdout,
      "--case 4: that case alone (%d, %s)" % (r.returncode, headers(r.stdout)))
check(pid is None and "sleeper started" not in log, "... and no fixture it does not need")
scratch = re.search(r"(?m)^scratch (.*)$", log).group(1)
check(not os.path.exists(scratch), "harness.scratch: the directory is removed when none failed")

r, log, pid = run_cases("--case", "5", "--case=2")
check(headers(r.stdout) == [2, 5] and r.returncode == 1 and "3 checks, 1 failed" in r.stdout,
      "--case 5 --case=2: both, in number order (%s)" % headers(r.stdout))
check(pid is not None and not alive(pid), "... and the sleeper stopped")

r, log, pid = run_cases(env_cases="1,3-4")
check(headers(r.stdout) == [1, 3, 4] and r.returncode == 1,
      "E2E_CASES=1,3-4: those cases (%s)" % headers(r.stdout))
r, log, pid = run_cases("--case", "1", env_cases="2")
check(headers(r.stdout) == [1] and r.returncode == 0 and "1 checks, 0 failed" in r.stdout,
      "--case wins over E2E_CASES (%s)" % headers(r.stdout))

r, log, pid = run_cases("--case", "9")
check(r.returncode == 2 and "no case 9" in r.stderr and not headers(r.stdout),
      "--case 9, which no case has: exit 2 and why (%d, %r)" % (r.returncode, r.stderr))
r, log, pid = run_cases("--case", "x")
check(r.returncode == 2 and "not a case number" in r.stderr, "--case x: exit 2 and why")
r, log, pid = run_cases("--list")
check(r.returncode == 0 and len(re.findall(r"(?m)^ +\d+  ", r.stdout)) == 7 and
      "  5  needs the sleeper again, after the raise" in r.stdout, "--list names the cases")

r, log, pid = run_cases("sigterm", "--case", "8")
check(r.returncode == 1 and pid is not None and not alive(pid) and "sleeper stopped" in log,
      "SIGTERM during a case: the fixture's peer is stopped (%d)" % r.returncode)
finish()
