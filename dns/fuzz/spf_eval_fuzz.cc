// Fuzz target for SPF evaluation (dns/spf.h): check_host() and the operator tool's worst-case
// walk, against DNS answers the input describes (any domain's owner writes its records, and
// every include or redirect can name another's). The input is text: a first line "IP SENDER
// HELO", then zone lines "NAME TYPE DATA" (TXT with '|' between strings, A, AAAA, MX "PREF
// HOST", PTR, CNAME) or "NAME SERVFAIL" / "NAME TIMEOUT". Names without records answer NXDOMAIN.
// The evaluator asks an in-memory resolver that answers from a posted task, as the real one
// does. Checks:
//   - the callback runs once, never inside the call that started the check;
//   - RFC 7208 §4.6.4: at most 10 DNS-querying terms (the 11th is a permerror), at most 2 void
//     lookups (the 3rd is one), and the DNS asked at most what those terms may ask (an mx or
//     ptr term: 1 + 10 lookups);
//   - results and texts agree: a problem for none, permerror and temperror, an explanation only
//     for fail, at most 512 printable bytes;
//   - the walk never passes or fails anyone, and no client costs more terms than the walk says;
//   - the same check twice gives the same outcome.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "dns/message.h"
#include "dns/mx.h"
#include "dns/spf.h"
#include "dns/spf_record.h"
#include "relay/io/reactor.h"
#include "tools/fuzz/fuzz.h"

