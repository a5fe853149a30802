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
"""
import base64
import contextlib
import os
import socket
import subprocess
import time

UNBOUND = "/usr/sbin/unbound"


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


def start_unbound(tmp, zones, spawn=None, ready_timeout_s=10):
    """Starts unbound with `zones` (unbound "server:" lines) in directory `tmp`; returns
    (process, port) once it answers, or raises RuntimeError naming its log."""
    port = free_port()
    conf = tmp + "/unbound.conf"
    with open(conf, "w") as f:
        f.write(unbound_conf(port, tmp, tmp + "/unbound.log", "", zones))
    argv = [UNBOUND, "-d", "-c", conf]
    if spawn is None:
        proc = subprocess.Popen(argv, stdout=open(tmp + "/unbound.out", "w"),
                                stderr=subprocess.STDOUT)
    else:
        proc = spawn(argv)
    deadline = time.time() + ready_timeout_s
    while time.time() < deadline:
        if _answers(port):
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if spawn is None and proc.poll() is None:
        proc.kill()
    raise RuntimeError("unbound did not answer on port %d: see %s/unbound.log" % (port, tmp))


@contextlib.contextmanager
def unbound(tmp, zones):
    """start_unbound(tmp, zones) as a context manager: gives the port, stops unbound at the end
    (SIGTERM, then SIGKILL)."""
    proc, port = start_unbound(tmp, zones)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
