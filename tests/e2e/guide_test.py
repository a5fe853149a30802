#!/usr/bin/python3
"""The README's operator guide, walked step by step as an operator would, so that it cannot drift
from the code. Runs in a network namespace of its own (guide_test.sh: `unshare --net`) where the
guide's addresses exist: 203.0.113.25 and the prefix 2001:db8:25::/64 on lo, a DNS server
(unbound on 127.0.0.1) serving the zone `relayctl init` printed plus the reverse zones, and
aiosmtpd on 198.51.100.25 and 2001:db8:53::25 as Gmail's MX (on port 2525: the relay's own
port-25 listener takes every address of this one host).

The guide's own shell blocks are read from README.md and run with bash, with its paths moved
under a private directory (/etc/relay, /var/spool/relay, /var/log/relay, /run/relay) and the
relay binaries from this build; the user `relay` is created when the machine has none (removed
at the end). Shown:
  - step 2 (init) writes the config and a zone; step 4 (check-dns) passes on that zone;
  - step 5 (user-add) twice, then relayd started as `relay` from the unit's ExecStart line with
    only CAP_NET_BIND_SERVICE, restarted: it starts again and both users log in;
  - step 7 (send-test) reaches Gmail's MX from a source address of the pool, with the EHLO name
    of that source's PTR, signed with both DKIM keys (python3-dkim verifies them against the
    zone);
  - step 8 (receiving): postmaster and a catch-all are forwarded to Gmail with an SRS sender; a
    spoof of a p=reject domain is refused at the end of DATA, nothing forwarded or bounced;
  - the metrics endpoint answers after an idle minute.

A case per step: what the steps before it left (the config, the zone's DNS server, the users,
relayd running as `relay`) comes from fixtures that run those steps, without their checks, when
their cases have not run.

usage: guide_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
       (as root, in a fresh network namespace)
"""
import grp
import os
import pwd
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import dkim
import dns.resolver
from aiosmtpd.controller import Controller

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, RELAYCTL = (os.path.realpath(a) for a in harness.args()[:2])
HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
UNIT = os.path.join(HERE, "..", "..", "tools", "service", "relayd.service")
GMAIL_V4, GMAIL_V6 = "198.51.100.25", "2001:db8:53::25"
MX_PORT = 2525


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


# --- a private root for the guide's paths (short: Unix socket paths are limited to 108 bytes) ---
# It holds copies of the binaries: removed at the end, whatever the outcome.
ROOT = harness.scratch("guide-", dir="/tmp", keep_on_failure=False)
os.chmod(ROOT, 0o755)  # the relay user must reach its files
BIN = ROOT + "/bin"
PATHS = [("/etc/relay", ROOT + "/etc/relay"), ("/var/spool/relay", ROOT + "/spool"),
         ("/var/log/relay", ROOT + "/log"), ("/run/relay", ROOT + "/run"),
         ("/usr/local/bin/", BIN + "/"), ("/usr/sbin/relayd", BIN + "/relayd")]
CONF_PATH = ROOT + "/etc/relay/relayd.toml"
LOG_PATH = ROOT + "/relayd.out"


def moved(text):
    for old, new in PATHS:
        text = text.replace(old, new)
    return text


@harness.fixture
def network():
    """The namespace's network: the guide's address and Gmail's on lo."""
    links = run(["ip", "-o", "link", "show"]).stdout
    if len([l for l in links.splitlines() if l.strip()]) != 1 or ": lo:" not in links:
        raise RuntimeError("not in a fresh network namespace (interfaces: %s); run through "
                           "guide_test.sh" % links)
    for args in (["link", "set", "lo", "up"],
                 ["addr", "add", "203.0.113.25/32", "dev", "lo"],
                 ["addr", "add", GMAIL_V4 + "/32", "dev", "lo"],
                 ["-6", "addr", "add", GMAIL_V6 + "/128", "dev", "lo", "nodad"]):
        r = run(["ip"] + args)
        if r.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr))


@harness.fixture
def prepared():
    """The binaries of this build in the private root, the user `relay` (created when the machine
    has none, removed at the end) and the directories it writes."""
    os.makedirs(BIN)
    for b in (RELAYD, RELAYCTL):
        shutil.copy(b, BIN)  # the Bazel tree under /root is not readable by `relay`
    try:
        pwd.getpwnam("relay")
    except KeyError:
        r = run(["useradd", "--system", "--home-dir", "/nonexistent", "--shell",
                 "/usr/sbin/nologin", "relay"])
        if r.returncode != 0:
            raise RuntimeError("useradd relay: " + r.stderr)
        harness.at_exit("userdel relay", lambda: run(["userdel", "relay"]))
    uid, gid = pwd.getpwnam("relay").pw_uid, grp.getgrnam("relay").gr_gid
    for d in (ROOT + "/spool", ROOT + "/log", ROOT + "/run"):
        os.makedirs(d)
        os.chown(d, uid, gid)
        os.chmod(d, 0o750)


