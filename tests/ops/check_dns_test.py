#!/usr/bin/python3
"""The operator's DNS workflow end to end: `relayctl init` writes a config and prints the records
to publish; those records, as printed (zone-file lines), are served by a real unbound on loopback;
`relayctl check-dns` then passes. Then one broken record at a time (SPF without the IPv6 sources,
two SPF records, +all, ?all, a DKIM key that does not match, no PTR, a PTR whose name does not
resolve or resolves to another address, an EHLO name that differs from the PTR, no DMARC, two
DMARC records, no MX, a null MX, an MX host without an address, an MX at another host):
check-dns names exactly that problem, shows what is published next to what is expected, and
exits 1 (0 for the warnings: an MX at another host, ?all). A DNS server that does not answer (a
closed loopback port) is one error line and exit 2. Every problem printed is worded as a row of
the README's table. Also: init refuses a directory that holds an earlier init.

usage: check_dns_test.py RELAYCTL
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helper, found through the path above)

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
RELAYCTL = os.path.realpath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="check-dns-", dir=os.environ.get("TEST_TMPDIR"))
DOMAIN = "example.test"
HOST = "mail.example.test"
V4 = "192.0.2.10"
V6 = "2001:db8::25"
PREFIX = "2001:db8:1::/64"
IPV6_SOURCES = [V6, "2001:db8:1::1", "2001:db8:1::2"]
failures, checks = [], 0


def check(cond, what):
    global checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def relayctl(*args):
    return subprocess.run([RELAYCTL] + list(args), capture_output=True, text=True, timeout=60)


def parse_zone(text):
    """The records of a zone-file fragment: [owner, ttl, class, type, rdata] per line."""
    records = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        owner, ttl, klass, rtype, rdata = line.split(None, 4)
        records.append([owner, ttl, klass, rtype, rdata])
    return records


def unbound_zones(records):
    # The forward zone and the two reverse zones the test's addresses live in (TEST-NET-1 and the
    # IPv6 documentation prefix, which unbound otherwise answers itself as locally served zones).
    lines = ['  local-zone: "%s." static' % DOMAIN,
             '  local-zone: "2.0.192.in-addr.arpa." static',
             '  local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." static']
    for r in records:
        lines.append("  local-data: '%s'" % " ".join(r))
    return "\n".join(lines) + "\n"


run_number = 0


# The placeholders of the README's problem texts: each stands for a value of the run.
PLACEHOLDER = re.compile(r"\b(DOMAIN|HOST|FOUND|EXPECTED|IP|ERROR|DETAIL|NAME|SELECTOR|PATH|"
                         r"EHLO_NAME|SERVER|RESULT|SECONDS)\b")


def readme_problems():
    """(checks, state, regex) of each row of the README's check-dns problem table."""
    rows, in_table = [], False
    lines = open(README).read().split("\n")
    start = [i for i, l in enumerate(lines) if l.startswith("What each `check-dns` problem means")]
    for line in lines[start[0] + 1:]:
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        if line.startswith("|---") or line.startswith("| check |"):
            continue  # separator and header
        cells = line.strip("|").split(" | ")
        checks, state, text = cells[0].strip(), cells[1].strip(), cells[2].replace("`", "")
        pattern = PLACEHOLDER.sub("(.+)", re.escape(text))
        rows.append((checks.split(", "), state, re.compile("^" + pattern + "$")))
    return rows


PROBLEMS = readme_problems()


def worded_as_readme(check_name, state, problem):
    return any(check_name in checks and state == s and r.match(problem)
               for checks, s, r in PROBLEMS)


def check_wording(lines):
    """Every problem printed is one of the README table's, in its check and state."""
    for state, what, subject, problem in not_ok(lines):
        check(worded_as_readme(what, state, problem or ""),
              "worded as the README's table: %s %s %s" % (state, what, problem))


def fields(line):
    """{"published": ..., "expected": ..., "problem": ...} of a check line."""
    out = {}
    for part in line.split(" | ")[1:]:
        name, _, value = part.partition(": ")
        out[name] = value
    return out


