#include "relay/tlspolicy/sts_resolver.h"

#include <algorithm>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "relay/base/log.h"

namespace relay::tlspolicy {

StsResolver::StsResolver(io::Reactor* reactor, dns::Resolver* dns, StsCache* cache,
                         tls::ClientTlsContext* context, StsResolverOptions options)
    : reactor_(reactor), dns_(dns), cache_(cache), context_(context), options_(options) {}

StsResolver::~StsResolver() {
  *alive_ = false;
  Stop();
}

void StsResolver::Stop() {
  // Nothing in flight may call back into a resolver (or use a TLS context) that is going away.
  for (auto& [domain, d] : discoveries_) {
    d->query.Cancel();
    if (d->fetch != nullptr) {
      d->fetch->Cancel();
      reactor_->RetireWhenIdle(std::move(d->fetch));
    }
  }
  discoveries_.clear();
  waiting_ = 0;
}

int64_t StsResolver::NowUnixS() const {
  return static_cast<int64_t>(reactor_->clock()->WallSeconds());
}

StsEntryPtr StsResolver::InForce(const std::string& domain) const {
  StsEntryPtr entry = cache_->Find(domain);
  if (entry == nullptr || entry->policy.mode == StsMode::kNone ||
      !StsEntryFresh(*entry, NowUnixS())) {
    return nullptr;
  }
  return entry;
}

bool StsResolver::Known(const std::string& domain, StsEntryPtr* policy) const {
  auto checked = checked_.find(domain);
  if (checked == checked_.end() ||
      reactor_->NowMs() - checked->second.at_ms >= options_.recheck_ms) {
    return false;
  }
  const StsEntryPtr& entry = checked->second.entry;
  // A policy that ran out is looked at again at once, so that an enforce policy does not lapse
  // until the next recheck.
  if (entry != nullptr && !StsEntryFresh(*entry, NowUnixS())) return false;
  *policy = entry;
  return true;
}

void StsResolver::Policy(const std::string& domain, Done done) {
  const int64_t now = reactor_->NowMs();
  if (StsEntryPtr known; Known(domain, &known)) {
    done(std::move(known));
    return;
  }
  // A policy still fresh in the cache is used while the discovery renews it in the background:
  // only a domain without one waits for the TXT lookup and the fetch.
  const StsEntryPtr cached = cache_->Find(domain);
  const bool fresh = cached != nullptr && StsEntryFresh(*cached, NowUnixS());
  auto found = discoveries_.find(domain);
  if (found != discoveries_.end()) {
    if (fresh || waiting_ >= options_.waiting_max) {
      if (!fresh) ++stats_.discoveries_refused;
      done(InForce(domain));
    } else {
      found->second->waiting.push_back(std::move(done));
      ++waiting_;
    }
    return;
  }
  if (discoveries_.size() >= options_.discoveries_max) {
    // Too many at once (a campaign to many new domains, or policy servers that stall): the cache
    // answers, and this domain is looked at again with its next message.
    ++stats_.discoveries_refused;
    done(InForce(domain));
    return;
  }
  std::unique_ptr<Discovery>& d = discoveries_[domain];
  d = std::make_unique<Discovery>();
  if (!fresh) {
    d->waiting.push_back(std::move(done));
    ++waiting_;
  }
  if (checked_.size() >= options_.domains_max) checked_.clear();
  checked_[domain] = Checked{now, nullptr};  // one look per recheck interval, whatever comes of it
  ++stats_.txt_lookups;
  d->query = dns_->LookupTxt(absl::StrCat("_mta-sts.", domain),
                             [this, domain](dns::TxtResult r) { OnTxt(domain, r); });
  if (fresh) done(InForce(domain));  // last: it may start more lookups
}

void StsResolver::OnTxt(const std::string& domain, dns::TxtResult result) {
  std::vector<std::string> records;
  for (const dns::TxtRecord& r : result.records) records.push_back(r.joined);
  absl::StatusOr<std::string> id =
      result.status.ok() ? ParseStsRecord(records) : absl::UnavailableError("");
  if (!id.ok()) {
    if (result.status.ok() && !absl::IsNotFound(id.status())) {
      LogInfo() << "MTA-STS: _mta-sts." << domain << ": " << id.status().message();
    }
    Finish(domain);  // no record: a cached policy holds until it expires (§5.1)
    return;
  }
  // The same policy, with more than half of its max_age to go: nothing to fetch. Within the last
  // half it is fetched again, so that a policy in use is renewed before it runs out (§5.1).
  StsEntryPtr cached = cache_->Find(domain);
  const int64_t now = NowUnixS();
  if (cached != nullptr && cached->id == *id &&
      cached->fetched_unix_s + cached->policy.max_age_s - now > cached->policy.max_age_s / 2) {
    Finish(domain);
    return;
  }
  Fetch(domain, *id);
}

void StsResolver::Fetch(const std::string& domain, std::string id) {
  const std::string host = absl::StrCat("mta-sts.", domain);
  auto it = discoveries_.find(domain);
  if (it == discoveries_.end()) return;
  it->second->query =
      dns_->ResolveAddresses(host, options_.family, [this, domain, host, id](dns::AddressResult r) {
        if (!r.status.ok() || r.addresses.empty()) {
          ++stats_.fetch_failures;
          LogInfo() << "MTA-STS: " << host << ": " << r.status.ToString();
          ReportFailure(domain, TlsFailure::kStsPolicyFetchError, r.status.ToString());
          Finish(domain);
          return;
        }
        auto d = discoveries_.find(domain);
        if (d == discoveries_.end()) return;
        d->second->addresses = std::move(r.addresses);
        if (d->second->addresses.size() > options_.fetch_addresses_max) {
          d->second->addresses.resize(options_.fetch_addresses_max);
        }
        std::reverse(d->second->addresses.begin(), d->second->addresses.end());  // next: back()
        FetchFrom(domain, id);
      });
}

void StsResolver::FetchFrom(const std::string& domain, const std::string& id) {
  auto d = discoveries_.find(domain);
  if (d == discoveries_.end() || d->second->addresses.empty()) return;
  io::SocketAddress address = d->second->addresses.back();
  d->second->addresses.pop_back();
  address.set_port(options_.https_port);
  ++stats_.fetches;
  if (d->second->fetch != nullptr) reactor_->RetireWhenIdle(std::move(d->second->fetch));
  d->second->fetch = HttpsGet::Start(
      reactor_, context_, absl::StrCat("mta-sts.", domain), address, "/.well-known/mta-sts.txt",
      options_.limits,
      [this, domain, id](HttpsGetResult result) { OnPolicy(domain, id, std::move(result)); });
}

void StsResolver::ReportFailure(const std::string& domain, TlsFailure failure, std::string why) {
  if (options_.reports == nullptr) return;
  TlsSession s;
  s.policy_domain = domain;
  s.policy_type = ReportPolicyType::kSts;
  s.success = false;
  s.failure = failure;
  s.additional = std::move(why);
  options_.reports->Record(s, NowUnixS());
}

void StsResolver::OnPolicy(const std::string& domain, const std::string& id,
                           HttpsGetResult result) {
  if (absl::IsUnavailable(result.status)) {
    // The connection failed: mta-sts.<domain>'s next address, if it has one.
    auto d = discoveries_.find(domain);
    if (d != discoveries_.end() && !d->second->addresses.empty()) {
      LogInfo() << "MTA-STS: " << result.status.message() << "; trying another address";
      // Not from inside the fetch that is reporting: on the next turn.
      reactor_->Post([this, alive = alive_, domain, id] {
        if (*alive) FetchFrom(domain, id);
      });
      return;
    }
  }
  absl::StatusOr<StsPolicy> policy =
      result.status.ok() ? ParseStsPolicy(result.body) : absl::StatusOr<StsPolicy>(result.status);
  if (!policy.ok()) {
    ++stats_.fetch_failures;
    LogWarning() << "MTA-STS: the policy of " << domain << " (id " << id
                 << ") was not taken: " << policy.status().message();
    ReportFailure(
        domain,
        result.status.ok() ? TlsFailure::kStsPolicyInvalid : TlsFailure::kStsPolicyFetchError,
        std::string(policy.status().message()));
  } else {
    StsCacheEntry entry;
    entry.domain = domain;
    entry.id = id;
    entry.fetched_unix_s = NowUnixS();
    entry.policy = std::move(*policy);
    LogInfo() << "MTA-STS: " << domain << " has policy " << id << ": mode "
              << StsModeName(entry.policy.mode) << ", max_age " << entry.policy.max_age_s << " s, "
              << entry.policy.mx.size() << " mx pattern(s)";
    cache_->Store(std::move(entry));
  }
  Finish(domain);
}

void StsResolver::Finish(const std::string& domain) {
  auto it = discoveries_.find(domain);
  if (it == discoveries_.end()) return;
  std::unique_ptr<Discovery> d = std::move(it->second);
  discoveries_.erase(it);
  d->query.Detach();
  if (d->fetch != nullptr) reactor_->RetireWhenIdle(std::move(d->fetch));
  const StsEntryPtr policy = InForce(domain);
  if (auto c = checked_.find(domain); c != checked_.end()) c->second.entry = policy;
  waiting_ -= d->waiting.size();
  for (Done& done : d->waiting) done(policy);
}

}  // namespace relay::tlspolicy
