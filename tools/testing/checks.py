"""The checklist the project's end-to-end tests print: one "ok   ..." or "FAIL ..." line per
check (with what was seen when it fails), and a closing "N checks, M failed".

    import checks
    check = checks.Checks()
    check(port is not None, "relayd started", log_text)
    ...
    sys.exit(check.summary())   # 1 when anything failed
"""


class Checks:
    def __init__(self):
        self.count = 0
        self.failures = []

    def __call__(self, cond, what, detail=""):
        self.count += 1
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            if detail:
                print(detail)
            self.failures.append(what)
        return cond

    def summary(self):
        """Prints the closing line; the exit status: 1 when a check failed."""
        print("%d checks, %d failed" % (self.count, len(self.failures)))
        return 1 if self.failures else 0
