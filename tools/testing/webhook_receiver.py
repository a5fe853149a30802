#!/usr/bin/python3
"""An HTTPS webhook endpoint for benchmarks and manual tries: takes relayd's event batches, checks
each one's HMAC-SHA256 signature (X-Relay-Signature over "<X-Relay-Timestamp>.<body>") and counts
the events by type. GET /count answers {"events": N, "posts": N, "bad_signatures": N,
"by_event": {...}}.

usage: webhook_receiver.py PORT CERT KEY SECRET   (listens on 127.0.0.1 until SIGTERM)
"""
import hashlib
import hmac
import http.server
import json
import signal
import ssl
import sys
import threading


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port, cert, key, secret):
        super().__init__(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.counts = {"events": 0, "posts": 0, "bad_signatures": 0, "by_event": {}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with self.server.lock:
            self.reply(200, json.dumps(self.server.counts).encode())

    def do_POST(self):
        r = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        stamp = self.headers.get("X-Relay-Timestamp", "")
        mac = hmac.new(r.secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        with r.lock:
            r.counts["posts"] += 1
            if self.headers.get("X-Relay-Signature") != "sha256=" + mac:
                r.counts["bad_signatures"] += 1
                self.reply(401)
                return
            for e in json.loads(body)["events"]:
                r.counts["events"] += 1
                r.counts["by_event"][e["event"]] = r.counts["by_event"].get(e["event"], 0) + 1
        self.reply(200)


def main():
    port, cert, key, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    server = Receiver(port, cert, key, secret)
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    print("webhook receiver on https://127.0.0.1:%d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
