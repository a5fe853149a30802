// A shard's MTA-STS discovery (RFC 8461 §3, §5): the policy in force for a recipient domain,
// from the relay's cache (StsCache) when the domain's TXT record was checked recently, otherwise
// after a look at _mta-sts.<domain> TXT and, when its id differs from the cached policy's (or
// none is cached), a fetch of https://mta-sts.<domain>/.well-known/mta-sts.txt on the shard's
// ring (HttpsGet).
//
// As the RFC says: a cached policy holds until its max_age runs out, whatever the TXT lookup or
// the fetch says meanwhile (an attacker who blocks them cannot remove it); a domain without a
// cached policy whose discovery fails has none (it is tried again at the next recheck). Lookups
// of one domain in flight are shared: many messages to a new domain make one discovery.
//
// Shard thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dns/resolver.h"
#include "relay/io/reactor.h"
#include "relay/tls/tls_context.h"
#include "relay/tlspolicy/https_get.h"
#include "relay/tlspolicy/sts_cache.h"
#include "relay/tlspolicy/tls_report.h"

namespace relay::tlspolicy {

struct StsResolverOptions {
  // The TXT record is looked at again (and the policy fetched when its id changed) at most this
  // often per domain and shard.
  int64_t recheck_ms = 3600 * 1000;
  uint16_t https_port = 443;  // tests serve policies on another port
  HttpsGetLimits limits;
  dns::FamilyPreference family = dns::FamilyPreference::kIpv6First;
  size_t domains_max = 100000;  // domains whose last check is remembered (then forgotten at once)
  // Discoveries (TXT lookup, then maybe a fetch) in flight at once; past it the cache answers.
  size_t discoveries_max = 100;
  // Callers waiting for discoveries, all domains together; past it the cache answers.
  size_t waiting_max = 100000;
  // Addresses of mta-sts.<domain> tried in turn when a connection fails.
  size_t fetch_addresses_max = 4;
  // Where a policy that could not be fetched or parsed is counted (RFC 8460 §4.3.2.1:
  // sts-policy-fetch-error, sts-policy-invalid); null: nowhere.
  TlsReportLedger* reports = nullptr;
};

struct StsResolverStats {
  uint64_t fetches = 0;         // HTTPS fetches started
  uint64_t fetch_failures = 0;  // ... that gave no policy (the log says why)
  uint64_t txt_lookups = 0;
  uint64_t discoveries_refused = 0;  // past discoveries_max: answered from the cache
};

class StsResolver {
 public:
  // The policy in force for the domain: null when none (no policy, mode none, or expired).
  using Done = std::function<void(StsEntryPtr)>;

  // `context` must require verified certificates; every pointer outlives the resolver.
  StsResolver(io::Reactor* reactor, dns::Resolver* dns, StsCache* cache,
              tls::ClientTlsContext* context, StsResolverOptions options);
  ~StsResolver();

  // `domain` in lower case. `done` runs at once when the cache answers, otherwise later on the
  // shard's thread.
  void Policy(const std::string& domain, Done done);
  // The delivery path's fast way: true, with the policy in force in `*policy` (null: none), when
  // this shard looked at the domain within recheck_ms; false when Policy must discover it.
  bool Known(const std::string& domain, StsEntryPtr* policy) const;

  // Abandons every discovery in flight: their callers are never answered (the engine is
  // stopping; their jobs are found again in the spool at the next start).
  void Stop();

  const StsResolverStats& stats() const { return stats_; }

 private:
  struct Discovery {
    std::vector<Done> waiting;
    dns::QueryHandle query;
    std::unique_ptr<HttpsGet> fetch;
    std::vector<io::SocketAddress> addresses;  // of mta-sts.<domain>, the next to try first
  };
  // Starts the fetch from the discovery's next address.
  void FetchFrom(const std::string& domain, const std::string& id);
  // Counts a policy that could not be had in the TLS reports.
  void ReportFailure(const std::string& domain, TlsFailure failure, std::string why);
  void OnTxt(const std::string& domain, dns::TxtResult result);
  void Fetch(const std::string& domain, std::string id);
  void OnPolicy(const std::string& domain, const std::string& id, HttpsGetResult result);
  // Answers every waiting caller with the cached policy (if fresh) and ends the discovery.
  void Finish(const std::string& domain);
  StsEntryPtr InForce(const std::string& domain) const;
  int64_t NowUnixS() const;

  io::Reactor* const reactor_;
  dns::Resolver* const dns_;
  StsCache* const cache_;
  tls::ClientTlsContext* const context_;
  const StsResolverOptions options_;
  // Domains this shard looked at: when (reactor ms) and the policy it found (null: none), so
  // that a known domain costs one lookup in this map and no lock.
  struct Checked {
    int64_t at_ms = 0;
    StsEntryPtr entry;
  };
  absl::flat_hash_map<std::string, Checked> checked_;
  absl::flat_hash_map<std::string, std::unique_ptr<Discovery>> discoveries_;
  size_t waiting_ = 0;  // callers in every discovery's `waiting`
  // Cleared by ~StsResolver: a retry posted before it is dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  StsResolverStats stats_;
};

}  // namespace relay::tlspolicy
