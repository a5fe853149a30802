#!/usr/bin/python3
"""End-to-end: bounces, complaints and unsubscribes that come back later (issue 15, items 2, 4).

relayd on loopback, with [[feedback.verp]] for example.com at bounce.example.com and a port-25
listener, delivers through a real DNS server (unbound) to a real receiver (aiosmtpd) that takes
everything. The test then plays the remote side as receivers do: it sends, to the return path
each copy left with, an RFC 3464 DSN, an Exim-style bounce text, an ARF complaint (RFC 5965),
an out-of-office reply, and forged reports. Shows: each recipient's copy leaves in its own
transaction with its own return path; a returned bounce or complaint is matched to its message
and recipient, classified, logged as an event, and puts the address on example.com's suppression
list, so the next RCPT to it is refused; a report sent to the feedback-loop address is matched
by the return path it quotes; an auto-reply, a report naming an address its token was not made
for, and an address of the bounce domain that is no return path are dropped or refused;
`relayctl dns-records` prints the bounce domain's MX and SPF.

One-click unsubscribe (RFC 8058): mail marked bulk (X-Relay-Bulk, removed) leaves with
List-Unsubscribe (an HTTPS link and a mailto at the bounce domain) and List-Unsubscribe-Post,
both covered by its DKIM signature (checked with python3-dkim against the key in the test's DNS);
curl's POST to the link, over HTTPS verified against the relay's certificate, suppresses the
address and logs an unsubscribed event, a GET only shows a page; a mail to the mailto from the
subscriber does the same.

usage: returned_mail_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
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
TMP = harness.scratch("returned-")
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()
WAIT_S = 30
NEW_SOURCE = "127.0.0.3"  # in warm-up: 2 messages a day per site
VERP = re.compile(r"^bounces\+[0-9a-f-]+\.\d+\.[a-z2-7]{12}@bounce\.example\.com$")


@harness.fixture
def sink():
    s = local_smtp.Sink()
    with local_smtp.serving(s, SINK_IP, MX_PORT, TMP):
        yield s


@harness.fixture
def dkim_key():
    """(private key path, DNS TXT value) for selector "s1" of example.com."""
    return local_dns.dkim_key(TMP, "example")


@harness.fixture
def dns_port():
    zones = local_dns.mx_zones(("example.org", "example.com", "warm.example"), SINK_IP)
    zones += "  local-data: 's1._domainkey.example.com. 300 IN TXT %s'\n" % dkim_key()[1]
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def config():
    """(the config's path, app@example.com's password)."""
    conf_dir = TMP + "/relay"
    conf, password = relayd_process.init(RELAYD, conf_dir, relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT, metrics_port=METRICS_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("rm-", dir="/tmp") + "/control.sock"}),
        append="""
[receive]
listen = ["127.0.0.1:0"]
domains = ["local.test"]
aliases_dir = "aliases"
spf = false
dkim = false
arc = false
dmarc = false

[[feedback.verp]]
domain = "example.com"
bounce_domain = "bounce.example.com"

[[delivery.source]]
name = "usual"
address = "127.0.0.4"
ehlo_name = "usual.example.com"

[[delivery.source]]
name = "new"
address = "%s"
ehlo_name = "new.example.com"
warmup = [2]
warmup_start = "%s"

[[delivery.pool]]
name = "default"
sources = ["usual"]

[[delivery.pool]]
name = "warming"
sources = ["new"]
campaigns = ["warm-up"]

[unsubscribe]
url = "https://relay.example.com"
listen = ["127.0.0.1:0"]

