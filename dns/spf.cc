#include "dns/spf.h"

#include <memory>
#include <utility>

namespace dns {

const char* SpfResultName(SpfResult result) {
  switch (result) {
    case SpfResult::kNone:
      return "none";
    case SpfResult::kNeutral:
      return "neutral";
    case SpfResult::kPass:
      return "pass";
    case SpfResult::kFail:
      return "fail";
    case SpfResult::kSoftFail:
      return "softfail";
    case SpfResult::kTempError:
      return "temperror";
    case SpfResult::kPermError:
      return "permerror";
  }
  return "permerror";
}

SpfEvaluator::SpfEvaluator(relay::io::Reactor* reactor, Resolver* resolver, SpfLimits limits)
    : reactor_(reactor), resolver_(resolver), limits_(limits) {}

// The evaluation itself lands in the next commit; until then every check is a temperror so that
// callers can build against the interface.
QueryHandle SpfEvaluator::CheckHost(const SpfRequest& request, SpfCallback callback) {
  auto token = std::make_shared<internal::Token>();
  reactor_->Post([token, domain = request.domain, callback = std::move(callback)]() {
    if (token->cancelled) return;
    SpfOutcome outcome;
    outcome.result = SpfResult::kTempError;
    outcome.problem = domain + ": SPF evaluation not available yet";
    callback(std::move(outcome));
  });
  return QueryHandle(token);
}

QueryHandle SpfEvaluator::Walk(const SpfRequest& request, SpfCallback callback) {
  return CheckHost(request, std::move(callback));
}

QueryHandle CheckSpfSources(SpfEvaluator* evaluator, std::string_view domain,
                            std::vector<std::string> source_ips,
                            std::function<void(SpfDomainReport)> callback) {
  SpfRequest request;
  request.domain = std::string(domain);
  std::string d(domain);
  return evaluator->Walk(request, [d, callback = std::move(callback)](SpfOutcome walk) {
    SpfDomainReport report;
    report.domain = d;
    report.problems.push_back(walk.problem);
    report.walk = std::move(walk);
    callback(std::move(report));
  });
}

}  // namespace dns
