"""What every end-to-end test script shares: the pass/fail lines (check, finish, from checks.py),
the peers it starts (relayd, unbound, aiosmtpd sinks, smtp-sink, tmux), stopped whatever
happens: at the end, on an exception, on sys.exit, and on SIGTERM (Bazel's timeout), newest
first, one failing stop not keeping the others from running; and the numbered cases a script is
made of, run by main().

    import harness
    from harness import check

    @harness.fixture
    def relay():                        # started by the first case that calls relay() ...
        with relayd_process.Relayd(RELAYD, conf_path(), TMP + "/relayd.log") as r:
            yield r                     # ... shared by the cases after it, stopped at exit

    @harness.case(3, "a message pipelined with 1.5 MiB of commands is queued")
    def pipelined():
        check(send_pipelined(relay().port()) == 250, "the message is queued")

    harness.main()   # "== case 3: ..." before each case, then "N checks, M failed"; exit 1 if any

Which cases run: all of them, in number order; or those named by `--case 3`, `--case 3,7`,
`--case 2-4` (repeatable) on the command line, or E2E_CASES=3,7 in the environment when the
command line names none. `--list` prints the cases. A number no case has is an error (exit 2),
not a silent pass. The script's own arguments are harness.args(): the command line without these.

Why a decorator that takes the number, rather than a naming convention (case_03_pipelined): the
number and the sentence that says what the case shows are data beside the code, printed as its
header; the function's name stays free; a number used twice is refused when the script loads;
and nothing has to parse names.

A case must pass when it runs alone: what it needs comes from fixtures, never from an earlier
case. Cases that run together share a fixture (one relayd, say) where they do not interfere; a
case that changes what it shares (a restart, the aliases) uses a peer of its own or leaves the
shared one as it found it. A case that raises fails: its traceback is printed, one failed check
is counted ("case 3 raised ..."), and the next case runs. harness.skip(reason) ends a case as
skipped, e.g. for a missing kernel feature ("SKIP case 3: reason"); it is not a failure.

Fixtures: @harness.fixture makes a function without arguments lazy and shared: the first call
runs it and keeps what it returned, later calls get the same value. A generator function gives
the value it yields, and its code after the yield runs at exit, so a `with` around the yield
stops a context-manager peer. A fixture that raised is not tried again: every later call raises
(a peer that did not start fails each case that needs it, quickly). Threads may call fixtures:
the first makes it, the others wait for it.

Peers started outside fixtures:

    unbound = harness.stop_at_exit(local_dns.start_unbound(...)[0])      # a subprocess.Popen
    sink = harness.stop_at_exit(Controller(...), "stop")                 # anything with .stop()
    relay = harness.enter(relayd_process.Relayd(...))                    # a context manager
    harness.at_exit("tmux", lambda: subprocess.run(TMUX + ["kill-server"]))
    TMP = harness.scratch("e2e-")   # removed at exit unless a check failed
    harness.on_failure(lambda: print(relay.log()[-5000:]))   # before the summary, if any failed
"""
import atexit
import functools
import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import checks
from checks import check, failures  # noqa: F401  (re-exported)

_stops = []  # (name, callable), in the order registered
_on_failure = []  # callables, run by finish() when a check failed
_cases = {}  # number: (title, function)


def at_exit(name, stop):
    """Runs `stop()` when the script ends, however it ends."""
    _stops.append((name, stop))


def stop_process(p, timeout_s=30):
    """SIGTERM, then SIGKILL if `p` has not exited within timeout_s."""
    if p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def stop_at_exit(peer, method=None, name=None):
    """Registers `peer` to be stopped at exit and returns it: a subprocess.Popen is terminated
    (then killed) unless it has exited; anything else has `method` ("stop" by default) called,
    and a peer the script has stopped already (aiosmtpd's Controller then raises) is left be."""
    if isinstance(peer, subprocess.Popen):
        at_exit(name or " ".join(map(str, peer.args[:1])), lambda: stop_process(peer))
        return peer
    stop = getattr(peer, method or "stop")

    def stop_once():
        try:
            stop()
        except (AssertionError, RuntimeError):
            pass  # stopped already

    at_exit(name or type(peer).__name__, stop_once)
    return peer


def enter(context, name=None):
    """Enters the context manager `context` and returns what it gives; its exit runs at exit."""
    value = context.__enter__()
    at_exit(name or type(context).__name__, lambda: context.__exit__(None, None, None))
    return value


def scratch(prefix, dir=None, keep_on_failure=True):
    """A new temporary directory (in $TEST_TMPDIR by default), removed at exit, after the peers
    registered later have stopped; kept for a look when a check failed, unless told otherwise."""
    path = tempfile.mkdtemp(prefix=prefix, dir=dir or os.environ.get("TEST_TMPDIR"))

    def remove():
        if not (keep_on_failure and failures):
            shutil.rmtree(path, ignore_errors=True)

    at_exit("removing " + path, remove)
    return path


def on_failure(show):
    """Runs `show()` in finish(), before the summary line, when a check has failed: the end of a
    peer's log, say."""
    _on_failure.append(show)


