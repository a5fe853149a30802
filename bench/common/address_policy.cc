#include "bench/common/address_policy.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace bench {

namespace {

bool AllowedV4(uint32_t host_order) {
  uint32_t a = host_order;
  if ((a >> 24) == 127) return true;                  // 127.0.0.0/8
  if ((a & 0xffffff00u) == 0xc0000200u) return true;  // 192.0.2.0/24
  if ((a & 0xffffff00u) == 0xc6336400u) return true;  // 198.51.100.0/24
  if ((a & 0xffffff00u) == 0xcb007100u) return true;  // 203.0.113.0/24
  return false;
}

}  // namespace

absl::Status CheckBenchDestination(const relay::io::SocketAddress& address) {
  bool allowed = false;
  if (address.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
    allowed = AllowedV4(ntohl(v4->sin_addr.s_addr));
  } else if (address.family() == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    const uint8_t* b = v6->sin6_addr.s6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
      allowed = true;
    } else if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      uint32_t v4;
      std::memcpy(&v4, b + 12, 4);
      allowed = AllowedV4(ntohl(v4));
    } else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) {
      allowed = true;  // 2001:db8::/32
    }
  }
  if (allowed) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "refusing to send load to ", address.ToString(),
      ": bench tools only target loopback (127.0.0.0/8, ::1) or the documentation prefixes used "
      "inside test network namespaces (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, "
      "2001:db8::/32)"));
}

}  // namespace bench
