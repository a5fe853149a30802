#include "relay/server/client_key.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace relay::server {
namespace {

std::string KeyForV4(const in_addr& addr) {
  return std::string(reinterpret_cast<const char*>(&addr), 4);
}

std::string KeyForV6(const in6_addr& addr) {
  if (IN6_IS_ADDR_V4MAPPED(&addr)) return std::string(reinterpret_cast<const char*>(&addr) + 12, 4);
  return std::string(reinterpret_cast<const char*>(&addr), 8);  // the /64
}

}  // namespace

std::string ClientKey(const sockaddr* address) {
  if (address == nullptr) return "";
  if (address->sa_family == AF_INET) {
    return KeyForV4(reinterpret_cast<const sockaddr_in*>(address)->sin_addr);
  }
  if (address->sa_family == AF_INET6) {
    return KeyForV6(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  }
  return "";
}

std::string ClientKeyFromText(absl::string_view address) {
  std::string text(address);
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return KeyForV4(v4);
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return KeyForV6(v6);
  return "";
}

}  // namespace relay::server
