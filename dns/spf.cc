#include "dns/spf.h"

#include <arpa/inet.h>

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dns/message.h"
#include "dns/spf_record.h"

namespace dns {
namespace {

using spf::Mechanism;
using spf::MechanismKind;
using spf::Qualifier;
using spf::Record;

SpfResult FromQualifier(Qualifier q) {
  switch (q) {
    case Qualifier::kPass:
      return SpfResult::kPass;
    case Qualifier::kFail:
      return SpfResult::kFail;
    case Qualifier::kSoftFail:
      return SpfResult::kSoftFail;
    case Qualifier::kNeutral:
      return SpfResult::kNeutral;
  }
  return SpfResult::kNeutral;
}

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// What one check_host() level (the checked domain, an include or a redirect) ended with.
struct LevelResult {
  SpfResult result = SpfResult::kNeutral;
  std::string mechanism;
  std::string problem;
  // For fail: the level whose mechanism failed, and its exp= (RFC 7208 §6.2).
  std::string domain;
  std::optional<std::string> explanation_spec;
};

// What one mechanism came to.
struct Match {
  enum Kind { kNoMatch, kMatch, kError } kind = kNoMatch;
  SpfResult error = SpfResult::kPermError;
  std::string problem;

  static Match Yes() { return Match{kMatch, SpfResult::kPermError, ""}; }
  static Match No() { return Match{}; }
  static Match Perm(std::string problem) {
    return Match{kError, SpfResult::kPermError, std::move(problem)};
  }
  static Match Temp(std::string problem) {
    return Match{kError, SpfResult::kTempError, std::move(problem)};
  }
};

// One level of evaluation: a domain's parsed record and the position in it.
struct Level {
  std::string domain;
  Record record;
  size_t next = 0;
  std::function<void(LevelResult)> done;
};

// Answers to one (name, type) question, reduced to what SPF needs.
struct Lookup {
  DnsStatus status;
  bool void_answer = false;  // NXDOMAIN or no records of the type (§4.6.4)
  std::vector<const ResourceRecord*> records;
  std::shared_ptr<const CachedAnswer> answer;  // keeps `records` alive
};

// The state of one check_host() call, kept alive by the resolver callbacks that will resume it.
class Evaluation : public std::enable_shared_from_this<Evaluation> {
 public:
  Evaluation(relay::io::Reactor* reactor, const SpfQueryFunction& query, const SpfLimits& limits,
             bool match_nothing, SpfCallback callback)
      : reactor_(reactor),
        query_(query),
        limits_(limits),
        match_nothing_(match_nothing),
        callback_(std::move(callback)),
        token_(std::make_shared<internal::Token>()) {}

  ~Evaluation() { reactor_->timers().Cancel(&deadline_); }

  QueryHandle Start(const SpfRequest& request);

 private:
  bool cancelled() const { return token_->cancelled || finished_; }

  void Finish(SpfOutcome outcome);
  void FinishLater(SpfOutcome outcome);
  void OnTopLevel(LevelResult result);
  void FetchExplanation(LevelResult result);

  // check_host() at one level (§4): record lookup and selection, then the terms.
  void CheckHost(std::string domain, std::function<void(LevelResult)> done);
  void Evaluate(std::shared_ptr<Level> level);
  void AfterMechanism(std::shared_ptr<Level> level, Match match);
  void EndOfMechanisms(std::shared_ptr<Level> level);

  void RunMechanism(std::shared_ptr<Level> level, const Mechanism& m,
                    std::function<void(Match)> next);
  void MatchAddresses(const std::string& name, int cidr4, int cidr6, bool count_void,
                      const std::string& where, std::function<void(Match)> next);
  void MatchMx(const std::string& name, const Mechanism& m, const std::string& where,
               std::function<void(Match)> next);
  void MatchPtr(const std::string& target, std::function<void(Match)> next);