def line_of(lines, what, subject):
    """The line of check `what` about `subject`, or ""."""
    pattern = re.compile(r"^\S+ +%s +%s \|" % (re.escape(what), re.escape(subject)))
    found = [l for l in lines if pattern.match(l)]
    return found[0] if found else ""


def check_dns(records, config):
    """Serves `records` from a fresh unbound and runs check-dns; returns (exit code, lines)."""
    global run_number
    run_number += 1
    d = os.path.join(TMP, "dns%d" % run_number)
    os.mkdir(d)
    unbound, port = local_dns.start_unbound(d, unbound_zones(records))
    try:
        r = relayctl("check-dns", "--config", config, "--dns-server", "127.0.0.1:%d" % port)
    finally:
        unbound.terminate()
        unbound.wait(timeout=10)
    print(r.stdout, r.stderr, sep="", end="", flush=True)
    lines = r.stdout.splitlines()
    check_wording(lines)
    return r.returncode, lines


def not_ok(lines):
    """(state, check, subject, problem) of every line that is not OK."""
    out = []
    for line in lines:
        m = re.match(r"^(FAIL|WARN|SKIP) +(\S+) +(\S+) \|.*?(?:\| problem: (.*))?$", line)
        if m:
            out.append(m.groups())
    return out


def without(records, owner, rtype):
    return [r for r in records if not (r[0] == owner and r[3] == rtype)]


def replaced(records, owner, rtype, rdata):
    return [r[:4] + [rdata] if r[0] == owner and r[3] == rtype else r for r in records]


def reverse_v4(ip):
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa."


# --- init --------------------------------------------------------------------------------------
conf_dir = os.path.join(TMP, "relay")
init = relayctl("init", DOMAIN, "--dir", conf_dir, "--hostname", HOST, "--ipv4", V4, "--ipv6", V6,
                "--ipv6", PREFIX, "--prefix-count", "2")
check(init.returncode == 0, "init exits 0 (%s)" % init.stderr.strip())
config = os.path.join(conf_dir, "relayd.toml")
records = parse_zone(init.stdout)
types = sorted(set(r[3] for r in records))
check(types == ["A", "AAAA", "MX", "PTR", "TXT"], "init prints MX, A, AAAA, TXT and PTR records")
check(len([r for r in records if r[3] == "PTR"]) == 4, "a PTR for each of the 4 source addresses")
check(relayctl("dns-records", "--config", config).stdout == init.stdout,
      "dns-records prints what init printed")

again = relayctl("init", DOMAIN, "--dir", conf_dir)
check(again.returncode != 0 and "already holds a configuration" in again.stderr,
      "init refuses a directory that holds an earlier init: %s" % again.stderr.strip())

# --- everything published as printed: check-dns passes -----------------------------------------
rc, lines = check_dns(records, config)
check(rc == 0 and not not_ok(lines), "check-dns passes on the records init printed")
for what in ("mx", "host", "spf", "spf-auth", "dkim", "dmarc", "ptr", "ehlo"):
    check(any(re.match(r"^OK +%s " % what, l) for l in lines), "check-dns checked %s" % what)

# --- one broken record at a time -----------------------------------------------------------------


def expect_only(name, rc, lines, expected, exit_code=1):
    """`expected`: (state, check, subject, problem substring) for every line not OK."""
    got = not_ok(lines)
    check(rc == exit_code, "%s: check-dns exits %d (got %d)" % (name, exit_code, rc))
    ok = len(got) == len(expected)
    for e in expected:
        ok = ok and any(g[0] == e[0] and g[1] == e[1] and g[2] == e[2] and e[3] in (g[3] or "")
                        for g in got)
    check(ok, "%s: exactly the expected problems (got %s)" % (name, got))


def key_fingerprint(rdata):
    """What check-dns shows of a DKIM key record: "rsa key sha256:" + 16 hex digits of the
    SHA-256 of the decoded p= value."""
    text = "".join(re.findall(r'"([^"]*)"', rdata))
    p = re.search(r"p=([^;]*)", text).group(1).replace(" ", "")
    return "rsa key sha256:" + hashlib.sha256(base64.b64decode(p)).hexdigest()[:16]


