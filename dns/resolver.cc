#include "dns/resolver.h"

#include <ares.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "relay/base/check.h"
#include "relay/base/lines.h"
#include "relay/base/log.h"
#include "relay/base/status_macros.h"
#include "relay/base/url.h"

namespace dns {
namespace {

absl::Status LibraryInit() {
  static std::once_flag once;
  static int rc = ARES_SUCCESS;
  std::call_once(once, [] { rc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("ares_library_init: ", ares_strerror(rc)));
  }
  return absl::OkStatus();
}

// Maps a c-ares status that carries no usable answer to an outcome.
DnsStatus StatusFromAres(int status, std::string_view name, uint16_t type) {
  std::string what = absl::StrCat(ToAbsl(name), " type ", type, ": ", ares_strerror(status));
  switch (status) {
    case ARES_ENOTFOUND:
      return DnsStatus::Permanent(Reason::kNxDomain,
                                  absl::StrCat(ToAbsl(name), ": no such domain"));
    case ARES_ESERVFAIL:
      return DnsStatus::Transient(Reason::kServFail, what);
    case ARES_EREFUSED:
      return DnsStatus::Transient(Reason::kRefused, what);
    case ARES_ETIMEOUT:
      return DnsStatus::Transient(Reason::kTimeout, what);
    case ARES_ECONNREFUSED:
    case ARES_ENOMEM:
      return DnsStatus::Transient(Reason::kNetwork, what);
    case ARES_EBADRESP:
    case ARES_EFORMERR:
      return DnsStatus::Transient(Reason::kMalformed, what);
    case ARES_EBADNAME:
      return DnsStatus::Permanent(Reason::kBadName, what);
    default:
      return DnsStatus::Transient(Reason::kOther, what);
  }
}

// The outcome of an address lookup of both families, once neither gave addresses.
DnsStatus NoAddressStatus(std::string_view host, const std::vector<DnsStatus>& parts) {
  for (const DnsStatus& s : parts) {
    if (s.transient()) return s;
  }
  bool all_nxdomain = !parts.empty() && std::all_of(parts.begin(), parts.end(), [](auto& s) {
    return s.reason == Reason::kNxDomain;
  });
  if (all_nxdomain) return parts.front();
  return DnsStatus::Permanent(Reason::kNoAddresses,
                              absl::StrCat(ToAbsl(host), ": no address records"));
}

}  // namespace

// One socket c-ares asked us to watch. Retired through the reactor so that a poll still in the
// kernel never completes into freed memory.
struct Resolver::Watch : relay::io::IoObject {
  int fd = -1;
  uint32_t events = 0;
  bool closed = false;
  relay::io::Completion poll;
  bool Idle() const override { return !poll.in_flight(); }
};

// One question handed to c-ares, and everyone waiting for its answer: a question asked again
// while it is in flight joins it instead of sending another (at start, thousands of queued
// messages to a few hundred domains would otherwise flood the server with the same questions and
// lose answers to the flood).
struct Resolver::Pending {
  Resolver* resolver;
  std::string key;  // InFlightKey(name, type)
  std::string name;
  uint16_t type;
  std::vector<LookupFn> fns;
};

namespace {
std::string InFlightKey(std::string_view name, uint16_t type) {
  std::string key = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  if (!key.empty() && key.back() == '.') key.pop_back();
  absl::StrAppend(&key, "/", type);
  return key;
}
}  // namespace

Resolver::Resolver(relay::io::Reactor* reactor, const ResolverOptions& options)
    : reactor_(reactor),
      options_(options),
      cache_(options.cache_clock != nullptr ? options.cache_clock : reactor->clock(),
             options.cache),
      random_(options.random_seed != 0 ? options.random_seed : std::random_device{}()) {
  timer_.set_callback([this] { OnTimer(); });
}

absl::StatusOr<std::unique_ptr<Resolver>> Resolver::Create(relay::io::Reactor* reactor,
                                                           const ResolverOptions& options) {
  RETURN_IF_ERROR(LibraryInit());
  std::unique_ptr<Resolver> resolver(new Resolver(reactor, options));
  RETURN_IF_ERROR(resolver->Init());
  return resolver;
}

absl::Status Resolver::Init() {
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  opts.sock_state_cb = [](void* data, ares_socket_t fd, int readable, int writable) {
    OnSockState(data, fd, readable, writable);
  };
  opts.sock_state_cb_data = this;
  opts.timeout = std::max(1, options_.timeout_ms);
  opts.tries = std::max(1, options_.tries);
  // Mail domains are always fully qualified: no search list, no HOSTALIASES. NOCHECKRESP hands
  // SERVFAIL and REFUSED answers to us as they are: c-ares 1.18 would otherwise retry them and
  // then report "could not contact DNS servers", losing the RCODE that tells the delivery engine
  // what happened (timeouts and socket errors still move on to the next server).
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
  if (options_.udp_receive_buffer_bytes > 0) {
    opts.socket_receive_buffer_size = options_.udp_receive_buffer_bytes;
    mask |= ARES_OPT_SOCK_RCVBUF;
  }
  if (options_.edns_payload_bytes > 0) {
    opts.flags |= ARES_FLAG_EDNS;
    opts.ednspsz = options_.edns_payload_bytes;
    mask |= ARES_OPT_EDNSPSZ;
  }
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    return absl::InternalError(absl::StrCat("ares_init_options: ", ares_strerror(rc)));
  }
  channel_ = channel;
  if (!options_.servers.empty()) {
    std::string csv = absl::StrJoin(options_.servers, ",");
    rc = ares_set_servers_ports_csv(channel_, csv.c_str());
    if (rc != ARES_SUCCESS) {
      return absl::InvalidArgumentError(
          absl::StrCat("DNS servers \"", csv, "\": ", ares_strerror(rc)));
    }
  }
  return absl::OkStatus();
}

