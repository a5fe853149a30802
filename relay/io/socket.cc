#include "relay/io/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace relay::io {

absl::StatusOr<SocketAddress> SocketAddress::Parse(std::string_view text, uint16_t default_port) {
  std::string host(text);
  uint32_t port = default_port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad address (no ']'): ", std::string(text)));
    }
    host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !absl::SimpleAtoi(std::string(rest.substr(1)), &port) || port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("bad port in address: ", std::string(text)));
      }
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    size_t colon = text.find(':');
    host = std::string(text.substr(0, colon));
    if (!absl::SimpleAtoi(std::string(text.substr(colon + 1)), &port) || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in address: ", std::string(text)));
    }
  }
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out.length = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", std::string(text)));
}

SocketAddress SocketAddress::FromSockaddr(const sockaddr* addr, socklen_t len) {
  SocketAddress out;
  std::memcpy(&out.storage, addr, std::min<size_t>(len, sizeof(out.storage)));
  out.length = len;
  return out;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

std::string SocketAddress::IpString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, buf,
              sizeof(buf));
  } else if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, buf,
              sizeof(buf));
  }
  return buf;
}

std::string SocketAddress::ToString() const {
  if (family() == AF_INET6) return absl::StrCat("[", IpString(), "]:", port());
  return absl::StrCat(IpString(), ":", port());
}

absl::StatusOr<int> Listen(const SocketAddress& address, const ListenOptions& options) {
  int fd = socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (options.reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(fd, address.get(), address.length) < 0) {
    int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("bind ", address.ToString(), ": ", std::strerror(err)));
  }
  if (listen(fd, options.backlog) < 0) {
    int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("listen ", address.ToString(), ": ", std::strerror(err)));
  }
  return fd;
}

absl::StatusOr<SocketAddress> LocalAddress(int fd) {
  SocketAddress out;
  out.length = sizeof(out.storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.length) < 0) {
    return absl::InternalError(absl::StrCat("getsockname: ", std::strerror(errno)));
  }
  return out;
}

absl::StatusOr<SocketAddress> PeerAddress(int fd) {
  SocketAddress out;
  out.length = sizeof(out.storage);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&out.storage), &out.length) < 0) {
    return absl::InternalError(absl::StrCat("getpeername: ", std::strerror(errno)));
  }
  return out;
}

}  // namespace relay::io