apex = DOMAIN + "."
spf_rdata = [r[4] for r in records if r[0] == apex and r[3] == "TXT"][0]
dmarc_owner = "_dmarc.%s." % DOMAIN
dmarc_rdata = [r[4] for r in records if r[0] == dmarc_owner][0]

# --- SPF -----------------------------------------------------------------------------------------
no_v6 = replaced(records, apex, "TXT", '"v=spf1 ip4:%s ~all"' % V4)
rc, lines = check_dns(no_v6, config)
expect_only("SPF without the IPv6 sources", rc, lines,
            [("FAIL", "spf-auth", ip, "not authorised") for ip in IPV6_SOURCES])

other_spf = '"v=spf1 ip4:198.51.100.7 -all"'
rc, lines = check_dns(records + [[apex, "3600", "IN", "TXT", other_spf]], config)
expect_only("two SPF records", rc, lines,
            [("FAIL", "spf", DOMAIN, "more than one SPF record")] +
            [("SKIP", "spf-auth", ip, "no usable SPF record") for ip in [V4] + IPV6_SOURCES])
published = fields(line_of(lines, "spf", DOMAIN)).get("published", "")
check(published == "2 records: %s, %s" % (spf_rdata, other_spf) or
      published == "2 records: %s, %s" % (other_spf, spf_rdata),
      "two SPF records: both are shown (%s)" % published)

rc, lines = check_dns(replaced(records, apex, "TXT", spf_rdata.replace("~all", "+all")), config)
expect_only("SPF ending in +all", rc, lines,
            [("FAIL", "spf", DOMAIN, "+all lets every host on the internet pass SPF")])

rc, lines = check_dns(replaced(records, apex, "TXT", spf_rdata.replace("~all", "?all")), config)
expect_only("SPF ending in ?all", rc, lines,
            [("WARN", "spf", DOMAIN, "?all gives hosts outside the record neutral")], exit_code=0)

# --- DKIM ----------------------------------------------------------------------------------------
other_dir = os.path.join(TMP, "other")
other = parse_zone(relayctl("init", DOMAIN, "--dir", other_dir, "--hostname", HOST).stdout)
rsa_owner = [r[0] for r in records if r[0].startswith("rsa") and "._domainkey." in r[0]][0]
ours = [r[4] for r in records if r[0] == rsa_owner][0]
other_key = [r[4] for r in other if r[0] == rsa_owner][0]
rc, lines = check_dns(replaced(records, rsa_owner, "TXT", other_key), config)
expect_only("a DKIM key that does not match", rc, lines,
            [("FAIL", "dkim", rsa_owner.rstrip("."), "signatures will fail")])
f = fields(line_of(lines, "dkim", rsa_owner.rstrip(".")))
check(f.get("published") == key_fingerprint(other_key) and
      f.get("expected", "").startswith(key_fingerprint(ours) + " (") and
      key_fingerprint(ours) != key_fingerprint(other_key),
      "a DKIM key that does not match: both keys shown by their SHA-256 fingerprint (%s)" % f)
check(("the published %s is not the %s of " % (key_fingerprint(other_key),
                                                       key_fingerprint(ours)))
      in f.get("problem", ""), "a DKIM key that does not match: the problem names both keys")

# --- PTR and EHLO --------------------------------------------------------------------------------
rc, lines = check_dns(without(records, reverse_v4(V4), "PTR"), config)
expect_only("no PTR", rc, lines,
            [("FAIL", "ptr", V4, "no PTR record"), ("SKIP", "ehlo", V4, "no forward-confirmed")])

rc, lines = check_dns(replaced(records, reverse_v4(V4), "PTR", "stray.example.test."), config)
expect_only("a PTR whose name does not resolve", rc, lines,
            [("FAIL", "ptr", V4, "PTR name stray.example.test does not resolve back to %s: it "
              "resolves to no address" % V4),
             ("SKIP", "ehlo", V4, "no forward-confirmed")])

rc, lines = check_dns(replaced(records, reverse_v4(V4), "PTR", "other.example.test.") +
                      [["other.example.test.", "3600", "IN", "A", "192.0.2.99"]], config)