Resolver::~Resolver() {
  destroying_ = true;
  *alive_ = false;
  // Calls every pending query back with ARES_EDESTRUCTION (ignored) and reports each socket
  // closed, which retires its watch.
  if (channel_ != nullptr) ares_destroy(channel_);
  for (auto& [fd, watch] : watches_) {
    watch->closed = true;
    if (watch->poll.in_flight()) reactor_->Cancel(&watch->poll);
    reactor_->RetireWhenIdle(std::move(watch));
  }
  watches_.clear();
  reactor_->timers().Cancel(&timer_);
}

template <typename Result>
void Resolver::Deliver(const Token& token, std::function<void(Result)>& callback, Result result) {
  if (token->cancelled || destroying_) return;
  if (api_depth_ > 0) {
    reactor_->Post([alive = alive_, token, callback = std::move(callback),
                    result = std::move(result)]() mutable {
      if (*alive && !token->cancelled) callback(std::move(result));
    });
    return;
  }
  // Moved out first: the callback may destroy its own handle or start new lookups.
  std::function<void(Result)> fn = std::move(callback);
  fn(std::move(result));
}

void Resolver::Lookup(std::string_view name, uint16_t type, LookupFn fn) {
  if (std::shared_ptr<const CachedAnswer> cached = cache_.Lookup(name, type)) {
    QueryResult result;
    result.answer = std::move(cached);
    result.from_cache = true;
    result.status = StatusFromRcode(result.answer->message.rcode, name, type);
    ++cache_hits_;
    fn(std::move(result));
    return;
  }
  std::string key = InFlightKey(name, type);
  if (auto it = in_flight_.find(key); it != in_flight_.end()) {
    it->second->fns.push_back(std::move(fn));
    ++queries_joined_;
    return;
  }
  auto* pending = new Pending{this, key, std::string(name), type, {}};
  pending->fns.push_back(std::move(fn));
  in_flight_.emplace(std::move(key), pending);
  ++queries_in_flight_;
  ++queries_sent_;
  ++api_depth_;  // an answer c-ares produces synchronously must not reach users re-entrantly
  // The query ares_query would send, with the AD bit set: a validating resolver then says
  // whether it validated the answer (RFC 6840 §5.7), without the DO bit's signatures to carry.
  // ares_send keeps the query's ID, and c-ares 1.18 sends every query to a server from one UDP
  // port: the ID is the only thing an off-path spoofer must guess, so it is random (glibc's
  // arc4random: the kernel's CSPRNG).
  unsigned char* query = nullptr;
  int query_bytes = 0;
  const auto id = static_cast<unsigned short>(arc4random() & 0xFFFF);
  int rc = ares_create_query(pending->name.c_str(), kClassIn, type, id, /*rd=*/1, &query,
                             &query_bytes, options_.edns_payload_bytes);
  if (rc != ARES_SUCCESS) {
    OnAnswer(pending, rc, 0, nullptr, 0);
  } else {
    // The AD flag is bit 5 of the header's fourth byte (RFC 4035 §3.2.3).
    query[3] |= static_cast<unsigned char>(MessageBuilder::kFlagAuthenticatedData);
    ares_send(channel_, query, query_bytes, &Resolver::OnAnswer, pending);
    ares_free_string(query);
  }
  --api_depth_;
  RearmTimer();
}