@harness.fixture
def steps():
    """{step number: the text of that step} from the README's "Operator guide" section."""
    text = open(README).read()
    guide = text[text.index("## Operator guide"):]
    guide = guide[:guide.index("\n## ", 5)] if "\n## " in guide[5:] else guide
    out = {}
    for m in re.finditer(r"(?ms)^(\d+)\. \*\*(.*?)(?=^\d+\. \*\*|^What each|\Z)", guide):
        out[int(m.group(1))] = m.group(0)
    return out


def shell_block(step_text):
    m = re.search(r"```sh\n(.*?)```", step_text, re.S)
    return m.group(1) if m else None


def run_block(step, block, stdin=None):
    """Runs a shell block of the guide (paths moved, binaries from this build); returns the
    completed process."""
    network()  # the guide's commands change it (step 2 routes the prefix on lo)
    prepared()
    script = moved(block)
    print("---- step %d:\n%s" % (step, script.rstrip()), flush=True)
    env = dict(os.environ, PATH=BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


# --- the sinks: Gmail's MX ------------------------------------------------------------------------
received = []  # (peer ip, EHLO name, mail_from, rcpt_tos, content, over TLS)
lock = threading.Lock()


class Gmail:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            received.append((session.peer[0], session.host_name, envelope.mail_from,
                             list(envelope.rcpt_tos), envelope.original_content,
                             session.ssl is not None))
        return "250 2.0.0 OK gmail stored"


@harness.fixture
def gmail():
    """Gmail's MX on its two addresses, on port 2525: the relay's own port-25 listener (step 8)
    takes every address of this one host."""
    network()
    # Gmail offers STARTTLS, and the shipped shaping for Google requires it.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=gmail-smtp-in.l.google.com", "-keyout", ROOT + "/mx.key", "-out",
                    ROOT + "/mx.crt"], check=True, capture_output=True)
    mx_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    mx_tls.load_cert_chain(ROOT + "/mx.crt", ROOT + "/mx.key")
    sinks = [Controller(Gmail(), hostname=h, port=MX_PORT, ready_timeout=10, tls_context=mx_tls)
             for h in (GMAIL_V4, GMAIL_V6)]
    started = []
    try:
        for sink in sinks:
            sink.start()
            started.append(sink)
        yield sinks
    finally:
        for sink in started:
            sink.stop()


# --- what the steps leave ------------------------------------------------------------------------
@harness.fixture
def step2():
    """Step 2 run: relayctl init's result."""
    return run_block(2, shell_block(steps()[2]))


@harness.fixture
def dns_port():
    """A DNS server serving the zone step 2 printed, the reverse zones and Gmail's; the config
    aimed at it and at Gmail's port."""
    step2()
    network()
    zone = open(ROOT + "/example.com.zone").read()
    # The relay asks the test's DNS server; an operator's relay asks the system resolver.
    zone_data = [l for l in zone.splitlines() if l.strip() and not l.startswith(";")]
    local_data = "".join("  local-data: '%s'\n" % l for l in zone_data)
    with local_dns.unbound(ROOT, """  local-zone: "example.com." static
  local-zone: "113.0.203.in-addr.arpa." static
  local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." static
  local-zone: "gmail.com." static
  local-data: "gmail.com. 300 IN MX 5 gmail-smtp-in.l.google.com."
  local-zone: "example.net." static
  local-zone: "bank.example." static
  local-data: 'bank.example. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"'
  local-data: '_dmarc.bank.example. 300 IN TXT "v=DMARC1; p=reject"'
  local-zone: "google.com." static
  local-data: "gmail-smtp-in.l.google.com. 300 IN A %s"
  local-data: "gmail-smtp-in.l.google.com. 300 IN AAAA %s"
%s""" % (GMAIL_V4, GMAIL_V6, local_data)) as port:
        conf = open(CONF_PATH).read()
        conf = conf.replace("dns_servers = []", 'dns_servers = ["127.0.0.1:%d"]' % port)
        # Gmail's stand-in shares this host with the relay, whose port-25 listener (step 8) takes
        # every address: it listens on another port, and the relay delivers there.
        conf = conf.replace("mx_port = 25", "mx_port = %d" % MX_PORT)
        open(CONF_PATH, "w").write(conf)
        yield port


@harness.fixture
def step5():
    """Step 5 run twice, for two users: the results."""
    step2()
    block5 = shell_block(steps()[5])
    first = run_block(5, block5, stdin="first-password\n")
    second = run_block(5, block5.replace("app@example.com", "news@example.com"),
                       stdin="second-password\n")
    return first, second


