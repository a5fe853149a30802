// The per-shard asynchronous DNS resolver: one c-ares channel whose sockets are polled on the
// shard's io_uring (ARES_OPT_SOCK_STATE_CB → PollAdd → ares_process_fd) with one reactor Timer
// re-armed from ares_timeout, a TTL-honouring cache in front of it (dns/cache.h), and the MX rules
// of RFC 5321 §5.1 / RFC 7505 on top (dns/mx.h).
//
// Threading: a Resolver belongs to its reactor's thread; create it, call it and destroy it there.
// Every callback runs on that thread from a reactor completion handler, timer or posted task,
// never inside the call that started the lookup (a cached answer is delivered from a posted
// task). A callback may start new lookups.
//
// Cancellation: each lookup returns a QueryHandle. Destroying the handle or calling Cancel()
// guarantees that the callback is never called; the DNS query itself runs to its end inside
// c-ares (there is no per-query cancel) and its answer still feeds the cache. Destroying the
// Resolver cancels everything in flight: no callback runs after ~Resolver begins. A callback must
// not destroy the Resolver that calls it (post the destruction instead). The reactor must
// outlive the resolver.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dns/cache.h"
#include "dns/message.h"
#include "dns/mx.h"
#include "dns/outcome.h"
#include "relay/base/clock.h"
#include "relay/io/reactor.h"
#include "relay/io/socket.h"
#include "relay/io/timer_wheel.h"

struct ares_channeldata;

namespace dns {

struct ResolverOptions {
  // "127.0.0.1:5353", "[::1]:53", "192.0.2.1" (port 53). Empty: /etc/resolv.conf.
  std::vector<std::string> servers;
  // c-ares doubles the timeout on each round over the servers.
  int timeout_ms = 2000;
  int tries = 3;
  // EDNS0 UDP payload size advertised (RFC 6891); 0 sends plain queries (512-byte UDP, TCP on TC).
  uint16_t edns_payload_bytes = 1232;
  // SO_RCVBUF of the UDP sockets (the kernel caps it at net.core.rmem_max). A burst of answers
  // larger than the buffer is dropped by the kernel and costs a timeout; each small datagram
  // takes ~2 KiB of it, so the default buffer holds only ~100 answers.
  int udp_receive_buffer_bytes = 1 << 20;
  // Whether the AD bit of an answer means what it says (RFC 4035 §3.2.3, RFC 6698 §4.1): only
  // when the resolver validates DNSSEC and the path to it cannot be tampered with (loopback, as
  // glibc's `options trust-ad`). Every query asks for AD (RFC 6840 §5.7); without this, every
  // answer counts as insecure.
  bool trust_ad = false;
  // The family preference of ResolveMx when none is given.
  FamilyPreference family = FamilyPreference::kIpv6First;
  CacheOptions cache;
  // The clock of cache expiry; the reactor's clock when null.
  relay::Clock* cache_clock = nullptr;
  // Seed of the shuffle of equal MX preferences; 0 seeds from the OS.
  uint64_t random_seed = 0;
};

namespace internal {
struct Token {
  bool cancelled = false;
};
}  // namespace internal

// Owns the right to be called back. Movable; destroying it cancels the lookup.
class QueryHandle {
 public:
  QueryHandle() = default;
  explicit QueryHandle(std::shared_ptr<internal::Token> token) : token_(std::move(token)) {}
  QueryHandle(QueryHandle&&) = default;
  QueryHandle& operator=(QueryHandle&& other) {
    Cancel();
    token_ = std::move(other.token_);
    return *this;
  }
  ~QueryHandle() { Cancel(); }
  void Cancel() {
    if (token_ != nullptr) token_->cancelled = true;
    token_.reset();
  }
  // Lets the lookup finish without anyone holding the handle.
  void Detach() { token_.reset(); }

 private:
  std::shared_ptr<internal::Token> token_;
};

struct MxResult {
  DnsStatus status;
  // MX hosts in the order to try them, only those with at least one address.
  std::vector<MxHost> hosts;
  // (host, address) pairs in the order to try them.
  std::vector<Candidate> candidates;
  // The sorted set of MX host names ("a.mx.example,b.mx.example"); see dns/mx.h.
  std::string site;
  bool implicit_mx = false;  // no MX records: the domain itself (RFC 5321 §5.1)
  // The MX answer (or, for an implicit MX, its denial) was validated with DNSSEC (trust_ad). Each
  // host says whether its addresses were (MxHost::dnssec).
  bool dnssec = false;
};

struct AddressResult {
  DnsStatus status;
  std::vector<relay::io::SocketAddress> addresses;  // ordered by the family preference, port 0
  bool dnssec = false;  // every answer (of both families) was validated (trust_ad)
};

struct TxtRecord {
  std::vector<std::string> strings;  // the character-strings, as published
  std::string joined;                // concatenated without separators (RFC 7208 §3.3)
};

struct TxtResult {
  DnsStatus status;
  std::vector<TxtRecord> records;
};

struct TlsaResult {
  DnsStatus status;     // ok with no records: none published (NXDOMAIN and NODATA are not failures)
  bool dnssec = false;  // the answer, records or denial, was validated (trust_ad)
  std::vector<std::string> rdatas;  // the RDATA of each TLSA record (relay/tlspolicy/tlsa.h)
};

struct PtrResult {
  DnsStatus status;
  std::vector<std::string> names;
};

struct QueryResult {
  DnsStatus status;
  // The answer as received (raw bytes and parsed), or null when none arrived (timeout, network,
  // or an error reply c-ares consumed, such as SERVFAIL after its retries).
  std::shared_ptr<const CachedAnswer> answer;
  bool from_cache = false;
};

// Whether the AD bit of `servers` (ResolverOptions::servers; empty: those of /etc/resolv.conf)
// can be believed by default: every server the relay's configuration names is on loopback (a
// validating resolver beside it), or, with none named, resolv.conf says `options trust-ad`
// (glibc's own switch for the same question; its loopback stubs alone are not enough).
bool AdTrustedByDefault(const std::vector<std::string>& servers);
// The same judgement from a resolv.conf's text.
bool AdTrustedByDefault(const std::vector<std::string>& servers, std::string_view resolv_conf);

class Resolver {
 public:
  static absl::StatusOr<std::unique_ptr<Resolver>> Create(relay::io::Reactor* reactor,
                                                          const ResolverOptions& options);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  using MxCallback = std::function<void(MxResult)>;
  using AddressCallback = std::function<void(AddressResult)>;
  using TxtCallback = std::function<void(TxtResult)>;
  using PtrCallback = std::function<void(PtrResult)>;
  using QueryCallback = std::function<void(QueryResult)>;

