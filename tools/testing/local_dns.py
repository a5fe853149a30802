"""A real DNS server for the project's end-to-end tests and benchmarks: Debian's unbound on
127.0.0.1 and a free port, answering only from the local zones it is given (no recursion, so
nothing leaves the host), and the free-port helper they all need.

    import local_dns
    unbound, port = local_dns.start_unbound(tmp, '  local-zone: "test." static\\n'
                                                 '  local-data: "a.test. 300 IN A 127.0.0.2"\\n')

    with local_dns.unbound(tmp, zones) as port:   # stopped at the end of the block
        ...

Callers that track their child processes pass `spawn(argv) -> subprocess.Popen`. dkim_key()
makes a DKIM key and the TXT data that publishes it in such a zone.

For DNSSEC (DANE, RFC 7672): sign_zone() signs a zone with Debian's ldnsutils, and
validating_unbound() serves it from a second, authoritative unbound behind a validating one
that sets the AD bit for it; that pair too asks nothing of any address but 127.0.0.1.

    signed, anchor = local_dns.sign_zone(tmp, "dane.test", ["mx.dane.test. 300 IN A 127.0.0.2"])
    with local_dns.validating_unbound(tmp, [("dane.test", signed, anchor)], zones) as port:
        ...
"""
import base64
import contextlib
import os
import socket
import subprocess
import time

UNBOUND = "/usr/sbin/unbound"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"


def free_port(hosts=("127.0.0.1",)):
    """A TCP port free on every address of `hosts` (and UDP on the first) right now."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for h in hosts:
            t = socket.socket()
            try:
                t.bind((h, port))
            except OSError:
                ok = False
            t.close()
        if ok:
            return port
    raise RuntimeError("no free port on %s" % ", ".join(hosts))


def _answers(port):
    # A query for the root SOA (RFC 1035 §4.1): any reply at all means the server is up.
    query = bytes.fromhex("123401000001000000000000") + b"\x00\x00\x06\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(query, ("127.0.0.1", port))
        return len(s.recv(512)) >= 12
    except OSError:
        return False
    finally:
        s.close()


def unbound_conf(port, directory, logfile, pidfile, zones, extra=""):
    """The project's one unbound configuration (unbound.conf.in beside this file) filled in."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "unbound.conf.in")) as f:
        text = f.read()
    for key, value in (("@PORT@", str(port)), ("@DIR@", directory), ("@LOGFILE@", logfile),
                       ("@PIDFILE@", pidfile), ("@EXTRA@", extra), ("@ZONES@", zones)):
        text = text.replace(key, value)
    return text


def _run_unbound(tmp, name, port, zones, extra, spawn, ready_timeout_s):
    # Starts unbound from `tmp`/`name`.conf, logging to `tmp`/`name`.log; returns the process
    # once it answers on `port`.
    conf = "%s/%s.conf" % (tmp, name)
    log = "%s/%s.log" % (tmp, name)
    with open(conf, "w") as f:
        f.write(unbound_conf(port, tmp, log, "", zones, extra))
    argv = [UNBOUND, "-d", "-c", conf]
    if spawn is None:
        proc = subprocess.Popen(argv, stdout=open("%s/%s.out" % (tmp, name), "w"),
                                stderr=subprocess.STDOUT)
    else:
        proc = spawn(argv)
    deadline = time.time() + ready_timeout_s
    while time.time() < deadline:
        if _answers(port):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if spawn is None and proc.poll() is None:
        proc.kill()
    raise RuntimeError("unbound did not answer on port %d: see %s" % (port, log))


def _stop(proc):
    # SIGTERM, then SIGKILL.
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_unbound(tmp, zones, spawn=None, ready_timeout_s=10):
    """Starts unbound with `zones` (unbound "server:" lines) in directory `tmp`; returns
    (process, port) once it answers, or raises RuntimeError naming its log."""
    port = free_port()
    return _run_unbound(tmp, "unbound", port, zones, "", spawn, ready_timeout_s), port


@contextlib.contextmanager
def unbound(tmp, zones):
    """start_unbound(tmp, zones) as a context manager: gives the port, stops unbound at the end
    (SIGTERM, then SIGKILL)."""
    proc, port = start_unbound(tmp, zones)
    try:
        yield port
    finally:
        _stop(proc)


