#!/usr/bin/python3
"""End-to-end: an MX written to hurt the relay (issue 13, items 2 and 3), on 127.0.0.x, asyncio.

relayd accepts one message for each of four domains over submission and delivers them, through a
real DNS server (unbound), to a hostile MX that behaves per address:

  longdot.test (127.0.0.2)  answers the final "." with three 2,000-byte lines of 250 (6 KB);
  longrcpt.test (127.0.0.3) answers RCPT with a 6 KB 550 (three 2,000-byte lines);
  junk.test (127.0.0.4)     greets only once the test has taken relayd's RSS; after its 354 it
                            reads nothing more and pushes up to 64 MiB of junk (lines like a
                            multi-line reply without end) while relayd sends a 6 MB body;
  drip.test (127.0.0.5)     answers the final "." one byte per second;
  example.com (127.0.0.6)   a plain receiver: the sender's domain, where DSNs arrive.

Checks: the 6 KB 250 is recorded, cut to the record, and the message delivered exactly once; the
6 KB 550 gives one attempt, one bounce and exactly one DSN; the junk ends the connection long
before the data-block deadline, with a transient outcome, while relayd's RSS (VmRSS from /proc)
stays within RSS_GROWTH_MAX_BYTES of its level before the junk; the dripped reply is cut at its
deadline (data_done_timeout_ms) although a byte arrives every second, with a transient outcome. The
retry interval is an hour, so each count below would be wrong on a second attempt.

The four messages go out together, once, whichever cases run (the traffic fixture): each case
then looks at what one MX saw and what relayd recorded for it.

usage: hostile_mx_test.py RELAYD [--case N[,M...]] [--list]
"""
import asyncio
import os
import re
import smtplib
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "testing"))
import local_dns  # noqa: E402  (the project's own helpers, found through the path above)
import relayd_process  # noqa: E402
import harness  # noqa: E402
from harness import check  # noqa: E402

RELAYD = harness.args()[0]
TMP = harness.scratch("hostile-mx-")

MX = {"longdot": "127.0.0.2", "longrcpt": "127.0.0.3", "junk": "127.0.0.4", "drip": "127.0.0.5",
      "sink": "127.0.0.6"}
LINE_TEXT = 1990  # each long reply line: code, separator, enhanced code and 1,990 bytes: ~2,000
JUNK_BYTES_MAX = 64 << 20
JUNK_CHUNK = 64 << 10
# The body relayd sends to junk.test: more than a loopback socket pair buffers when the receiver
# does not read (send buffer up to 4 MiB, receive window ~128 KiB), and less than a segment.
JUNK_BODY_BYTES = 6 << 20
DRIP_TEXT = "250 2.0.0 " + "d" * 40 + "\r\n"  # 52 bytes at one a second: 52 s if never cut
DATA_DONE_TIMEOUT_MS = 4000  # drip.test's deadline for the final reply
DATA_BLOCK_TIMEOUT_MS = 10000  # junk.test's deadline for a body write
REPLY_BYTES_MAX = 65536  # the default bound on what an MX may make a connection hold
RECORD_REPLY_BYTES_MAX = 4096  # queue::kReplyBytesMax
# relayd's RSS may grow this much over its level just before the junk starts: the pages of the
# 6 MB body mapped from the spool as they are sent, buffers of the receive ring that get touched,
# allocator slack. Buffering the junk would add up to 64 MiB.
RSS_GROWTH_MAX_BYTES = 16 << 20
WAIT_S = 40



# --- the hostile MX ------------------------------------------------------------------------------
lock = threading.Lock()
stats = {name: {"connections": 0, "rcpts": [], "dots": 0, "messages": [], "closed": []}
         for name in MX}


def long_reply(code, enhanced, fill):
    line = "%s %s" % (enhanced, fill * LINE_TEXT)
    return ("%d-%s\r\n%d-%s\r\n%d %s\r\n" % (code, line, code, line, code, line)).encode()


