#!/usr/bin/python3
"""The operator's DNS workflow end to end: `relayctl init` writes a config and prints the records
to publish; those records, as printed (zone-file lines), are served by a real unbound on loopback;
`relayctl check-dns` then passes. Then one broken record at a time (SPF without the IPv6 sources,
a DKIM key that does not match, no PTR, a PTR whose name does not resolve back, an EHLO name that
differs from the PTR, no DMARC): check-dns names exactly that problem and exits non-zero. Also:
init refuses a directory that holds an earlier init.

usage: check_dns_test.py RELAYCTL
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helper, found through the path above)

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
    return r.returncode, r.stdout.splitlines()


def not_ok(lines):
    """(state, check, subject, problem) of every line that is not OK."""
    out = []
    for line in lines:
        m = re.match(r"^(FAIL|SKIP) +(\S+) +(\S+) \|.*?(?:\| problem: (.*))?$", line)
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


def expect_only(name, rc, lines, expected):
    """`expected`: (state, check, subject, problem substring) for every line not OK."""
    got = not_ok(lines)
    check(rc != 0, "%s: check-dns exits non-zero" % name)
    ok = len(got) == len(expected)
    for e in expected:
        ok = ok and any(g[0] == e[0] and g[1] == e[1] and g[2] == e[2] and e[3] in (g[3] or "")
                        for g in got)
    check(ok, "%s: exactly the expected problems (got %s)" % (name, got))


spf_owner = DOMAIN + "."
no_v6 = replaced(records, spf_owner, "TXT", '"v=spf1 ip4:%s ~all"' % V4)
rc, lines = check_dns(no_v6, config)
expect_only("SPF without the IPv6 sources", rc, lines,
            [("FAIL", "spf-auth", ip, "not authorised") for ip in IPV6_SOURCES])

other_dir = os.path.join(TMP, "other")
other = parse_zone(relayctl("init", DOMAIN, "--dir", other_dir, "--hostname", HOST).stdout)
rsa_owner = [r[0] for r in records if r[0].startswith("rsa") and "._domainkey." in r[0]][0]
other_key = [r[4] for r in other if r[0] == rsa_owner][0]
rc, lines = check_dns(replaced(records, rsa_owner, "TXT", other_key), config)
expect_only("a DKIM key that does not match", rc, lines,
            [("FAIL", "dkim", rsa_owner.rstrip("."), "does not match the private key")])

rc, lines = check_dns(without(records, reverse_v4(V4), "PTR"), config)
expect_only("no PTR", rc, lines,
            [("FAIL", "ptr", V4, "no PTR record"), ("SKIP", "ehlo", V4, "no forward-confirmed")])

rc, lines = check_dns(replaced(records, reverse_v4(V4), "PTR", "stray.example.test."), config)
expect_only("a PTR whose name does not resolve back", rc, lines,
            [("FAIL", "ptr", V4, "stray.example.test does not resolve back to " + V4),
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

rc, lines = check_dns(without(records, "_dmarc.%s." % DOMAIN, "TXT"), config)
expect_only("no DMARC", rc, lines, [("FAIL", "dmarc", "_dmarc." + DOMAIN, "no DMARC record")])

print("%d checks, %d failed" % (checks, len(failures)))
if not failures:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failures else 0)
