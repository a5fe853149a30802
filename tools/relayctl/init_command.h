// `relayctl init`: a new configuration directory for sending a domain's mail, and the DNS
// records to publish for it.
//
//   relayctl init DOMAIN [--dir D] [--hostname H] [--ipv4 A ...] [--ipv6 A|PREFIX/LEN ...]
//                 [--prefix-count N] [--spool-dir P] [--log-dir P] [--control-socket P]
//
// Writes D (default /etc/relay, which must not exist yet: nothing is ever overwritten) with
// relayd.toml (commented; listeners on 587 and 465, the egress pool of the given addresses, each
// with the hostname as EHLO name, the limits and shaping defaults shown), a self-signed
// certificate in tls/ (until the operator brings one), and two DKIM keys in keys/ for dual
// signing: RSA-2048 (selector "rsa<year>") and Ed25519 ("ed<year>", RFC 8463). Then prints the
// records of `relayctl dns-records` for the new config. H defaults to "mail.DOMAIN". An IPv6
// prefix stands for N addresses (default 4) derived from it, named "<n>.H".
//
// Main thread; exit 0, 1 when the directory exists or a file cannot be written, 2 usage.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace relay::relayctl {

inline constexpr uint32_t kPrefixCountDefault = 4;

struct InitOptions {
  std::string domain;
  std::string hostname;           // empty: "mail." + domain
  std::vector<std::string> ipv4;  // egress source addresses
  std::vector<std::string> ipv6;  // addresses, or prefixes "2001:db8:1::/64"
  uint32_t prefix_count = kPrefixCountDefault;
  std::string spool_dir = "spool";  // relative paths are relative to the config directory
  std::string log_dir = "log";
  std::string control_socket = "control.sock";
  int year = 0;  // of the DKIM selectors; 0: the current year
};

// The commented relayd.toml for `options` (hostname already filled in).
std::string InitConfigText(const InitOptions& options, const std::string& rsa_selector,
                           const std::string& ed25519_selector);

int InitCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