def sign_zone(tmp, origin, records):
    """Writes zone `origin` (e.g. "dane.test") to `tmp`: an SOA, NS ns.<origin> at 127.0.0.1 and
    `records` (zone-file lines with absolute names), and signs it (NSEC) with a new
    ECDSAP256SHA256 key, signatures valid from an hour ago for a year. Returns (signed zone file,
    trust anchor: the key's DS record as unbound's trust-anchor takes it)."""
    origin = origin.rstrip(".")
    path = "%s/%s.zone" % (tmp, origin)
    with open(path, "w") as f:
        f.write("%s. 300 IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n"
                % (origin, origin, origin))
        f.write("%s. 300 IN NS ns.%s.\n" % (origin, origin))
        f.write("ns.%s. 300 IN A 127.0.0.1\n" % origin)
        for record in records:
            f.write(record + "\n")
    # One key, flagged as a KSK (257); with no ZSK given, ldns-signzone signs everything with it.
    # Written to `tmp` as K<origin>.+013+<tag>.{key,private,ds}.
    base = subprocess.run([LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", origin], cwd=tmp,
                          check=True, capture_output=True, text=True).stdout.strip()
    now = int(time.time())
    subprocess.run([LDNS_SIGNZONE, "-i", str(now - 3600), "-e", str(now + 365 * 86400),
                    "-o", origin + ".", "-f", path + ".signed", path, "%s/%s" % (tmp, base)],
                   check=True, capture_output=True)
    with open("%s/%s.ds" % (tmp, base)) as f:
        anchor = " ".join(f.read().split())
    return path + ".signed", anchor


@contextlib.contextmanager
def validating_unbound(tmp, signed_zones, zones=""):
    """A validating unbound on 127.0.0.1 (the port is given): each of `signed_zones`, a list of
    (origin, signed zone file, trust anchor) as from sign_zone(), is answered with DNSSEC
    validation (the AD bit on secure answers to queries with AD or DO set, SERVFAIL on bogus
    ones); `zones` (unbound "server:" lines, as for unbound()) are answered too, as insecure
    local data. Behind it a second unbound serves the signed zones authoritatively. Both are
    stopped at the end of the block. Logs: `tmp`/unbound-auth.log and `tmp`/unbound-validator.log.
    """
    # Refuse everything but the signed zones (transparent: they go on to the auth-zones in the
    # first and to the stubs in the second); a stub for the root, pointing at the authoritative
    # unbound, keeps the validator's own lookups (which bypass local zones) off the root servers.
    refuse = '  local-zone: "." refuse\n'
    auth_zones = ""
    anchors = ""
    for origin, path, anchor in signed_zones:
        origin = origin.rstrip(".") + "."
        refuse += '  local-zone: "%s" transparent\n' % origin
        auth_zones += ('auth-zone:\n  name: "%s"\n  zonefile: "%s"\n'
                       '  for-downstream: yes\n  for-upstream: no\n' % (origin, path))
        anchors += "  trust-anchor: \"%s\"\n" % anchor
    auth_port = free_port()
    stubs = ""
    for origin in [z[0].rstrip(".") + "." for z in signed_zones] + ["."]:
        stubs += 'stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%d\n' % (origin, auth_port)
    auth = _run_unbound(tmp, "unbound-auth", auth_port, refuse + auth_zones, "", None, 10)
    try:
        port = free_port()
        # A later module-config line replaces the template's "iterator". No RFC 8145 key-tag
        # queries (only noise here).
        validator = _run_unbound(tmp, "unbound-validator", port, zones + refuse + anchors + stubs,
                                 '  module-config: "validator iterator"\n'
                                 '  trust-anchor-signaling: no', None, 10)
        try:
            yield port
        finally:
            _stop(validator)
    finally:
        _stop(auth)


def dkim_key(tmp, name):
    """A new RSA-2048 key in `tmp`/`name`.pem (openssl), and its DKIM key record (RFC 6376
    §3.6.1) as the quoted strings of at most 200 bytes an unbound TXT local-data takes. Returns
    (key path, TXT data)."""
    path = "%s/%s.pem" % (tmp, name)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", path], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return path, " ".join('"%s"' % record[i:i + 200] for i in range(0, len(record), 200))


def mx_zones(domains, ip):
    """unbound local zones in which each of `domains` has one MX, mx.<domain>, at `ip`."""
    zones = ""
    for domain in domains:
        zones += '  local-zone: "%s." static\n' % domain
        zones += '  local-data: "%s. 300 IN MX 10 mx.%s."\n' % (domain, domain)
        zones += '  local-data: "mx.%s. 300 IN A %s"\n' % (domain, ip)
    return zones