void Resolver::OnAnswer(void* arg, int status, int timeouts, unsigned char* abuf, int alen) {
  std::unique_ptr<Pending> pending(static_cast<Pending*>(arg));
  Resolver* self = pending->resolver;
  --self->queries_in_flight_;
  if (auto it = self->in_flight_.find(pending->key);
      it != self->in_flight_.end() && it->second == pending.get()) {
    self->in_flight_.erase(it);
  }
  self->timeouts_ += static_cast<uint64_t>(timeouts);
  if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED || self->destroying_) return;
  QueryResult result;
  if (abuf != nullptr && alen > 0) {
    absl::StatusOr<Message> parsed =
        ParseMessage(absl::MakeConstSpan(abuf, static_cast<size_t>(alen)));
    if (!parsed.ok()) {
      result.status = DnsStatus::Transient(
          Reason::kMalformed,
          absl::StrCat(pending->name, " type ", pending->type, ": ", parsed.status().message()));
    } else {
      auto answer = std::make_shared<CachedAnswer>();
      answer->raw.assign(reinterpret_cast<const char*>(abuf), static_cast<size_t>(alen));
      answer->message = *std::move(parsed);
      result.status = StatusFromRcode(answer->message.rcode, pending->name, pending->type);
      self->cache_.Insert(pending->name, pending->type, answer);
      result.answer = std::move(answer);
    }
  } else {
    result.status = StatusFromAres(status, pending->name, pending->type);
  }
  if (result.status.transient()) ++self->failures_;
  // Out of the map already: a callback that asks the same question again starts a new query (or
  // finds the answer in the cache).
  for (size_t i = 0; i + 1 < pending->fns.size(); ++i) pending->fns[i](result);
  pending->fns.back()(std::move(result));
}

void Resolver::OnSockState(void* data, int fd, int readable, int writable) {
  static_cast<Resolver*>(data)->SockState(fd, readable != 0, writable != 0);
}

void Resolver::SockState(int fd, bool readable, bool writable) {
  auto it = watches_.find(fd);
  if (!readable && !writable) {
    if (it == watches_.end()) return;
    std::unique_ptr<Watch> watch = std::move(it->second);
    watches_.erase(it);
    watch->closed = true;
    // The poll holds its own reference to the file; cancel it before c-ares closes the fd.
    if (watch->poll.in_flight()) reactor_->Cancel(&watch->poll);
    reactor_->RetireWhenIdle(std::move(watch));
    return;
  }
  uint32_t events = (readable ? POLLIN : 0) | (writable ? POLLOUT : 0);
  if (it == watches_.end()) {
    auto watch = std::make_unique<Watch>();
    watch->fd = fd;
    Watch* w = watch.get();
    watch->poll.set_handler([this, w](int result, uint32_t) {
      if (w->closed) return;
      OnPoll(w, result);
    });
    it = watches_.emplace(fd, std::move(watch)).first;
  }
  Watch* w = it->second.get();
  if (w->events == events && w->poll.in_flight()) return;
  w->events = events;
  if (w->poll.in_flight()) {
    // The mask changed: the handler re-arms with the new one when the cancellation lands.
    reactor_->Cancel(&w->poll);
  } else {
    reactor_->PollAdd(fd, events, &w->poll);
  }
}