[[dkim.key]]
domain = "example.com"
selector = "s1"
key = "%s"
""" % (NEW_SOURCE, time.strftime("%Y-%m-%d", time.gmtime()), dkim_key()[0]))
    os.makedirs(conf_dir + "/aliases", exist_ok=True)
    open(conf_dir + "/aliases/local.test", "w").write("postmaster: owner@example.org\n")
    return conf, password


@harness.fixture
def relay():
    sink()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


def submit(rcpts, subject="hello"):
    """Sends one message from app@example.com to `rcpts`: ({rcpt: (code, text)} refused at RCPT,
    whether it was queued)."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    body = ("From: app@example.com\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n"
            "\r\nHi.\r\n" % (", ".join(rcpts), subject, subject))
    try:
        refused, queued = s.sendmail("app@example.com", rcpts, body), True
    except smtplib.SMTPRecipientsRefused as e:
        refused, queued = e.recipients, False
    s.quit()
    return {r: (code, text.decode(errors="replace")) for r, (code, text) in refused.items()}, queued


def wait_for(predicate, what):
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (WAIT_S, what))
    return None


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def copy_for(rcpt):
    """(return path, content) of the copy the sink received for `rcpt`."""
    got = wait_for(lambda: sink().delivered_to(rcpt), "a copy for %s reaches the MX" % rcpt)
    return (got[-1][0], got[-1][2]) if got else ("", b"")


def delivered(rcpt):
    """Sends a message to `rcpt` alone and waits for it: (queue id, return path, content)."""
    refused, queued = submit([rcpt], subject=rcpt.split("@")[0])
    check(queued and not refused, "the relay takes %s" % rcpt)
    line = wait_for(lambda: [e for e in events() if e.get("event") == "delivered" and
                             e.get("recipient") == rcpt], "%s is delivered" % rcpt)
    return (line[0]["queue_id"] if line else ""), *copy_for(rcpt)


def send_back(return_path, message, mail_from="", to_port=None):
    """Sends `message` to `return_path` on relayd's port 25, as a remote MTA returns a bounce:
    (code, text) of the reply to DATA, or of the RCPT refusal."""
    s = smtplib.SMTP("127.0.0.1", to_port or relay().port("port 25 (receive)"),
                     local_hostname="mx.example.org", timeout=30)
    s.ehlo()
    s.mail(mail_from)
    code, text = s.rcpt(return_path)
    if code != 250:
        s.quit()
        return code, text.decode(errors="replace")
    code, text = s.data(message.encode())
    s.quit()
    return code, text.decode(errors="replace")


def dsn(rcpt, original, status="5.1.1",
        diagnostic="smtp; 550-5.1.1 The email account that you tried to reach does not exist.\r\n"
                   "    Please try double-checking the recipient's email address for typos."):
    """An RFC 3464 DSN, as Postfix writes them, about `rcpt`, quoting `original`'s header."""
    head = original.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    return ("From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
            "To: whoever\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            "\tboundary=\"B1\"\r\n\r\n"
            "--B1\r\nContent-Type: text/plain\r\n\r\n"
            "I'm sorry to have to inform you that your message could not be delivered.\r\n"
            "\r\n--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.org\r\nArrival-Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
            "\r\nFinal-Recipient: rfc822; %s\r\nOriginal-Recipient: rfc822;%s\r\n"
            "Action: failed\r\nStatus: %s\r\nRemote-MTA: dns; store.example.org\r\n"
            "Diagnostic-Code: %s\r\n"
            "\r\n--B1\r\nContent-Type: text/rfc822-headers\r\n\r\n%s\r\n\r\n--B1--\r\n"
            % (rcpt, rcpt, status, diagnostic, head))


def arf(rcpt, original, return_path, feedback_type="abuse"):
    """An ARF complaint (RFC 5965) about `original`, sent to `rcpt`, as feedback loops send."""
    return ("From: feedback@fbl.example.org\r\nTo: whoever\r\nSubject: complaint about message\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n"
            "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
            "\r\n--F\r\nContent-Type: message/feedback-report\r\n\r\n"
            "Feedback-Type: %s\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
            "Original-Mail-From: <%s>\r\nOriginal-Rcpt-To: <%s>\r\n"
            "Source-IP: 127.0.0.1\r\nReported-Domain: example.com\r\n"
            "\r\n--F\r\nContent-Type: message/rfc822\r\n\r\n%s\r\n--F--\r\n"
            % (feedback_type, return_path, rcpt,
               original.decode(errors="replace").replace("\r\n.", "\r\n..")))


