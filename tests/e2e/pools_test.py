#!/usr/bin/python3
"""End-to-end: named egress pools, warm-up, and the operator's suspensions and rebinds (issue 16,
items 3, 4 and 5).

relayd on loopback with two shards, three egress sources on loopback addresses and two pools,

  [[delivery.source]] warm  127.0.0.3                     pool "default"
  [[delivery.source]] new   127.0.0.4  warmup = [3]       pool "fresh" (with spare)
  [[delivery.source]] spare 127.0.0.5                     pool "fresh"; "trial" has new alone
  tenant "shop" (example.com) goes out of "default", tenant "news" (news@example.net) out of
  "fresh", campaign "trial" out of "trial"

delivers through a real DNS server (unbound) to a real receiver (aiosmtpd) that answers
slow*@example.org with 451 4.7.0, which a [[shaping.reply]] rule turns into a backoff. The
delivery log names the source of each delivery. Shows: each tenant's mail leaves from its pool's
addresses; a source in warm-up sends no more than its allowance to a site in a day, the rest goes
out of the pool's other source or, in a pool with no other, waits; the count survives a restart;
`relayctl queue suspend --tenant` holds one tenant's mail while the other's flows, in both shards,
and resume plus retry sends it; `--source` takes an address out of its pool; `rebind` moves a
tenant to another pool and `unbind` moves it back; a backoff reply slows the site in every shard
and is listed; `relayctl queue summary --by site|source` shows the mail waiting at a throttled
site, with its bytes and ages.

usage: pools_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import datetime
import os
import re
import smtplib
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD, RELAYCTL = harness.args()[0], harness.args()[1]
TMP = harness.scratch("pools-")
SINK_IP = "127.0.0.2"
WARM, NEW, SPARE = "127.0.0.3", "127.0.0.4", "127.0.0.5"
MX_PORT = local_dns.free_port([SINK_IP])
WAIT_S = 30
NEWS_PASSWORD = "news-password-0123456789"


@harness.fixture
def sink():
    s = local_smtp.Sink(lambda address: "451 4.7.0 slow down, too many messages"
                        if address.startswith("slow") else None)
    with local_smtp.serving(s, SINK_IP, MX_PORT, TMP):
        yield s


@harness.fixture
def dns_port():
    with local_dns.unbound(TMP, local_dns.mx_zones(("example.org", "throttled.example"),
                                                   SINK_IP)) as port:
        yield port


@harness.fixture
def control_socket():
    return harness.scratch("pl-", dir="/tmp") + "/control.sock"


@harness.fixture
def conf():
    """(the config's path, app@example.com's password)."""
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    path, password = relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT),
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": control_socket()}),
        append="""
[[tenants]]
name = "shop"
domains = ["example.com"]

[[tenants]]
name = "news"
users = ["news@example.net"]

[[delivery.source]]
name = "warm"
address = "%s"
ehlo_name = "warm.example.com"

[[delivery.source]]
name = "new"
address = "%s"
ehlo_name = "new.example.com"
warmup = [3, 10]
warmup_start = "%s"

[[delivery.source]]
name = "spare"
address = "%s"
ehlo_name = "spare.example.com"

[[delivery.pool]]
name = "default"
sources = ["warm"]

[[delivery.pool]]
name = "fresh"
sources = ["new", "spare"]
tenants = ["news"]

[[delivery.pool]]
name = "trial"
sources = ["new"]
campaigns = ["trial"]

[[shaping]]
name = "example"
domains = ["example.org"]
connections_max = 4
messages_per_second = 40

[[shaping.reply]]
contains = "4.7.0 slow down"
backoff_s = 600
backoff_rate = 0.5

[[shaping]]
name = "throttled"
domains = ["throttled.example"]
connections_max = 1
messages_per_second = 1
""" % (WARM, NEW, today, SPARE))
    r = subprocess.run([RELAYCTL, "user-add", "news@example.net", "--allow", "@example.net",
                        "--config-dir", TMP + "/relay", "--scrypt-log2-n", "10"],
                       input=NEWS_PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "relayctl user-add news@example.net: %s" % r.stderr.strip())
    return path, password


@harness.fixture
def relay():
    sink()
    with relayd_process.Relayd(RELAYD, conf()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


def submit(user, password, sender, rcpt, headers=""):
    """Sends one message over a new connection (either shard may take it); True when accepted."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login(user, password)
    body = ("From: %s\r\nTo: %s\r\nSubject: pools\r\nMessage-ID: <%s@client.test>\r\n%s\r\n"
            "Hi.\r\n" % (sender, rcpt, time.time_ns(), headers))
    try:
        s.sendmail(sender, [rcpt], body)
        ok = True
    except smtplib.SMTPException:
        ok = False
    s.quit()
    return ok