void Resolver::OnPoll(Watch* w, int result) {
  if (result == -ECANCELED) {
    if (!w->poll.in_flight()) reactor_->PollAdd(w->fd, w->events, &w->poll);
    return;
  }
  ares_socket_t read_fd = ARES_SOCKET_BAD;
  ares_socket_t write_fd = ARES_SOCKET_BAD;
  if (result < 0) {
    // Let c-ares find the error on the socket itself.
    relay::LogWarning() << "dns: poll on fd " << w->fd << ": " << std::strerror(-result);
    if (w->events & POLLIN) read_fd = w->fd;
    if (w->events & POLLOUT) write_fd = w->fd;
  } else {
    uint32_t revents = static_cast<uint32_t>(result);
    if ((w->events & POLLIN) && (revents & (POLLIN | POLLERR | POLLHUP))) read_fd = w->fd;
    if ((w->events & POLLOUT) && (revents & (POLLOUT | POLLERR | POLLHUP))) write_fd = w->fd;
  }
  ares_process_fd(channel_, read_fd, write_fd);
  // c-ares may have closed the socket (the watch is then retiring and `closed`).
  if (!w->closed && !w->poll.in_flight()) reactor_->PollAdd(w->fd, w->events, &w->poll);
  RearmTimer();
}

void Resolver::RearmTimer() {
  if (destroying_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    reactor_->timers().Cancel(&timer_);
    return;
  }
  // Round up: a timer that fires a millisecond early would find nothing due and spin.
  int64_t delay_ms = int64_t{tv.tv_sec} * 1000 + (tv.tv_usec + 999) / 1000;
  reactor_->timers().ScheduleAfter(&timer_, std::max<int64_t>(delay_ms, 1));
}

void Resolver::OnTimer() {
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  RearmTimer();
}

bool Resolver::Secure(const CachedAnswer& answer) const {
  return options_.trust_ad && answer.message.authenticated_data &&
         (answer.message.rcode == kRcodeNoError || answer.message.rcode == kRcodeNxDomain);
}

namespace {

// The address of a server as given in the options ("127.0.0.1:5353", "[::1]:53", "::1").
std::string_view ServerHost(std::string_view server) {
  if (!server.empty() && server.front() == '[') {
    const size_t end = server.find(']');
    return server.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1);
  }
  if (std::count(server.begin(), server.end(), ':') == 1) return server.substr(0, server.find(':'));
  return server;
}

}  // namespace

