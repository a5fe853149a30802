#!/bin/bash
# Reads every delivery log file written by delivery_log_example with Python's json module, line
# by line: each line must parse, every record must be there exactly once across the rotated and
# moved files, and the escaped strings must decode to the documented values.
set -euo pipefail
if ! command -v python3 >/dev/null; then echo "FAIL: python3 not installed"; exit 1; fi
example="$1"
dir="${TEST_TMPDIR:-$(mktemp -d)}/dlog"
rm -rf "$dir"
mkdir -p "$dir"
n=5000
"$example" "$dir" "$n"
python3 - "$dir" "$n" <<'PY'
import glob, json, re, sys
d, n = sys.argv[1], int(sys.argv[2])
files = glob.glob(f"{d}/delivery-0.log*")
assert len(files) > 3, files  # rotated files plus the moved one
seen = set()
events = set()
expected_text = ('quote" back\\ nl\n tab\t ctl\x01 del\x7f caf\u00e9 \ufffd\ufffd\ufffd '
                 '\ufffd\ufffd\ufffd \U0001d11e\x00end')
for f in files:
    raw = open(f, "rb").read()
    assert raw == b"" or raw.endswith(b"\n"), f
    for line in raw.split(b"\n")[:-1]:
        rec = json.loads(line.decode("utf-8"))  # strict: the file must be valid UTF-8
        q = rec["queue_id"]
        assert q not in seen, q
        seen.add(q)
        i = int(q[1:])
        events.add(rec["event"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"]), rec["ts"]
        assert rec["recipient"] == f"user{i}@example.com"
        assert rec["sender"] == ("" if i % 7 == 0 else "bounces@example.org")
        assert rec["reply"] == {"code": 421, "enhanced": "4.7.0", "text": expected_text}, rec["reply"]
        assert ("tls" in rec) == (i % 2 == 0)
        assert rec["attempt"] == 1 + i % 3 and rec["queued_ms"] == i * 10
assert len(seen) == n, (len(seen), n)
assert events == {"received", "delivered", "deferred", "bounced", "expired", "dsn_sent"}, events
print(f"ok: {n} lines in {len(files)} files parse with json")
PY
