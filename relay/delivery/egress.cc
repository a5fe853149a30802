#include "relay/delivery/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/hash/hash.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "relay/base/log.h"

#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace relay::delivery {
namespace {

absl::StatusOr<std::vector<EgressSource>> ExpandPrefix(const EgressSourceConfig& c) {
  size_t slash = c.prefix.find('/');
  std::string base = c.prefix.substr(0, slash);
  int bits = 64;
  if (slash != std::string::npos && !absl::SimpleAtoi(c.prefix.substr(slash + 1), &bits)) {
    return absl::InvalidArgumentError(absl::StrCat("bad prefix length in ", c.prefix));
  }
  in6_addr addr;
  if (inet_pton(AF_INET6, base.c_str(), &addr) != 1 || bits < 64 || bits > 127) {
    return absl::InvalidArgumentError(
        absl::StrCat("egress prefix must be an IPv6 prefix of /64 to /127: ", c.prefix));
  }
  if (c.count == 0 || c.count > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("egress prefix ", c.prefix, " needs a count between 1 and 65536"));
  }
  std::vector<EgressSource> out;
  for (uint32_t i = 0; i < c.count; ++i) {
    in6_addr a = addr;
    // The index + 1 goes into the low 32 bits (the interface identifier).
    uint32_t low = htonl(ntohl(*reinterpret_cast<uint32_t*>(&a.s6_addr[12])) + i + 1);
    std::memcpy(&a.s6_addr[12], &low, 4);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &a, text, sizeof(text));
    EgressSource s;
    auto parsed = io::SocketAddress::Parse(text);
    if (!parsed.ok()) return parsed.status();
    s.address = *parsed;
    s.any_address = false;
    s.freebind = true;
    s.name = text;
    std::string n = absl::StrCat(i + 1);
    s.ehlo_name = c.ehlo_name.find("{n}") != std::string::npos
                      ? absl::StrReplaceAll(c.ehlo_name, {{"{n}", n}})
                      : absl::StrCat(n, ".", c.ehlo_name);
    s.weight = c.weight;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

absl::StatusOr<EgressPool> EgressPool::Create(const std::vector<EgressSourceConfig>& configs,
                                              EgressStrategy strategy, std::string default_ehlo) {
  EgressPool pool;
  pool.strategy_ = strategy;
  for (const EgressSourceConfig& c : configs) {
    if (!c.prefix.empty()) {
      auto expanded = ExpandPrefix(c);
      if (!expanded.ok()) return expanded.status();
      for (auto& s : *expanded) pool.sources_.push_back(std::move(s));
      continue;
    }
    EgressSource s;
    s.ehlo_name = c.ehlo_name.empty() ? default_ehlo : c.ehlo_name;
    s.weight = c.weight == 0 ? 1 : c.weight;
    if (c.address.empty()) {
      s.name = "default";
    } else {
      auto parsed = io::SocketAddress::Parse(c.address);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("egress source address ", c.address, ": ", parsed.status().message()));
      }
      s.address = *parsed;
      s.any_address = false;
      s.name = parsed->IpString();
    }
    pool.sources_.push_back(std::move(s));
  }
  if (pool.sources_.empty()) {
    EgressSource s;
    s.name = "default";
    s.ehlo_name = std::move(default_ehlo);
    pool.sources_.push_back(std::move(s));
  }
  return pool;
}

int EgressPool::Pick(std::string_view site, int family, int64_t now_ms) {
  auto usable = [&](size_t i) {
    const EgressSource& s = sources_[i];
    return s.suspended_until_ms <= now_ms && (s.any_address || s.address.family() == family);
  };
  size_t n = sources_.size();
  switch (strategy_) {
    case EgressStrategy::kSticky: {
      size_t start = absl::Hash<std::string_view>()(site) % n;
      for (size_t k = 0; k < n; ++k) {
        if (usable((start + k) % n)) return static_cast<int>((start + k) % n);
      }
      return -1;
    }
    case EgressStrategy::kWeighted: {
      uint64_t total = 0;
      for (size_t i = 0; i < n; ++i) {
        if (usable(i)) total += sources_[i].weight;
      }
      if (total == 0) return -1;
      // Smooth and deterministic: walk the weights with a moving turn counter.
      uint64_t point = (weighted_turn_++ * 2654435761u) % total;
      for (size_t i = 0; i < n; ++i) {
        if (!usable(i)) continue;
        if (point < sources_[i].weight) return static_cast<int>(i);
        point -= sources_[i].weight;
      }
      return -1;
    }
    case EgressStrategy::kRoundRobin:
      for (size_t k = 0; k < n; ++k) {
        size_t i = (next_ + k) % n;
        if (usable(i)) {
          next_ = i + 1;
          return static_cast<int>(i);
        }
      }
      return -1;
  }
  return -1;
}

void EgressPool::Suspend(int index, int64_t until_ms, std::string_view why) {
  EgressSource& s = sources_[index];
  s.suspended_until_ms = until_ms;
  LogWarning() << "egress source " << s.name << " (" << s.ehlo_name << ") suspended: "
               << std::string(why);
}

int EgressPool::OpenSocket(int index, const io::SocketAddress& destination) const {
  const EgressSource& s = sources_[index];
  int fd = socket(destination.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  // Every write is a whole command batch or a body piece: Nagle's algorithm would only hold the
  // body back until the 354's ACK, which delayed ACK sends 40 ms late.
  int nodelay = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof(nodelay));
  if (!s.any_address) {
    int one = 1;
    // The source port is chosen at connect(), per destination: thousands of connections from
    // one address do not exhaust the ephemeral ports at bind() time.
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (s.freebind) {
      if (s.address.family() == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
      } else {
        setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
      }
    }
    io::SocketAddress local = s.address;
    local.set_port(0);
    if (bind(fd, local.get(), local.length) < 0) {
      int err = errno;
      ::close(fd);
      return -err;
    }
  }
  return fd;
}

}  // namespace relay::delivery