bool AdTrustedByDefault(const std::vector<std::string>& servers, std::string_view resolv_conf) {
  std::vector<std::string> from_conf;
  bool trust_ad_option = false;
  relay::ForEachLine(resolv_conf, [&](std::string_view line) {
    std::vector<absl::string_view> words =
        absl::StrSplit(ToAbsl(line), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (words.empty() || words[0].front() == '#' || words[0].front() == ';') return true;
    if (words[0] == "nameserver" && words.size() >= 2)
      from_conf.emplace_back(words[1].data(), words[1].size());
    if (words[0] == "options") {
      for (size_t i = 1; i < words.size(); ++i) trust_ad_option |= words[i] == "trust-ad";
    }
    return true;
  });
  // resolv.conf's own loopback servers are not enough: a stub there (systemd-resolved, Docker's
  // 127.0.0.11, dnsmasq) may pass on an AD bit from an upstream path anyone can tamper with. Only
  // its trust-ad option (the operator's word, as glibc takes it) or servers the relay's own
  // configuration names on loopback are believed.
  if (servers.empty()) return trust_ad_option && !from_conf.empty();
  return std::all_of(servers.begin(), servers.end(), [](const std::string& s) {
    return relay::IsLoopbackHost(std::string(ServerHost(s)));
  });
}

bool AdTrustedByDefault(const std::vector<std::string>& servers) {
  std::string conf;
  if (servers.empty()) {
    std::ifstream in("/etc/resolv.conf");
    conf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return AdTrustedByDefault(servers, conf);
}

// ---- Public lookups ----

QueryHandle Resolver::Query(std::string_view name, uint16_t type, QueryCallback callback) {
  Token token = std::make_shared<internal::Token>();
  ++api_depth_;
  Lookup(name, type, [this, token, callback = std::move(callback)](QueryResult result) mutable {
    Deliver(token, callback, std::move(result));
  });
  --api_depth_;
  return QueryHandle(token);
}

QueryHandle Resolver::LookupTxt(std::string_view name, TxtCallback callback) {
  Token token = std::make_shared<internal::Token>();
  std::string qname(name);
  ++api_depth_;
  Lookup(name, kTypeTxt,
         [this, token, qname, callback = std::move(callback)](QueryResult q) mutable {
           TxtResult result;
           result.status = q.status;
           if (q.status.ok() && q.answer != nullptr) {
             for (const ResourceRecord* rr : AnswersFor(q.answer->message, qname, kTypeTxt)) {
               TxtRecord txt;
               txt.strings = rr->texts;
               for (const std::string& s : rr->texts) txt.joined += s;
               result.records.push_back(std::move(txt));
             }
             if (result.records.empty()) {
               result.status =
                   DnsStatus::Permanent(Reason::kNoData, absl::StrCat(qname, ": no TXT records"));
             }
           }
           Deliver(token, callback, std::move(result));
         });
  --api_depth_;
  return QueryHandle(token);
}

QueryHandle Resolver::LookupTlsa(std::string_view host, uint16_t port,
                                 std::function<void(TlsaResult)> callback) {
  Token token = std::make_shared<internal::Token>();
  std::string qname = absl::StrCat("_", port, "._tcp.", ToAbsl(CanonicalName(host)));
  ++api_depth_;
  Lookup(qname, kTypeTlsa,
         [this, token, qname, callback = std::move(callback)](QueryResult q) mutable {
           TlsaResult result;
           result.status = q.status;
           if (q.answer != nullptr) result.dnssec = Secure(*q.answer);
           if (q.status.ok() && q.answer != nullptr) {
             for (const ResourceRecord* rr : AnswersFor(q.answer->message, qname, kTypeTlsa)) {
               result.rdatas.push_back(rr->rdata);
             }
           } else if (q.status.reason == Reason::kNxDomain) {
             result.status = DnsStatus::Ok();
           }
           Deliver(token, callback, std::move(result));
         });
  --api_depth_;
  return QueryHandle(token);
}

QueryHandle Resolver::LookupPtr(std::string_view ip, PtrCallback callback) {
  Token token = std::make_shared<internal::Token>();
  absl::StatusOr<std::string> reverse = ReverseName(ip);
  ++api_depth_;
  if (!reverse.ok()) {
    PtrResult result;
    result.status = DnsStatus::Permanent(Reason::kBadName, std::string(reverse.status().message()));
    Deliver(token, callback, std::move(result));
  } else {
    std::string qname = *reverse;
    Lookup(qname, kTypePtr,
           [this, token, qname, callback = std::move(callback)](QueryResult q) mutable {
             PtrResult result;
             result.status = q.status;
             if (q.status.ok() && q.answer != nullptr) {
               for (const ResourceRecord* rr : AnswersFor(q.answer->message, qname, kTypePtr)) {
                 result.names.push_back(CanonicalName(rr->target));
               }
               if (result.names.empty()) {
                 result.status =
                     DnsStatus::Permanent(Reason::kNoData, absl::StrCat(qname, ": no PTR records"));
               }
             }
             Deliver(token, callback, std::move(result));
           });
  }
  --api_depth_;
  return QueryHandle(token);
}

// Collects the A and AAAA halves of one host's lookup.
struct AddressJoin {
  std::string host;
  FamilyPreference family;
  int outstanding = 0;
  std::vector<relay::io::SocketAddress> v4, v6;
  std::vector<DnsStatus> statuses;
  bool dnssec = true;  // until an answer with addresses says otherwise
  std::function<void(AddressResult)> fn;
};

void Resolver::AddressesInternal(std::string_view host, FamilyPreference family, Token token,
                                 std::function<void(AddressResult)> fn) {
  auto join = std::make_shared<AddressJoin>();
  join->host = CanonicalName(host);
  join->family = family;
  join->fn = std::move(fn);
  std::vector<uint16_t> types;
  if (family != FamilyPreference::kIpv4Only) types.push_back(kTypeAaaa);
  if (family != FamilyPreference::kIpv6Only) types.push_back(kTypeA);
  join->outstanding = static_cast<int>(types.size());
  for (uint16_t type : types) {
    Lookup(join->host, type, [this, join, token, type](QueryResult q) {
      if (q.status.ok() && q.answer != nullptr) {
        auto& out = type == kTypeA ? join->v4 : join->v6;
        out = AddressesFrom(q.answer->message, join->host, type);
        // Only answers that gave addresses count: a family that failed (even a bogus one)
        // gives no address to connect to, so it cannot make the others insecure.
        if (!out.empty()) join->dnssec = join->dnssec && Secure(*q.answer);
      }
      join->statuses.push_back(q.status);
      if (--join->outstanding > 0) return;
      AddressResult result;
      result.addresses = OrderAddresses(join->v6, join->v4, join->family);
      result.dnssec = join->dnssec && !result.addresses.empty();
      if (result.addresses.empty()) result.status = NoAddressStatus(join->host, join->statuses);
      join->fn(std::move(result));
    });
  }
}

QueryHandle Resolver::ResolveAddresses(std::string_view host, FamilyPreference family,
                                       AddressCallback callback) {
  Token token = std::make_shared<internal::Token>();
  ++api_depth_;
  AddressesInternal(host, family, token,
                    [this, token, callback = std::move(callback)](AddressResult r) mutable {
                      Deliver(token, callback, std::move(r));
                    });
  --api_depth_;
  return QueryHandle(token);
}

QueryHandle Resolver::ResolveMx(std::string_view domain, MxCallback callback) {
  return ResolveMx(domain, options_.family, std::move(callback));
}

// The state of one ResolveMx: the MX answer, then one address lookup per host.
struct MxJoin {
  std::string domain;
  FamilyPreference family;
  bool implicit = false;
  bool dnssec = false;
  std::vector<MxHost> hosts;
  std::vector<AddressResult> addresses;  // parallel to hosts
  int outstanding = 0;
  std::function<void(MxResult)> callback;
};

QueryHandle Resolver::ResolveMx(std::string_view domain, FamilyPreference family,
                                MxCallback callback) {
  Token token = std::make_shared<internal::Token>();
  auto join = std::make_shared<MxJoin>();
  join->domain = CanonicalName(domain);
  join->family = family;
  join->callback = std::move(callback);
  auto finish = [this, token, join]() {
    MxResult result;
    result.implicit_mx = join->implicit;
    result.dnssec = join->dnssec;
    std::vector<DnsStatus> failures;
    for (size_t i = 0; i < join->hosts.size(); ++i) {
      const AddressResult& a = join->addresses[i];
      if (a.addresses.empty()) {
        // RFC 5321 §5.1: a host that does not resolve is skipped; the others are tried.
        failures.push_back(a.status);
        continue;
      }
      result.hosts.push_back(join->hosts[i]);
      result.hosts.back().dnssec = a.dnssec;
      for (const relay::io::SocketAddress& addr : a.addresses) {
        result.candidates.push_back(
            Candidate{join->hosts[i].name, join->hosts[i].preference, addr});
      }
    }
    // The site is every MX host the domain names, reachable or not, so that it does not change
    // while one of a provider's hosts is briefly unresolvable.
    result.site = SiteKey(join->hosts);
    if (result.candidates.empty()) {
      DnsStatus why = NoAddressStatus(join->domain, failures);
      if (join->implicit && why.reason == Reason::kNxDomain) {
        result.status = why;
      } else if (why.transient()) {
        result.status = why;
      } else {
        result.status = DnsStatus::Permanent(
            Reason::kNoAddresses,
            absl::StrCat(join->domain, ": no ",
                         join->implicit ? "address for the domain" : "MX host has an address", " (",
                         FamilyPreferenceName(join->family), ")"));
      }
    }
    Deliver(token, join->callback, std::move(result));
  };
  ++api_depth_;
  Lookup(join->domain, kTypeMx, [this, token, join, finish](QueryResult q) {
    if (token->cancelled) return;  // spare the address lookups
    MxResult failed;
    if (q.answer == nullptr) {
      failed.status = q.status;
      Deliver(token, join->callback, std::move(failed));
      return;
    }
    DnsStatus status =
        SelectMxHosts(q.answer->message, join->domain, random_, &join->hosts, &join->implicit);
    if (!status.ok()) {
      failed.status = std::move(status);
      Deliver(token, join->callback, std::move(failed));
      return;
    }
    join->dnssec = Secure(*q.answer);
    join->addresses.resize(join->hosts.size());
    join->outstanding = static_cast<int>(join->hosts.size());
    for (size_t i = 0; i < join->hosts.size(); ++i) {
      AddressesInternal(join->hosts[i].name, join->family, token,
                        [join, i, finish](AddressResult a) {
                          join->addresses[i] = std::move(a);
                          if (--join->outstanding == 0) finish();
                        });
    }
  });
  --api_depth_;
  return QueryHandle(token);
}

}  // namespace dns
