// The key under which per-client limits count a peer: the AUTH throttle (auth_throttle.h) and the
// connections per client of each shard (connections_per_ip_max) both use it, so that the two can
// never disagree about who "one client" is.
//
// IPv4: the address (4 bytes). IPv6: the /64 (its first 8 bytes), because one subscriber or one
// server usually holds a whole /64 (RFC 6177 recommends at least a /56 per site) and can rotate
// through it freely, so counting per /128 would give an attacker 2^64 fresh counts.
// IPv4-mapped IPv6 (::ffff:a.b.c.d, a dual-stack listener's view of an IPv4 peer) is the IPv4
// address. Other families, and text that is no address, give "" (never limited per client).
//
// Pure functions; any thread. The key is binary, not for logs.
#pragma once

#include <sys/socket.h>

#include <string>

#include "absl/strings/string_view.h"

namespace relay::server {

std::string ClientKey(const sockaddr* address);
// The same key from the textual address ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1").
std::string ClientKeyFromText(absl::string_view address);

}  // namespace relay::server
