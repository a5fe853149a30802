"""A real AMQP 0-9-1 broker for the project's tests: Debian's rabbitmq-server as a private node on
127.0.0.1, with ports, Erlang cookie, database and logs of its own in a temporary directory, so
that tests running at once, or a broker of the machine's own, never meet.

    import local_rabbitmq
    with local_rabbitmq.serving(tmp) as broker:   # stopped at the end of the block
        broker.url          # "amqp://guest:guest@127.0.0.1:PORT/%2f": vhost "/", user guest
                            # (which RabbitMQ lets in from loopback only)
        broker.stop()       # as a broker going down: the port then refuses connections
        broker.start()      # the same node and database again: durable queues and their
                            # persistent messages survive, the port is the same
        broker.ctl("list_queues")   # rabbitmqctl against this node

or from a test in another language, a child process that takes commands on its standard input:

    local_rabbitmq.py serve DIR
      -> "ready PORT"        once the broker takes connections
      stop   -> "stopped"    start -> "started"
      ctl ARG... -> "ok" or "error TEXT" (rabbitmqctl ARG... against the node)
      end of input, or SIGTERM: the broker is stopped and the command exits.

The broker runs /usr/lib/rabbitmq/bin/rabbitmq-server itself (the /usr/sbin wrapper would switch
to the rabbitmq user), in a session of its own. It is stopped with `rabbitmqctl stop`, then any
of its processes still there (the Erlang VM, its helpers, and the epmd it started on its private
port) are killed: they are found by the node's unique name in their environment, never by a
program's name. A missing rabbitmq-server is an error, never a skip.
"""
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_dns  # noqa: E402  (free_port)

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
_COUNTER = itertools.count(1)


def _speaks_amqp(port):
    """Whether a broker on 127.0.0.1:port answers the AMQP 0-9-1 protocol header with a method
    frame (connection.start), i.e. takes connections now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(7)[:1] == b"\x01"
    except OSError:
        return False


class Broker:
    """One private RabbitMQ node; see the module's comment. Not started until start()."""

    def __init__(self, tmp, name="relaytest"):
        self.node = "%s-%d-%d@localhost" % (name, os.getpid(), next(_COUNTER))
        self.dir = os.path.join(tmp, "rabbitmq-" + self.node.split("@")[0])
        os.makedirs(os.path.join(self.dir, "mnesia"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        open(os.path.join(self.dir, "rabbitmq.conf"), "w").close()
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")
        self.port = local_dns.free_port()
        self.dist_port = local_dns.free_port()
        self.epmd_port = local_dns.free_port()
        self.ctl_dist_port = local_dns.free_port()
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None

    @property
    def url(self):
        return "amqp://guest:guest@127.0.0.1:%d/%%2f" % self.port

    def env(self):
        """The environment of the node and of rabbitmqctl for it."""
        env = dict(os.environ)
        env.update({
            "HOME": self.dir,  # the Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self.ctl_dist_port),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self.ctl_dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq"),  # rabbitmq.conf
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",
        })
        return env

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s=120):
        """Starts the node and returns once it takes AMQP connections; raises RuntimeError (the
        node stopped again) when it does not within timeout_s."""
        if not os.access(SERVER, os.X_OK):
            raise RuntimeError("%s is not installed (Debian's rabbitmq-server)" % SERVER)
        if self.running():
            return self
        self.proc = subprocess.Popen([SERVER], env=self.env(), cwd=self.dir,
                                     stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if _speaks_amqp(self.port):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.25)
        exit_status = self.proc.poll()
        self.stop()
        raise RuntimeError("rabbitmq-server %s took no connection on port %d (exit %s); the end "
                           "of %s:\n%s" % (self.node, self.port, exit_status, self.log_path,
                                           self.log()[-3000:]))

    def ctl(self, *args, timeout_s=60):
        """rabbitmqctl ARGS against this node: the CompletedProcess (text output)."""
        return subprocess.run([CTL] + list(args), env=self.env(), cwd=self.dir,
                              capture_output=True, text=True, timeout=timeout_s)

    def stop(self, timeout_s=60):
        """Stops the node (rabbitmqctl stop, then SIGKILL for whatever of it is left) and its
        epmd. Its database stays for the next start(). A stopped node is left be."""
        if self.running():
            try:
                self.ctl("stop", timeout_s=timeout_s)
            except subprocess.TimeoutExpired:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._kill_leftovers()

    def _kill_leftovers(self):
        # The VM's helpers and epmd run in sessions of their own; each inherited the node's
        # environment, whose RABBITMQ_NODENAME no other process has.
        mark = ("RABBITMQ_NODENAME=%s" % self.node).encode()
        for _ in range(50):
            found = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/environ" % pid, "rb") as f:
                        if mark in f.read().split(b"\0"):
                            found.append(int(pid))
                except OSError:
                    continue
            found = [p for p in found if p != os.getpid()]
            if not found:
                return
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def serving(tmp, name="relaytest"):
    """A started Broker in `tmp`, stopped at the end of the block."""
    broker = Broker(tmp, name)
    try:
        yield broker.start()
    finally:
        broker.stop()


def _serve(tmp):
    broker = Broker(tmp)

    def on_sigterm(signum, frame):
        broker.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        broker.start()
        print("ready %d" % broker.port, flush=True)
        for line in sys.stdin:
            words = line.split()
            if words == ["stop"]:
                broker.stop()
                print("stopped", flush=True)
            elif words == ["start"]:
                broker.start()
                print("started", flush=True)
            elif words[:1] == ["ctl"]:
                done = broker.ctl(*words[1:])
                print("ok" if done.returncode == 0 else
                      "error " + " ".join((done.stderr or done.stdout).split()), flush=True)
            else:
                print("error unknown command %r" % line.strip(), flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit("usage: local_rabbitmq.py serve DIR")
    _serve(sys.argv[2])
