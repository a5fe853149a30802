"""A real Redis for the project's fleet tests: Debian's redis-server on a loopback port, its data
in the test's directory (append-only file on, so that a restart after SIGKILL keeps what it had,
as a production Redis configured for the fleet does).

    import local_redis
    redis = harness.stop_at_exit(local_redis.Redis(tmp))   # started; stopped at exit
    redis.port, redis.cli("HGETALL", "relay:suspensions")
    redis.kill(); redis.start()                           # SIGKILL, then the same port and data

A redis-server that is missing or does not answer raises: a test without its peer fails.
"""
import os
import signal
import socket
import subprocess
import time


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self, tmp, port=None):
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or _free_port()
        self.proc = None
        self.start()

    def start(self, timeout_s=10):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.cli("PING") == "PONG":
                    return self
            except subprocess.SubprocessError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer on port %d (see %s/redis.log)"
                           % (self.port, self.dir))

    def cli(self, *args):
        """A redis-cli command's output, stripped."""
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def kill(self):
        """SIGKILL: Redis dies without a word to anyone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
