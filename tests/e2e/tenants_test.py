#!/usr/bin/python3
"""End-to-end: many senders on one relay (issue 16, item 1: tenants and campaigns).

relayd on loopback, with two named tenants,

  [[tenants]] name = "shop"  domains = ["example.com"]             (app@example.com sends for it)
  [[tenants]] name = "news"  users = ["news@example.net"]  priority = "bulk"

delivers through a real DNS server (unbound) to a real receiver (aiosmtpd) that refuses
gone*@example.org for good (550 5.1.1) and defers later*@example.org (451 4.7.1). Shows: the
campaign a client names in X-Relay-Campaign or with the MAIL parameter XCAMPAIGN= travels with the
message into the delivery log, the DSN, the metrics and `relayctl queue`, together with the
tenant and the class; the client's fields never reach the receiver (and the DKIM signature is
made without them); a bad value is refused with 550 5.6.0 naming the field; a bounce suppresses
the address for its tenant only.

usage: tenants_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, RELAYCTL = harness.args()[0], harness.args()[1]
TMP = harness.scratch("tenants-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
NEWS_PASSWORD = "news-password-0123456789"
REPLIES = {
    "gone": "550 5.1.1 The email account that you tried to reach does not exist.",
    "later": "451 4.7.1 try again later",
}


@harness.fixture
def sink():
    s = local_smtp.Sink(lambda address: next(
        (reply for prefix, reply in REPLIES.items() if address.startswith(prefix)), None))
    with local_smtp.serving(s, SINK_IP, MX_PORT, TMP):
        yield s


@harness.fixture
def dkim_key():
    """(private key path, DNS TXT value) for selector "s1" of example.com."""
    return local_dns.dkim_key(TMP, "example")


@harness.fixture
def next_dkim_key():
    """The key a reload rotates to: selector "s2" of example.com."""
    return local_dns.dkim_key(TMP, "example-next")


@harness.fixture
def dns_port():
    zones = local_dns.mx_zones(("example.org", "example.com", "example.net"), SINK_IP)
    zones += "  local-data: 's1._domainkey.example.com. 300 IN TXT %s'\n" % dkim_key()[1]
    zones += "  local-data: 's2._domainkey.example.com. 300 IN TXT %s'\n" % next_dkim_key()[1]
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def config():
    """(the config's path, app@example.com's password); news@example.net is a second user."""
    conf, password = relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("tn-", dir="/tmp") + "/control.sock"}),
        append="""
[[tenants]]
name = "shop"
domains = ["example.com"]

[[tenants]]
name = "news"
users = ["news@example.net"]
priority = "bulk"

[[dkim.key]]
domain = "example.com"
selector = "s1"
key = "%s"
""" % dkim_key()[0])
    r = subprocess.run([RELAYCTL, "user-add", "news@example.net", "--allow", "@example.net",
                        "--config-dir", TMP + "/relay", "--scrypt-log2-n", "10"],
                       input=NEWS_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "relayctl user-add news@example.net: %s" % r.stderr.strip())
    return conf, password


@harness.fixture
def relay():
    sink()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


def submit(user, password, sender, rcpts, headers="", mail_options=()):
    """Sends one message; returns (code, text) of the answer to its data, or of the refusal of its
    MAIL or first RCPT."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login(user, password)
    body = ("From: %s\r\nTo: %s\r\nSubject: tenants\r\nMessage-ID: <%s@client.test>\r\n%s\r\n"
            "Hi.\r\n" % (sender, ", ".join(rcpts), time.time_ns(), headers))
    try:
        s.sendmail(sender, rcpts, body, mail_options=list(mail_options))
        result = (250, "")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        result = (code, text.decode(errors="replace"))
    except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
        result = (e.smtp_code, e.smtp_error.decode(errors="replace"))
    try:
        s.quit()
    except smtplib.SMTPException:
        pass
    return result


def shop(rcpts, headers="", mail_options=()):
    return submit("app@example.com", config()[1], "app@example.com", rcpts, headers, mail_options)


