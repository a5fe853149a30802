"""Our SRS (srs_tool) against postsrsd, started here on 127.0.0.1 with free ports and a secrets
file of its own: postsrsd reverses what we forward, we reverse what postsrsd forwards, and both
forward a sender to the same address (the format is libsrs2's on both sides).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

POSTSRSD = "/usr/sbin/postsrsd"
if not os.access(POSTSRSD, os.X_OK):
    print("FAIL: postsrsd is not installed (Debian package postsrsd)")
    sys.exit(1)

TOOL = sys.argv[1]
TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
DOMAIN = "fwd.example"


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


SECRETS = write("secrets", "n3w-secret\nold-secret\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


FPORT, RPORT = free_port(), free_port()
log = open(os.path.join(TMP, "postsrsd.log"), "w")
server = subprocess.Popen([POSTSRSD, "-4", "-l", "127.0.0.1", "-f", str(FPORT), "-r", str(RPORT),
                           "-s", SECRETS, "-d", DOMAIN], stdout=log, stderr=log)


def connect(port):
    for _ in range(200):
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if server.poll() is not None:
                sys.exit("postsrsd exited with %d; see postsrsd.log" % server.returncode)
            time.sleep(0.05)
    sys.exit("postsrsd did not listen")


def lookup(port, address):
    """Postfix's tcp_table protocol: "get <key>" -> "200 <value>" or "500 ...", URL-encoded."""
    s = connect(port)
    s.sendall(b"get " + urllib.parse.quote(address, safe="@").encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    code, _, value = reply.decode().strip().partition(" ")
    return code, urllib.parse.unquote(value)


def tool(mode, secrets, domain, address):
    p = subprocess.run([TOOL, mode, secrets, domain, address], capture_output=True, text=True)
    return p.returncode, p.stdout.strip()


failed = False


def check(what, want, got):
    global failed
    ok = want == got
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else ": want %r, got %r" % (want, got)))
    failed |= not ok


try:
    for sender in ("alice@example.com", "Bob.Smith@Example.ORG", "a=b@example.net"):
        ours = tool("forward", SECRETS, DOMAIN, sender)[1]
        theirs = lookup(FPORT, sender)
        if theirs != ("200", ours):  # both ran on one day unless this straddled midnight UTC
            ours = tool("forward", SECRETS, DOMAIN, sender)[1]
            theirs = lookup(FPORT, sender)
        check("forward %s" % sender, ("200", ours), theirs)
        check("postsrsd reverses our %s" % ours, ("200", sender), lookup(RPORT, ours))
        check("we reverse postsrsd's %s" % theirs[1], (0, sender),
              tool("reverse", SECRETS, DOMAIN, theirs[1]))

    # SRS1: an SRS0 address from another forwarder, forwarded again by both.
    hop1 = tool("forward", write("hop1", "hop1-secret\n"), "hop1.example", "carol@example.com")[1]
    ours = tool("forward", SECRETS, DOMAIN, hop1)[1]
    check("SRS1 forward equals postsrsd's", ("200", ours), lookup(FPORT, hop1))
    check("postsrsd reverses our SRS1", ("200", hop1), lookup(RPORT, ours))
    check("we reverse our SRS1", (0, hop1), tool("reverse", SECRETS, DOMAIN, ours))

    # The hash is checked case-insensitively on both sides; a changed hash is refused by both.
    check("postsrsd accepts a lower-cased address", "200", lookup(RPORT, ours.lower())[0])
    check("we accept a lower-cased address", 0, tool("reverse", SECRETS, DOMAIN, ours.lower())[0])
    ours0 = tool("forward", SECRETS, DOMAIN, "dave@example.com")[1]
    forged = "SRS0=ZZZZ" + ours0[len("SRS0=xxxx"):]
    check("postsrsd refuses a forged hash", "500", lookup(RPORT, forged)[0])
    code, out = tool("reverse", SECRETS, DOMAIN, forged)
    check("we refuse a forged hash", (1, "error PERMISSION_DENIED"), (code, out.split(":")[0]))
    # The second secret still verifies (rotation).
    old = tool("forward", write("old", "old-secret\n"), DOMAIN, "erin@example.com")[1]
    check("postsrsd accepts the old secret", ("200", "erin@example.com"), lookup(RPORT, old))
    check("we accept the old secret", (0, "erin@example.com"), tool("reverse", SECRETS, DOMAIN, old))
finally:
    server.terminate()
    server.wait()

sys.exit(1 if failed else 0)
