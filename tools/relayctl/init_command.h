// `relayctl init`: a new configuration directory for sending a domain's mail, and the DNS
// records to publish for it.
//
//   relayctl init DOMAIN [--dir D] [--hostname H] [--ipv4 A ...] [--ipv6 A|PREFIX/LEN ...]
//                 [--prefix-count N] [--spool-dir P] [--log-dir P] [--control-socket P]
//
// Writes D (default /etc/relay, new or without an earlier init in it: the Debian package's
// relayd.toml.example may be there; nothing is ever overwritten) the way `relayd --init` does
// (relay/server/init_config.h), for production: relayd.toml with listeners on 587 and 465 and the
// egress pool of the given addresses, each with the hostname as EHLO name; a self-signed
// certificate in tls/ (until the operator brings one); and two DKIM keys in keys/ for dual signing,
// RSA-2048 (selector "rsa<year>") and Ed25519 ("ed<year>", RFC 8463). No user is made. Then prints
// the records of `relayctl dns-records` for the new config. H defaults to "mail.DOMAIN". An IPv6
// prefix stands for N addresses (default 4) derived from it, named "<n>.H".
//
// Main thread; exit 0, 1 when the directory holds an earlier init or a file cannot be written,
// 2 usage.
#pragma once

#include <cstdint>
#include <cstdio>

namespace relay::relayctl {

inline constexpr uint32_t kPrefixCountDefault = 4;

int InitCommand(int argc, char** argv, FILE* out = stdout);

}  // namespace relay::relayctl
