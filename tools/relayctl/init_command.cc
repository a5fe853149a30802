#include "tools/relayctl/init_command.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "dkim/key.h"
#include "relay/delivery/retry.h"
#include "relay/delivery/shaping.h"
#include "relay/server/config.h"
#include "relay/tls/self_signed.h"
#include "tools/relayctl/dns_records.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// RFC 8301 §3.2: at least 1024 bits, 2048 recommended; 2048 also fits one DNS TXT record
// comfortably (two 255-byte strings).
constexpr unsigned kRsaBits = 2048;
constexpr mode_t kDirMode = 0750;
constexpr mode_t kSecretMode = 0600;  // private keys
constexpr mode_t kConfigMode = 0640;

constexpr char kUsage[] =
    "usage: relayctl init DOMAIN [--dir D] [--hostname H] [--ipv4 A ...] "
    "[--ipv6 A|PREFIX/LEN ...]\n"
    "                     [--prefix-count N] [--spool-dir P] [--log-dir P] "
    "[--control-socket P]\n";

std::string Quoted(const std::string& s) { return absl::StrCat("\"", s, "\""); }

std::string QuotedList(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const std::string& s : items) q.push_back(Quoted(s));
  return absl::StrCat("[", absl::StrJoin(q, ", "), "]");
}

// The shipped shaping rules as commented [[shaping]] entries, so the operator sees the values in
// force and the syntax to change them.
std::string ShippedShapingComment() {
  delivery::ShapingRules shipped = delivery::ShapingRules::Shipped();
  const delivery::ShapingRule& d = shipped.default_rule();
  std::string out = absl::StrFormat(
      "# [[shaping]]\n# name = \"default\"\n# connections_max = %u\n"
      "# messages_per_connection_max = %u\n# messages_per_second = %u\n# tls = \"%s\"\n"
      "# Next message's MAIL/RCPT/DATA behind the previous body (RFC 2920 §3.1); false for a\n"
      "# receiver that mishandles it.\n# pipeline_transactions = %s\n",
      d.connections_max, d.messages_per_connection_max, d.messages_per_second,
      std::string(delivery::TlsPolicyName(d.tls)), d.pipeline_transactions ? "true" : "false");
  for (const delivery::ShapingRuleSpec& s : shipped.specs()) {
    absl::StrAppend(&out, "#\n# [[shaping]]\n# name = ", Quoted(s.name), "\n");
    if (!s.domains.empty()) absl::StrAppend(&out, "# domains = ", QuotedList(s.domains), "\n");
    if (!s.mx_suffixes.empty()) {
      absl::StrAppend(&out, "# mx_suffixes = ", QuotedList(s.mx_suffixes), "\n");
    }
    if (s.connections_max) absl::StrAppend(&out, "# connections_max = ", *s.connections_max, "\n");
    if (s.messages_per_connection_max) {
      absl::StrAppend(&out, "# messages_per_connection_max = ", *s.messages_per_connection_max,
                      "\n");
    }
    if (s.messages_per_second) {
      absl::StrAppend(&out, "# messages_per_second = ", *s.messages_per_second, "\n");
    }
    if (s.messages_burst) absl::StrAppend(&out, "# messages_burst = ", *s.messages_burst, "\n");
    if (s.connections_per_minute) {
      absl::StrAppend(&out, "# connections_per_minute = ", *s.connections_per_minute, "\n");
    }
    if (s.tls)
      absl::StrAppend(&out, "# tls = \"", std::string(delivery::TlsPolicyName(*s.tls)), "\"\n");
  }
  return out;
}

std::string SourcesText(const InitOptions& o) {
  std::string out;
  for (const std::string& a : o.ipv4) {
    absl::StrAppend(&out, "[[delivery.source]]\naddress = ", Quoted(a),
                    "\n# Its PTR must name this host, and this name must resolve back to it.\n"
                    "ehlo_name = ",
                    Quoted(o.hostname), "\n");
  }
  for (const std::string& a : o.ipv6) {
    if (a.find('/') == std::string::npos) {
      absl::StrAppend(&out, "[[delivery.source]]\naddress = ", Quoted(a),
                      "\nehlo_name = ", Quoted(o.hostname), "\n");
      continue;
    }
    absl::StrAppend(
        &out,
        "[[delivery.source]]\n# An AnyIP prefix: route it locally with\n#   ip -6 route add local ",
        a,
        " dev lo\n# The relay sends from the first `count` addresses of it (prefix + 1, + 2, ...), "
        "each\n# with EHLO name <n>.",
        o.hostname, "; each needs a PTR naming it and an AAAA back.\nprefix = ", Quoted(a),
        "\ncount = ", o.prefix_count, "\nehlo_name = ", Quoted(o.hostname), "\n");
  }
  if (out.empty()) {
    out =
        "# No source configured: the kernel chooses the source address and EHLO uses hostname.\n"
        "# [[delivery.source]]\n# address = \"192.0.2.10\"\n# ehlo_name = \"mail.example.com\"\n";
  }
  return out;
}

