"""Authentication-Results built by relay/receive/auth_results parsed by python3-authres, an
RFC 8601 parser written elsewhere: every method, result, reason and property value must come back
as it went in (quoting where the grammar needs it), and every line must stay under 78 columns.
"""
import subprocess
import sys

try:
    import authres
except ImportError:
    print("FAIL: python3-authres is not installed (Debian package python3-authres)")
    sys.exit(1)

TOOL = sys.argv[1]

CASES = [
    # (spf, [dkim...], arc[, dmarc]): spf = (result, mailfrom, helo); dkim = (result, d, s, b,
    # reason); dmarc = (result, header.from, policy, disposition), the last two in a comment
    (("pass", "alice@example.com", ""), [("pass", "example.com", "sel", "AbCd+123", "")], "none",
     ("pass", "example.com", "", "")),
    (("softfail", "", "helo.example"), [], None),
    (("fail", "ceo@bank.example", ""), [], "none", ("fail", "bank.example", "reject", "reject")),
    (("temperror", "a@news.bank.example", ""), [], None,
     ("temperror", "news.bank.example", "", "")),
    (("fail", '"a b"@example.com', "mail.example"),
     [("fail", "other.example", "s2", "ab/cd+ef", "body hash mismatch"),
      ("permerror", "x.example", "s3", "", "no key: permanent nxdomain: s3._domainkey.x.example"),
      ("temperror", "a-long-signing-domain.example.com", "selector2026-november", "0123456789ab",
       "key lookup: transient timeout")],
     "fail"),
    (("none", '"odd local"@example.org', ""), [("neutral", "t.example", "s", "a/b=c", "")], "pass"),
    (("pass", "x..y@example.com", ""), [], None),
    (None, [], None),
]
# What the parser must give back for a sender written otherwise (the local part quoted).
MAILFROM_AS_WRITTEN = {"x..y@example.com": '"x..y"@example.com'}

failed = False


def check(what, ok, detail=""):
    global failed
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + repr(detail)))
    failed |= not ok


for n, (spf, dkims, arc, *dmarc) in enumerate(CASES):
    args = [TOOL, "mx.example.org"]
    if spf:
        args += ["--spf", *spf]
    for d in dkims:
        args += ["--dkim", *d]
    if dmarc:
        args += ["--dmarc", *dmarc[0]]
    if arc:
        args += ["--arc", arc]
    field = subprocess.run(args, check=True, capture_output=True).stdout.decode()
    check("case %d ends with CRLF" % n, field.endswith("\r\n"), field)
    for line in field.split("\r\n"):
        check("case %d line under 78 columns" % n, len(line) <= 78, line)
    parsed = authres.AuthenticationResultsHeader.parse(field.rstrip("\r\n"))
    check("case %d authserv-id" % n, parsed.authserv_id == "mx.example.org", parsed.authserv_id)
    got = [(r.method, r.result, r.reason or "",
            {"%s.%s" % (p.type, p.name): p.value for p in r.properties})
           for r in parsed.results]
    want = []
    if spf:
        props = {}
        if spf[1]:
            props["smtp.mailfrom"] = MAILFROM_AS_WRITTEN.get(spf[1], spf[1])
        if spf[2]:
            props["smtp.helo"] = spf[2]
        want.append(("spf", spf[0], "", props))
    for d in dkims:
        props = {"header.d": d[1], "header.s": d[2]}
        if d[3]:
            props["header.b"] = d[3]
        want.append(("dkim", d[0], d[4] if d[0] != "pass" else "", props))
    if dmarc:
        want.append(("dmarc", dmarc[0][0], "", {"header.from": dmarc[0][1]}))
    if arc:
        want.append(("arc", arc, "", {}))
    check("case %d results round-trip" % n, got == want, (field, got, want))

sys.exit(1 if failed else 0)