class Relayd:
    """relayd as step 6 starts it: as `relay`, from the unit's ExecStart line, with only
    CAP_NET_BIND_SERVICE."""

    def __init__(self):
        self.proc = None
        self.ready_lines = 0  # "relayd ready" lines in the log so far

    def start(self):
        """The process once a new ready line is in the log, or None (its log printed)."""
        exec_start = moved(re.search(r"(?m)^ExecStart=(.*)$", open(UNIT).read()).group(1)).split()
        p = subprocess.Popen(
            ["setpriv", "--reuid=relay", "--regid=relay", "--init-groups",
             "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"] + exec_start,
            stdout=open(LOG_PATH, "a"), stderr=subprocess.STDOUT)
        self.proc = p
        deadline = time.time() + 30
        while time.time() < deadline and p.poll() is None:
            if open(LOG_PATH).read().count("relayd ready") > self.ready_lines:
                self.ready_lines += 1
                return p
            time.sleep(0.1)
        print(open(LOG_PATH).read()[-3000:])
        return None

    def stop(self, timeout_s=30):
        """SIGTERM, then SIGKILL after timeout_s; the exit status."""
        if self.proc is None:
            return None
        harness.stop_process(self.proc, timeout_s)
        return self.proc.returncode

    def running(self):
        return self.proc is not None and self.proc.poll() is None


@harness.fixture
def relayd():
    """relayd as step 6 starts it, not started yet; stopped at the end."""
    prepared()
    r = Relayd()
    harness.on_failure(lambda: os.path.exists(LOG_PATH) and print(
        "---- relayd's log:\n" + open(LOG_PATH).read()[-6000:]))
    harness.at_exit("relayd", r.stop)
    return r


def running():
    """relayd running as the guide leaves it after step 6."""
    dns_port()
    step5()
    r = relayd()
    if not r.running() and r.start() is None:
        raise RuntimeError("relayd did not start as relay")
    return r


# --- the cases -----------------------------------------------------------------------------------
@harness.case(1, "the README's operator guide has steps 2 to 8")
def guide_steps():
    check(all(n in steps() for n in (2, 4, 5, 6, 7, 8)),
          "the guide has steps 2 to 8: %s" % sorted(steps()))


@harness.case(2, "step 2: create the configuration")
def create_configuration():
    r = step2()
    check(r.returncode == 0, "step 2 (relayctl init ...) succeeds: %s" % r.stderr.strip()[-300:])


@harness.case(3, "step 4: check-dns passes on the zone init printed")
def check_dns():
    port = dns_port()
    block = shell_block(steps()[4]).replace("[--dns-server 198.51.100.53:53]",
                                            "--dns-server 127.0.0.1:%d" % port)
    r = run_block(4, block)
    print(r.stdout)
    check(r.returncode == 0 and re.search(r"(?m)^(FAIL|WARN|SKIP) ", r.stdout) is None and
          len(re.findall(r"(?m)^OK ", r.stdout)) >= 8,
          "step 4: check-dns passes on the zone init printed: exit %d" % r.returncode)


@harness.case(4, "step 5: users, twice, readable by relayd")
def users():
    first, second = step5()
    check(first.returncode == 0, "step 5 (user-add) succeeds: %s" % first.stderr.strip())
    check(second.returncode == 0,
          "step 5 again for a second user succeeds: %s" % second.stderr.strip())


@harness.case(5, "step 6: relayd as relay, from the unit's ExecStart, restarted")
def relayd_as_relay():
    unit = open(UNIT).read()
    check("CAP_NET_BIND_SERVICE" in unit and re.search(r"(?m)^User=relay$", unit) is not None,
          "the unit runs relayd as relay with CAP_NET_BIND_SERVICE")
    dns_port()
    step5()
    r = relayd()
    r.stop()
    check(r.start() is not None, "relayd starts as relay on ports 587 and 465")
    check(r.stop() == 0, "relayd stops cleanly")
    check(r.start() is not None, "relayd starts again after the second user-add (users file kept "
          "readable by relay)")