  // The delivery candidates of a mail domain (RFC 5321 §5.1).
  [[nodiscard]] QueryHandle ResolveMx(std::string_view domain, MxCallback callback);
  [[nodiscard]] QueryHandle ResolveMx(std::string_view domain, FamilyPreference family,
                                      MxCallback callback);
  // A and/or AAAA of a host, ordered by `family`.
  [[nodiscard]] QueryHandle ResolveAddresses(std::string_view host, FamilyPreference family,
                                             AddressCallback callback);
  [[nodiscard]] QueryHandle LookupTxt(std::string_view name, TxtCallback callback);
  // The TLSA records of a service (RFC 6698 §3): `_<port>._tcp.<host>`.
  [[nodiscard]] QueryHandle LookupTlsa(std::string_view host, uint16_t port,
                                       std::function<void(TlsaResult)> callback);
  // Reverse lookup of an IPv4 or IPv6 address given as text.
  [[nodiscard]] QueryHandle LookupPtr(std::string_view ip, PtrCallback callback);
  // Any other type: the answer as received. NXDOMAIN is permanent; NODATA is ok with no
  // records of the type.
  [[nodiscard]] QueryHandle Query(std::string_view name, uint16_t type, QueryCallback callback);

  Cache& cache() { return cache_; }
  // Queries handed to c-ares and not yet answered (cancelled ones included).
  size_t queries_in_flight() const { return queries_in_flight_; }
  uint64_t queries_sent() const { return queries_sent_; }
  // Lookups that joined the same question already in flight instead of sending it again.
  uint64_t queries_joined() const { return queries_joined_; }
  // Tries that went unanswered within the timeout (each one cost timeout_ms or more).
  uint64_t timeouts() const { return timeouts_; }
  // Lookups answered from the cache; queries that ended without a usable answer (timeout,
  // SERVFAIL, malformed reply: transient failures; NXDOMAIN is an answer).
  uint64_t cache_hits() const { return cache_hits_; }
  uint64_t failures() const { return failures_; }
  // Sockets c-ares currently has open.
  size_t sockets_open() const { return watches_.size(); }

 private:
  struct Watch;
  struct Pending;
  using Token = std::shared_ptr<internal::Token>;
  using LookupFn = std::function<void(QueryResult)>;

  Resolver(relay::io::Reactor* reactor, const ResolverOptions& options);
  absl::Status Init();

  // One (name, type) question through the cache; `fn` may run before Lookup returns (cache
  // hit), so internal callers tolerate that; user callbacks go through Deliver.
  void Lookup(std::string_view name, uint16_t type, LookupFn fn);
  void AddressesInternal(std::string_view host, FamilyPreference family, Token token,
                         std::function<void(AddressResult)> fn);
  // Whether `answer` was validated with DNSSEC and the resolver is trusted to say so.
  bool Secure(const CachedAnswer& answer) const;
  template <typename Result>
  void Deliver(const Token& token, std::function<void(Result)>& callback, Result result);

  static void OnAnswer(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void OnSockState(void* data, int fd, int readable, int writable);
  void SockState(int fd, bool readable, bool writable);
  void OnPoll(Watch* watch, int result);
  void RearmTimer();
  void OnTimer();

  relay::io::Reactor* reactor_;
  ResolverOptions options_;
  Cache cache_;
  std::mt19937_64 random_;
  ares_channeldata* channel_ = nullptr;
  relay::io::Timer timer_;
  absl::flat_hash_map<int, std::unique_ptr<Watch>> watches_;
  // Nesting depth of public calls: callbacks ready during one are posted, not run.
  int api_depth_ = 0;
  bool destroying_ = false;
  // Cleared by ~Resolver so that posted deliveries that have not run yet are dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  size_t queries_in_flight_ = 0;
  uint64_t queries_sent_ = 0;
  uint64_t queries_joined_ = 0;
  // Questions in flight by InFlightKey (lower-case name without the final dot, "/", type); the
  // Pending is owned by c-ares until OnAnswer.
  absl::flat_hash_map<std::string, Pending*> in_flight_;
  uint64_t timeouts_ = 0;
  uint64_t cache_hits_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace dns
