#include "relay/receive/dmarc_check.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "relay/receive/org_domain.h"

namespace relay::receive {
namespace {

// What Discover keeps while its lookups run.
struct DiscoverState {
  std::shared_ptr<dns::internal::Token> token;
  dns::Resolver* resolver = nullptr;
  std::string from_domain;
  std::string org_domain;
  DmarcCallback callback;
};

void Lookup(const std::shared_ptr<DiscoverState>& state, bool organizational);

void Deliver(const std::shared_ptr<DiscoverState>& state, DmarcDiscovery discovery) {
  // The callback may drop its handle or start another check; it runs last.
  DmarcCallback callback = std::move(state->callback);
  callback(std::move(discovery));
}

void OnAnswer(const std::shared_ptr<DiscoverState>& state, bool organizational,
              const dns::TxtResult& answer) {
  if (state->token->cancelled) return;
  const std::string& domain = organizational ? state->org_domain : state->from_domain;
  const std::string owner = absl::StrCat("_dmarc.", domain);
  DmarcDiscovery d;
  if (answer.status.transient()) {
    d.status = DmarcDiscovery::Status::kTempError;
    d.problem = absl::StrCat(owner, ": ", answer.status.ToString());
    Deliver(state, std::move(d));
    return;
  }
  // NXDOMAIN, no TXT, or TXT records of which none is DMARC's: nothing published here.
  std::vector<const std::string*> records;
  if (answer.status.ok()) {
    for (const dns::TxtRecord& r : answer.records) {
      if (IsDmarcRecord(r.joined)) records.push_back(&r.joined);
    }
  }
  if (records.empty()) {
    if (!organizational && state->org_domain != state->from_domain) {
      Lookup(state, /*organizational=*/true);
      return;
    }
    d.status = DmarcDiscovery::Status::kNone;
    Deliver(state, std::move(d));
    return;
  }
  if (records.size() > 1) {
    d.status = DmarcDiscovery::Status::kPermError;
    d.problem = absl::StrCat(owner, ": ", records.size(), " DMARC records");
    Deliver(state, std::move(d));
    return;
  }
  absl::StatusOr<DmarcRecord> record = ParseDmarcRecord(*records[0]);
  if (!record.ok()) {
    d.status = DmarcDiscovery::Status::kPermError;
    d.problem = absl::StrCat(owner, ": ", record.status().message());
    Deliver(state, std::move(d));
    return;
  }
  d.status = DmarcDiscovery::Status::kFound;
  d.record = *record;
  d.domain = domain;
  d.organizational = organizational;
  Deliver(state, std::move(d));
}

void Lookup(const std::shared_ptr<DiscoverState>& state, bool organizational) {
  const std::string& domain = organizational ? state->org_domain : state->from_domain;
  dns::QueryHandle q = state->resolver->LookupTxt(
      absl::StrCat("_dmarc.", domain),
      [state, organizational](dns::TxtResult r) { OnAnswer(state, organizational, r); });
  // A cancelled discovery lets its query finish (it feeds the cache); OnAnswer drops the result.
  q.Detach();
}

}  // namespace

DmarcChecker::DmarcChecker(dns::Resolver* resolver) : resolver_(resolver) {
  LoadPublicSuffixList();
}

dns::QueryHandle DmarcChecker::Discover(std::string_view from_domain, DmarcCallback callback) {
  auto state = std::make_shared<DiscoverState>();
  state->token = std::make_shared<dns::internal::Token>();
  state->resolver = resolver_;
  state->from_domain = std::string(from_domain);
  state->org_domain = OrganizationalDomain(from_domain);
  state->callback = std::move(callback);
  dns::QueryHandle handle(state->token);
  Lookup(state, /*organizational=*/false);
  return handle;
}

}  // namespace relay::receive
