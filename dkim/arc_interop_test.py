"""ARC sets made by dkim/arc against python3-dkim's ARC verifier (Debian package python3-dkim).

Hop 1 seals a DKIM-less message (i=1, cv=none), hop 2 validates that chain with our validator and
seals on top (i=2, cv=pass); python3-dkim's arc_verify must say "pass" after each hop, with the
keys handed to it by a dnsfunc instead of DNS. A changed body must make both verifiers fail.
"""
import os
import subprocess
import sys
import tempfile

try:
    import dkim
except ImportError:
    print("FAIL: python3-dkim is not installed (Debian package python3-dkim)")
    sys.exit(1)

TOOL = sys.argv[1]
TMP = os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp()
NOW = 1763800000

MESSAGE = (b"From: Alice <alice@origin.example>\r\n"
           b"To: bob@hop1.example\r\n"
           b"Subject: ARC test\r\n"
           b"Date: Sun, 22 Nov 2026 20:22:40 +0000\r\n"
           b"Message-ID: <arc-test-1@origin.example>\r\n"
           b"\r\n"
           b"Hello,\r\n\r\nthis message is forwarded twice.  \r\n\r\n\r\n")


def run(*args, check=True):
    p = subprocess.run([TOOL, *args], capture_output=True)
    if check and p.returncode != 0:
        sys.exit("arc_tool %s failed (%d): %s" % (args[0], p.returncode, p.stderr.decode()))
    return p


def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


keys = {}
for domain, selector in (("hop1.example", "arc1"), ("hop2.example", "arc2")):
    path = os.path.join(TMP, selector + ".pem")
    subprocess.run(["openssl", "genrsa", "-out", path, "2048"], check=True, capture_output=True)
    record = run("record", path).stdout.decode().strip()
    keys[(selector, domain)] = (path, record)
records = write("records", "".join("%s %s %s\n" % (s, d, r) for (s, d), (_, r)
                                   in keys.items()).encode())


def dnsfunc(name, timeout=5):
    for (s, d), (_, r) in keys.items():
        if name in ((s + "._domainkey." + d).encode(), (s + "._domainkey." + d + ".").encode()):
            return r.encode()
    return None


def py_verify(msg):
    cv, results, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc)
    return cv, reason


failed = False


def check(what, ok, detail=""):
    global failed
    print(("ok: " if ok else "FAIL: ") + what + ("" if ok else " " + str(detail)))
    failed |= not ok


def seal(msg, domain, selector, payload):
    path, _ = keys[(selector, domain)]
    return run("seal", "--key", "%s:%s:%s" % (domain, selector, path), "--keys", records,
               "--ar", payload, "--time", str(NOW), write("in.eml", msg)).stdout


hop1 = seal(MESSAGE, "hop1.example", "arc1",
            "mx.hop1.example;\r\n\tspf=pass smtp.mailfrom=alice@origin.example;\r\n\tdkim=none")
check("hop 1 seals i=1 cv=none", b"ARC-Seal: i=1; a=rsa-sha256; cv=none;" in hop1, hop1[:300])
cv, reason = py_verify(hop1)
check("python3-dkim verifies hop 1's chain", cv == dkim.CV_Pass, (cv, reason))
check("our validator agrees", run("validate", "--keys", records, "--time", str(NOW),
                                  write("h1.eml", hop1)).stdout.strip() == b"pass")

# Hop 2 adds its own trace field first, as a forwarder would, then seals.
received = b"Received: from mx.hop1.example by mx.hop2.example; Sun, 22 Nov 2026 20:23:00 +0000\r\n"
hop2 = seal(received + hop1, "hop2.example", "arc2",
            "mx.hop2.example; spf=fail smtp.mailfrom=alice@origin.example; arc=pass")
check("hop 2 seals i=2 cv=pass", b"ARC-Seal: i=2; a=rsa-sha256; cv=pass;" in hop2, hop2[:300])
cv, reason = py_verify(hop2)
check("python3-dkim verifies the two-hop chain", cv == dkim.CV_Pass, (cv, reason))
check("our validator agrees", run("validate", "--keys", records, "--time", str(NOW),
                                  write("h2.eml", hop2)).stdout.strip() == b"pass")

tampered = hop2.replace(b"forwarded twice", b"forwarded thrice")
cv, reason = py_verify(tampered)
check("python3-dkim fails a changed body", cv == dkim.CV_Fail, (cv, reason))
p = run("validate", "--keys", records, "--time", str(NOW), write("t.eml", tampered), check=False)
check("our validator fails a changed body", p.returncode == 1 and
      p.stdout.startswith(b"fail: ARC-Message-Signature i=2: body hash mismatch"), p.stdout)
# A third hop seals the failed chain with cv=fail, covering only its own set (RFC 8617 §5.1.2).
hop3 = seal(tampered, "hop1.example", "arc1", "mx.hop3.example; arc=fail")
check("hop 3 seals i=3 cv=fail", b"ARC-Seal: i=3; a=rsa-sha256; cv=fail;" in hop3, hop3[:300])
res = dkim.ARC(hop3).verify(dnsfunc=dnsfunc)
check("python3-dkim sees the chain ended by cv=fail", res[0] is None, res[2])
sys.exit(1 if failed else 0)