def news(rcpts, headers="", mail_options=()):
    return submit("news@example.net", NEWS_PASSWORD, "news@example.net", rcpts, headers,
                  mail_options)


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def wait_for(predicate, what):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (WAIT_S, what))
    return None


def lines(event, rcpt):
    return wait_for(lambda: [e for e in events()
                             if e.get("event") == event and e.get("recipient") == rcpt],
                    "a %s line for %s" % (event, rcpt))


def queue(*args):
    r = subprocess.run([RELAYCTL, "queue"] + list(args) + ["--spool", TMP + "/relay/spool"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


@harness.case(1, "a named tenant's campaign travels with its message; the fields do not")
def campaign_header():
    check(news(["reader@example.org"], "X-Relay-Campaign: spring-2027\r\n") == (250, ""),
          "news@example.net submits with X-Relay-Campaign")
    for event in ("received", "delivered"):
        found = lines(event, "reader@example.org") or [{}]
        check(found[0].get("tenant") == "news" and found[0].get("campaign") == "spring-2027",
              "the %s line names tenant news and campaign spring-2027: %s" % (event, found[0]))
    got = sink().delivered_to("reader@example.org")
    data = got[0][2] if got else b""
    check(b"Subject: tenants" in data and b"X-Relay-Campaign" not in data,
          "the receiver gets the message without X-Relay-Campaign")


def dkim_dns(name, timeout=5):
    """TXT lookups for python3-dkim, answered by the test's unbound."""
    import dns.resolver
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port = ["127.0.0.1"], dns_port()
    name = name.decode() if isinstance(name, bytes) else name
    ans = r.resolve(name.rstrip("."), "TXT", lifetime=5)
    return b"".join(b"".join(x.strings) for x in ans)


@harness.case(2, "XCAMPAIGN= names the campaign on the MAIL command; the header wins over it")
def campaign_parameter():
    check(shop(["buyer@example.org"], mail_options=["XCAMPAIGN=receipts"]) == (250, ""),
          "MAIL FROM with XCAMPAIGN=receipts")
    found = (lines("delivered", "buyer@example.org") or [{}])[0]
    check(found.get("tenant") == "shop" and found.get("campaign") == "receipts",
          "delivered line: tenant shop, campaign receipts: %s" % found)
    check(shop(["second@example.org"], "X-Relay-Campaign: header-wins\r\n",
               mail_options=["XCAMPAIGN=receipts"]) == (250, ""), "both given")
    found = (lines("delivered", "second@example.org") or [{}])[0]
    check(found.get("campaign") == "header-wins", "the header wins: %s" % found)
    got = sink().delivered_to("second@example.org")
    data = got[0][2] if got else b""
    check(b"X-Relay-Campaign" not in data and b"DKIM-Signature:" in data,
          "delivered signed, without the field")
    import dkim  # python3-dkim: the signature was made over the message as delivered
    check(dkim.verify(data, dnsfunc=dkim_dns), "the DKIM signature verifies without the field")


@harness.case(3, "a campaign or class the relay cannot take is refused, naming the field")
def bad_values():
    code, text = shop(["x@example.org"], "X-Relay-Campaign: bad\x01name\r\n")
    check(code == 550 and text.startswith("5.6.0 X-Relay-Campaign:"),
          "a control character in the campaign: 550 5.6.0: %d %s" % (code, text))
    code, text = shop(["x@example.org"], "X-Relay-Priority: urgent\r\n")
    check(code == 550 and "X-Relay-Priority: transactional, normal or bulk" in text,
          "an unknown class: 550 5.6.0: %d %s" % (code, text))
    code, text = shop(["x@example.org"], mail_options=["XCAMPAIGN=a+0Ab"])
    check(code == 501, "XCAMPAIGN with a control character: 501: %d %s" % (code, text))
    check(not sink().delivered_to("x@example.org"), "nothing was queued")


@harness.fixture
def bounced():
    """A shop message with a campaign to gone@example.org, bounced; its DSN came back."""
    check(shop(["gone@example.org"], "X-Relay-Campaign: receipts\r\n") == (250, ""),
          "a message to gone@example.org")
    lines("bounced", "gone@example.org")
    return wait_for(lambda: [m for m in sink().delivered_to("app@example.com")
                             if m[0] in ("", "<>") and b"gone@example.org" in m[2]],
                    "the DSN about gone@example.org")


@harness.case(4, "the DSN names the tenant and the campaign")
def dsn_fields():
    dsns = bounced() or [("", [], b"")]
    text = dsns[0][2].decode(errors="replace")
    check("X-Relay-Tenant: shop\r\n" in text and "X-Relay-Campaign: receipts\r\n" in text,
          "per-message fields X-Relay-Tenant and X-Relay-Campaign in the DSN")
    sent = (lines("dsn_sent", "app@example.com") or [{}])[0]
    check(sent.get("tenant") == "shop" and sent.get("campaign") == "receipts",
          "the dsn_sent line names both: %s" % sent)


@harness.case(5, "a bounce suppresses the address for its tenant, not for another tenant")
def suppression_per_tenant():
    bounced()
    code, text = wait_for(lambda: (lambda r: r if r[0] == 550 else None)(
        shop(["gone@example.org"])), "RCPT to gone@example.org refused for shop") or (0, "")
    check(code == 550 and "is on the suppression list of shop" in text,
          "shop's next RCPT to the address: 550 naming shop's list: %d %s" % (code, text))
    check(news(["gone@example.org"]) == (250, ""), "news@example.net may still mail it")


@harness.case(6, "metrics count recipients by tenant and by campaign")
def metrics():
    check(news(["counted@example.org"], "X-Relay-Campaign: spring-2027\r\n") == (250, ""),
          "a news message")
    lines("delivered", "counted@example.org")
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()
    for series in ('relay_tenant_recipients_total{result="delivered",tenant="news"}',
                   'relay_campaign_recipients_total{result="delivered",campaign="spring-2027"}'):
        values = [l.split()[-1] for l in body.splitlines() if l.startswith(series + " ")]
        check(values and int(values[0]) >= 1, "%s counts the delivery: %s" % (series, values))


@harness.case(7, "relayctl queue shows, lists and summarises by tenant, campaign and class")
def queue_commands():
    check(news(["later@example.org"], "X-Relay-Campaign: autumn\r\n") == (250, ""),
          "a news message the receiver defers")
    lines("deferred", "later@example.org")
    rc, out = queue("summary", "--by", "tenant")
    row = [l.split() for l in out.splitlines() if l.startswith("news ")]
    check(rc == 0 and row and row[0][1] == "1", "summary --by tenant: news has 1: %s" % out)
    rc, out = queue("summary", "--by", "priority")
    check(rc == 0 and any(l.split()[:2] == ["bulk", "1"] for l in out.splitlines()),
          "summary --by priority: the tenant's class, bulk: %s" % out)
    rc, out = queue("list", "--campaign", "autumn")
    ids = [l.split()[0] for l in out.splitlines()[1:] if l.strip()]
    check(rc == 0 and len(ids) == 1, "list --campaign autumn: one message: %s" % out)
    rc, out = queue("show", ids[0] if ids else "0-0-0")
    check(rc == 0 and "tenant: news\ncampaign: autumn\npriority: bulk\n" in out,
          "show names tenant, campaign and class: %s" % out)


def control(*args):
    r = subprocess.run([RELAYCTL, "queue"] + list(args) + ["--config", config()[0]],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


@harness.case(8, "relayctl queue retry, bounce and delete by tenant, campaign and domain")
def selectors():
    relay()
    for n in range(3):
        check(news(["later%d@example.org" % n], "X-Relay-Campaign: winter sale\r\n") == (250, ""),
              "a deferred news message %d" % n)
        lines("deferred", "later%d@example.org" % n)
    rc, out = control("retry", "--tenant", "news", "--domain", "example.org")
    check(rc == 0 and "messages retried (tenant news, domain example.org)" in out,
          "retry by tenant and domain: %s" % out.strip())
    rc, out = control("bounce", "--campaign", "winter sale", "--domain", "other.example")
    check(rc == 0 and "0 messages bounced" in out, "a domain with nothing: 0: %s" % out.strip())
    wait_for(lambda: len([e for e in events() if e.get("event") == "deferred" and
                          e.get("recipient", "").startswith("later")]) >= 6,
             "the retried messages deferred again")
    rc, out = control("delete", "--campaign", "winter sale", "--sender", "news@example.net")
    counts = [int(n) for n in re.findall(r"(\d+) messages deleted", out)]
    check(rc == 0 and sum(counts) == 3, "delete by campaign, over the shards: 3: %s" % out.strip())
    deleted = wait_for(lambda: [e for e in events() if e.get("event") == "deleted" and
                                e.get("recipient", "").startswith("later")],
                       "deleted lines for the campaign's recipients") or []
    check(len(deleted) == 3 and all(e.get("campaign") == "winter sale" for e in deleted),
          "three deleted lines, each naming the campaign: %d" % len(deleted))
    time.sleep(0.5)
    check(not [m for m in sink().delivered_to("news@example.net")
               if b"later0@example.org" in m[2]], "delete sends no DSN")
    rc, out = queue("list", "--campaign", "winter sale")
    check(rc == 0 and len([l for l in out.splitlines()[1:] if l.strip()]) == 0,
          "nothing left of the campaign: %s" % out)
    check("control: uid 0 pid " in relay().log() and 'asked "delete --campaign winter+20sale' in
          relay().log(), "the log names who asked for what")
    rc, out = control("bounce", "--tenant")
    check(rc == 2, "a selector without its value: usage: %s" % out.strip())


@harness.case(9, "relayctl reload rotates the DKIM key: the next message signs with the new selector")
def dkim_rotation():
    import dkim  # python3-dkim
    relay()
    conf_text = open(config()[0]).read()
    rotated = conf_text.replace('selector = "s1"\nkey = "%s"' % dkim_key()[0],
                                'selector = "s2"\nkey = "%s"' % next_dkim_key()[0])
    check(rotated != conf_text, "the test edits the [[dkim.key]] entry")

    def signed(rcpt):
        check(shop([rcpt]) == (250, ""), "shop submits to %s" % rcpt)
        wait_for(lambda: sink().delivered_to(rcpt), "%s is delivered" % rcpt)
        got = sink().delivered_to(rcpt)
        return got[0][2] if got else b""

    try:
        open(config()[0], "w").write(rotated)
        r = subprocess.run([RELAYCTL, "reload", "--config", config()[0]], capture_output=True,
                           text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and "DKIM keys, shaping rules, tenants and egress pools reloaded" in out and
              "dkim" not in out.split("reloaded;")[-1],
              "relayctl reload applies the new key, and names no DKIM setting for a restart: %s"
              % out)
        data = signed("rotated@example.org")
        check(b"s=s2;" in data and b"s=s1;" not in data, "signed with s2 only")
        check(dkim.verify(data, dnsfunc=dkim_dns), "the s2 signature verifies")
        # A key file that cannot be read: the reload says so and signing stays with s2.
        open(config()[0], "w").write(rotated.replace(next_dkim_key()[0], TMP + "/missing.pem"))
        r = subprocess.run([RELAYCTL, "reload", "--config", config()[0]], capture_output=True,
                           text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 1 and "missing.pem" in out and "stays" in out,
              "a bad key is refused with its file named, the running keys kept: %s" % out)
        data = signed("kept@example.org")
        check(b"s=s2;" in data and dkim.verify(data, dnsfunc=dkim_dns), "still signed with s2")
    finally:
        open(config()[0], "w").write(conf_text)


harness.main()