absl::Status WriteNewFile(const std::filesystem::path& path, absl::string_view contents,
                          mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path.string()));
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return absl::ErrnoToStatus(e, absl::StrCat("cannot write ", path.string()));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path.string()));
  }
  return absl::OkStatus();
}

bool IsAddress(int family, const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(family, text.c_str(), buf) == 1;
}

}  // namespace

std::string InitConfigText(const InitOptions& o, const std::string& rsa_selector,
                           const std::string& ed25519_selector) {
  const server::SmtpLimits l;
  const server::AuthLimits a;
  const server::QueueSettings q;
  const server::DeliverySettings d;
  const server::LogSettings log;
  const delivery::RetryPolicy r;
  const server::Config c;
  std::string keys_dir = "keys";
  std::string text = absl::StrFormat(
      R"(# relayd configuration for mail from %s, written by `relayctl init`.
# Relative paths are relative to this file. Every limit has a name here; the values shown are the
# defaults. `relayctl dns-records --config THIS_FILE` prints the DNS records it needs and
# `relayctl check-dns --config THIS_FILE` checks them.

# Name used in the greeting, in Received headers, and in EHLO for sources without their own.
# The MX of %s points here.
hostname = "%s"
# Worker threads, each with its own io_uring, listeners and queue partition. 0: one per core.
shards = 0
# The durable queue. Under systemd it must be one of the unit's ReadWritePaths.
spool_dir = "%s"
# Users allowed to submit: `relayctl user-add USER --allow @%s --config-dir DIR`.
users = "users"
# Where `relayctl queue retry|bounce|delete` reaches the running relay (mode 0600).
control_socket = "%s"

[submission]
# Port 587: STARTTLS, then AUTH (RFC 6409).
listen = ["0.0.0.0:587", "[::]:587"]
# Port 465: implicit TLS (RFC 8314 §3.3).
listen_tls = ["0.0.0.0:465", "[::]:465"]
auth_requires_tls = true

[tls]
# A SELF-SIGNED certificate for %s, made by `relayctl init` so that TLS works from the
# first start: mail clients that verify will refuse it until you bring a real one. Put a
# certificate from a CA (ACME: acme.sh or certbot with tools/service/acme-reload-hook) in these
# files and send SIGHUP: new connections get it, existing ones keep the old one.
cert = "tls/cert.pem"
key = "tls/key.pem"
reload_check_ms = %u

[limits]
command_line_bytes_max = %u
data_line_bytes_max = %u
message_bytes_max = %u
recipients_max = %u
errors_max = %u
# Each connection is a descriptor: keep connections_max + ~1000 under the open-files limit.
connections_max = %u
connections_per_ip_max = %u
greeting_timeout_ms = %u
command_timeout_ms = %u
data_timeout_ms = %u
session_timeout_ms = %u

[auth]
# Per client address (IPv6: per /64): after this many failures each AUTH reply is delayed,
# then the address is refused for block_ms.
failures_before_delay = %u
failure_delay_ms = %u
failure_delay_max_ms = %u
failures_before_block = %u
failure_window_ms = %u
block_ms = %u
worker_threads = %u

[queue]
segment_bytes = %u
reserve_segments = %u
spool_bytes_max = %u
# Never false in production: a 250 reply would no longer mean the message is on disk.
fsync = true
# Group commits (fdatasync batches) in flight at once.
syncs_in_flight_max = %u
max_age_s = %u

[shutdown]
# SIGTERM: stop accepting, let sessions finish this long. The unit's TimeoutStopSec is above it.
grace_ms = %u

[delivery]
enabled = true
# DNS servers for MX lookups ("127.0.0.1:53", "[::1]:53"); empty: /etc/resolv.conf. check-dns
# asks these too.
dns_servers = []
# ipv4-first, ipv6-first, ipv4-only or ipv6-only. IPv6 delivery to Gmail needs a PTR for every
# source address whose name resolves back to it.
family = "ipv4-first"
mx_port = 25
idle_connection_ms = %u
source_suspend_ms = %u
# Verify MX certificates against tls_ca_file (most MX hosts do not have publicly trusted ones).
tls_verify = false
tls_ca_file = "%s"
# round-robin, weighted or sticky (one source per destination site).
strategy = "round-robin"
# The egress pool: each source address with the EHLO name its PTR gives.
%s
[log]
# The delivery log: one JSON object per line per event, one file per shard. Rotated by size,
# and reopened on SIGHUP (tools/service/relayd.logrotate). Under systemd: a ReadWritePaths entry.
dir = "%s"
rotate_bytes = %u
rotate_keep = %u

[retry]
# Waits after the 1st, 2nd, ... failed attempt; the last repeats until queue.max_age_s.
intervals_s = [%s]
jitter_fraction = %g

# Shaping: the rules shipped for the large receivers, in force without any [[shaping]] entry.
# An entry with the same name changes only the fields it sets.
%s
# DKIM (RFC 6376, RFC 8463): every message from @%s is signed with both keys (dual signing:
# receivers that know Ed25519 use it, the others RSA). Their public halves are the
# <selector>._domainkey TXT records that `relayctl dns-records` prints. To rotate, add a key
# with a new selector, publish it, wait a day, then remove the old one.
[[dkim.key]]
domain = "%s"
selector = "%s"
key = "%s/%s.%s.pem"

[[dkim.key]]
domain = "%s"
selector = "%s"
key = "%s/%s.%s.pem"
)",
      o.domain, o.domain, o.hostname, o.spool_dir, o.domain, o.control_socket, o.hostname,
      c.tls_reload_check_ms, l.command_line_bytes_max, l.data_line_bytes_max, l.message_bytes_max,
      l.recipients_max, l.errors_max, l.connections_max, l.connections_per_ip_max,
      l.greeting_timeout_ms, l.command_timeout_ms, l.data_timeout_ms, l.session_timeout_ms,
      a.failures_before_delay, a.failure_delay_ms, a.failure_delay_max_ms, a.failures_before_block,
      a.failure_window_ms, a.block_ms, a.worker_threads, q.segment_bytes, q.reserve_segments,
      q.spool_bytes_max, q.syncs_in_flight_max, q.max_age_s, c.shutdown_grace_ms, d.idle_connection_ms,
      d.source_suspend_ms, d.tls_ca_file, SourcesText(o), o.log_dir, log.rotate_bytes,
      log.rotate_keep, absl::StrJoin(r.intervals_s, ", "), r.jitter_fraction,
      ShippedShapingComment(), o.domain, o.domain, rsa_selector, keys_dir, o.domain, rsa_selector,
      o.domain, ed25519_selector, keys_dir, o.domain, ed25519_selector);
  return text;
}

