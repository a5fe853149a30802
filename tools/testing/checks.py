"""Pass/fail lines for the project's end-to-end test scripts: each check prints "ok   what" or
"FAIL what" as it happens, and finish() prints the count and exits 1 when any failed.

    from checks import check, finish
    check(reply.startswith(b"250"), "the relay accepts the message")
    finish()
"""
import sys

failures = []
_count = 0


def check(cond, what):
    """Records one check; returns `cond` so that callers can stop early."""
    global _count
    _count += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def finish():
    print("%d checks, %d failed" % (_count, len(failures)), flush=True)
    sys.exit(1 if failures else 0)
