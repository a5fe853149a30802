"""A real SMTP receiver for the project's end-to-end tests: Debian's aiosmtpd on a loopback
address, offering STARTTLS with a self-signed certificate made for the test (the relay does not
verify MX certificates unless told to).

    import local_smtp
    sink = local_smtp.Sink(lambda rcpt: "550 5.1.1 no such user" if "nobody" in rcpt else None)
    controller = local_smtp.start(sink, "127.0.0.2", port, tmp)   # .stop() at the end
    sink.delivered_to("a@example.test")   # the messages that reached it for that recipient

    with local_smtp.serving(sink, "127.0.0.2", port, tmp):   # stopped at the end of the block
        ...

start() and serving() take any aiosmtpd handler; Sink is the receiver most tests want.
"""
import contextlib
import ssl
import subprocess
import threading

from aiosmtpd.controller import Controller


def tls_context(tmp, name="mx.test"):
    """A server TLS context with a new self-signed certificate for `name` (files in `tmp`)."""
    key, cert = "%s/%s.key" % (tmp, name), "%s/%s.crt" % (tmp, name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + name, "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def start(handler, host, port, tmp, tls=True):
    """Starts aiosmtpd with STARTTLS (unless `tls` is false: a server that does not offer it) for
    `handler` on host:port; returns its controller."""
    controller = Controller(handler, hostname=host, port=port, ready_timeout=10,
                            tls_context=tls_context(tmp) if tls else None)
    controller.start()
    return controller


@contextlib.contextmanager
def serving(handler, host, port, tmp, tls=True):
    """start() as a context manager: gives the controller, stops it at the end."""
    controller = start(handler, host, port, tmp, tls)
    try:
        yield controller
    finally:
        controller.stop()


class Sink:
    """Accepts every recipient that `reply(address)` has no reply for (None) and records each
    message (sender, recipients, content); a reply such as "451 4.3.0 try later" refuses that
    recipient with it."""

    def __init__(self, reply=lambda address: None):
        self.reply = reply
        self.lock = threading.Lock()
        self.received = []  # (mail_from, [rcpt, ...], content bytes)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.reply(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 OK stored"

    def delivered_to(self, rcpt):
        """The messages received for `rcpt`."""
        with self.lock:
            return [r for r in self.received if rcpt in r[1]]
