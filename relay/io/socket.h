// Socket helpers: addresses, listening sockets with SO_REUSEPORT (one per shard, so the kernel
// spreads connections across shards), outbound sockets bound to an egress source.
// Plain system calls made at setup time, never on the per-message path. Any thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace relay::io {

// An IPv4 or IPv6 socket address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  // Parses "1.2.3.4:25", "[::1]:587", "1.2.3.4" / "::1" (port 0 or `default_port`).
  static absl::StatusOr<SocketAddress> Parse(std::string_view text, uint16_t default_port = 0);
  static SocketAddress FromSockaddr(const sockaddr* addr, socklen_t len);
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  void set_port(uint16_t port);
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  // "1.2.3.4" or "2001:db8::1" (no port, no brackets).
  std::string IpString() const;
  // "1.2.3.4:25" or "[2001:db8::1]:25".
  std::string ToString() const;
};

struct ListenOptions {
  bool reuse_port = true;
  int backlog = 4096;
};

// A non-blocking listening TCP socket. Returns the fd.
absl::StatusOr<int> Listen(const SocketAddress& address, const ListenOptions& options = {});
// The address a socket is bound to (e.g. to learn the port after binding port 0).
absl::StatusOr<SocketAddress> LocalAddress(int fd);
absl::StatusOr<SocketAddress> PeerAddress(int fd);

}  // namespace relay::io
