#include "dns/testing/unbound_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "dns/message.h"

namespace dns::testing {
namespace {

// tools/testing/unbound.conf.in, the project's one unbound configuration.
constexpr char kUnboundConfTemplate[] =
#include "dns/testing/unbound_conf.inc"
    ;

// A port that is free for both UDP and TCP on 127.0.0.1 right now.
absl::StatusOr<uint16_t> FreePort() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (bind(udp, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
        getsockname(udp, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      close(udp);
      continue;
    }
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok = bind(tcp, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0;
    close(tcp);
    close(udp);
    if (ok) return ntohs(sin.sin_port);
  }
  return absl::UnavailableError("no free port on 127.0.0.1");
}

// True once the server answers a query for "test." over UDP.
bool Answers(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  MessageBuilder query(0x1234, MessageBuilder::kFlagRecursionDesired);
  query.AddQuestion("test", kTypeSoa);
  sendto(fd, query.wire().data(), query.wire().size(), 0, reinterpret_cast<sockaddr*>(&sin),
         sizeof(sin));
  char buf[1500];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  close(fd);
  return n >= 12;
}

}  // namespace

bool UnboundServer::Available() { return access(kUnboundPath, X_OK) == 0; }

std::string TempDir() {
  const char* t = getenv("TEST_TMPDIR");
  if (t != nullptr && *t != '\0') return t;
  char tmpl[] = "/tmp/dns-test-XXXXXX";
  const char* made = mkdtemp(tmpl);
  return made != nullptr ? made : "/tmp";
}

std::string UnboundServer::address() const { return absl::StrCat("127.0.0.1:", port_); }

absl::StatusOr<std::unique_ptr<UnboundServer>> UnboundServer::Start(
    const std::string& dir, const std::string& zone_config) {
  if (!Available()) return absl::UnavailableError(absl::StrCat(kUnboundPath, " not found"));
  absl::Status last = absl::UnavailableError("unbound did not start");
  // The free port may be taken between the probe and unbound's bind: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<uint16_t> port = FreePort();
    if (!port.ok()) return port.status();
    std::string conf_path = absl::StrCat(dir, "/unbound-", *port, ".conf");
    std::string log_path = absl::StrCat(dir, "/unbound-", *port, ".log");
    {
      std::ofstream conf(conf_path);
      conf << absl::StrReplaceAll(
          kUnboundConfTemplate,
          {{"@PORT@", absl::StrCat(*port)},
           {"@DIR@", dir},
           {"@LOGFILE@", log_path},
           {"@PIDFILE@", ""},
           // The resolver tests: small UDP answers (truncation and TCP are tested with them).
           {"@EXTRA@",
            "  so-reuseport: no\n  so-sndbuf: 4m\n  minimal-responses: yes\n"
            "  edns-buffer-size: 1232"},
           {"@ZONES@", zone_config}});
      if (!conf) return absl::InternalError(absl::StrCat("cannot write ", conf_path));
    }
    pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      execl(kUnboundPath, "unbound", "-d", "-c", conf_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    std::unique_ptr<UnboundServer> server(new UnboundServer());
    server->pid_ = pid;
    server->port_ = *port;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        server->pid_ = -1;
        last = absl::UnavailableError(
            absl::StrCat("unbound exited with status ", status, "; see ", log_path));
        break;
      }
      if (Answers(*port)) return server;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return last;
}

UnboundServer::~UnboundServer() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::string TestZones() {
  std::string z;
  auto zone = [&](const char* name, const char* type) {
    absl::StrAppend(&z, "  local-zone: \"", name, "\" ", type, "\n");
  };
  auto data = [&](const std::string& rr) { absl::StrAppend(&z, "  local-data: '", rr, "'\n"); };
  zone("test.", "static");
  // RFC 2308 §5: negative answers live min(SOA TTL, MINIMUM) = 60 s.
  data("test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60");
  // Two preferences, two hosts sharing the best one.
  data("mx.test. 300 IN MX 10 a.mx.test.");
  data("mx.test. 300 IN MX 10 b.mx.test.");
  data("mx.test. 300 IN MX 20 c.mx.test.");
  data("a.mx.test. 300 IN A 127.0.0.1");
  data("b.mx.test. 300 IN A 127.0.0.2");
  data("b.mx.test. 300 IN AAAA ::1");
  data("c.mx.test. 300 IN A 127.0.0.3");
  // DANE (RFC 7672): a TLSA record of a.mx.test, in this unsigned zone.
  data(
      "_25._tcp.a.mx.test. 300 IN TLSA 3 1 1 "
      "0102030405060708091011121314151617181920212223242526272829303132");
  // A second domain hosted by the same provider: same site.
  data("other.test. 600 IN MX 10 b.mx.test.");
  data("other.test. 600 IN MX 10 a.mx.test.");
  data("other.test. 600 IN MX 20 c.mx.test.");
  // RFC 7505 null MX.
  data("nullmx.test. 300 IN MX 0 .");
  // No MX: the implicit MX is the domain itself.
  data("nomx.test. 300 IN A 127.0.0.10");
  data("nomx.test. 300 IN AAAA ::10");
  // An MX host with only AAAA.
  data("v6only.test. 300 IN MX 10 v6.mx.test.");
  data("v6.mx.test. 300 IN AAAA ::1");
  // The first MX names a host that does not exist: skipped.
  data("deadhost.test. 300 IN MX 5 nowhere.mx.test.");
  data("deadhost.test. 300 IN MX 10 a.mx.test.");
  // TXT longer than 255 bytes, in several strings.
  std::string s1(200, 'a'), s2(200, 'b'), s3(100, 'c');
  data(absl::StrCat("txt.test. 120 IN TXT \"", s1, "\" \"", s2, "\" \"", s3, "\""));
  // A TXT answer larger than the EDNS payload: truncated over UDP, retried over TCP.
  std::string big = "big.test. 120 IN TXT";
  for (int i = 0; i < 8; ++i) absl::StrAppend(&big, " \"", std::string(250, 'a' + i), "\"");
  data(big);
  // PTR, IPv4 and IPv6 (documentation prefixes, answered locally).
  zone("2.0.192.in-addr.arpa.", "static");
  data("2.0.192.in-addr.arpa. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60");
  absl::StrAppend(&z, "  local-data-ptr: \"192.0.2.25 mail.test\"\n");
  // Forward confirmation: mail.test points back; liar.test does not.
  data("mail.test. 300 IN A 192.0.2.25");
  absl::StrAppend(&z, "  local-data-ptr: \"192.0.2.26 liar.test\"\n");
  data("liar.test. 300 IN A 192.0.2.99");
  zone("8.b.d.0.1.0.0.2.ip6.arpa.", "static");
  data("8.b.d.0.1.0.0.2.ip6.arpa. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60");
  absl::StrAppend(&z, "  local-data-ptr: \"2001:db8::25 mail6.test\"\n");
  data("mail6.test. 300 IN AAAA 2001:db8::25");
  // REFUSED: transient.
  zone("refused.test.", "refuse");
  // Many domains for the benchmark: d<N>.bench.test, all on the same two hosts.
  zone("bench.test.", "static");
  data("bench.test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60");
  data("mx1.bench.test. 3600 IN A 127.0.0.1");
  data("mx2.bench.test. 3600 IN A 127.0.0.2");
  for (int i = 0; i < 64; ++i) {
    data(absl::StrCat("d", i, ".bench.test. 3600 IN MX 10 mx1.bench.test."));
    data(absl::StrCat("d", i, ".bench.test. 3600 IN MX 20 mx2.bench.test."));
  }
  return z;
}

absl::StatusOr<UnboundSuite> StartUnboundSuite(const std::string& zone_config) {
  UnboundSuite suite;
  // A missing peer is a failure: only a missing kernel feature skips.
  if (!UnboundServer::Available()) {
    return absl::FailedPreconditionError("unbound is not installed (Debian package unbound)");
  }
  if (absl::Status probe = relay::io::Reactor::ProbeKernel(); !probe.ok()) {
    suite.skip_reason = std::string(probe.message());
    return suite;
  }
  absl::StatusOr<std::unique_ptr<UnboundServer>> server =
      UnboundServer::Start(TempDir(), zone_config);
  if (!server.ok()) return server.status();
  suite.server = *std::move(server);
  // One small ring per suite: rings are freed lazily by the kernel and their locked memory is
  // limited.
  relay::io::ReactorOptions options;
  options.sq_entries = 256;
  options.cq_entries = 1024;
  absl::StatusOr<std::unique_ptr<relay::io::Reactor>> reactor = relay::io::Reactor::Create(options);
  if (!reactor.ok()) return reactor.status();
  suite.reactor = *std::move(reactor);
  return suite;
}

}  // namespace dns::testing
