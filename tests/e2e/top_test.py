#!/usr/bin/python3
"""relayctl top against a running relay, driven in a terminal and read off the screen.

relayd (2 shards, metrics on a free loopback port named in its config) delivers through a real
DNS server (unbound) to a real SMTP receiver (aiosmtpd with STARTTLS) that accepts good.test,
refuses reject.test (550: a bounce and its DSN), defers slow.test (451), and plays Gmail for
gmail.test, whose MX is under google.com so that the shipped "google" rule applies: it accepts,
except one recipient answered with Gmail's "450 4.7.28" rate-limit reply, which suspends the
(source, google) queue. Then:

- `relayctl top --config CONF --interval 1` runs in tmux (120x40); the screen must show the
  totals (8 received, 6 delivered, 2 deferred, 1 bounced), the queue (2 messages, their age),
  google suspended, and a row per site with its counts, suspension and TLS share;
- 6 more messages sent while it runs show as a non-zero receiving rate on a later frame;
- q ends it with status 0 and the terminal is back from the alternate screen; so does Ctrl-C;
- `--once` prints the same frame to a pipe; an unreachable --url exits 1 with the reason.

The cases share one relayd and its traffic, sent once; the six later messages go while top runs
(case 3), or before --once when that case runs without it.

usage: top_test.py RELAYD RELAYCTL [--case N[,M...]] [--list]
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import harness  # noqa: E402  (the project's own helpers, found through the path above)
import local_dns  # noqa: E402
import local_smtp  # noqa: E402
import relayd_process  # noqa: E402

RELAYD, RELAYCTL = (os.path.abspath(a) for a in harness.args()[:2])
TMP = harness.scratch("top-")
# tmux's socket path must stay short (sun_path): its own directory under /tmp.
TMUX_DIR = harness.scratch("top-tmux-", dir="/tmp", keep_on_failure=False)
TMUX = ["tmux", "-S", TMUX_DIR + "/sock", "-f", "/dev/null"]
harness.at_exit("tmux", lambda: subprocess.run(TMUX + ["kill-server"], capture_output=True))


def check(cond, what, detail=""):
    """harness.check, printing what was seen when it fails."""
    if not harness.check(cond, what) and detail:
        print(detail)
    return cond


def wait_until(pred, seconds, step=0.2):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --- the receiver ---------------------------------------------------------------------------
SINK_IP = "127.0.0.2"
MX_PORT = local_dns.free_port([SINK_IP])
METRICS_PORT = local_dns.free_port()


def refusal(rcpt):
    if rcpt.endswith("@reject.test"):
        return "550 5.1.1 <%s>: no such user here" % rcpt
    if rcpt.endswith("@slow.test"):
        return "451 4.3.0 try again later"
    if rcpt == "limited@gmail.test":
        return ("450 4.7.28 Our system has detected an unusual rate of unsolicited mail "
                "originating from your IP address.")
    return None


sink = local_smtp.Sink(refusal)


@harness.fixture
def relay():
    """relayd, metrics on a port named in its config so that --config finds it, delivering
    through unbound to the sink."""
    zones = "".join('  local-data: "%s"\n' % rr for rr in [
        "good.test. 300 IN MX 10 mx.good.test.", "mx.good.test. 300 IN A " + SINK_IP,
        "reject.test. 300 IN MX 10 mx.good.test.",
        "slow.test. 300 IN MX 10 mx.good.test.",
        "gmail.test. 300 IN MX 5 gmail-smtp-in.l.google.com.",
        "gmail-smtp-in.l.google.com. 300 IN A " + SINK_IP,
        "example.com. 300 IN MX 10 mx.good.test."])
    zones = ('  local-zone: "test." static\n  local-zone: "google.com." static\n'
             '  local-zone: "example.com." static\n' + zones)
    with local_smtp.serving(sink, SINK_IP, MX_PORT, TMP), \
            local_dns.unbound(TMP, zones) as dns_port:
        conf_path, password = relayd_process.init(
            RELAYD, TMP + "/relay",
            relayd_process.merged(
                relayd_process.loopback(dns_port, MX_PORT, metrics_port=METRICS_PORT),
                # One retry an hour: the deferred recipients stay deferred once while the test
                # looks.
                {"retry": {"intervals_s": [3600]}}))
        with relayd_process.Relayd(RELAYD, conf_path, TMP + "/relayd.log") as r:
            if not wait_until(lambda: "metrics on http://" in r.log(), 10):
                print(r.log())
                raise RuntimeError("relayd started without its metrics endpoint")
            r.password = password
            yield r


def conf_path():
    return relay().conf_path


def submit(rcpts, subject="top test"):
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", relay().password)
    s.sendmail("app@example.com", rcpts, "From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\n"
               "Hello.\r\n" % (", ".join(rcpts), subject))
    s.quit()


def delivered(address):
    return len(sink.delivered_to(address))


# google's row: 2 delivered, 1 deferred, its queue suspended in one shard or in both.
GOOGLE_ROWS = ("google 2 0.00 1 0.00 0 0.00 0 1 100%", "google 2 0.00 1 0.00 0 0.00 0 2 100%")


@harness.fixture
def traffic():
    """8 messages: delivered, bounced (with its DSN), deferred, and a 4.7.28 that suspends the
    google queue; whether each stage was seen in time."""
    # The Gmail ones first, so that the site is suspended only after they went out.
    submit(["g1@gmail.test"])
    submit(["g2@gmail.test"])
    google = wait_until(lambda: delivered("g1@gmail.test") and delivered("g2@gmail.test"), 30)
    for rcpt in ["a@good.test", "b@good.test", "c@good.test", "d@reject.test", "s@slow.test",
                 "limited@gmail.test"]:
        submit([rcpt])
    good = wait_until(lambda: delivered("c@good.test") and delivered("app@example.com"), 30)
    suspended = wait_until(lambda: "suspending delivery to" in relay().log(), 30)
    return google, good, suspended


@harness.fixture
def more_traffic():
    """6 more messages, sent on a thread of their own (join it to know they are in)."""
    traffic()
    sender = threading.Thread(target=lambda: [submit(["n%d@good.test" % i]) for i in range(6)])
    sender.start()
    return sender


# --- relayctl top in a 120x40 terminal ---------------------------------------------------------
env = dict(os.environ, TERM="xterm-256color", TZ="UTC")


def tmux(*args):
    return subprocess.run(TMUX + list(args), capture_output=True, text=True, env=env)


def screen(session):
    return tmux("capture-pane", "-p", "-t", session).stdout


def start_top(session, extra=()):
    """Starts top in a new tmux session; the result of `tmux new-session`."""
    # The shell prints top's exit status after it ends, and keeps the pane open to read it.
    command = "%s top --config %s --interval 1 %s; echo \"top exited with $?\"; sleep 60" % (
        RELAYCTL, conf_path(), " ".join(extra))
    return tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", session, command)


def line(text, start):
    """The first line of the screen that starts with `start`, whitespace collapsed."""
    for l in text.splitlines():
        if l.startswith(start):
            return " ".join(l.split())
    return None


@harness.fixture
def top():
    """top running in tmux session "top" once the traffic is in: (tmux's result, whether a frame
    with rates was drawn)."""
    traffic()
    started = start_top("top")
    # The first frame has totals; rates need a second scrape, a second later.
    return started, wait_until(lambda: re.search(r"^received +\d+ +\d", screen("top"), re.M), 15)


@harness.case(1, "the traffic is delivered, bounced, deferred, and suspends the google queue")
def traffic_in():
    google, good, suspended = traffic()
    check(google, "mail to the google site delivered")
    check(good, "good.test delivered, the bounce's DSN delivered")
    check(suspended, "the 4.7.28 reply suspended the google queue")


@harness.case(2, "top's frame: totals, queue, suspension, and a row per site")
def frame():
    started, drawn = top()
    check(started.returncode == 0, "tmux session top started", started.stderr)
    check(drawn, "top draws a frame with rates", screen("top"))

    def settled():
        s = screen("top")
        return (line(s, "delivered") == "delivered 6 0.00" and
                line(s, "received") == "received 8 0.00" and
                (line(s, "suspended") or "").startswith("suspended google"))

    wait_until(settled, 20)
    s = screen("top")
    print(s)
    title = s.splitlines()[0]
    check(title.startswith("relayd http://127.0.0.1:%d/metrics   version dev   up " % METRICS_PORT)
          and "2 shards   every 1s" in title, "title: the endpoint from the config, 2 shards",
          title)
    check(line(s, "received") == "received 8 0.00", "8 messages received", line(s, "received"))
    check(line(s, "delivered") == "delivered 6 0.00",
          "6 recipients delivered (5 and the DSN)", line(s, "delivered"))
    check(line(s, "deferred") == "deferred 2 0.00", "2 deferred (slow.test, the 4.7.28)",
          line(s, "deferred"))
    check(line(s, "bounced") == "bounced 1 0.00", "1 bounced", line(s, "bounced"))
    q = line(s, "queue") or ""
    m = re.match(r"queue 2 messages [\d.]+ MiB of [\d.]+ [MG]iB \(\d+%\) oldest (\d+)s ready for "
                 r"a connection 0$", q)
    check(m is not None and 1 <= int(m.group(1)) < 120,
          "queue: 2 messages, the spool's use, the oldest one's age in seconds", q)
    # The suspension holds in every shard: each shard that has a queue for the site (one or two,
    # as the connections of the traffic fell) shows it suspended once it looks at the board.
    check(line(s, "suspended") in ("suspended google (1 queue)", "suspended google (2 queues)"),
          "google shown suspended", line(s, "suspended"))
    check(re.match(r"outbound \d+ connections TLS 100% of deliveries TLS failures 0.00/s$",
                   line(s, "outbound") or "") is not None,
          "every delivery went over TLS", line(s, "outbound"))
    turns = re.match(r"loop turns/s by shard 0: ([\d.]+) 1: ([\d.]+)$",
                     line(s, "loop turns/s") or "")
    check(turns is not None and float(turns.group(1)) >= 0.5 and float(turns.group(2)) >= 0.5,
          "both shards turn (at least once a second when idle)", line(s, "loop turns/s"))
    check(line(s, "SITE") == "SITE DELIVERED /s DEFERRED /s BOUNCED /s READY SUSP TLS",
          "the site table's header", line(s, "SITE"))
    check(line(s, "google ") in GOOGLE_ROWS,
          "google: 2 delivered, 1 deferred, suspended, all over TLS", line(s, "google "))
    check(line(s, "default ") == "default 4 0.00 1 0.00 1 0.00 0 0 100%",
          "default: 4 delivered (3 and the DSN), 1 deferred, 1 bounced", line(s, "default "))
    check(line(s, "q quits") == "q quits", "the screen says how to quit")


@harness.case(3, "traffic while top runs shows as a receiving rate, then falls back to 0")
def rate():
    top()
    rates = []

    def receiving():
        r = line(screen("top"), "received") or ""
        rates.append(r)
        f = r.split()
        return len(f) == 3 and f[2] not in ("0.00", "-") and float(f[2]) > 0

    sender = more_traffic()
    check(wait_until(receiving, 20, step=0.1), "a frame shows a non-zero receiving rate",
          " | ".join(rates[-5:]))
    sender.join()
    check(wait_until(lambda: line(screen("top"), "received") == "received 14 0.00", 20),
          "the total reaches 14 and the rate falls back to 0", line(screen("top"), "received"))


@harness.case(4, "q quits with status 0 and leaves the alternate screen")
def quit_with_q():
    top()
    tmux("send-keys", "-t", "top", "q")
    check(wait_until(lambda: "top exited with 0" in screen("top"), 10), "q quits with status 0",
          screen("top"))
    s = screen("top")
    check("SITE" not in s and "q quits" not in s, "the terminal left the alternate screen", s)


@harness.case(5, "Ctrl-C quits the same way")
def quit_with_ctrl_c():
    relay()
    started = start_top("top2")
    check(started.returncode == 0, "tmux session top2 started", started.stderr)
    check(wait_until(lambda: line(screen("top2"), "SITE") is not None, 15), "top runs again")
    tmux("send-keys", "-t", "top2", "C-c")
    check(wait_until(lambda: "top exited with 0" in screen("top2"), 10),
          "Ctrl-C quits with status 0", screen("top2"))
    check("SITE" not in screen("top2"), "and restores the screen")


@harness.case(6, "--once prints one plain frame, for scripts")
def once():
    more_traffic().join()
    once = subprocess.run([RELAYCTL, "top", "--config", conf_path(), "--once", "--interval",
                           "0.5"], capture_output=True, text=True, timeout=30)
    check(once.returncode == 0 and "\x1b" not in once.stdout and
          line(once.stdout, "received") == "received 14 0.00" and
          line(once.stdout, "google ") in GOOGLE_ROWS,
          "--once prints one plain frame", once.stdout + once.stderr)


@harness.case(7, "an endpoint that cannot be reached, or is not relayd's: exit 1 and why")
def bad_endpoints():
    relay()
    once = subprocess.run([RELAYCTL, "top", "--url", "127.0.0.1:%d" % local_dns.free_port(),
                           "--once"], capture_output=True, text=True, timeout=30)
    check(once.returncode == 1 and "cannot connect to http://127.0.0.1:" in once.stderr,
          "an unreachable endpoint: exit 1 and why", once.stderr)
    once = subprocess.run([RELAYCTL, "top", "--url", "127.0.0.1:%d/healthz" % METRICS_PORT,
                           "--once"], capture_output=True, text=True, timeout=30)
    check(once.returncode == 1 and "is not a Prometheus exposition: line 1:" in once.stderr,
          "an endpoint that is not relayd's metrics: exit 1 and why", once.stderr)


harness.main()