expect_only("a PTR whose name resolves to another address", rc, lines,
            [("FAIL", "ptr", V4, "PTR name other.example.test does not resolve back to %s: it "
              "resolves to 192.0.2.99" % V4),
             ("SKIP", "ehlo", V4, "no forward-confirmed")])

# The EHLO name is the config's: the IPv4 source says another name than its PTR gives.
ehlo_config = os.path.join(conf_dir, "relayd-ehlo.toml")
text = open(config).read()
first = text.index('ehlo_name = "%s"' % HOST)
text = text[:first] + 'ehlo_name = "relay.example.test"' + text[first + len(
    'ehlo_name = "%s"' % HOST):]
open(ehlo_config, "w").write(text)
rc, lines = check_dns(records, ehlo_config)
expect_only("an EHLO name that differs from the PTR", rc, lines,
            [("FAIL", "ehlo", V4,
              "EHLO name relay.example.test differs from the PTR name mail.example.test")])

# --- DMARC ---------------------------------------------------------------------------------------
rc, lines = check_dns(without(records, dmarc_owner, "TXT"), config)
expect_only("no DMARC", rc, lines, [("FAIL", "dmarc", "_dmarc." + DOMAIN, "no DMARC record")])

other_dmarc = '"v=DMARC1; p=reject"'
rc, lines = check_dns(records + [[dmarc_owner, "3600", "IN", "TXT", other_dmarc]], config)
expect_only("two DMARC records", rc, lines,
            [("FAIL", "dmarc", "_dmarc." + DOMAIN, "more than one DMARC record")])
published = fields(line_of(lines, "dmarc", "_dmarc." + DOMAIN)).get("published", "")
check(published in ("2 records: %s, %s" % (dmarc_rdata, other_dmarc),
                    "2 records: %s, %s" % (other_dmarc, dmarc_rdata)),
      "two DMARC records: both are shown (%s)" % published)

# --- MX ------------------------------------------------------------------------------------------
rc, lines = check_dns(without(records, apex, "MX"), config)
expect_only("no MX", rc, lines,
            [("FAIL", "mx", DOMAIN, "no MX record (mail to %s falls back" % DOMAIN)])

rc, lines = check_dns(replaced(records, apex, "MX", "0 ."), config)
expect_only("a null MX", rc, lines,
            [("FAIL", "mx", DOMAIN, "null MX: %s accepts no mail" % DOMAIN)])

rc, lines = check_dns(replaced(records, apex, "MX", "10 nowhere.example.test."), config)
expect_only("an MX host without an address", rc, lines,
            [("FAIL", "mx", DOMAIN, "no MX host has an A/AAAA record (nowhere.example.test)")])

provider = "mx.provider.example.test"
rc, lines = check_dns(replaced(records, apex, "MX", "10 %s." % provider) +
                      [[provider + ".", "3600", "IN", "A", "192.0.2.50"]], config)
expect_only("an MX at another host", rc, lines,
            [("WARN", "mx", DOMAIN, "the MX points at %s, not at %s" % (provider, HOST))],
            exit_code=0)
check(fields(line_of(lines, "mx", DOMAIN)).get("published") == "10 " + provider,
      "an MX at another host: the published host is shown")

# --- a DNS server that does not answer -----------------------------------------------------------
closed = local_dns.free_port()  # nothing listens there: each query gets ICMP port unreachable
r = relayctl("check-dns", "--config", config, "--dns-server", "127.0.0.1:%d" % closed)
print(r.stdout, r.stderr, sep="", end="", flush=True)
err = r.stderr.splitlines()
check(r.returncode == 2, "no DNS server: check-dns exits 2 (got %d)" % r.returncode)
check(r.stdout == "" and len(err) == 1, "no DNS server: one line, on stderr")
prefix = "relayctl check-dns: "
check(len(err) == 1 and err[0].startswith(prefix) and
      "no answer from the DNS server 127.0.0.1:%d" % closed in err[0] and
      worded_as_readme("dns", "error", err[0][len(prefix):]),
      "no DNS server: the line names the server, worded as the README's table")

print("%d checks, %d failed" % (checks, len(failures)))
if not failures:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failures else 0)
