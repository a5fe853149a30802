"""What every end-to-end test script shares: the pass/fail lines (check, finish, from checks.py)
and the peers it starts (relayd, unbound, aiosmtpd sinks, smtp-sink, tmux), stopped whatever
happens: at the end, on an exception, on sys.exit, and on SIGTERM (Bazel's timeout), newest
first, one failing stop not keeping the others from running.

    import harness
    from harness import check
    unbound = harness.stop_at_exit(local_dns.start_unbound(...)[0])      # a subprocess.Popen
    sink = harness.stop_at_exit(Controller(...), "stop")                 # anything with .stop()
    harness.at_exit("tmux", lambda: subprocess.run(TMUX + ["kill-server"]))
    ...
    harness.finish()   # "N checks, M failed", exit 1 when any failed; the peers stop
"""
import atexit
import signal
import subprocess
import sys

from checks import check, failures, finish  # noqa: F401  (re-exported)

_stops = []  # (name, callable), in the order registered


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