def line_about(event, rcpt):
    found = wait_for(lambda: [e for e in events() if e.get("event") == event and
                              e.get("recipient") == rcpt and e.get("feedback")],
                     "a %s line from a report about %s" % (event, rcpt))
    return found[-1] if found else {}


def refused_now(rcpt):
    refused, _ = submit([rcpt])
    return refused.get(rcpt, (0, ""))


def metric(name):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                  timeout=10).read().decode()
    m = re.search("^" + re.escape(name) + r" (\d+)$", body, re.M)
    return int(m.group(1)) if m else 0


@harness.case(1, "each recipient's copy leaves in its own transaction with its own return path")
def own_return_paths():
    refused, queued = submit(["one@example.org", "two@example.org"], subject="pair")
    check(queued and not refused, "the relay takes both recipients")
    paths = {}
    for rcpt in ("one@example.org", "two@example.org"):
        copies = wait_for(lambda: sink().delivered_to(rcpt), "a copy for %s" % rcpt) or []
        for mail_from, rcpts, _ in copies:
            check(rcpts == [rcpt], "the copy for %s is addressed to it alone: %s" % (rcpt, rcpts))
            check(VERP.match(mail_from), "its return path is a VERP address: %s" % mail_from)
            paths[rcpt] = mail_from
    check(len(set(paths.values())) == 2, "two different return paths: %s" % paths)
    lines = [e for e in events() if e.get("event") == "received" and "pair" in str(e)]
    check(all(e.get("sender") == "app@example.com" for e in lines),
          "the message's sender stays app@example.com in the log (DSNs of our own go there)")


@harness.case(2, "a DSN returned later is matched, classified, logged, and suppresses the address")
def returned_dsn():
    queue_id, path, content = delivered("gone@example.org")
    code, text = send_back(path, dsn("gone@example.org", content))
    check(code == 250, "port 25 takes the DSN: %d %s" % (code, text))
    line = line_about("bounced", "gone@example.org")
    check(line.get("queue_id") == queue_id and line.get("category") == "bad-mailbox" and
          line.get("feedback") == "dsn" and line.get("reply", {}).get("code") == 550 and
          line.get("reply", {}).get("enhanced") == "5.1.1",
          "a bounced line with the message's queue id, 550 5.1.1, bad-mailbox: %s" % line)
    code, text = refused_now("gone@example.org")
    check(code == 550 and "on the suppression list of example.com: bad-mailbox bounce" in text
          and queue_id in text,
          "the next RCPT to it is refused, naming the reason and the message: %d %s"
          % (code, text))
    check(metric('relay_feedback_reports_total{result="bounce"}') >= 1,
          "relay_feedback_reports_total counts the bounce")


@harness.case(3, "a bounce text without a report part (Exim) is read the same way")
def returned_bounce_text():
    queue_id, path, _ = delivered("closed@example.org")
    text_bounce = ("From: Mail Delivery System <Mailer-Daemon@mx.example.org>\r\n"
                   "To: whoever\r\nSubject: Mail delivery failed: returning message to sender\r\n"
                   "\r\nThis message was created automatically by mail delivery software.\r\n\r\n"
                   "A message that you sent could not be delivered to one or more of its\r\n"
                   "recipients. This is a permanent error. The following address(es) failed:\r\n"
                   "\r\n  closed@example.org\r\n    host store.example.org [192.0.2.7]\r\n"
                   "    SMTP error from remote mail server after RCPT TO:<closed@example.org>:\r\n"
                   "    550 5.2.1 The email account that you tried to reach is disabled.\r\n")
    code, text = send_back(path, text_bounce)
    check(code == 250, "port 25 takes the bounce text: %d %s" % (code, text))
    line = line_about("bounced", "closed@example.org")
    check(line.get("queue_id") == queue_id and line.get("category") == "inactive-mailbox" and
          line.get("feedback") == "bounce-text",
          "a bounced line, inactive-mailbox, from a bounce text: %s" % line)
    check(refused_now("closed@example.org")[0] == 550, "the next RCPT to it is refused")


