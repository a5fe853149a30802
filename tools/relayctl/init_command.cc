#include "tools/relayctl/init_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "relay/server/config.h"
#include "relay/server/init_config.h"
#include "tools/relayctl/dns_records.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Group-readable: a service group may read /etc/relay; the keys and users files stay 0600.
constexpr mode_t kDirMode = 0750;

constexpr char kUsage[] =
    "usage: relayctl init DOMAIN [--dir D] [--hostname H] [--ipv4 A ...] "
    "[--ipv6 A|PREFIX/LEN ...]\n"
    "                     [--prefix-count N] [--spool-dir P] [--log-dir P] "
    "[--control-socket P]\n";

bool IsAddress(int family, const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(family, text.c_str(), buf) == 1;
}

}  // namespace

int InitCommand(int argc, char** argv, FILE* out) {
  server::InitOptions o;
  o.domain.clear();
  o.hostname.clear();
  // Public listeners on the standard ports (RFC 6409, RFC 8314 §3.3): this is the relay's own
  // directory (/etc/relay), not a trial on loopback.
  o.submission_listen = {"0.0.0.0:587", "[::]:587"};
  o.submissions_listen = {"0.0.0.0:465", "[::]:465"};
  o.refuse_earlier_init = true;
  o.dir_mode = kDirMode;
  std::vector<std::string> ipv4;
  std::vector<std::string> ipv6;
  uint32_t prefix_count = kPrefixCountDefault;
  std::string dir = kDefaultConfigDir;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--dir" && has_value) {
      dir = argv[++i];
    } else if (arg == "--hostname" && has_value) {
      o.hostname = absl::AsciiStrToLower(argv[++i]);
    } else if (arg == "--ipv4" && has_value) {
      ipv4.push_back(argv[++i]);
    } else if (arg == "--ipv6" && has_value) {
      ipv6.push_back(argv[++i]);
    } else if (arg == "--prefix-count" && has_value) {
      if (!absl::SimpleAtoi(argv[++i], &prefix_count) || prefix_count == 0 ||
          prefix_count > 65536) {
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
  for (const std::string& a : ipv4) {
    if (!IsAddress(AF_INET, a)) {
      std::fprintf(stderr, "relayctl init: --ipv4 %s is not an IPv4 address\n", a.c_str());
      return kExitUsage;
    }
  }
  for (const std::string& a : ipv6) {
    // Prefixes are checked by the config load below (the egress pool's own rules).
    if (a.find('/') == std::string::npos && !IsAddress(AF_INET6, a)) {
      std::fprintf(stderr, "relayctl init: --ipv6 %s is not an IPv6 address or prefix\n",
                   a.c_str());
      return kExitUsage;
    }
  }

  // Every source with the hostname as its EHLO name: the name its PTR must give.
  for (const std::string& a : ipv4) o.sources.push_back({.address = a, .ehlo_name = o.hostname});
  for (const std::string& a : ipv6) {
    if (a.find('/') == std::string::npos) {
      o.sources.push_back({.address = a, .ehlo_name = o.hostname});
    } else {
      o.sources.push_back({.ehlo_name = o.hostname, .prefix = a, .count = prefix_count});
    }
  }

  absl::StatusOr<server::InitResult> init = server::InitDirectory(dir, o);
  if (!init.ok()) {
    if (init.status().code() == absl::StatusCode::kAlreadyExists) {
      std::fprintf(stderr,
                   "relayctl init: %s (init writes only into a new directory or one without "
                   "relayd.toml, keys/, tls/, users and srs.secret: remove them or choose another "
                   "--dir)\n",
                   std::string(init.status().message()).c_str());
    } else {
      std::fprintf(stderr, "relayctl init: %s\n", std::string(init.status().message()).c_str());
    }
    return kExitFailure;
  }
  auto fail = [&](const absl::Status& s) {
    std::fprintf(stderr, "relayctl init: %s\n", std::string(s.message()).c_str());
    return kExitFailure;
  };
  // The records come from the config as written, the way dns-records reads it later: what is
  // printed now is what check-dns will expect.
  absl::StatusOr<server::Config> config = server::LoadConfig(init->config_path);
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<ExpectedDns> expected = ExpectedRecords(*config, o.domain);
  if (!expected.ok()) return fail(expected.status());
  std::vector<std::string> selectors;
  for (const server::InitKey& k : init->keys) selectors.push_back(k.selector);
  std::fprintf(stderr,
               "Wrote %s (self-signed certificate in tls/, DKIM keys %s in keys/).\n"
               "Next: publish the records below, add a user with `relayctl user-add USER "
               "--allow @%s --config-dir %s`,\nthen run `relayctl check-dns --config %s`.\n",
               init->config_path.c_str(), absl::StrJoin(selectors, " and ").c_str(),
               o.domain.c_str(), dir.c_str(), init->config_path.c_str());
  std::fprintf(out, "%s", FormatZone(*expected).c_str());
  return kExitOk;
}

}  // namespace relay::relayctl