def finish():
    """Prints "N checks, M failed" and exits, 1 when any check failed; the peers stop at exit."""
    if failures:
        for show in _on_failure:
            try:
                show()
            except Exception as e:  # noqa: BLE001  (the summary line must come)
                print("on failure: %s: %s" % (type(e).__name__, e), flush=True)
    checks.finish()


def _stop_all():
    while _stops:
        name, stop = _stops.pop()
        try:
            stop()
        except Exception as e:  # noqa: BLE001  (every peer gets its turn)
            print("stopping %s: %s" % (name, e), file=sys.stderr, flush=True)


def _on_sigterm(signum, frame):
    sys.exit("terminated by signal %d" % signum)  # SystemExit: the atexit handlers run


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_sigterm)


# --- numbered cases ------------------------------------------------------------------------------
class Skip(Exception):
    """Raised by skip(): the case cannot run here, for the reason given."""


def skip(reason):
    raise Skip(reason)


def case(number, title):
    """Declares the decorated function (no arguments) as case `number`, showing `title`."""
    def declare(function):
        if number in _cases:
            raise ValueError("case %d declared twice: %r and %r"
                             % (number, _cases[number][0], title))
        _cases[number] = (title, function)
        return function
    return declare


def fixture(function):
    """Makes `function` (no arguments) lazy and shared; see the module's comment."""
    state = {}
    # Its own lock: a fixture may start threads that need other fixtures while it is being made.
    lock = threading.RLock()

    @functools.wraps(function)
    def get():
        with lock:
            return made()

    def made():
        if "error" in state:
            e = state["error"]
            if isinstance(e, Skip):
                raise Skip(str(e))
            raise RuntimeError("fixture %s failed earlier: %s: %s"
                               % (function.__name__, type(e).__name__, e))
        if "value" not in state:
            try:
                if inspect.isgeneratorfunction(function):
                    steps = function()
                    state["value"] = next(steps)
                    at_exit(function.__name__, lambda: _run_to_end(function.__name__, steps))
                else:
                    state["value"] = function()
            except Exception as e:
                state["error"] = e
                raise
        return state["value"]

    return get


def _run_to_end(name, steps):
    try:
        next(steps)
    except StopIteration:
        return
    steps.close()
    raise RuntimeError("fixture %s yields more than once" % name)


_OPTION = re.compile(r"--case(?:=(.*))?$")


def _split_options(argv):
    """(the case numbers named or None, --list given, the other arguments)."""
    named, listing, rest = None, False, []
    i = 0
    while i < len(argv):
        m = _OPTION.match(argv[i])
        if m:
            value = m.group(1)
            if value is None:
                i += 1
                value = argv[i] if i < len(argv) else ""
            named = (named or []) + _numbers(value, "--case")
        elif argv[i] == "--list":
            listing = True
        else:
            rest.append(argv[i])
        i += 1
    return named, listing, rest


def _numbers(text, where):
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            _usage("%s: %r is not a case number, a list (3,7) or a range (2-4)" % (where, part))
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        out.extend(range(first, last + 1))
    if not out:
        _usage("%s names no case" % where)
    return out


def _usage(message):
    print("%s: %s" % (os.path.basename(sys.argv[0]), message), file=sys.stderr)
    print("cases: %s" % ", ".join(str(n) for n in sorted(_cases)), file=sys.stderr)
    sys.exit(2)


def args():
    """The script's command line (sys.argv[1:]) without the harness's options."""
    return _split_options(sys.argv[1:])[2]


def selected(argv=None):
    """The case numbers to run, in order: those named on the command line, else in E2E_CASES,
    else all."""
    named, _, _ = _split_options(sys.argv[1:] if argv is None else argv)
    if named is None and os.environ.get("E2E_CASES", "").strip():
        named = _numbers(os.environ["E2E_CASES"], "E2E_CASES")
    if named is None:
        return sorted(_cases)
    unknown = sorted(set(n for n in named if n not in _cases))
    if unknown:
        _usage("no case %s" % ", ".join(map(str, unknown)))
    return sorted(set(named))


def run_case(number):
    """Runs one case: its header, the case, its time; a raise is a failed check."""
    title, function = _cases[number]
    print("== case %d: %s" % (number, title), flush=True)
    t0 = time.monotonic()
    try:
        function()
    except Skip as e:
        print("SKIP case %d: %s" % (number, e), flush=True)
    except Exception as e:  # noqa: BLE001  (SystemExit and KeyboardInterrupt end the script)
        traceback.print_exc(file=sys.stdout)
        check(False, "case %d raised %s: %s" % (number, type(e).__name__, e))
    print("-- case %d: %.1f s" % (number, time.monotonic() - t0), flush=True)


def main(argv=None):
    """Runs the selected cases in number order, then finish()."""
    argv = sys.argv[1:] if argv is None else argv
    _, listing, _ = _split_options(argv)
    if listing:
        for number in sorted(_cases):
            print("%3d  %s" % (number, _cases[number][0]))
        sys.exit(0)
    for number in selected(argv):
        run_case(number)
    finish()
