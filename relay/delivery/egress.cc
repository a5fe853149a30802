#include "relay/delivery/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

absl::StatusOr<Egress> Egress::Create(const std::vector<EgressSourceConfig>& configs,
                                      const std::vector<EgressPoolConfig>& pools,
                                      EgressStrategy strategy, std::string default_ehlo) {
  Egress egress;
  for (const EgressSourceConfig& c : configs) {
    std::vector<EgressSource> made;
    if (!c.prefix.empty()) {
      auto expanded = ExpandPrefix(c);
      if (!expanded.ok()) return expanded.status();
      made = std::move(*expanded);
    } else {
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
      made.push_back(std::move(s));
    }
    for (EgressSource& s : made) {
      s.group = !c.name.empty() ? c.name : !c.prefix.empty() ? c.prefix : s.name;
      s.warmup = c.warmup;
      s.warmup_start_day = c.warmup_start_day;
      egress.sources_.push_back(std::move(s));
    }
  }
  if (egress.sources_.empty()) {
    EgressSource s;
    s.name = "default";
    s.group = "default";
    s.ehlo_name = std::move(default_ehlo);
    egress.sources_.push_back(std::move(s));
  }
  const size_t n = egress.sources_.size();
  // Pool 0 is "default": the configured one of that name, else every source.
  auto configured_default = std::find_if(
      pools.begin(), pools.end(), [](const EgressPoolConfig& p) { return p.name == "default"; });
  if (configured_default == pools.end()) {
    Pool all;
    all.name = "default";
    all.strategy = strategy;
    for (size_t i = 0; i < n; ++i) all.members.push_back(static_cast<int>(i));
    egress.pools_.push_back(std::move(all));
  }
  std::vector<const EgressPoolConfig*> ordered;
  if (configured_default != pools.end()) ordered.push_back(&*configured_default);
  for (const EgressPoolConfig& p : pools) {
    if (p.name != "default") ordered.push_back(&p);
  }
  for (const EgressPoolConfig* pc : ordered) {
    if (egress.PoolIndex(pc->name) >= 0) {
      return absl::InvalidArgumentError(absl::StrCat("egress pool ", pc->name, " is named twice"));
    }
    Pool pool;
    pool.name = pc->name;
    pool.strategy = pc->strategy.value_or(strategy);
    std::vector<bool> taken(n, false);
    for (const std::string& name : pc->sources) {
      bool found = false;
      for (size_t i = 0; i < n; ++i) {
        const EgressSource& s = egress.sources_[i];
        if (s.group != name && s.name != name) continue;
        found = true;
        if (!taken[i]) pool.members.push_back(static_cast<int>(i));
        taken[i] = true;
      }
      if (!found) {
        return absl::InvalidArgumentError(
            absl::StrCat("egress pool ", pc->name, " names source ", name,
                         ", which no "
                         "[[delivery.source]] is (by name or address)"));
      }
    }
    if (pool.members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("egress pool ", pc->name, " has no sources"));
    }
    egress.pools_.push_back(std::move(pool));
  }
  for (Pool& p : egress.pools_) {
    p.member.assign(n, false);
    for (int i : p.members) p.member[static_cast<size_t>(i)] = true;
  }
  return egress;
}

int Egress::PoolIndex(std::string_view name) const {
  for (size_t i = 0; i < pools_.size(); ++i) {
    if (pools_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

bool Egress::InPool(int pool, int source) const {
  return pool >= 0 && static_cast<size_t>(pool) < pools_.size() && source >= 0 &&
         static_cast<size_t>(source) < sources_.size() &&
         pools_[static_cast<size_t>(pool)].member[static_cast<size_t>(source)];
}

bool Egress::SameSourcesAs(const Egress& other) const {
  if (sources_.size() != other.sources_.size()) return false;
  for (size_t i = 0; i < sources_.size(); ++i) {
    const EgressSource& a = sources_[i];
    const EgressSource& b = other.sources_[i];
    if (a.name != b.name || a.group != b.group || a.ehlo_name != b.ehlo_name ||
        a.any_address != b.any_address || a.freebind != b.freebind) {
      return false;
    }
  }
  return true;
}

void Egress::CarryStateFrom(const Egress& old) {
  for (size_t i = 0; i < sources_.size() && i < old.sources_.size(); ++i) {
    sources_[i].suspended_until_ms = old.sources_[i].suspended_until_ms;
    sources_[i].connections = old.sources_[i].connections;
  }
}

int Egress::StartOf(Pool& p, std::string_view site, absl::FunctionRef<bool(size_t)> usable) {
  const size_t n = p.members.size();
  switch (p.strategy) {
    case EgressStrategy::kSticky:
      return static_cast<int>(absl::Hash<std::string_view>()(site) % n);
    case EgressStrategy::kWeighted: {
      uint64_t total = 0;
      for (size_t k = 0; k < n; ++k) {
        if (usable(k)) total += sources_[static_cast<size_t>(p.members[k])].weight;
      }
      if (total == 0) return -1;
      // Smooth and deterministic: walk the weights with a moving turn counter.
      uint64_t point = (p.weighted_turn++ * 2654435761u) % total;
      for (size_t k = 0; k < n; ++k) {
        if (!usable(k)) continue;
        const uint32_t w = sources_[static_cast<size_t>(p.members[k])].weight;
        if (point < w) return static_cast<int>(k);
        point -= w;
      }
      return -1;
    }
    case EgressStrategy::kRoundRobin:
      return static_cast<int>(p.next % n);
  }
  return -1;
}

int Egress::Pick(int pool, std::string_view site, int family, int64_t now_ms,
                 absl::FunctionRef<bool(int source)> may_send) {
  if (pool < 0 || static_cast<size_t>(pool) >= pools_.size()) return -1;
  Pool& p = pools_[static_cast<size_t>(pool)];
  auto usable = [&](size_t k) {
    const EgressSource& s = sources_[static_cast<size_t>(p.members[k])];
    return s.suspended_until_ms <= now_ms && (s.any_address || s.address.family() == family);
  };
  const int start = StartOf(p, site, usable);
  if (start < 0) return -1;
  // From the strategy's choice on, the first usable member that may send: a source out of its
  // warm-up allowance passes the message to the next one.
  const size_t n = p.members.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t at = (static_cast<size_t>(start) + k) % n;
    const int index = p.members[at];
    if (!usable(at) || !may_send(index)) continue;
    if (p.strategy == EgressStrategy::kRoundRobin) p.next = at + 1;
    return index;
  }
  return -1;
}

void Egress::Suspend(int index, int64_t until_ms, std::string_view why) {
  EgressSource& s = sources_[index];
  s.suspended_until_ms = until_ms;
  LogWarning() << "egress source " << s.name << " (" << s.ehlo_name << ") suspended: "
               << std::string(why);
}

int Egress::OpenSocket(int index, const io::SocketAddress& destination) const {
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