@harness.case(4, "an ARF complaint is matched, logged as complained, and suppresses the address")
def returned_complaint():
    queue_id, path, content = delivered("angry@example.org")
    code, text = send_back(path, arf("angry@example.org", content, path))
    check(code == 250, "port 25 takes the complaint: %d %s" % (code, text))
    line = line_about("complained", "angry@example.org")
    check(line.get("queue_id") == queue_id and line.get("feedback") == "complaint" and
          line.get("feedback_type") == "abuse",
          "a complained line with the queue id and the feedback type: %s" % line)
    code, text = refused_now("angry@example.org")
    check(code == 550 and "complaint" in text, "the next RCPT is refused: %d %s" % (code, text))


@harness.case(5, "a complaint to the feedback-loop address is matched by the return path it quotes")
def complaint_to_loop_address():
    queue_id, path, content = delivered("fbl@example.org")
    code, text = send_back("bounces@bounce.example.com", arf("fbl@example.org", content, path))
    check(code == 250, "the feedback-loop address takes it: %d %s" % (code, text))
    line = line_about("complained", "fbl@example.org")
    check(line.get("queue_id") == queue_id, "matched to its message: %s" % line)


@harness.case(6, "auto-replies, forged reports and unknown addresses change nothing")
def nothing_from_forgeries():
    before = metric('relay_feedback_reports_total{result="unmatched"}')
    _, path, content = delivered("victim@example.org")
    # A report at victim's return path that names another address: the token was not made for it.
    code, _ = send_back(path, dsn("other@example.org", content.replace(b"victim@", b"other@")))
    check(code == 250, "the forged report is taken (and dropped)")
    wait_for(lambda: metric('relay_feedback_reports_total{result="unmatched"}') > before,
             "the forged report is counted as unmatched")
    # An out-of-office reply at the same return path.
    vacation = ("From: victim@example.org\r\nTo: whoever\r\nSubject: Out of Office: hello\r\n"
                "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n")
    code, _ = send_back(path, vacation)
    check(code == 250, "the auto-reply is taken (and dropped)")
    wait_for(lambda: metric('relay_feedback_reports_total{result="auto-reply"}') >= 1,
             "the auto-reply is counted")
    for rcpt in ("victim@example.org", "other@example.org"):
        refused, queued = submit([rcpt])
        check(queued and not refused, "%s is not suppressed" % rcpt)
    check(not [e for e in events() if e.get("feedback") and
               e.get("recipient") in ("victim@example.org", "other@example.org")],
          "no event about either address")
    code, text = send_back("bounces+junk@bounce.example.com", vacation)
    check(code == 550, "an address of the bounce domain that is no return path: 550: %d %s"
          % (code, text))
    forged = re.sub(r"\.[a-z2-7]{12}@", "." + "a" * 12 + "@", path)
    code, _ = send_back(forged, dsn("victim@example.org", content))
    check(code == 250 and refused_now("victim@example.org")[0] == 0,
          "a return path with a forged MAC changes nothing")


