// The bench tools' safety rule: load is only ever aimed at this machine or at a network
// namespace a test made, never at someone else's server. Allowed destinations are loopback
// (127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104) and the documentation prefixes that tests route
// inside namespaces (RFC 5737: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24; RFC 3849:
// 2001:db8::/32). Any thread; no state.
#pragma once

#include "absl/status/status.h"
#include "relay/io/socket.h"

namespace bench {

// OK for an allowed destination; PermissionDenied naming the address and the rule otherwise.
absl::Status CheckBenchDestination(const relay::io::SocketAddress& address);

}  // namespace bench