@harness.case(6, "step 7: send-test reaches Gmail from the pool, EHLO by PTR, signed twice")
def send_test():
    gmail()
    running()
    m = re.search(r"`(relayctl send-test [^`]*)`", steps()[7].replace("\n   ", " "))
    check(m is not None, "step 7 names a relayctl send-test command")
    cmd = m.group(1) + " --config /etc/relay/relayd.toml --wait 20"
    r = run_block(7, cmd, stdin="first-password\n")
    print(r.stdout + r.stderr)
    check(r.returncode == 0 and re.search(r"(?m)^delivered ", r.stdout) is not None,
          "step 7: send-test is accepted and delivered")
    with lock:
        got = [x for x in received if "you@gmail.com" in x[3]]
    check(len(got) == 1, "Gmail's MX received the test message once")
    if got:
        peer, ehlo, mail_from, rcpts, content, over_tls = got[0]
        check(over_tls, "over STARTTLS")
        ptr = dns.resolver.Resolver(configure=False)
        ptr.nameservers, ptr.port = ["127.0.0.1"], dns_port()
        names = [str(a).rstrip(".") for a in ptr.resolve_address(peer)]
        check(peer == "203.0.113.25" or peer.startswith("2001:db8:25::"),
              "it left from a source of the pool: %s" % peer)
        check(ehlo in names, "the EHLO name %s is the source's PTR name %s" % (ehlo, names))

        def dnsfunc(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            ans = ptr.resolve(name.rstrip("."), "TXT")
            return b"".join(b"".join(x.strings) for x in ans)

        check(content.count(b"DKIM-Signature:") == 2, "signed twice (RSA and Ed25519)")
        check(all(dkim.DKIM(content).verify(idx=i, dnsfunc=dnsfunc) for i in range(2)),
              "both signatures verify against the published records")


@harness.case(7, "step 8: receiving; postmaster and a catch-all forwarded, a spoof refused")
def receiving():
    gmail()
    r = running()
    aliases = ROOT + "/etc/relay/aliases/example.com"
    text = open(aliases).read()
    text = text.replace("# postmaster: you@example.net", "postmaster: you@gmail.com")
    text = text.replace("# dmarc-reports: you@example.net", "dmarc-reports: you@gmail.com")
    open(aliases, "w").write(text + "*: you@gmail.com\n")
    conf = open(CONF_PATH).read()
    block = conf[conf.index("# [receive]\n"):]
    block = block[:block.index("\n\n") + 1]
    conf = conf.replace(block, re.sub(r"(?m)^# ", "", block))
    open(CONF_PATH, "w").write(conf)
    check('listen = ["0.0.0.0:25", "[::]:25"]' in conf and 'domains = ["example.com"]' in conf,
          "the config's [receive] is what step 8 says")
    r.stop()
    check(r.start() is not None, "relayd restarts with receiving on port 25")
    p = run(["swaks", "--server", "203.0.113.25:25", "--helo", "outside.example.net", "--from",
             "someone@example.net", "--to", "postmaster@example.com", "--h-Subject",
             "to postmaster"])
    check(p.returncode == 0 and "250 2.0.0 Ok: queued" in p.stdout,
          "postmaster@example.com is accepted on port 25")
    p = run(["swaks", "--server", "2001:db8:25::1", "--port", "25", "--helo",
             "outside.example.net", "--from", "someone@example.net", "--to", "anyone@example.com",
             "--h-Subject", "catch-all"])
    check(p.returncode == 0 and "250 2.0.0 Ok: queued" in p.stdout,
          "anything@example.com is accepted on port 25 over IPv6")
    deadline = time.time() + 20
    while time.time() < deadline:
        with lock:
            fwd = [x for x in received if b"Subject: to postmaster" in x[4] or
                   b"Subject: catch-all" in x[4]]
        if len(fwd) >= 2:
            break
        time.sleep(0.2)
    check(len(fwd) == 2 and all(x[3] == ["you@gmail.com"] for x in fwd),
          "both are forwarded to you@gmail.com")
    check(all(re.fullmatch(r"SRS0=[^=]+=[A-Z2-7]{2}=example\.net=someone@example\.com", x[2])
              for x in fwd), "with an SRS envelope sender: %s" % [x[2] for x in fwd])

    # A spoof of a p=reject domain, from an address outside its SPF, unsigned: refused at the end
    # of DATA, so that nothing is forwarded and no bounce goes to the forged sender.
    p = run(["swaks", "--server", "203.0.113.25:25", "--helo", "outside.example.net", "--from",
             "ceo@bank.example", "--to", "anyone@example.com", "--h-Subject", "spoofed"])
    check(p.returncode != 0 and "550 5.7.1" in p.stdout,
          "a p=reject spoof is refused with 550 5.7.1: %s" %
          [l for l in p.stdout.splitlines() if l.startswith("<** ")])
    time.sleep(2)
    with lock:
        check(not [x for x in received if b"Subject: spoofed" in x[4] or not x[2]],
              "nothing of it is forwarded, and no bounce is sent")


@harness.case(8, "the metrics endpoint answers after an idle minute")
def metrics_after_idle_minute():
    running()
    time.sleep(61)
    try:
        body = urllib.request.urlopen("http://127.0.0.1:9587/metrics", timeout=10).read()
        ok = b"relay_messages_received" in body
    except OSError as e:
        print("metrics: %s" % e)
        ok = False
    check(ok, "the metrics endpoint answers after an idle minute")


harness.main()