@harness.case(7, "relayctl dns-records prints the bounce domain's MX and SPF")
def dns_records():
    r = subprocess.run([RELAYCTL, "dns-records", "--config", config()[0], "--domain",
                        "example.com"], capture_output=True, text=True, timeout=60)
    out = r.stdout
    check(r.returncode == 0, "relayctl dns-records: %s" % r.stderr.strip())
    check(re.search(r"^bounce\.example\.com\.\s+\d+\s+IN\s+MX\s+10 relay\.example\.com\.$", out,
                    re.M), "an MX for the bounce domain naming the relay: %s" % out[-800:])
    spf = re.search(r"^example\.com\.\s+\d+\s+IN\s+TXT\s+(\".*\")$", out, re.M)
    check(spf and re.search(r"^bounce\.example\.com\.\s+\d+\s+IN\s+TXT\s+" + re.escape(
        spf.group(1)) + "$", out, re.M), "the bounce domain's SPF is the domain's")


def unsubscribe_port():
    return relayd_process.port(relay().ready, "unsubscribe")


def bulk_copy(rcpt):
    """Sends a bulk message (X-Relay-Bulk) to `rcpt` alone: the copy the MX received."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    s.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\n"
               "Subject: news\r\nX-Relay-Bulk: yes\r\n\r\nThis week.\r\n" % rcpt)
    s.quit()
    return copy_for(rcpt)[1]


def header(content, name):
    import email
    return email.message_from_bytes(content).get(name, "")


def curl(method, url, data=None):
    """(HTTP status, body) of curl's request, the certificate verified against relayd's."""
    host_port = url.split("/")[2]
    cmd = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
           "--cacert", TMP + "/relay/tls/cert.pem",
           "--resolve", "%s:%d:127.0.0.1" % (host_port.split(":")[0], unsubscribe_port()),
           "-X", method, url.replace(host_port, "%s:%d" % (host_port.split(":")[0],
                                                           unsubscribe_port()))]
    if data is not None:
        cmd += ["-H", "Content-Type: application/x-www-form-urlencoded", "--data", data]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    body, _, code = r.stdout.rpartition("\n")
    return int(code) if code.isdigit() else 0, body + r.stderr


@harness.case(8, "bulk mail carries List-Unsubscribe and -Post, DKIM-covered, marker removed")
def list_unsubscribe_fields():
    content = bulk_copy("reader@example.org")
    lu = header(content, "List-Unsubscribe")
    check(re.match(r"^<https://relay\.example\.com/u/example\.com/[A-Za-z0-9_-]+/[a-z2-7]{16}>,"
                   r"\s*<mailto:unsubscribe\+[a-z2-7]{16}@bounce\.example\.com\?subject="
                   r"unsubscribe>$", lu), "List-Unsubscribe: an HTTPS link and a mailto: %s" % lu)
    check(header(content, "List-Unsubscribe-Post") == "List-Unsubscribe=One-Click",
          "List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    check(b"X-Relay-Bulk" not in content, "the bulk marker is removed")
    sig = header(content, "DKIM-Signature").replace("\r\n", "").replace("\n", "")
    h = re.search(r"h=([^;]+)", sig)
    signed = [x.strip().lower() for x in h.group(1).split(":")] if h else []
    check("list-unsubscribe" in signed and "list-unsubscribe-post" in signed,
          "the DKIM signature covers both fields: h=%s" % signed)
    import dkim
    import dns.resolver

    def dnsfunc(name, timeout=5):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port = ["127.0.0.1"], dns_port()
        name = name.decode() if isinstance(name, bytes) else name
        ans = r.resolve(name.rstrip("."), "TXT", lifetime=5)
        return b"".join(b"".join(x.strings) for x in ans)

    check(dkim.verify(content, dnsfunc=dnsfunc),
          "the signature verifies (python3-dkim, the key from unbound)")
    submit(["plain@example.org"], subject="plain")
    check("List-Unsubscribe" not in copy_for("plain@example.org")[1].decode(errors="replace"),
          "mail not marked bulk gets no List-Unsubscribe")


@harness.case(9, "curl's one-click POST unsubscribes; a GET only shows the page")
def one_click():
    content = bulk_copy("clicker@example.org")
    url = re.search(r"<(https://[^>]+)>", header(content, "List-Unsubscribe"))
    url = url.group(1) if url else "https://relay.example.com/u/none"
    code, body = curl("GET", url)
    check(code == 200 and "<form method=\"post\"" in body, "GET: a page with a form: %d" % code)
    refused, queued = submit(["clicker@example.org"])
    check(queued and not refused, "a GET unsubscribes nobody (link scanners fetch every URL)")
    code, body = curl("POST", url, "List-Unsubscribe=One-Click")
    check(code == 200 and "unsubscribed" in body, "POST: 200: %d %s" % (code, body.strip()))
    line = wait_for(lambda: [e for e in events() if e.get("event") == "unsubscribed" and
                             e.get("recipient") == "clicker@example.org"],
                    "an unsubscribed line")
    check(line and line[0].get("feedback") == "one-click", "via one-click: %s" % line)
    code, text = refused_now("clicker@example.org")
    check(code == 550 and "unsubscribe" in text, "the next RCPT is refused: %d %s" % (code, text))
    code, _ = curl("POST", url, "List-Unsubscribe=One-Click")
    check(code == 200, "a second POST: 200 again")
    forged = re.sub(r"/[a-z2-7]{16}$", "/" + "a" * 16, url)
    code, _ = curl("POST", forged, "List-Unsubscribe=One-Click")
    check(code == 404, "a forged link: 404: %d" % code)
    code, _ = curl("POST", url.replace("clicker", "x"), "nothing")
    check(code in (400, 404), "a POST without the one-click body changes nothing: %d" % code)


@harness.case(10, "a mail to the mailto from the subscriber unsubscribes")
def mailto_unsubscribe():
    content = bulk_copy("writer@example.org")
    m = re.search(r"mailto:([^?>]+)", header(content, "List-Unsubscribe"))
    mailto = m.group(1) if m else "unsubscribe+none@bounce.example.com"
    code, _ = send_back(mailto, "From: someone.else@example.org\r\nSubject: unsubscribe\r\n\r\n",
                        mail_from="someone.else@example.org")
    check(code == 250 and refused_now("writer@example.org")[0] == 0,
          "from another address: taken, nobody unsubscribed")
    code, _ = send_back(mailto, "From: writer@example.org\r\nSubject: unsubscribe\r\n\r\n",
                        mail_from="writer@example.org")
    check(code == 250, "the mailto takes it")
    line = wait_for(lambda: [e for e in events() if e.get("event") == "unsubscribed" and
                             e.get("recipient") == "writer@example.org"], "an unsubscribed line")
    check(line and line[0].get("feedback") == "mailto", "via mailto: %s" % line)
    check(refused_now("writer@example.org")[0] == 550, "the next RCPT is refused")


@harness.case(11, "each VERP copy counts against a source's warm-up allowance")
def verp_warmup():
    rcpts = ["w%d@warm.example" % i for i in range(5)]
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    s.sendmail("app@example.com", rcpts, "From: app@example.com\r\nTo: w@warm.example\r\n"
               "Subject: warm\r\nX-Relay-Campaign: warm-up\r\n\r\nHi.\r\n")
    s.quit()
    # Five transactions (one per return path) at a site where the pool's one source may send two
    # today: two go, three wait.
    def outcomes():
        found = {e["recipient"]: e for e in events()
                 if e.get("recipient") in rcpts and e.get("event") in ("delivered", "deferred")}
        return found if len(found) == 5 else None
    outcome = wait_for(outcomes, "an outcome for each of the five") or {}
    delivered = [r for r, e in outcome.items() if e["event"] == "delivered"]
    check(len(delivered) == 2 and all(outcome[r].get("source") == NEW_SOURCE for r in delivered),
          "two copies left from the source in warm-up: %s" % delivered)
    waiting = [e for e in outcome.values() if e["event"] == "deferred"]
    check(len(waiting) == 3 and all("warm-up allowance" in e.get("reason", "") for e in waiting),
          "three wait for tomorrow's allowance: %s" % waiting)


harness.main()
