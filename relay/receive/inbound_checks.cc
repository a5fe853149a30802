#include "relay/receive/inbound_checks.h"

#include "absl/strings/str_cat.h"
#include "relay/receive/aliases.h"

namespace relay::receive {
namespace {

// After the checks' timeout, how often to look again while work handed to the offload is out.
constexpr uint32_t kBusyRecheckMs = 100;

SpfVerdict ToSpfVerdict(dns::SpfResult r) {
  switch (r) {
    case dns::SpfResult::kNone:
      return SpfVerdict::kNone;
    case dns::SpfResult::kNeutral:
      return SpfVerdict::kNeutral;
    case dns::SpfResult::kPass:
      return SpfVerdict::kPass;
    case dns::SpfResult::kFail:
      return SpfVerdict::kFail;
    case dns::SpfResult::kSoftFail:
      return SpfVerdict::kSoftFail;
    case dns::SpfResult::kTempError:
      return SpfVerdict::kTempError;
    case dns::SpfResult::kPermError:
      return SpfVerdict::kPermError;
  }
  return SpfVerdict::kTempError;
}

// One result per signature checked; a check that ran out of time is one temperror.
std::vector<DkimAuth> DkimResults(const InboundResults& results) {
  if (!results.dkim_timed_out) return results.dkim.dkim;
  DkimAuth d;
  d.result = DkimVerdict::kTempError;
  d.reason = "key lookup timed out";
  return {d};
}

}  // namespace

InboundChecks::InboundChecks(io::Reactor* reactor, dns::SpfEvaluator* spf, DkimChecker* dkim,
                             uint32_t checks_timeout_ms, DmarcChecker* dmarc, Offload offload)
    : reactor_(reactor),
      spf_evaluator_(spf),
      dkim_checker_(dkim),
      checks_timeout_ms_(checks_timeout_ms),
      // DMARC is evaluated from SPF and DKIM: without both it would fail mail that passes.
      dmarc_checker_(spf != nullptr && dkim != nullptr ? dmarc : nullptr),
      offload_(std::move(offload)) {
  timer_.set_callback([this] { OnTimeout(); });
}

InboundChecks::~InboundChecks() {
  *alive_ = false;
  reactor_->timers().Cancel(&timer_);
}

void InboundChecks::StartSpf(std::string_view client_ip, std::string_view mail_from,
                             std::string_view helo, std::string_view receiver) {
  if (spf_evaluator_ == nullptr || done_ != nullptr) return;
  std::string key = absl::StrCat(std::string(client_ip), " ", std::string(mail_from), " ",
                                 std::string(helo));
  if (key == spf_key_ && results_.spf_checked) return;  // same question, same answer
  spf_key_ = std::move(key);
  dns::SpfRequest request;
  request.ip = std::string(client_ip);
  request.helo = std::string(helo);
  request.receiver = std::string(receiver);
  results_.spf_mailfrom.clear();
  results_.spf_helo.clear();
  std::string_view local, domain;
  if (!mail_from.empty() && SplitAddress(mail_from, &local, &domain)) {
    // RFC 7208 §2.4: the MAIL FROM identity.
    request.domain = std::string(domain);
    request.sender = std::string(mail_from);
    results_.spf_mailfrom = std::string(mail_from);
  } else {
    // The null reverse-path: the HELO identity, local part "postmaster" (§2.4, §4.3).
    request.domain = std::string(helo);
    request.sender = absl::StrCat("postmaster@", std::string(helo));
    results_.spf_helo = std::string(helo);
  }
  results_.spf_checked = true;
  results_.spf = dns::SpfOutcome();
  spf_pending_ = true;
  spf_query_ = spf_evaluator_->CheckHost(request, [this](dns::SpfOutcome outcome) {
    spf_pending_ = false;
    results_.spf = std::move(outcome);
    MaybeDone();
  });
}

void InboundChecks::Finish(std::string_view message, int64_t now_s,
                           std::function<void(InboundResults)> done) {
  done_ = std::move(done);
  results_.dkim_checked = false;
  results_.dkim_timed_out = false;
  results_.dkim = DkimCheckResult();
  results_.message = nullptr;
  results_.dmarc_checked = false;
  results_.dmarc_ids = DmarcIdentifiers();
  results_.dmarc = DmarcOutcome();
  dmarc_discovery_ = DmarcDiscovery();
  if (dkim_checker_ != nullptr) {
    results_.dkim_checked = true;
    dkim_pending_ = true;
    // DMARC (on only with DKIM) looks up the From domain that the DKIM check's parse finds.
    results_.dmarc_checked = dmarc_checker_ != nullptr;
    dmarc_from_pending_ = dmarc_checker_ != nullptr;
    Offload counted;
    if (offload_ != nullptr) {
      // Counted from hand-over to return, cancelled or not: the owner must keep the message (and
      // this object) until then (busy()).
      counted = [this](std::function<void()> work, std::function<void()> done) {
        if (!offload_(std::move(work), [this, done = std::move(done)] {
              --verifying_;
              done();
            })) {
          return false;
        }
        ++verifying_;
        return true;
      };
    }
    // Without an offload this runs inside Check, hence inside Finish: it calls nothing back.
    DkimParsedCallback parsed = [this](DkimParsed p) {
      results_.message = std::move(p.message);
      if (dmarc_from_pending_) StartDmarc(std::move(p.from_domain));
    };
    dkim_query_ = dkim_checker_->Check(
        message, now_s,
        [this](DkimCheckResult result) {
          dkim_pending_ = false;
          if (dmarc_from_pending_) {
            // The parse never came back: the offload refused it (and the message with it).
            dmarc_from_pending_ = false;
            dmarc_discovery_.status = DmarcDiscovery::Status::kTempError;
            dmarc_discovery_.problem = "the message was not checked";
          }
          if (results_.message == nullptr) results_.message = result.message;
          results_.dkim = std::move(result);
          MaybeDone();
        },
        std::move(counted), std::move(parsed));
  }
  if (!spf_pending_ && !dkim_pending_ && !dmarc_from_pending_ && !dmarc_pending_) {
    // Everything is in already: still call back from the loop, never from inside Finish.
    std::shared_ptr<bool> alive = alive_;
    reactor_->Post([this, alive] {
      if (*alive) MaybeDone();
    });
    return;
  }
  reactor_->timers().ScheduleAfter(&timer_, checks_timeout_ms_);
}

void InboundChecks::StartDmarc(absl::StatusOr<std::string> from_domain) {
  dmarc_from_pending_ = false;
  if (!from_domain.ok()) {
    results_.dmarc_ids.from_problem = std::string(from_domain.status().message());
    return;
  }
  results_.dmarc_ids.from_domain = *from_domain;
  dmarc_pending_ = true;
  dmarc_query_ = dmarc_checker_->Discover(*from_domain, [this](DmarcDiscovery discovery) {
    dmarc_pending_ = false;
    dmarc_discovery_ = std::move(discovery);
    MaybeDone();
  });
}

void InboundChecks::EvaluateDmarcNow() {
  if (!results_.dmarc_checked) return;
  DmarcIdentifiers& ids = results_.dmarc_ids;
  // RFC 7489 §4.1: SPF's MAIL FROM identity, which for the null path is the HELO name.
  ids.spf = results_.spf_checked ? ToSpfVerdict(results_.spf.result) : SpfVerdict::kNone;
  std::string_view local, domain;
  if (SplitAddress(results_.spf_mailfrom, &local, &domain)) {
    ids.spf_domain = std::string(domain);
  } else {
    ids.spf_domain = results_.spf_helo;
  }
  ids.dkim = DkimResults(results_);
  results_.dmarc = EvaluateDmarc(ids, dmarc_discovery_, absl::Uniform(pct_bits_, 0, 100));
}

void InboundChecks::MaybeDone() {
  if (done_ == nullptr || spf_pending_ || dkim_pending_ || dmarc_from_pending_ || dmarc_pending_) {
    return;
  }
  EvaluateDmarcNow();
  reactor_->timers().Cancel(&timer_);
  std::function<void(InboundResults)> done = std::move(done_);
  done_ = nullptr;
  done(results_);
}

void InboundChecks::OnTimeout() {
  if (spf_pending_) {
    spf_query_.Cancel();
    spf_pending_ = false;
    results_.spf = dns::SpfOutcome();
    results_.spf.result = dns::SpfResult::kTempError;
    results_.spf.problem = absl::StrCat("no answer within ", checks_timeout_ms_, " ms");
    spf_key_.clear();  // not reused by the next transaction
  }
  if (dkim_pending_ && verifying_ > 0) {
    // Work handed to the offload reads the message until it ends: wait for it (it is bounded by
    // the offload's queue), then for the keys it asks for, a little longer each time.
    reactor_->timers().ScheduleAfter(&timer_, kBusyRecheckMs);
  } else if (dkim_pending_) {
    // Still waiting for keys.
    dkim_query_.Cancel();
    dkim_pending_ = false;
    results_.dkim_timed_out = true;
  }
  // While the parse that gives the From domain is on the offload, the timer was re-armed above;
  // the policy lookup it starts is cut like the key lookups, at the next look.
  if (dmarc_from_pending_ && !dkim_pending_) {
    dmarc_from_pending_ = false;
    dmarc_discovery_.status = DmarcDiscovery::Status::kTempError;
    dmarc_discovery_.problem = absl::StrCat("no answer within ", checks_timeout_ms_, " ms");
  }
  if (dmarc_pending_) {
    dmarc_query_.Cancel();
    dmarc_pending_ = false;
    dmarc_discovery_.status = DmarcDiscovery::Status::kTempError;
    dmarc_discovery_.problem =
        absl::StrCat("no DMARC record lookup answer within ", checks_timeout_ms_, " ms");
  }
  MaybeDone();
}

void InboundChecks::Cancel() {
  done_ = nullptr;
  reactor_->timers().Cancel(&timer_);
  if (dkim_pending_) {
    dkim_query_.Cancel();
    dkim_pending_ = false;
  }
  dmarc_from_pending_ = false;
  if (dmarc_pending_) {
    dmarc_query_.Cancel();
    dmarc_pending_ = false;
  }
}

AuthResults ToAuthResults(const InboundResults& results, std::string_view hostname,
                          bool arc_checked) {
  AuthResults ar;
  ar.authserv_id = std::string(hostname);
  if (results.spf_checked) {
    SpfAuth spf;
    spf.result = ToSpfVerdict(results.spf.result);
    spf.mailfrom = results.spf_mailfrom;
    spf.helo = results.spf_helo;
    ar.spf = spf;
  }
  ar.dkim_checked = results.dkim_checked;
  ar.dkim = DkimResults(results);
  if (results.dmarc_checked) ar.dmarc = ToDmarcAuth(results.dmarc);
  if (arc_checked && results.dkim_checked && !results.dkim_timed_out) {
    ar.arc = ToArcVerdict(results.dkim.arc.status);
  }
  return ar;
}

}  // namespace relay::receive