  // Expands a domain-spec with the macro values of `domain`, resolving %{p} first if used.
  void ExpandTarget(const std::string& spec, const std::string& domain,
                    std::function<void(absl::StatusOr<std::string>)> next);
  // The validated names of the client address (§5.5), fetched once per evaluation.
  void ValidatedNames(std::function<void()> next);
  std::string ValidatedNameFor(const std::string& domain) const;
  spf::MacroContext Context(const std::string& domain) const;

  void Query(const std::string& name, uint16_t type, std::function<void(Lookup)> next);
  // Counts a void lookup; a problem once over the limit (§4.6.4).
  std::optional<Match> CountVoid(const std::string& where);
  std::optional<Match> CountTerm(const std::string& where);

  relay::io::Reactor* reactor_;
  SpfQueryFunction query_;
  SpfLimits limits_;
  bool match_nothing_;
  SpfCallback callback_;
  std::shared_ptr<internal::Token> token_;
  bool finished_ = false;

  // The inputs (§4.1) and what the macros need of them.
  std::string top_domain_;
  std::string ip_text_;
  std::array<uint8_t, 16> address_{};
  bool ipv6_ = false;
  std::string sender_, local_part_, sender_domain_, helo_, receiver_;
  int64_t time_unix_s_ = 0;

  std::string top_record_;
  int dns_terms_ = 0;
  int void_lookups_ = 0;
  std::optional<std::vector<std::string>> validated_names_;
  // Lookups in flight; destroying a handle only drops an answer nobody waits for any more.
  std::vector<QueryHandle> pending_;
  // SpfLimits::evaluation_timeout_ms.
  relay::io::Timer deadline_;
};

QueryHandle Evaluation::Start(const SpfRequest& request) {
  top_domain_ = CanonicalName(request.domain);
  helo_ = request.helo;
  receiver_ = request.receiver.empty() ? "unknown" : request.receiver;
  time_unix_s_ = request.time_unix_s >= 0 ? request.time_unix_s : absl::ToUnixSeconds(absl::Now());
  // §4.3: a sender without a local-part gets "postmaster"; the domain part is what follows the
  // last "@" (a local-part may be quoted and hold "@").
  std::string sender =
      request.sender.empty() ? absl::StrCat("postmaster@", top_domain_) : request.sender;
  size_t at = sender.rfind('@');
  if (at == std::string::npos) {
    local_part_ = "postmaster";
    sender_domain_ = sender;
  } else {
    local_part_ = sender.substr(0, at);
    sender_domain_ = sender.substr(at + 1);
    if (local_part_.empty()) local_part_ = "postmaster";
  }
  sender_ = absl::StrCat(local_part_, "@", sender_domain_);

  QueryHandle handle(token_);
  SpfOutcome early;
  if (!spf::ParseIp(request.ip, &address_, &ipv6_)) {
    early.result = SpfResult::kPermError;
    early.problem = absl::StrCat("'", request.ip, "' is not an IP address");
    FinishLater(std::move(early));
    return handle;
  }
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipv6_ ? AF_INET6 : AF_INET, address_.data(), text, sizeof(text));
  ip_text_ = text;
  if (!spf::IsValidDomain(top_domain_)) {
    // §4.3: a malformed or single-label domain gives none.
    early.result = SpfResult::kNone;
    early.problem = absl::StrCat("'", request.domain, "' is not a valid domain name");
    FinishLater(std::move(early));
    return handle;
  }
  auto self = shared_from_this();
  if (limits_.evaluation_timeout_ms > 0) {
    // The timer belongs to this object and is cancelled by its destructor.
    deadline_.set_callback([this]() {
      auto keep = shared_from_this();
      SpfOutcome late;
      late.result = SpfResult::kTempError;
      late.problem =
          absl::StrCat(top_domain_, ": no result within ", limits_.evaluation_timeout_ms, " ms");
      Finish(std::move(late));
    });
    reactor_->timers().ScheduleAfter(&deadline_, limits_.evaluation_timeout_ms);
  }
  CheckHost(top_domain_, [self](LevelResult r) { self->OnTopLevel(std::move(r)); });
  return handle;
}

void Evaluation::FinishLater(SpfOutcome outcome) {
  // Never inside the call that started the check.
  reactor_->Post([self = shared_from_this(), outcome = std::move(outcome)]() mutable {
    self->Finish(std::move(outcome));
  });
}

void Evaluation::Finish(SpfOutcome outcome) {
  if (cancelled()) return;
  finished_ = true;
  reactor_->timers().Cancel(&deadline_);
  outcome.dns_terms = dns_terms_;
  outcome.void_lookups = void_lookups_;
  outcome.record = top_record_;
  SpfCallback cb = std::move(callback_);
  pending_.clear();
  cb(std::move(outcome));
}

void Evaluation::OnTopLevel(LevelResult r) {
  if (cancelled()) return;
  if (r.result == SpfResult::kFail && r.explanation_spec.has_value() && !match_nothing_) {
    FetchExplanation(std::move(r));
    return;
  }
  SpfOutcome outcome;
  outcome.result = r.result;
  outcome.mechanism = std::move(r.mechanism);
  outcome.problem = std::move(r.problem);
  Finish(std::move(outcome));
}

// §6.2: best effort. Any DNS error, no record or several, or a syntax error in the text: the
// fail stands without an explanation.
void Evaluation::FetchExplanation(LevelResult r) {
  auto self = shared_from_this();
  auto result = std::make_shared<LevelResult>(std::move(r));
  auto finish = [self, result](std::string explanation) {
    SpfOutcome outcome;
    outcome.result = result->result;
    outcome.mechanism = std::move(result->mechanism);
    outcome.explanation = std::move(explanation);
    self->Finish(std::move(outcome));
  };
  ExpandTarget(*result->explanation_spec, result->domain,
               [self, result, finish](absl::StatusOr<std::string> name) {
                 if (!name.ok()) return finish("");
                 self->Query(*name, kTypeTxt, [self, result, finish](Lookup l) {
                   if (!l.status.ok() || l.records.size() != 1) return finish("");
                   std::string text;
                   for (const std::string& s : l.records[0]->texts) text += s;
                   auto expand = [self, result, finish, text]() {
                     spf::MacroContext context = self->Context(result->domain);
                     absl::StatusOr<std::string> e = spf::ExpandMacros(
                         text, context, true, self->limits_.explanation_bytes_max);
                     if (!e.ok()) return finish("");
                     std::string explanation = *std::move(e);
                     // Only printable US-ASCII goes into an SMTP reply.
                     for (char& c : explanation) {
                       if (c < 0x20 || c > 0x7e) c = '?';
                     }
                     finish(std::move(explanation));
                   };
                   if (spf::UsesPtrMacro(text)) {
                     self->ValidatedNames(expand);
                   } else {
                     expand();
                   }
                 });
               });
}

void Evaluation::Query(const std::string& name, uint16_t type, std::function<void(Lookup)> next) {
  auto self = shared_from_this();
  pending_.push_back(query_(name, type, [self, name, type, next = std::move(next)](QueryResult q) {
    if (self->cancelled()) return;
    Lookup l;
    l.status = q.status;
    l.answer = q.answer;
    if (q.status.permanent() && q.status.reason == Reason::kNxDomain) {
      l.void_answer = true;
    } else if (q.status.ok()) {
      if (q.answer != nullptr) l.records = AnswersFor(q.answer->message, name, type);
      l.void_answer = l.records.empty();
    }
    next(std::move(l));
  }));
}

std::optional<Match> Evaluation::CountVoid(const std::string& where) {
  if (++void_lookups_ <= limits_.void_lookups_max) return std::nullopt;
  return Match::Perm(
      absl::StrCat("void lookup limit (", limits_.void_lookups_max, ") exceeded at ", where));
}

std::optional<Match> Evaluation::CountTerm(const std::string& where) {
  if (++dns_terms_ <= limits_.dns_terms_max) return std::nullopt;
  return Match::Perm(
      absl::StrCat("more than ", limits_.dns_terms_max, " DNS-querying terms at ", where));
}

void Evaluation::CheckHost(std::string domain, std::function<void(LevelResult)> done) {
  auto self = shared_from_this();
  Query(domain, kTypeTxt, [self, domain, done = std::move(done)](Lookup l) {
    LevelResult r;
    r.domain = domain;
    if (!l.status.ok() && !l.void_answer) {
      // §4.4: a server failure or a timeout is a temperror.
      r.result = SpfResult::kTempError;
      r.problem = absl::StrCat(domain, ": DNS error looking up TXT: ", l.status.ToString());
      return done(std::move(r));
    }
    std::vector<std::string> records;
    for (const ResourceRecord* rr : l.records) {
      std::string joined;  // §3.3: the strings of one record are concatenated without spaces
      for (const std::string& s : rr->texts) joined += s;
      if (spf::IsSpfRecord(joined)) records.push_back(std::move(joined));
    }
    if (domain == self->top_domain_ && records.size() == 1) self->top_record_ = records[0];
    // §4.5: no record is none, more than one is a permerror.
    if (records.empty()) {
      r.result = SpfResult::kNone;
      r.problem = l.status.reason == Reason::kNxDomain
                      ? absl::StrCat(domain, ": no such domain (NXDOMAIN)")
                      : absl::StrCat(domain, ": no SPF record");
      return done(std::move(r));
    }
    if (records.size() > 1) {
      r.result = SpfResult::kPermError;
      r.problem = records.size() == 2
                      ? absl::StrCat(domain, ": two v=spf1 records")
                      : absl::StrCat(domain, ": ", records.size(), " v=spf1 records");
      return done(std::move(r));
    }
    absl::StatusOr<Record> record = spf::ParseRecord(records[0]);
    if (!record.ok()) {
      r.result = SpfResult::kPermError;
      r.problem = absl::StrCat(domain, ": ", record.status().message());
      return done(std::move(r));
    }
    auto level = std::make_shared<Level>();
    level->domain = domain;
    level->record = *std::move(record);
    level->done = std::move(done);
    self->Evaluate(std::move(level));
  });
}

void Evaluation::Evaluate(std::shared_ptr<Level> level) {
  // §4.6.2: left to right; the first mechanism that matches decides.
  while (level->next < level->record.mechanisms.size()) {
    const Mechanism& m = level->record.mechanisms[level->next];
    if (!m.QueriesDns()) {
      bool matched = false;
      if (m.kind == MechanismKind::kAll) {
        matched = true;
      } else if (m.kind == MechanismKind::kIp4) {
        matched = !ipv6_ && spf::PrefixMatches(address_, m.network, m.cidr4_bits);
      } else if (m.kind == MechanismKind::kIp6) {
        matched = ipv6_ && spf::PrefixMatches(address_, m.network, m.cidr6_bits);
      }
      if (matched && !match_nothing_) return AfterMechanism(level, Match::Yes());
      ++level->next;
      continue;
    }
    auto self = shared_from_this();
    RunMechanism(level, m, [self, level](Match match) {
      if (self->cancelled()) return;
      self->AfterMechanism(level, std::move(match));
    });
    return;
  }
  EndOfMechanisms(std::move(level));
}

void Evaluation::AfterMechanism(std::shared_ptr<Level> level, Match match) {
  const Mechanism& m = level->record.mechanisms[level->next];
  if (match.kind == Match::kNoMatch || (match.kind == Match::kMatch && match_nothing_)) {
    ++level->next;
    return Evaluate(std::move(level));
  }
  LevelResult r;
  r.domain = level->domain;
  if (match.kind == Match::kError) {
    r.result = match.error;
    r.problem = std::move(match.problem);
  } else {
    r.result = FromQualifier(m.qualifier);
    r.mechanism = m.text;
    if (level->domain != top_domain_) r.mechanism = absl::StrCat(level->domain, ": ", m.text);
    r.explanation_spec = level->record.explanation;
  }
  auto done = std::move(level->done);
  done(std::move(r));
}

void Evaluation::EndOfMechanisms(std::shared_ptr<Level> level) {
  // §6.1: redirect applies when nothing matched, and never in a record with "all" (§5.1).
  if (!level->record.redirect.has_value() || level->record.has_all) {
    // §4.7: the default result is neutral.
    LevelResult r;
    r.domain = level->domain;
    r.result = SpfResult::kNeutral;
    auto done = std::move(level->done);
    return done(std::move(r));
  }
  std::string where = absl::StrCat("'redirect=", *level->record.redirect, "' in ", level->domain);
  auto self = shared_from_this();
  auto fail = [level](Match m) {
    LevelResult r;
    r.domain = level->domain;
    r.result = m.error;
    r.problem = std::move(m.problem);
    auto done = std::move(level->done);
    done(std::move(r));
  };
  if (std::optional<Match> over = CountTerm(where)) return fail(*std::move(over));
  ExpandTarget(
      *level->record.redirect, level->domain,
      [self, level, where, fail](absl::StatusOr<std::string> target) {
        if (!target.ok()) {
          return fail(Match::Perm(absl::StrCat(level->domain, ": ", target.status().message())));
        }
        // §6.1: the result of the redirect is the result, except that none (no
        // record there) is a permerror.
        self->CheckHost(*target, [level, where](LevelResult r) {
          if (r.result == SpfResult::kNone) {
            r.result = SpfResult::kPermError;
            r.problem = absl::StrCat(r.problem, " (target of ", where, ")");
          }
          auto done = std::move(level->done);
          done(std::move(r));
        });
      });
}

void Evaluation::RunMechanism(std::shared_ptr<Level> level, const Mechanism& m,
                              std::function<void(Match)> next) {
  std::string where = absl::StrCat("'", m.text, "' in ", level->domain);
  if (std::optional<Match> over = CountTerm(where)) return next(*std::move(over));
  auto self = shared_from_this();
  std::function<void(absl::StatusOr<std::string>)> run =
      [self, level, index = level->next, where,
       next = std::move(next)](absl::StatusOr<std::string> target) {
        if (self->cancelled()) return;
        const Mechanism& m = level->record.mechanisms[index];
        if (!target.ok()) {
          return next(Match::Perm(absl::StrCat(level->domain, ": ", target.status().message())));
        }
        switch (m.kind) {
          case MechanismKind::kInclude:
            // §5.2: pass matches; fail, softfail and neutral do not; errors and none propagate
            // (none as a permerror).
            self->CheckHost(*target, [where, next](LevelResult r) {
              switch (r.result) {
                case SpfResult::kPass:
                  return next(Match::Yes());
                case SpfResult::kFail:
                case SpfResult::kSoftFail:
                case SpfResult::kNeutral:
                  return next(Match::No());
                case SpfResult::kTempError:
                  return next(Match::Temp(std::move(r.problem)));
                case SpfResult::kPermError:
                  return next(Match::Perm(std::move(r.problem)));
                case SpfResult::kNone:
                  return next(Match::Perm(absl::StrCat(r.problem, " (included by ", where, ")")));
              }
            });
            return;
          case MechanismKind::kA:
            return self->MatchAddresses(*target, m.cidr4_bits, m.cidr6_bits, true, where, next);
          case MechanismKind::kMx:
            return self->MatchMx(*target, m, where, next);
          case MechanismKind::kPtr:
            return self->MatchPtr(*target, next);
          case MechanismKind::kExists:
            // §5.7: an A query whatever the client's family; any answer matches.
            self->Query(*target, kTypeA, [self, where, next](Lookup l) {
              if (!l.status.ok() && !l.void_answer) {
                return next(Match::Temp(absl::StrCat(where, ": ", l.status.ToString())));
              }
              if (l.void_answer) {
                if (std::optional<Match> over = self->CountVoid(where)) return next(*over);
                return next(Match::No());
              }
              next(Match::Yes());
            });
            return;
          default:
            return next(Match::No());
        }
      };
  // Without a domain-spec the target is the current domain itself, not a macro string.
  if (m.domain_spec.empty()) return run(level->domain);
  ExpandTarget(m.domain_spec, level->domain, std::move(run));
}

// §5.3: the A (IPv4 client) or AAAA (IPv6 client) records of `name`, compared under the
// prefix length.
void Evaluation::MatchAddresses(const std::string& name, int cidr4, int cidr6, bool count_void,
                                const std::string& where, std::function<void(Match)> next) {
  auto self = shared_from_this();
  Query(name, ipv6_ ? kTypeAaaa : kTypeA, [self, cidr4, cidr6, count_void, where, next](Lookup l) {
    if (!l.status.ok() && !l.void_answer) {
      return next(Match::Temp(absl::StrCat(where, ": ", l.status.ToString())));
    }
    if (l.void_answer) {
      if (count_void) {
        if (std::optional<Match> over = self->CountVoid(where)) return next(*over);
      }
      return next(Match::No());
    }
    int bits = self->ipv6_ ? cidr6 : cidr4;
    for (const ResourceRecord* rr : l.records) {
      if (spf::PrefixMatches(self->address_, rr->address, bits)) return next(Match::Yes());
    }
    next(Match::No());
  });
}

// §5.4: the MX names of the target, then each one's addresses as for "a".
void Evaluation::MatchMx(const std::string& name, const Mechanism& m, const std::string& where,
                         std::function<void(Match)> next) {
  auto self = shared_from_this();
  int cidr4 = m.cidr4_bits, cidr6 = m.cidr6_bits;
  Query(name, kTypeMx, [self, cidr4, cidr6, where, next](Lookup l) {
    if (!l.status.ok() && !l.void_answer) {
      return next(Match::Temp(absl::StrCat(where, ": ", l.status.ToString())));
    }
    if (l.void_answer) {
      if (std::optional<Match> over = self->CountVoid(where)) return next(*over);
      return next(Match::No());
    }
    // §4.6.4: more than 10 MX names is a permerror.
    if (static_cast<int>(l.records.size()) > self->limits_.mx_names_max) {
      return next(Match::Perm(
          absl::StrCat("more than ", self->limits_.mx_names_max, " MX names at ", where)));
    }
    struct Join {
      int outstanding = 0;
      bool done = false;
      std::function<void(Match)> next;
    };
    auto join = std::make_shared<Join>();
    join->next = next;
    std::vector<std::string> hosts;
    for (const ResourceRecord* rr : l.records) {
      std::string host = CanonicalName(rr->target);
      if (host == "." || host.empty()) continue;  // RFC 7505 null MX: no host
      hosts.push_back(std::move(host));
    }
    if (hosts.empty()) return next(Match::No());
    join->outstanding = static_cast<int>(hosts.size());
    for (const std::string& host : hosts) {
      // The lookups run together; the first match or error decides, the rest are ignored.
      self->MatchAddresses(host, cidr4, cidr6, false, where, [join](Match m) {
        if (join->done) return;
        --join->outstanding;
        if (m.kind != Match::kNoMatch || join->outstanding == 0) {
          join->done = true;
          join->next(std::move(m));
        }
      });
    }
  });
}

void Evaluation::ValidatedNames(std::function<void()> next) {
  if (validated_names_.has_value()) return next();
  auto self = shared_from_this();
  absl::StatusOr<std::string> reverse = ReverseName(ip_text_);
  if (!reverse.ok()) {
    validated_names_.emplace();
    return next();
  }
  Query(*reverse, kTypePtr, [self, next](Lookup l) {
    // §5.5: a DNS error on the PTR lookup means no validated names.
    std::vector<std::string> names;
    if (l.status.ok()) {
      for (const ResourceRecord* rr : l.records) {
        // §4.6.4: at most 10 PTR names are looked at; the rest are ignored.
        if (static_cast<int>(names.size()) >= self->limits_.ptr_names_max) break;
        names.push_back(CanonicalName(rr->target));
      }
    }
    if (names.empty()) {
      self->validated_names_.emplace();
      return next();
    }
    struct Join {
      int outstanding = 0;
      std::vector<bool> confirmed;
    };
    auto join = std::make_shared<Join>();
    join->outstanding = static_cast<int>(names.size());
    join->confirmed.assign(names.size(), false);
    for (size_t i = 0; i < names.size(); ++i) {
      self->Query(names[i], self->ipv6_ ? kTypeAaaa : kTypeA,
                  [self, join, names, i, next](Lookup a) {
                    // §5.5: an error on one name skips that name.
                    for (const ResourceRecord* rr : a.records) {
                      if (spf::PrefixMatches(self->address_, rr->address, self->ipv6_ ? 128 : 32)) {
                        join->confirmed[i] = true;
                      }
                    }
                    if (--join->outstanding > 0) return;
                    std::vector<std::string> validated;
                    for (size_t k = 0; k < names.size(); ++k) {
                      if (join->confirmed[k]) validated.push_back(names[k]);
                    }
                    self->validated_names_ = std::move(validated);
                    next();
                  });
    }
  });
}

bool IsSameOrSubdomain(const std::string& name, const std::string& domain) {
  if (NameEquals(name, domain)) return true;
  return name.size() > domain.size() &&
         absl::EndsWithIgnoreCase(Absl(name), Absl(absl::StrCat(".", domain)));
}

// §7.3 (p): the target domain itself if validated, else a validated subdomain of it, else any
// validated name, else "unknown".
std::string Evaluation::ValidatedNameFor(const std::string& domain) const {
  if (!validated_names_.has_value() || validated_names_->empty()) return "unknown";
  for (const std::string& n : *validated_names_) {
    if (NameEquals(n, domain)) return n;
  }
  for (const std::string& n : *validated_names_) {
    if (IsSameOrSubdomain(n, domain)) return n;
  }
  return validated_names_->front();
}

// §5.5: matches if a validated name of the client is the target or a subdomain of it.
void Evaluation::MatchPtr(const std::string& target, std::function<void(Match)> next) {
  auto self = shared_from_this();
  ValidatedNames([self, target, next]() {
    for (const std::string& n : *self->validated_names_) {
      if (IsSameOrSubdomain(n, target)) return next(Match::Yes());
    }
    next(Match::No());
  });
}

spf::MacroContext Evaluation::Context(const std::string& domain) const {
  spf::MacroContext c;
  c.sender = sender_;
  c.local_part = local_part_;
  c.sender_domain = sender_domain_;
  c.domain = domain;
  c.ip = ip_text_;
  c.ipv6 = ipv6_;
  c.address = address_;
  c.validated_name = ValidatedNameFor(domain);
  c.helo = helo_;
  c.receiver = receiver_;
  c.timestamp_s = time_unix_s_;
  return c;
}

void Evaluation::ExpandTarget(const std::string& spec, const std::string& domain,
                              std::function<void(absl::StatusOr<std::string>)> next) {
  auto expand = [self = shared_from_this(), spec, domain, next]() {
    next(spf::ExpandDomainSpec(spec, self->Context(domain), self->limits_.domain_bytes_max));
  };
  if (spf::UsesPtrMacro(spec)) return ValidatedNames(expand);
  expand();
}

}  // namespace

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
    : SpfEvaluator(
          reactor,
          [resolver](std::string_view name, uint16_t type, Resolver::QueryCallback callback) {
            return resolver->Query(name, type, std::move(callback));
          },
          limits) {}