int InitCommand(int argc, char** argv, FILE* out) {
  InitOptions o;
  std::string dir = kDefaultConfigDir;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--dir" && has_value) {
      dir = argv[++i];
    } else if (arg == "--hostname" && has_value) {
      o.hostname = absl::AsciiStrToLower(argv[++i]);
    } else if (arg == "--ipv4" && has_value) {
      o.ipv4.push_back(argv[++i]);
    } else if (arg == "--ipv6" && has_value) {
      o.ipv6.push_back(argv[++i]);
    } else if (arg == "--prefix-count" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &o.prefix_count) || o.prefix_count == 0 ||
          o.prefix_count > 65536) {
        std::fprintf(stderr, "relayctl init: --prefix-count must be 1 to 65536\n");
        return kExitUsage;
      }
    } else if (arg == "--spool-dir" && has_value) {
      o.spool_dir = argv[++i];
    } else if (arg == "--log-dir" && has_value) {
      o.log_dir = argv[++i];
    } else if (arg == "--control-socket" && has_value) {
      o.control_socket = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && o.domain.empty()) {
      o.domain = absl::AsciiStrToLower(arg);
    } else {
      std::fprintf(stderr, "relayctl init: unexpected argument %s\n%s", argv[i], kUsage);
      return kExitUsage;
    }
  }
  if (o.domain.empty()) {
    std::fprintf(stderr, "relayctl init: missing DOMAIN\n%s", kUsage);
    return kExitUsage;
  }
  if (o.hostname.empty()) o.hostname = absl::StrCat("mail.", o.domain);
  for (const std::string& a : o.ipv4) {
    if (!IsAddress(AF_INET, a)) {
      std::fprintf(stderr, "relayctl init: --ipv4 %s is not an IPv4 address\n", a.c_str());
      return kExitUsage;
    }
  }
  for (const std::string& a : o.ipv6) {
    // Prefixes are checked by the config load below (the egress pool's own rules).
    if (a.find('/') == std::string::npos && !IsAddress(AF_INET6, a)) {
      std::fprintf(stderr, "relayctl init: --ipv6 %s is not an IPv6 address or prefix\n",
                   a.c_str());
      return kExitUsage;
    }
  }

  namespace fs = std::filesystem;
  fs::path root(dir);
  std::error_code ec;
  if (fs::exists(root, ec) || ec) {
    std::fprintf(stderr,
                 "relayctl init: %s already exists; not touching it (init only creates a new "
                 "directory: remove it or choose another --dir)\n",
                 root.c_str());
    return kExitFailure;
  }
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "relayctl init: %s\n", std::string(s.message()).c_str());
    return kExitFailure;
  };
  // The parent may be missing (a fresh /etc/relay's parent is not); root itself must be new.
  if (root.has_parent_path()) fs::create_directories(root.parent_path(), ec);
  if (mkdir(root.c_str(), kDirMode) != 0) {
    return fail(absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", root.string())));
  }
  for (const char* sub : {"keys", "tls"}) {
    if (mkdir((root / sub).c_str(), kDirMode) != 0) {
      return fail(
          absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", (root / sub).string())));
    }
  }

  int year = o.year;
  if (year == 0) {
    time_t now = time(nullptr);
    struct tm tm;
    gmtime_r(&now, &tm);
    year = tm.tm_year + 1900;
  }
  std::string rsa_selector = absl::StrCat("rsa", year);
  std::string ed_selector = absl::StrCat("ed", year);
  struct KeySpec {
    dkim::KeyAlgorithm algorithm;
    const std::string& selector;
  };
  for (const KeySpec& k : {KeySpec{dkim::KeyAlgorithm::kRsaSha256, rsa_selector},
                           KeySpec{dkim::KeyAlgorithm::kEd25519Sha256, ed_selector}}) {
    absl::StatusOr<dkim::PrivateKey> key = dkim::PrivateKey::Generate(k.algorithm, kRsaBits);
    if (!key.ok()) return fail(key.status());
    absl::StatusOr<std::string> pem = key->ToPem();
    if (!pem.ok()) return fail(pem.status());
    absl::Status s = WriteNewFile(root / "keys" / absl::StrCat(o.domain, ".", k.selector, ".pem"),
                                  *pem, kSecretMode);
    if (!s.ok()) return fail(s);
  }
  absl::Status s = tls::GenerateSelfSignedCertificate(
      o.hostname, (root / "tls" / "cert.pem").string(), (root / "tls" / "key.pem").string());
  if (!s.ok()) return fail(s);
  fs::path config_path = root / "relayd.toml";
  s = WriteNewFile(config_path, InitConfigText(o, rsa_selector, ed_selector), kConfigMode);
  if (!s.ok()) return fail(s);

  // The records come from the config as written, the way dns-records reads it later: what is
  // printed now is what check-dns will expect.
  absl::StatusOr<server::Config> config = server::LoadConfig(config_path.string());
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<ExpectedDns> expected = ExpectedRecords(*config, o.domain);
  if (!expected.ok()) return fail(expected.status());
  std::fprintf(stderr,
               "Wrote %s (self-signed certificate in tls/, DKIM keys %s and %s in keys/).\n"
               "Next: publish the records below, add a user with `relayctl user-add USER "
               "--allow @%s --config-dir %s`,\nthen run `relayctl check-dns --config %s`.\n",
               config_path.c_str(), rsa_selector.c_str(), ed_selector.c_str(), o.domain.c_str(),
               root.c_str(), config_path.c_str());
  std::fprintf(out, "%s", FormatZone(*expected).c_str());
  return kExitOk;
}

}  // namespace relay::relayctl
