#include "relay/receive/dmarc.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dkim/header.h"
#include "relay/receive/org_domain.h"

namespace relay::receive {
namespace {

std::string_view WithoutFinalDot(std::string_view s) {
  while (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

// §6.6.4: "the next less strict policy".
DmarcPolicy Milder(DmarcPolicy p) {
  return p == DmarcPolicy::kReject ? DmarcPolicy::kQuarantine : DmarcPolicy::kNone;
}

// A domain for a reply text: SMTP replies are ASCII (an IDN in UTF-8 is shown with '?').
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 255)) {
    out.push_back(absl::ascii_isgraph(static_cast<unsigned char>(c)) ? c : '?');
  }
  return out;
}

bool AnyDkimPass(const std::vector<DkimAuth>& dkim) {
  for (const DkimAuth& d : dkim) {
    if (d.result == DkimVerdict::kPass) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> MessageFromDomain(std::string_view message) {
  size_t end = message.find("\r\n\r\n");
  std::string_view block = end == std::string_view::npos ? message : message.substr(0, end + 2);
  if (message.substr(0, 2) == "\r\n") block = {};
  absl::StatusOr<std::vector<dkim::HeaderField>> fields = dkim::ParseHeaderBlock(block);
  if (!fields.ok()) return absl::InvalidArgumentError("the header does not parse");
  return HeaderFromDomain(*fields);
}

absl::StatusOr<std::string> HeaderFromDomain(const std::vector<dkim::HeaderField>& fields) {
  const dkim::HeaderField* from = nullptr;
  size_t count = 0;
  for (const dkim::HeaderField& f : fields) {
    if (!dkim::HeaderNameEquals(f.name, "From")) continue;
    ++count;
    from = &f;
  }
  if (count != 1) {
    return absl::InvalidArgumentError(count == 0 ? std::string("no From field")
                                                 : absl::StrCat(count, " From fields"));
  }
  absl::StatusOr<std::string> domain = dkim::FromDomain(from->raw);
  if (!domain.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("From: ", domain.status().message()));
  }
  return domain;
}

bool DmarcAligned(std::string_view domain, std::string_view from_domain, DmarcAlignment mode) {
  domain = WithoutFinalDot(domain);
  from_domain = WithoutFinalDot(from_domain);
  if (domain.empty() || from_domain.empty()) return false;
  if (mode == DmarcAlignment::kStrict) {
    return absl::EqualsIgnoreCase(absl::string_view(domain.data(), domain.size()),
                                  absl::string_view(from_domain.data(), from_domain.size()));
  }
  return OrganizationalDomain(domain) == OrganizationalDomain(from_domain);
}

DmarcOutcome EvaluateDmarc(const DmarcIdentifiers& ids, const DmarcDiscovery& discovery,
                           int pct_roll) {
  DmarcOutcome out;
  out.from_domain = ids.from_domain;
  if (!ids.from_problem.empty()) {
    out.result = DmarcVerdict::kPermError;
    out.problem = ids.from_problem;
    return out;
  }
  switch (discovery.status) {
    case DmarcDiscovery::Status::kNone:
      out.result = DmarcVerdict::kNone;
      return out;
    case DmarcDiscovery::Status::kTempError:
      out.result = DmarcVerdict::kTempError;
      out.problem = discovery.problem;
      return out;
    case DmarcDiscovery::Status::kPermError:
      out.result = DmarcVerdict::kPermError;
      out.problem = discovery.problem;
      return out;
    case DmarcDiscovery::Status::kFound:
      break;
  }
  const DmarcRecord& record = discovery.record;
  out.policy_domain = discovery.domain;
  out.policy = discovery.organizational && record.sp ? *record.sp : record.p;

  bool unfinished = false;  // an aligned check that got no answer could still have passed
  if (DmarcAligned(ids.spf_domain, ids.from_domain, record.aspf)) {
    out.spf_aligned = ids.spf == SpfVerdict::kPass;
    unfinished = ids.spf == SpfVerdict::kTempError;
  }
  for (const DkimAuth& d : ids.dkim) {
    if (d.result != DkimVerdict::kPass && d.result != DkimVerdict::kTempError) continue;
    if (!DmarcAligned(d.domain, ids.from_domain, record.adkim)) continue;
    if (d.result == DkimVerdict::kPass) out.dkim_aligned = true;
    if (d.result == DkimVerdict::kTempError) unfinished = true;
  }
  if (out.spf_aligned || out.dkim_aligned) {
    out.result = DmarcVerdict::kPass;
    return out;
  }
  if (unfinished) {
    out.result = DmarcVerdict::kTempError;
    out.problem = "an aligned SPF or DKIM check got no answer";
    return out;
  }
  out.result = DmarcVerdict::kFail;
  out.problem = absl::StrCat("spf=", SpfVerdictName(ids.spf),
                             ids.spf == SpfVerdict::kPass ? " (not aligned)" : "",
                             AnyDkimPass(ids.dkim) ? ", DKIM passes only for other domains"
                                                   : ", no DKIM signature passes");
  out.disposition = pct_roll < record.pct ? out.policy : Milder(out.policy);
  return out;
}

DmarcAuth ToDmarcAuth(const DmarcOutcome& outcome) {
  DmarcAuth a;
  a.result = outcome.result;
  a.header_from = outcome.from_domain;
  if (outcome.result == DmarcVerdict::kFail) {
    a.policy = DmarcPolicyName(outcome.policy);
    a.disposition = DmarcPolicyName(outcome.disposition);
  }
  return a;
}

const char* InboundActionName(InboundAction a) {
  switch (a) {
    case InboundAction::kAccept:
      return "accept";
    case InboundAction::kQuarantineHeader:
      return "quarantine-header";
    case InboundAction::kRefuse:
      return "refuse";
  }
  return "accept";
}

std::optional<InboundAction> ParseInboundAction(std::string_view name) {
  for (InboundAction a :
       {InboundAction::kAccept, InboundAction::kQuarantineHeader, InboundAction::kRefuse}) {
    if (name == InboundActionName(a)) return a;
  }
  return std::nullopt;
}

InboundDecision DecideInbound(const DmarcIdentifiers& ids, const DmarcOutcome* dmarc,
                              const InboundPolicy& policy) {
  InboundDecision decision;
  // Keeps the strictest action; the first reason for it wins.
  auto consider = [&decision](InboundAction action, std::string text, std::string why) {
    if (action <= decision.action) return;
    decision.action = action;
    decision.reply_text = std::move(text);
    decision.why = std::move(why);
  };
  if (dmarc != nullptr && dmarc->result == DmarcVerdict::kFail &&
      dmarc->disposition != DmarcPolicy::kNone) {
    InboundAction action =
        dmarc->disposition == DmarcPolicy::kReject ? policy.dmarc_reject : policy.dmarc_quarantine;
    std::string from = Printable(dmarc->from_domain);
    consider(action,
             absl::StrCat("Unauthenticated mail from ", from, " is refused by ", from,
                          "'s DMARC policy (p=", DmarcPolicyName(dmarc->policy), ")"),
             absl::StrCat("dmarc=fail header.from=", from, " p=", DmarcPolicyName(dmarc->policy),
                          " dis=", DmarcPolicyName(dmarc->disposition), ": ", dmarc->problem));
  }
  if (dmarc != nullptr && !ids.from_problem.empty()) {
    // RFC 7489 §6.6.1: without one From address there is no domain whose policy applies, and
    // forwarding would let such a message pass a p=reject domain's policy by a second From.
    consider(policy.dmarc_reject,
             "A message needs exactly one From: address (RFC 5322 section 3.6)",
             absl::StrCat("dmarc=permerror: ", ids.from_problem));
  }
  if (policy.refuse_spf_fail_without_dkim && ids.spf == SpfVerdict::kFail &&
      !AnyDkimPass(ids.dkim)) {
    // RFC 7208 §8.4: a fail may be refused during the transaction, with 550 5.7.1.
    std::string domain = Printable(ids.spf_domain);
    consider(InboundAction::kRefuse,
             absl::StrCat("SPF of ", domain,
                          " does not authorize this host, and no DKIM signature verifies"),
             absl::StrCat("spf=fail for ", domain, " and no DKIM signature passes"));
  }
  return decision;
}

}  // namespace relay::receive