SpfEvaluator::SpfEvaluator(relay::io::Reactor* reactor, SpfQueryFunction query, SpfLimits limits)
    : reactor_(reactor), query_(std::move(query)), limits_(limits) {}

QueryHandle SpfEvaluator::CheckHost(const SpfRequest& request, SpfCallback callback) {
  auto evaluation =
      std::make_shared<Evaluation>(reactor_, query_, limits_, false, std::move(callback));
  return evaluation->Start(request);
}

QueryHandle SpfEvaluator::Walk(const SpfRequest& request, SpfCallback callback) {
  auto evaluation =
      std::make_shared<Evaluation>(reactor_, query_, limits_, true, std::move(callback));
  return evaluation->Start(request);
}

namespace {

std::string DescribeSource(const SpfSourceCheck& s) {
  const SpfOutcome& o = s.outcome;
  std::string line = absl::StrCat(s.ip, ": ", SpfResultName(o.result));
  if (!o.mechanism.empty()) {
    absl::StrAppend(&line, " (matched '", o.mechanism, "')");
  } else if (!o.problem.empty()) {
    absl::StrAppend(&line, " (", o.problem, ")");
  } else if (o.result == SpfResult::kNeutral) {
    absl::StrAppend(&line, " (no mechanism matched)");
  }
  return line;
}

struct SourcesJoin {
  SpfDomainReport report;
  int outstanding = 0;
  std::vector<QueryHandle> checks;
  std::function<void(SpfDomainReport)> callback;
  std::shared_ptr<internal::Token> token = std::make_shared<internal::Token>();