async def serve(name, reader, writer):
    with lock:
        stats[name]["connections"] += 1
    st = stats[name]

    async def readline():
        line = await reader.readline()
        if not line:
            raise ConnectionResetError("closed by the client")
        return line

    async def push_junk(started):
        # Lines that look like the start of a long multi-line reply: whether relayd is still
        # sending the body or already waits for the final reply, only the byte bound stops them.
        pushed = 0
        line = b"250-" + b"x" * 2000 + b"\r\n"
        chunk = line * (JUNK_CHUNK // len(line))
        try:
            while pushed < JUNK_BYTES_MAX:
                writer.write(chunk)
                await writer.drain()
                pushed += len(chunk)
        except (ConnectionError, OSError):
            pass
        with lock:
            st["closed"].append({"what": "junk", "pushed": pushed,
                                 "seconds": time.monotonic() - started})

    try:
        if name == "junk":
            await junk_go.wait()  # until the test has taken relayd's RSS before the junk
        writer.write(b"220 hostile.test ESMTP\r\n")
        await writer.drain()
        while True:
            line = await readline()
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-hostile.test\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n")
            elif verb == b"MAIL":
                writer.write(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                rcpt = line.decode(errors="replace").strip()[8:].strip("<>")
                with lock:
                    st["rcpts"].append(rcpt)
                if name == "longrcpt":
                    writer.write(long_reply(550, "5.1.1", "n"))
                else:
                    writer.write(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                started = time.monotonic()
                if name == "junk":
                    # The body is not read: relayd stays in the middle of it (its 6 MB do not fit
                    # in the socket buffers) while the junk comes in.
                    await push_junk(started)
                    return
                body = []
                while True:
                    l = await readline()
                    if l in (b".\r\n", b".\n"):
                        break
                    body.append(l)
                with lock:
                    st["dots"] += 1
                    st["messages"].append(b"".join(body))
                if name == "longdot":
                    writer.write(long_reply(250, "2.0.0", "d"))
                elif name == "drip":
                    dot = time.monotonic()
                    sent = 0
                    try:
                        for b in DRIP_TEXT.encode():
                            writer.write(bytes([b]))
                            await writer.drain()
                            sent += 1
                            # Reading tells us when the client gives up, between two bytes.
                            try:
                                if await asyncio.wait_for(reader.read(1), 1.0) == b"":
                                    break
                            except asyncio.TimeoutError:
                                pass
                    except (ConnectionError, OSError):
                        pass
                    with lock:
                        st["closed"].append({"what": "drip", "sent": sent,
                                             "seconds": time.monotonic() - dot})
                    return
                elif name != "junk":
                    writer.write(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                return
            elif verb == b"RSET" or verb == b"NOOP":
                writer.write(b"250 2.0.0 ok\r\n")
            else:
                writer.write(b"502 5.5.2 no\r\n")
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


loop = asyncio.new_event_loop()
MX_PORT = local_dns.free_port(list(MX.values()))


async def make_event():
    return asyncio.Event()


junk_go = loop.run_until_complete(make_event())  # bound to the MX's loop


@harness.fixture
def hostile_mx():
    """The MX's servers, on their own thread until the end."""
    servers = [loop.run_until_complete(asyncio.start_server(
        lambda r, w, name=name: serve(name, r, w), ip, MX_PORT)) for name, ip in MX.items()]

    def run_loop():
        asyncio.set_event_loop(loop)
        loop.run_forever()

    mx_thread = threading.Thread(target=run_loop, daemon=True)
    mx_thread.start()
    try:
        yield servers
    finally:
        for server in servers:
            loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        mx_thread.join(timeout=10)


@harness.fixture
def dns_port():
    zones = '  local-zone: "test." static\n  local-zone: "example.com." static\n'
    for name, ip in MX.items():
        domain = "example.com" if name == "sink" else name + ".test"
        zones += '  local-data: "%s. 300 IN MX 10 mx.%s."\n' % (domain, domain)
        zones += '  local-data: "mx.%s. 300 IN A %s"\n' % (domain, ip)
    with local_dns.unbound(TMP, zones) as port:
        yield port


@harness.fixture
def config():
    """(the config's path, app@example.com's password)."""
    return relayd_process.init(RELAYD, TMP + "/relay", relayd_process.merged(
        relayd_process.loopback(dns_port(), MX_PORT),
        # One attempt each within the test: a second one would be a bug made visible.
        {"retry": {"intervals_s": [3600], "jitter_fraction": 0.0},
         "control_socket": harness.scratch("hm-", dir="/tmp") + "/control.sock"}),
        append="""
[[shaping]]
name = "drip-test"
domains = ["drip.test"]
data_done_timeout_ms = %d

[[shaping]]
name = "junk-test"
domains = ["junk.test"]
data_block_timeout_ms = %d
""" % (DATA_DONE_TIMEOUT_MS, DATA_BLOCK_TIMEOUT_MS))


@harness.fixture
def relay():
    hostile_mx()
    with relayd_process.Relayd(RELAYD, config()[0], TMP + "/relayd.log") as r:
        harness.on_failure(lambda: print(r.log()[-6000:]))
        yield r


def rss_bytes(field="VmRSS"):
    try:
        for line in open("/proc/%d/status" % relay().pid):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def events():
    return relayd_process.delivery_events(TMP + "/relay")


def of(evs, event, rcpt):
    return [e for e in evs if e.get("event") == event and e.get("recipient") == rcpt]


@harness.fixture
def traffic():
    """One message for each hostile domain sent and every outcome in: (the delivery log's events,
    what each MX saw, relayd's RSS before the junk and at its peak)."""
    s = smtplib.SMTP("127.0.0.1", relay().port(), local_hostname="client.test", timeout=30)
    s.starttls(context=ssl._create_unverified_context())
    s.login("app@example.com", config()[1])
    for name in ("longdot", "longrcpt", "junk", "drip"):
        rcpt = "%s@%s.test" % (name, name)
        # junk.test's body is larger than the socket buffers can take (JUNK_BODY_BYTES).
        filler = ("z" * 76 + "\r\n") * (JUNK_BODY_BYTES // 78) if name == "junk" else ""
        s.sendmail("app@example.com", [rcpt], "From: app@example.com\r\nTo: %s\r\nSubject: %s\r\n"
                   "\r\nHello, hostile MX.\r\n%s" % (rcpt, name, filler))
    s.quit()

    # relayd holds the junk.test message, its connection waiting for the greeting: its RSS now is
    # the base, then the junk is let go, and the peak is sampled until the end.
    time.sleep(1)
    rss = {"base": rss_bytes(), "peak": 0, "anon_base": rss_bytes("RssAnon"), "anon_peak": 0}
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            rss["peak"] = max(rss["peak"], rss_bytes())
            rss["anon_peak"] = max(rss["anon_peak"], rss_bytes("RssAnon"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    loop.call_soon_threadsafe(junk_go.set)

    def settled():
        evs = events()
        with lock:
            closed = {n: list(stats[n]["closed"]) for n in ("junk", "drip")}
            dsns = stats["sink"]["dots"]
        return (of(evs, "delivered", "longdot@longdot.test") and
                of(evs, "dsn_sent", "app@example.com") and dsns >= 1 and
                of(evs, "deferred", "junk@junk.test") and closed["junk"] and
                of(evs, "deferred", "drip@drip.test") and closed["drip"])

    deadline = time.time() + WAIT_S
    while time.time() < deadline and not settled():
        time.sleep(0.2)
    # A message delivered again, a second attempt or a second DSN would show up now (the old
    # relay repeated them within milliseconds).
    time.sleep(5)
    sampling.set()
    sampler.join()
    with lock:
        st = {n: {k: (list(v) if isinstance(v, list) else v) for k, v in stats[n].items()}
              for n in stats}
    return events(), st, rss


@harness.case(1, "the generated config shows reply_bytes_max with its default")
def generated_config():
    conf = open(config()[0]).read()
    check("reply_bytes_max = %d" % REPLY_BYTES_MAX in conf,
          "the generated config shows reply_bytes_max with its default")


@harness.case(2, "a 6 KB 250 to the final dot: recorded cut, delivered exactly once")
def long_dot():
    evs, st, _ = traffic()
    delivered = of(evs, "delivered", "longdot@longdot.test")
    check(st["longdot"]["dots"] == 1 and len(delivered) == 1,
          "6 KB 250 at the dot: delivered exactly once (%d transactions at the MX, %d delivered "
          "lines)" % (st["longdot"]["dots"], len(delivered)))
    if delivered:
        reply = delivered[0].get("reply", {})
        text = reply.get("text", "")
        line = "%s %s %s" % (reply.get("code"), reply.get("enhanced"), text)
        check(reply.get("code") == 250 and reply.get("enhanced") == "2.0.0" and
              text.startswith("d" * 100) and text.endswith(" [truncated]") and
              len(line.encode()) <= RECORD_REPLY_BYTES_MAX,
              "the delivery log records the reply cut to the record: code, enhanced code, the "
              "start of the text (%d bytes of ~6,000)" % len(line.encode()))


@harness.case(3, "a 6 KB 550 at RCPT: one attempt, one bounce, exactly one DSN")
def long_rcpt():
    evs, st, _ = traffic()
    bounced = of(evs, "bounced", "longrcpt@longrcpt.test")
    dsn_lines = [e for e in evs if e.get("event") == "dsn_sent"]
    dsns = [m for m in st["sink"]["messages"] if b"longrcpt@longrcpt.test" in m]
    check(len(st["longrcpt"]["rcpts"]) == 1 and len(bounced) == 1,
          "6 KB 550 at RCPT: one attempt, one bounce (%d RCPTs, %d bounced lines)"
          % (len(st["longrcpt"]["rcpts"]), len(bounced)))
    check(len(dsn_lines) == 1 and len(dsns) == 1 and st["sink"]["dots"] == 1,
          "exactly one DSN to the sender (%d dsn_sent lines, %d DSNs received)"
          % (len(dsn_lines), len(dsns)))
    if bounced:
        reply = bounced[0].get("reply", {})
        check(reply.get("code") == 550 and reply.get("enhanced") == "5.1.1" and
              reply.get("text", "").endswith(" [truncated]"),
              "the bounce keeps 550 5.1.1 and the start of the text")
    if dsns:
        # Long header fields are folded (RFC 5322 §2.2.3): unfold before looking.
        unfolded = re.sub(rb"\r?\n[ \t]+", b" ", dsns[0])
        check(b"Diagnostic-Code: smtp; 550 5.1.1 nnnn" in unfolded and
              b"[truncated]" in unfolded and len(dsns[0]) < 16384,
              "the DSN carries the cut reply (%d bytes in all)" % len(dsns[0]))


@harness.case(4, "junk pushed while the body goes out: cut early, bounded memory, transient")
def junk():
    evs, st, rss = traffic()
    junk = st["junk"]["closed"]
    deferred = of(evs, "deferred", "junk@junk.test")
    growth = rss["peak"] - rss["base"]
    # What the MX could write counts what the kernel buffers on both sides took before relayd's
    # close reached it, not what relayd read (at most reply_bytes_max and one receive buffer).
    check(len(junk) == 1 and junk[0]["pushed"] < JUNK_BYTES_MAX,
          "junk during the body: the connection closed before the MX could push its %d MiB "
          "(%.1f MiB written into the socket)"
          % (JUNK_BYTES_MAX >> 20, junk[0]["pushed"] / 1048576.0 if junk else -1))
    check(len(junk) == 1 and junk[0]["seconds"] < DATA_BLOCK_TIMEOUT_MS / 1000.0,
          "... within the data-block deadline (%.2f s of %.0f s)"
          % (junk[0]["seconds"] if junk else -1, DATA_BLOCK_TIMEOUT_MS / 1000.0))
    check(0 < rss["base"] and growth <= RSS_GROWTH_MAX_BYTES,
          "relayd's RSS stayed within %d MiB of its level before the junk (VmRSS %.1f MiB -> "
          "peak %.1f MiB, +%.1f MiB; RssAnon %.1f -> %.1f MiB)"
          % (RSS_GROWTH_MAX_BYTES >> 20, rss["base"] / 1048576.0, rss["peak"] / 1048576.0,
             growth / 1048576.0, rss["anon_base"] / 1048576.0, rss["anon_peak"] / 1048576.0))
    check(len(deferred) == 1 and deferred[0].get("reply", {}).get("code") == 421 and
          deferred[0].get("reply", {}).get("enhanced") == "4.5.0" and
          "reply_bytes_max" in deferred[0].get("reply", {}).get("text", ""),
          "... transient outcome, a protocol error: %s"
          % (deferred[0].get("reply") if deferred else "none"))
    check(st["junk"]["connections"] == 1 and st["junk"]["dots"] == 0,
          "... one attempt only (%d connections)" % st["junk"]["connections"])


@harness.case(5, "a final reply dripped a byte a second is cut at data_done_timeout_ms")
def drip():
    evs, st, _ = traffic()
    drip = st["drip"]["closed"]
    deferred = of(evs, "deferred", "drip@drip.test")
    check(len(drip) == 1 and
          DATA_DONE_TIMEOUT_MS / 1000.0 - 0.5 <= drip[0]["seconds"] <= DATA_DONE_TIMEOUT_MS /
          1000.0 + 2.5 and drip[0]["sent"] < len(DRIP_TEXT),
          "dripped reply cut at its %d ms deadline although bytes kept coming (%.2f s, %s bytes)"
          % (DATA_DONE_TIMEOUT_MS, drip[0]["seconds"] if drip else -1,
             drip[0]["sent"] if drip else "?"))
    check(len(deferred) == 1 and deferred[0].get("reply", {}).get("code") == 421 and
          "Timeout waiting for the reply to the end of data" in
          deferred[0].get("reply", {}).get("text", ""),
          "... transient outcome: %s" % (deferred[0].get("reply") if deferred else "none"))
    check(len(of(evs, "delivered", "drip@drip.test")) == 0 and st["drip"]["connections"] == 1,
          "... not delivered, one attempt")


@harness.case(6, "relayd stops cleanly")
def stops_cleanly():
    check(relay().stop() == 0, "relayd stops cleanly")


harness.main()