namespace dns {
namespace {

relay::io::Reactor* TheReactor() {
  static relay::io::Reactor* const reactor = [] {
    relay::io::ReactorOptions options;
    options.sq_entries = 8;
    options.cq_entries = 16;
    absl::StatusOr<std::unique_ptr<relay::io::Reactor>> r = relay::io::Reactor::Create(options);
    FUZZ_CHECK_MSG(r.ok(), r.status().ToString());
    return r->release();
  }();
  return reactor;
}

struct Zone {
  std::map<std::pair<std::string, uint16_t>, std::vector<std::string>> records;
  std::set<std::string> names, servfail, timeout;
  int queries = 0;
};

std::string Key(std::string_view name) { return CanonicalName(name); }

Zone ParseZone(std::string_view text) {
  Zone zone;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    if (f.size() < 2 || f[0].empty()) continue;
    const std::string name = Key(std::string_view(f[0].data(), f[0].size()));
    const std::string type = absl::AsciiStrToUpper(f[1]);
    const std::string data = f.size() > 2 ? std::string(f[2]) : "";
    static const std::map<std::string, uint16_t> kTypes = {
        {"TXT", kTypeTxt}, {"A", kTypeA},     {"AAAA", kTypeAaaa},
        {"MX", kTypeMx},   {"PTR", kTypePtr}, {"CNAME", kTypeCname}};
    if (type == "SERVFAIL") {
      zone.servfail.insert(name);
    } else if (type == "TIMEOUT") {
      zone.timeout.insert(name);
    } else if (auto t = kTypes.find(type); t != kTypes.end()) {
      zone.records[{name, t->second}].push_back(data);
      zone.names.insert(name);
    }
  }
  return zone;
}

// The answer to (name, type), as the resolver would hand it over.
QueryResult Answer(Zone& zone, std::string_view asked, uint16_t type) {
  ++zone.queries;
  const std::string name = Key(asked);
  QueryResult result;
  if (zone.servfail.count(name)) {
    result.status = DnsStatus::Transient(Reason::kServFail, name + ": server failure");
    return result;
  }
  if (zone.timeout.count(name)) {
    result.status = DnsStatus::Transient(Reason::kTimeout, name + ": timeout");
    return result;
  }
  MessageBuilder b(1, MessageBuilder::kFlagResponse);
  b.AddQuestion(name.empty() ? "." : name, type);
  using Section = MessageBuilder::Section;
  auto add = [&](uint16_t t, const std::string& owner) {
    auto it = zone.records.find({Key(owner), t});
    if (it == zone.records.end()) return false;
    for (const std::string& data : it->second) {
      if (t == kTypeTxt) {
        // '|' ends a string; a longer one is cut into strings of 255 bytes, as published.
        std::vector<std::string> strings;
        for (absl::string_view part : absl::StrSplit(data, '|')) {
          do {
            strings.emplace_back(part.substr(0, 255));
            part.remove_prefix(std::min<size_t>(part.size(), 255));
          } while (!part.empty());
        }
        b.AddTxt(Section::kAnswer, owner, 300, strings);
      } else if (t == kTypeA || t == kTypeAaaa) {
        std::array<uint8_t, 16> address;
        bool v6 = false;
        if (!spf::ParseIp(data, &address, &v6) || v6 != (t == kTypeAaaa)) continue;
        if (t == kTypeA) {
          b.AddA(Section::kAnswer, owner, 300, data);
        } else {
          b.AddAaaa(Section::kAnswer, owner, 300, data);
        }
      } else if (t == kTypeMx) {
        std::vector<std::string> f = absl::StrSplit(data, absl::MaxSplits(' ', 1));
        if (f.size() != 2 || !spf::IsValidDomain(f[1])) continue;
        b.AddMx(Section::kAnswer, owner, 300, static_cast<uint16_t>(std::atoi(f[0].c_str())), f[1]);
      } else if (spf::IsValidDomain(data)) {
        b.AddName(Section::kAnswer, owner, t, 300, data);
      }
    }
    return true;
  };
  bool any = add(type, name);
  if (!any) {
    // One CNAME hop, as a recursive server would follow it.
    auto cname = zone.records.find({name, kTypeCname});
    if (cname != zone.records.end() && add(kTypeCname, name) &&
        spf::IsValidDomain(cname->second[0])) {
      any = add(type, cname->second[0]);
    }
  }
  if (!any && zone.names.count(name) == 0) b.SetRcode(kRcodeNxDomain);
  auto answer = std::make_shared<CachedAnswer>();
  answer->raw = b.wire();
  absl::StatusOr<Message> parsed = ParseMessage(answer->raw);
  if (!parsed.ok()) {  // a name the builder cannot write: the server fails
    result.status = DnsStatus::Transient(Reason::kMalformed, name + ": malformed");
    return result;
  }
  answer->message = *std::move(parsed);
  result.status = StatusFromRcode(answer->message.rcode, name, type);
  result.answer = std::move(answer);
  return result;
}

struct Run {
  SpfOutcome outcome;
  int calls = 0;
  int queries = 0;
};

Run Evaluate(Zone& zone, const SpfRequest& request, bool walk) {
  relay::io::Reactor* reactor = TheReactor();
  zone.queries = 0;
  SpfEvaluator evaluator(reactor, [&zone, reactor](std::string_view name, uint16_t type,
                                                   Resolver::QueryCallback callback) {
    auto token = std::make_shared<internal::Token>();
    reactor->Post([token, result = Answer(zone, name, type), callback = std::move(callback)] {
      if (!token->cancelled) callback(result);
    });
    return QueryHandle(token);
  });
  Run run;
  bool starting = true;
  auto done = [&](SpfOutcome outcome) {
    FUZZ_CHECK(!starting);  // never inside the call that started it
    ++run.calls;
    run.outcome = std::move(outcome);
  };
  QueryHandle handle = walk ? evaluator.Walk(request, done) : evaluator.CheckHost(request, done);
  starting = false;
  for (int turns = 0; run.calls == 0; ++turns) {
    FUZZ_CHECK(turns < 100000);
    reactor->RunOnce(0);
  }
  for (int i = 0; i < 4; ++i) reactor->RunOnce(0);  // nothing more may come
  FUZZ_CHECK(run.calls == 1);
  run.queries = zone.queries;
  return run;
}

void CheckOutcome(const Run& run, const SpfLimits& limits) {
  const SpfOutcome& o = run.outcome;
  FUZZ_CHECK(o.dns_terms <= limits.dns_terms_max + 1);
  FUZZ_CHECK(o.dns_terms <= limits.dns_terms_max || o.result == SpfResult::kPermError);
  FUZZ_CHECK(o.void_lookups <= limits.void_lookups_max + 1);
  FUZZ_CHECK(o.void_lookups <= limits.void_lookups_max || o.result == SpfResult::kPermError);
  const int per_term = 1 + std::max(limits.mx_names_max, limits.ptr_names_max);
  // The record itself, every term's lookups, the explanation (and its %{p}).
  FUZZ_CHECK_MSG(run.queries <= 1 + (limits.dns_terms_max + 1) * per_term + 1 + per_term,
                 std::to_string(run.queries) + " queries");
  if (o.result == SpfResult::kNone || o.result == SpfResult::kPermError ||
      o.result == SpfResult::kTempError) {
    FUZZ_CHECK(!o.problem.empty());
  }
  FUZZ_CHECK(o.explanation.empty() || o.result == SpfResult::kFail);
  FUZZ_CHECK(o.explanation.size() <= limits.explanation_bytes_max);
  for (unsigned char c : o.explanation) FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
}

void FuzzSpfEval(std::string_view input) {
  const size_t newline = input.find('\n');
  const std::string_view first = input.substr(0, newline);
  std::vector<std::string> args =
      absl::StrSplit(absl::string_view(first.data(), first.size()), absl::MaxSplits(' ', 2));
  args.resize(3);
  SpfRequest request;
  request.ip = args[0];
  request.sender = args[1];
  request.helo = args[2];
  const size_t at = request.sender.rfind('@');
  request.domain = at == std::string::npos ? request.helo : request.sender.substr(at + 1);
  request.receiver = "mx.relay.example";
  request.time_unix_s = 1700000000;  // %{t}: the same in every evaluation
  Zone zone = ParseZone(newline == std::string_view::npos ? "" : input.substr(newline + 1));

  const SpfLimits limits;
  const Run check = Evaluate(zone, request, false);
  CheckOutcome(check, limits);
  const Run again = Evaluate(zone, request, false);
  FUZZ_CHECK(again.outcome.result == check.outcome.result &&
             again.outcome.mechanism == check.outcome.mechanism &&
             again.outcome.problem == check.outcome.problem &&
             again.outcome.explanation == check.outcome.explanation);
  const Run walk = Evaluate(zone, request, true);
  CheckOutcome(walk, limits);
  const SpfResult w = walk.outcome.result;
  FUZZ_CHECK(w != SpfResult::kPass && w != SpfResult::kFail && w != SpfResult::kSoftFail);
  if (w == SpfResult::kNeutral) FUZZ_CHECK(check.outcome.dns_terms <= walk.outcome.dns_terms);
}

// One long record of ip4 terms.
std::string LongRecord(size_t bytes) {
  return relay::fuzz::Repeat("198.51.100.7 a@example.com helo.example\nexample.com TXT v=spf1",
                             " ip4:192.0.2.0/24", " -all\n", bytes);
}

// Ten includes, each a long record.
std::string IncludeChain(size_t bytes) {
  std::string out = "198.51.100.7 a@example.com helo.example\n";
  for (int i = 0; i < 10; ++i) {
    out += relay::fuzz::Repeat("i" + std::to_string(i) + ".example.com TXT v=spf1",
                               " ip6:2001:db8::/32",
                               i + 1 < 10 ? " include:i" + std::to_string(i + 1) + ".example.com\n"
                                          : std::string(" ~all\n"),
                               bytes / 10);
  }
  return out + "example.com TXT v=spf1 include:i0.example.com -all\n";
}

}  // namespace
}  // namespace dns

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "spf_eval",
      .run = dns::FuzzSpfEval,
      // The zone (a record of ~100 bytes a line), the parsed records of each level and the DNS
      // messages built for them; three evaluations, one at a time.
      .bounds = {.heap_peak_bytes = {256 << 10, 64},
                 .heap_allocated_bytes = {1 << 20, 512},
                 .allocations = {8192, 8}},
      .init = [] { (void)dns::TheReactor(); },
      // A TXT record travels in one DNS message: at most 64 KiB.
      .scaled = {{.name = "long record", .make = dns::LongRecord, .bytes_max = 60000},
                 {.name = "ten includes of long records",
                  .make = dns::IncludeChain,
                  .bytes_max = 10 * 60000}},
  };
  return target;
}