  void OneDone() {
    if (--outstanding > 0 || token->cancelled) return;
    report.record = report.walk.record;
    const SpfOutcome& walk = report.walk;
    if (walk.result == SpfResult::kNone) {
      report.problems.push_back(
          walk.problem.empty() ? absl::StrCat(report.domain, ": no SPF record") : walk.problem);
    } else {
      if (walk.result == SpfResult::kPermError || walk.result == SpfResult::kTempError) {
        report.problems.push_back(absl::StrCat(SpfResultName(walk.result), ": ", walk.problem));
      }
      for (const SpfSourceCheck& s : report.sources) {
        if (s.authorised()) continue;
        // The record's own error is already on its line.
        if (s.outcome.result == walk.result && s.outcome.problem == walk.problem) continue;
        report.problems.push_back(DescribeSource(s));
      }
    }
    auto cb = std::move(callback);
    cb(std::move(report));
  }
};

}  // namespace

QueryHandle CheckSpfSources(SpfEvaluator* evaluator, std::string_view domain,
                            std::vector<std::string> source_ips,
                            std::function<void(SpfDomainReport)> callback) {
  auto join = std::make_shared<SourcesJoin>();
  join->report.domain = CanonicalName(domain);
  join->callback = std::move(callback);
  join->outstanding = static_cast<int>(source_ips.size()) + 1;
  join->report.sources.resize(source_ips.size());
  SpfRequest request;
  request.domain = join->report.domain;
  request.sender = absl::StrCat("postmaster@", join->report.domain);
  request.helo = join->report.domain;
  // The walk's macros need some client address: the first source, else a documentation one.
  request.ip = source_ips.empty() ? "192.0.2.1" : source_ips[0];
  join->checks.push_back(evaluator->Walk(request, [join](SpfOutcome o) {
    join->report.walk = std::move(o);
    join->OneDone();
  }));
  for (size_t i = 0; i < source_ips.size(); ++i) {
    join->report.sources[i].ip = source_ips[i];
    request.ip = source_ips[i];
    join->checks.push_back(evaluator->CheckHost(request, [join, i](SpfOutcome o) {
      join->report.sources[i].outcome = std::move(o);
      join->OneDone();
    }));
  }
  return QueryHandle(join->token);
}

}  // namespace dns