def shop(rcpt, headers=""):
    return submit("app@example.com", conf()[1], "app@example.com", rcpt, headers)


def news(rcpt, headers=""):
    return submit("news@example.net", NEWS_PASSWORD, "news@example.net", rcpt, headers)


def relayctl(*args):
    r = subprocess.run([RELAYCTL] + list(args) + ["--config", conf()[0]], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def wait_for(predicate, what, seconds=WAIT_S):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    check(False, "within %d s: %s" % (seconds, what))
    return None


def line(event, rcpt):
    """The first `event` line of the delivery log for `rcpt` ({} when none comes)."""
    found = wait_for(lambda: [e for e in events()
                              if e.get("event") == event and e.get("recipient") == rcpt],
                     "a %s line for %s" % (event, rcpt))
    return found[0] if found else {}


@harness.case(1, "each tenant's mail leaves from its own pool's addresses")
def tenants_pools():
    check(shop("buyer@example.org"), "shop submits")
    check(news("reader@example.org"), "news submits")
    bought = line("delivered", "buyer@example.org")
    check(bought.get("source") == WARM, "shop's message left from %s (pool default): %s"
          % (WARM, bought.get("source")))
    read = line("delivered", "reader@example.org")
    check(read.get("source") in (NEW, SPARE), "news's message left from pool fresh: %s"
          % read.get("source"))


@harness.case(2, "a source in warm-up sends its allowance, the pool's other source the rest")
def warmup_allowance():
    tenants_pools_done = [e for e in events() if e.get("recipient") == "reader@example.org"]
    for i in range(8):
        check(news("wave%d@example.org" % i), "news submits wave%d" % i)
    sources = [line("delivered", "wave%d@example.org" % i).get("source") for i in range(8)]
    before = sum(1 for e in tenants_pools_done if e.get("event") == "delivered" and
                 e.get("source") == NEW)
    from_new = sources.count(NEW) + before
    check(from_new == 3, "new sent exactly its allowance of 3 to the site today (%d; sources %s)"
          % (from_new, sources))
    check(sources.count(SPARE) == 8 - sources.count(NEW), "the rest left from spare: %s"
          % sources)
    # A pool whose only source has used its allowance: the message waits.
    check(news("trial@example.org", "X-Relay-Campaign: trial\r\n"), "news submits campaign trial")
    waited = line("deferred", "trial@example.org")
    check("warm-up allowance" in waited.get("reply", "") + waited.get("reason", ""),
          "campaign trial waits for new's allowance: %s" % waited)
    relay().stop()
    counts = open(TMP + "/relay/spool/warmup").read()
    check("%s\t" % NEW in counts and "\t3\n" in counts,
          "the count is on disk when relayd stops: %r" % counts)
    relay().start()
    check(news("after@example.org", "X-Relay-Campaign: trial\r\n"), "news submits after restart")
    waited = line("deferred", "after@example.org")
    check("warm-up allowance" in str(waited), "after a restart the allowance is still used: %s"
          % waited)


@harness.case(3, "suspend --tenant holds one tenant's mail in both shards; resume sends it")
def suspend_tenant():
    code, out = relayctl("queue", "suspend", "--tenant", "news", "--for", "1h", "--reason",
                         "invoice unpaid")
    check(code == 0 and out == "ok: tenant news suspended for 3600 s", "suspend: %s" % out)
    for i in range(4):  # new connections: both shards queue some
        check(news("held%d@example.org" % i), "news submits held%d" % i)
        check(shop("open%d@example.org" % i), "shop submits open%d" % i)
    for i in range(4):
        check(line("delivered", "open%d@example.org" % i).get("source") == WARM,
              "shop's open%d is delivered meanwhile" % i)
        held = line("deferred", "held%d@example.org" % i)
        check("invoice unpaid" in str(held), "news's held%d is held: %s" % (i, held))
        check(held and "attempt" not in held, "a hold is not an attempt: %s" % held)
    check(not [m for m in sink().received if any(r.startswith("held") for r in m[1])],
          "nothing of news reaches the receiver")
    code, out = relayctl("queue", "suspensions")
    check(code == 0 and "tenant news for " in out and "(operator)" in out, "listed: %s" % out)
    code, out = relayctl("queue", "resume", "--tenant", "news")
    check(code == 0 and "tenant news resumed" in out, "resume: %s" % out)
    # No retry needed: the relay sends what the hold kept back as soon as it is lifted.
    wait_for(lambda: all(sink().delivered_to("held%d@example.org" % i) for i in range(4)),
             "the held messages are delivered after resume")


@harness.case(4, "rebind moves a tenant to another pool; unbind moves it back")
def rebind_tenant():
    code, out = relayctl("queue", "rebind", "--tenant", "shop", "--pool", "fresh", "--reason",
                         "moving")
    check(code == 0 and out == "ok: tenant shop rebound to pool fresh until unbound",
          "rebind: %s" % out)
    code, out = relayctl("queue", "rebind", "--tenant", "shop", "--pool", "nowhere")
    check(code == 1 and "no egress pool nowhere" in out, "an unknown pool is refused: %s" % out)
    check(shop("moved@example.org"), "shop submits after the rebind")
    moved = line("delivered", "moved@example.org")
    # new has used its allowance: the rebound message leaves from spare.
    check(moved.get("source") == SPARE, "the rebound message left from pool fresh: %s"
          % moved.get("source"))
    code, out = relayctl("queue", "unbind", "--tenant", "shop")
    check(code == 0 and "back to its own pool" in out, "unbind: %s" % out)
    check(shop("home@example.org"), "shop submits after the unbind")
    check(line("delivered", "home@example.org").get("source") == WARM,
          "after unbind shop's mail leaves from warm again")


@harness.case(5, "suspend --source takes an address out of its pool")
def suspend_source():
    code, out = relayctl("queue", "suspend", "--source", "warm", "--for", "10m")
    check(code == 0 and "source warm suspended" in out, "suspend --source: %s" % out)
    check(shop("nosource@example.org"), "shop submits")
    waited = line("deferred", "nosource@example.org")
    check("no egress source of pool default may send" in str(waited),
          "the default pool has no other source: the message waits: %s" % waited)
    code, out = relayctl("queue", "resume", "--source", "warm")
    check(code == 0, "resume --source: %s" % out)
    wait_for(lambda: sink().delivered_to("nosource@example.org"),
             "delivered once the source is back")


@harness.case(6, "a backoff reply slows the site in every shard and is listed")
def backoff_reply():
    check(shop("slow@example.org"), "shop submits to slow@")
    deferred = line("deferred", "slow@example.org")
    check("4.7.0" in str(deferred), "the 451 is a deferral: %s" % deferred)
    wait_for(lambda: "slowing delivery to " in relay().log(), "the log says the site slows down")
    code, out = relayctl("queue", "suspensions")
    check(code == 0 and "slowed to 50% for " in out and "4.7.0 slow down" in out,
          "the backoff is listed: %s" % out)
    check(shop("after-slow@example.org"), "shop submits during the backoff")
    check(line("delivered", "after-slow@example.org"), "mail still flows, slower")
    code, out = relayctl("queue", "ready")
    check(code == 0 and "mx.example.org" in out and "slowed to 50% for " in out and
          "SOURCE" in out, "relayctl queue ready shows the slowed queue:\n%s" % out)


@harness.case(8, "a hold with a duration ends by itself, in every shard")
def timed_hold():
    code, out = relayctl("queue", "suspend", "--campaign", "flash sale", "--for", "2s")
    check(code == 0 and out == "ok: campaign flash sale suspended for 2 s", "suspend: %s" % out)
    for i in range(2):
        check(shop("flash%d@example.org" % i, "X-Relay-Campaign: flash sale\r\n"),
              "shop submits flash%d" % i)
        held = line("deferred", "flash%d@example.org" % i)
        check("delivery held" in str(held), "flash%d is held: %s" % (i, held))
    # Due when the hold ends (the retry schedule would say an hour): no resume, no retry.
    wait_for(lambda: all(sink().delivered_to("flash%d@example.org" % i) for i in range(2)),
             "delivered once the hold is over, without a resume or a retry", seconds=15)


@harness.case(9, "queue summary by site and by source: the running relay's ready mail")
def summary_by_site():
    # 12 messages to a site allowed 1 a second: most of them wait in its ready queue.
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", conf()[1])
    for i in range(12):
        s.sendmail("app@example.com", ["t%d@throttled.example" % i],
                   "From: app@example.com\r\nTo: t%d@throttled.example\r\nSubject: shape\r\n"
                   "\r\nHi.\r\n" % i)
    s.quit()

    def row(by, key):
        code, out = relayctl("queue", "summary", "--by", by)
        check(code == 0, "queue summary --by %s: %s" % (by, out))
        fields = [ln.split() for ln in out.splitlines() if ln.split()[:1] == [key]]
        return fields[0] if fields and int(fields[0][1]) > 0 else None

    site = wait_for(lambda: row("site", "mx.throttled.example"), "a row for the throttled site")
    if site:
        check(1 <= int(site[1]) <= 12 and int(site[2]) >= 50 * int(site[1]) and
              int(site[3]) == int(site[1]),
              "recipients, their bytes, all under 5 minutes old: %s" % site)
    source = wait_for(lambda: row("source", WARM), "a row for shop's source")
    check(source is not None and int(source[1]) >= 1, "by source: %s" % source)
    code, out = relayctl("queue", "summary", "--by", "site", "--top", "x")
    check(code == 2, "a bad --top is a usage error: %s" % out)
    wait_for(lambda: all(sink().delivered_to("t%d@throttled.example" % i) for i in range(12)),
             "the throttled site gets all 12")
    code, out = relayctl("queue", "summary", "--by", "site")
    check(code == 0 and "mx.throttled.example" not in out, "nothing waits any more:\n%s" % out)


@harness.case(10, "bounce --site: the recipients at the domains a site (a rule) takes in")
def bounce_site():
    code, out = relayctl("queue", "suspend", "throttled", "--for", "1h")
    check(code == 0, "suspend the site by its rule's name: %s" % out)
    for i in range(2):
        check(shop("b%d@throttled.example" % i), "shop submits b%d" % i)
        held = line("deferred", "b%d@throttled.example" % i)
        check("suspended" in str(held), "b%d is held: %s" % (i, held))
    code, out = relayctl("queue", "bounce", "--site", "throttled")
    bounced = sum(int(n) for n in re.findall(r"(\d+) messages bounced", out))
    check(code == 0 and bounced == 2 and "site throttled" in out,
          "bounce --site bounces both: %s" % out)
    for i in range(2):
        check(line("bounced", "b%d@throttled.example" % i), "b%d is bounced" % i)
    relayctl("queue", "resume", "throttled")


@harness.case(7, "a reload renames a tenant and routes it to another pool; new sources wait")
def reload_pools():
    relay()
    conf_text = open(conf()[0]).read()
    edited = conf_text.replace('name = "shop"', 'name = "store"').replace(
        'tenants = ["news"]', 'tenants = ["news", "store"]').replace(
        "warmup = [3, 10]", "warmup = [100]")
    check(edited.count("store") == 2 and "warmup = [100]" in edited, "the test edits the file")
    try:
        open(conf()[0], "w").write(edited)
        code, out = relayctl("reload")
        check(code == 0 and "tenants and egress pools reloaded" in out and "not applied" not in out,
              "reload applies the tenants and pools: %s" % out)
        check(shop("reloaded@example.org"), "shop submits after the reload")
        moved = line("delivered", "reloaded@example.org")
        check(moved.get("tenant") == "store", "the message belongs to tenant store: %s" % moved)
        check(moved.get("source") in (NEW, SPARE),
              "and leaves from pool fresh: %s" % moved.get("source"))
        # A changed source address cannot move ready queues: it waits for a restart, and so do
        # the pools that would use it.
        open(conf()[0], "w").write(edited.replace('address = "%s"' % SPARE,
                                                  'address = "127.0.0.6"'))
        code, out = relayctl("reload")
        check(code == 0 and "tenants reloaded" in out and "delivery.source" in out and
              "next restart" in out, "a changed source waits for a restart: %s" % out)
        check(shop("unmoved@example.org"), "shop submits")
        check(line("delivered", "unmoved@example.org").get("source") in (NEW, SPARE),
              "the running sources go on")
        # A file with an error changes nothing, and the error is named.
        # (relayctl finds the socket in the file, which does not load: --socket names it.)
        open(conf()[0], "w").write(edited.replace('sources = ["new", "spare"]',
                                                  'sources = ["new", "nowhere"]'))
        r = subprocess.run([RELAYCTL, "reload", "--socket", control_socket()],
                           capture_output=True, text=True, timeout=30)
        out = (r.stdout + r.stderr).strip()
        check(r.returncode == 1 and "nowhere" in out and "the running configuration stays" in out,
              "a pool naming no source is refused: %s" % out)
    finally:
        open(conf()[0], "w").write(conf_text)
        relayctl("reload")


harness.main()
