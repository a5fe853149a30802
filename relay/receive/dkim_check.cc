#include "relay/receive/dkim_check.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/message.h"
#include "dkim/verifier.h"
#include "relay/receive/dmarc.h"

namespace relay::receive {
namespace {

using KeyName = std::pair<std::string, std::string>;  // (selector, domain)

std::string Lower(std::string_view s) {
  return absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
}

// What Check keeps until every key answer is in, and the verification reads.
struct CheckState {
  std::shared_ptr<dns::internal::Token> token;
  std::string_view message;
  // The message parsed once (null when its header could not be parsed: `parse_error` says why).
  std::shared_ptr<dkim::ParsedMessage> parsed;
  std::string parse_error;
  int64_t now_s = 0;
  DkimCheckOptions options;
  DkimCheckCallback callback;
  Offload offload;
  DkimParsedCallback parsed_callback;
  absl::StatusOr<std::string> from_domain;  // read by Prepare when parsed_callback is set
  io::Reactor* reactor = nullptr;
  dns::Resolver* resolver = nullptr;
  std::vector<KeyName> names;
  std::vector<absl::StatusOr<std::string>> records;  // parallel to names
  size_t pending = 0;
  // Per DKIM-Signature field, in header order: the start of b= (for header.b).
  std::vector<std::string> signature_prefixes;
};

// The key record among the TXT records at a key name (RFC 6376 §3.6.2.2: one record is
// expected; with several, the one that looks like a key record).
absl::StatusOr<std::string> PickRecord(const dns::TxtResult& r, size_t record_bytes_max) {
  if (r.status.transient()) return absl::UnavailableError(r.status.ToString());
  if (!r.status.ok()) return absl::NotFoundError(r.status.ToString());
  const dns::TxtRecord* best = nullptr;
  for (const dns::TxtRecord& rec : r.records) {
    if (best == nullptr || (rec.joined.find("p=") != std::string::npos &&
                            best->joined.find("p=") == std::string::npos)) {
      best = &rec;
    }
  }
  if (best == nullptr) return absl::NotFoundError("no TXT record");
  if (best->joined.size() > record_bytes_max) {
    // Reported as "no key" (permerror): a record this large is no key we accept.
    return absl::NotFoundError(
        absl::StrCat("key record of ", best->joined.size(), " bytes exceeds ", record_bytes_max));
  }
  return best->joined;
}

// The verification proper, from the fetched keys: any thread.
DkimCheckResult Verify(const CheckState& state) {
  dkim::KeyLookup lookup = [&state](std::string_view selector,
                                    std::string_view domain) -> absl::StatusOr<std::string> {
    KeyName name(std::string(selector), Lower(domain));
    // At most signatures_max + kArcInstanceMax + 1 names: a search is cheaper than a map.
    auto it = std::find(state.names.begin(), state.names.end(), name);
    if (it == state.names.end()) return absl::NotFoundError("key not fetched");
    return state.records[it - state.names.begin()];
  };
  DkimCheckResult result;
  result.key_lookups = state.names.size();
  result.message = state.parsed;
  std::vector<dkim::VerifyResult> verified;
  if (state.parsed != nullptr) {
    verified =
        dkim::VerifyMessage(*state.parsed, lookup, state.now_s, state.options.signatures_max);
  } else {
    // As dkim::VerifyMessage and dkim::ValidateArcChain report a header they cannot parse.
    dkim::VerifyResult r;
    r.reason = absl::StrCat("header: ", state.parse_error);
    verified.push_back(std::move(r));
  }
  for (size_t i = 0; i < verified.size(); ++i) {
    const dkim::VerifyResult& v = verified[i];
    DkimAuth a;
    a.result = ToDkimVerdict(v.status);
    a.domain = v.domain;
    a.selector = v.selector;
    if (i < state.signature_prefixes.size()) a.signature_prefix = state.signature_prefixes[i];
    a.reason = v.reason;
    result.dkim.push_back(std::move(a));
  }
  result.details = std::move(verified);
  if (state.options.check_arc) {
    if (state.parsed != nullptr) {
      result.arc = dkim::ValidateArcChain(*state.parsed, lookup, state.now_s);
    } else {
      result.arc.status = dkim::ArcChainStatus::kFail;
      result.arc.reason = absl::StrCat("header: ", state.parse_error);
    }
  }
  return result;
}

void Finish(const std::shared_ptr<CheckState>& state) {
  if (state->token->cancelled) return;
  if (state->offload != nullptr) {
    auto result = std::make_shared<DkimCheckResult>();
    // The worker owns `state` and `result` until `done`; this thread touches neither meanwhile.
    bool queued = state->offload([state, result] { *result = Verify(*state); },
                                 [state, result] {
                                   if (state->token->cancelled) return;
                                   DkimCheckCallback callback = std::move(state->callback);
                                   callback(std::move(*result));
                                 });
    if (queued) return;
    DkimCheckResult refused;
    refused.key_lookups = state->names.size();
    refused.overloaded = true;
    DkimCheckCallback callback = std::move(state->callback);
    callback(std::move(refused));
    return;
  }
  DkimCheckResult result = Verify(*state);
  // The callback may start new checks or drop its handle; it runs last.
  DkimCheckCallback callback = std::move(state->callback);
  callback(std::move(result));
}

// The message parsed once, and the names of the keys the verification will ask for: any thread.
void Prepare(CheckState& state) {
  auto add_name = [&state](std::string selector, std::string domain) {
    KeyName name(std::move(selector), Lower(domain));
    if (std::find(state.names.begin(), state.names.end(), name) == state.names.end()) {
      state.names.push_back(std::move(name));
    }
  };
  absl::StatusOr<dkim::ParsedMessage> parsed = dkim::ParsedMessage::Parse(state.message);
  if (!parsed.ok()) {
    state.parse_error = std::string(parsed.status().message());
    // As MessageFromDomain says it.
    state.from_domain = absl::InvalidArgumentError("the header does not parse");
    return;
  }
  state.parsed = std::make_shared<dkim::ParsedMessage>(std::move(*parsed));
  if (state.parsed_callback != nullptr) {
    state.from_domain = HeaderFromDomain(state.parsed->fields());
  }
  for (const dkim::HeaderField& f : state.parsed->fields()) {
    if (!dkim::HeaderNameEquals(f.name, "dkim-signature")) continue;
    if (state.signature_prefixes.size() == state.options.signatures_max) break;
    std::string prefix;
    std::string selector, domain;
    if (auto tags = dkim::ParseTagList(f.raw.substr(f.raw.find(':') + 1)); tags.ok()) {
      for (auto [name, value] : *tags) {
        if (name == "s") selector = std::string(value);
        if (name == "d") domain = std::string(value);
        if (name != "b") continue;
        for (char c : value) {
          if (prefix.size() == kSignaturePrefixCharsMax) break;
          if (c != ' ' && c != '\t' && c != '\r' && c != '\n') prefix.push_back(c);
        }
      }
    }
    state.signature_prefixes.push_back(std::move(prefix));
    if (!selector.empty() && !domain.empty()) add_name(std::move(selector), std::move(domain));
  }
  if (state.options.check_arc) {
    for (auto& [selector, domain] : dkim::ArcKeyNames(*state.parsed)) add_name(selector, domain);
  }
}

// Hands what Prepare found to the parsed callback, if any. The reactor's thread.
void NotifyParsed(CheckState& state) {
  if (state.parsed_callback == nullptr || state.token->cancelled) return;
  DkimParsed parsed;
  parsed.message = state.parsed;
  parsed.from_domain = std::move(state.from_domain);
  DkimParsedCallback callback = std::move(state.parsed_callback);
  state.parsed_callback = nullptr;
  callback(std::move(parsed));
}

// Sends every key query at once; Finish runs when the last answer is in. The reactor's thread.
void FetchKeys(const std::shared_ptr<CheckState>& state) {
  state->records.assign(state->names.size(), absl::UnavailableError("no answer"));
  state->pending = state->names.size();
  if (state->pending == 0) {
    // Never call back inside Check.
    state->reactor->Post([state] { Finish(state); });
    return;
  }
  for (size_t i = 0; i < state->names.size(); ++i) {
    // RFC 6376 §3.6.2.1: the key of selector s and domain d is at s._domainkey.d.
    std::string qname = absl::StrCat(state->names[i].first, "._domainkey.", state->names[i].second);
    const size_t record_bytes_max = state->options.key_record_bytes_max;
    dns::QueryHandle q =
        state->resolver->LookupTxt(qname, [state, i, record_bytes_max](dns::TxtResult r) {
          state->records[i] = PickRecord(r, record_bytes_max);
          if (--state->pending == 0) Finish(state);
        });
    // A cancelled check lets its queries finish (they feed the cache); Finish drops the result.
    q.Detach();
  }
}

}  // namespace

DkimVerdict ToDkimVerdict(dkim::VerifyStatus status) {
  switch (status) {
    case dkim::VerifyStatus::kPass:
      return DkimVerdict::kPass;
    case dkim::VerifyStatus::kFail:
      return DkimVerdict::kFail;
    case dkim::VerifyStatus::kTempError:
      return DkimVerdict::kTempError;
    case dkim::VerifyStatus::kPermError:
      return DkimVerdict::kPermError;
    case dkim::VerifyStatus::kNeutral:
      return DkimVerdict::kNeutral;
  }
  return DkimVerdict::kPermError;
}

ArcVerdict ToArcVerdict(dkim::ArcChainStatus status) {
  switch (status) {
    case dkim::ArcChainStatus::kNone:
      return ArcVerdict::kNone;
    case dkim::ArcChainStatus::kPass:
      return ArcVerdict::kPass;
    case dkim::ArcChainStatus::kFail:
      return ArcVerdict::kFail;
  }
  return ArcVerdict::kFail;
}

DkimChecker::DkimChecker(io::Reactor* reactor, dns::Resolver* resolver, DkimCheckOptions options)
    : reactor_(reactor), resolver_(resolver), options_(options) {
  options_.signatures_max = std::min(options_.signatures_max, dkim::kSignaturesCheckedMax);
}

dns::QueryHandle DkimChecker::Check(std::string_view message, int64_t now_s,
                                    DkimCheckCallback callback, Offload offload,
                                    DkimParsedCallback parsed) {
  auto state = std::make_shared<CheckState>();
  state->token = std::make_shared<dns::internal::Token>();
  state->message = message;
  state->now_s = now_s;
  state->options = options_;
  state->callback = std::move(callback);
  state->offload = std::move(offload);
  state->parsed_callback = std::move(parsed);
  state->reactor = reactor_;
  state->resolver = resolver_;
  dns::QueryHandle handle(state->token);
  if (state->offload == nullptr) {
    Prepare(*state);
    NotifyParsed(*state);
    if (!state->token->cancelled) FetchKeys(state);
    return handle;
  }
  // Parsing and reading the tag lists is linear, yet a few milliseconds for a hostile 1 MiB
  // header: done on a worker too, so that the shard only sends the queries.
  bool queued = state->offload([state] { Prepare(*state); },
                               [state] {
                                 NotifyParsed(*state);
                                 if (!state->token->cancelled) FetchKeys(state);
                               });
  if (!queued) {
    // Never call back inside Check.
    reactor_->Post([state] {
      if (state->token->cancelled) return;
      DkimCheckResult refused;
      refused.overloaded = true;
      DkimCheckCallback callback = std::move(state->callback);
      callback(std::move(refused));
    });
  }
  return handle;
}

}  // namespace relay::receive
