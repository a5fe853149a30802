#!/bin/bash
# Parses the DSNs written by dsn_example with Python's email package and checks that each is a
# valid multipart/report (RFC 3462) with the RFC 3464 fields, CRLF line ends and short lines.
set -euo pipefail
if ! command -v python3 >/dev/null; then echo "FAIL: python3 not installed"; exit 1; fi
example="$1"
dir="${TEST_TMPDIR:-$(mktemp -d)}/dsn"
mkdir -p "$dir"
"$example" "$dir"
python3 - "$dir" <<'PY'
import email, email.policy, sys
d = sys.argv[1]

def load(name):
    raw = open(f"{d}/{name}.eml", "rb").read()
    assert raw.endswith(b"\r\n"), name
    for i, line in enumerate(raw.split(b"\r\n")[:-1]):
        assert b"\n" not in line and b"\r" not in line, (name, i, "bare CR or LF")
        assert len(line) <= 998, (name, i, len(line))
    env = open(f"{d}/{name}.env").read().splitlines()
    assert env == ["MAIL FROM:<>", "RCPT TO:<bounces+42@example.org>"], env
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert not msg.defects, (name, msg.defects)
    return msg

def check(name, action, statuses):
    msg = load(name)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@relay.example.net>", msg["From"]
    assert msg["To"] == "<bounces+42@example.org>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"] and msg["Message-ID"] and msg["Subject"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"], parts
    for p in parts:
        assert not p.defects, (name, p.defects)
    # message/delivery-status: Python splits it into header blocks, the first per message.
    blocks = parts[1].get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; relay.example.net"
    assert blocks[0]["Original-Envelope-Id"] == "ENV42"
    assert blocks[0]["Arrival-Date"] == "Sat, 22 Nov 2025 18:33:20 +0000", blocks[0]["Arrival-Date"]
    recips = blocks[1:]
    assert len(recips) == len(statuses), (name, len(recips))
    for r, (addr, status) in zip(recips, statuses):
        assert r["Final-Recipient"] == f"rfc822; {addr}", r["Final-Recipient"]
        assert r["Action"] == action, r["Action"]
        assert r["Status"] == status, r["Status"]
        assert r["Remote-MTA"].startswith("dns; "), r["Remote-MTA"]
        if action == "delayed":
            assert r["Will-Retry-Until"], "no Will-Retry-Until"
    text = parts[0].get_payload()
    for addr, _ in statuses:
        assert f"<{addr}>" in text, (name, addr)
    return msg, parts, recips

msg, parts, recips = check("failure", "failed", [("a@gmail.com", "5.1.1"), ("b@yahoo.com", "5.7.1")])
diag = " ".join(recips[0]["Diagnostic-Code"].split())  # unfold
assert diag.startswith("smtp; 550 5.1.1 The email account that you tried to reach does not"), diag
assert diag.endswith("x1si123456."), diag
assert recips[0]["Original-Recipient"] == "rfc822; a@gmail.com"
assert recips[0]["Last-Attempt-Date"] == "Sat, 22 Nov 2025 19:33:10 +0000"
orig = email.message_from_string(parts[2].get_payload())
assert orig["Subject"] == "Your receipt" and orig["Message-ID"] == "<receipt-1@example.org>"
assert "Thanks!" not in parts[2].get_payload()

check("delay", "delayed", [("b@yahoo.com", "4.7.0")])

msg, parts, recips = check("hostile", "failed", [("a@gmail.com", "5.1.1"), ("b@yahoo.com", "5.7.1")])
assert msg["Content-Transfer-Encoding"] == "8bit"
assert "Diagnostic-Code" not in recips[1]
assert "null MX" in parts[0].get_payload()
print("ok: 3 DSNs parse as multipart/report with the RFC 3464 fields")
PY
