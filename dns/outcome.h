// The typed outcome every DNS result carries: ok, permanent (the name or the data does not
// exist, or the domain refuses mail) or transient (try again later), with a reason and a message
// for logs and bounce texts. The delivery engine maps permanent to a bounce and transient to a
// deferral (RFC 5321 §5.1, RFC 7505 §4). Plain values; any thread.
#pragma once

#include <string>

namespace dns {

enum class Outcome { kOk, kPermanent, kTransient };

enum class Reason {
  kNone,
  kNxDomain,     // RCODE 3: the name does not exist
  kNoData,       // the name exists but has no records of the type asked
  kNullMx,       // RFC 7505: "MX 0 ." — the domain accepts no mail
  kNoAddresses,  // no MX host (nor the implicit MX) has an address of an allowed family
  kServFail,
  kRefused,
  kTimeout,
  kNetwork,    // connection refused, unreachable, socket errors
  kMalformed,  // an answer that does not parse
  kBadName,    // the caller's name or address is not valid
  kOther,
};

const char* ReasonName(Reason reason);

struct DnsStatus {
  Outcome outcome = Outcome::kOk;
  Reason reason = Reason::kNone;
  std::string message;

  bool ok() const { return outcome == Outcome::kOk; }
  bool permanent() const { return outcome == Outcome::kPermanent; }
  bool transient() const { return outcome == Outcome::kTransient; }
  // "ok", "permanent nxdomain: ...", "transient timeout: ...".
  std::string ToString() const;

  static DnsStatus Ok() { return DnsStatus(); }
  static DnsStatus Permanent(Reason reason, std::string message) {
    return DnsStatus{Outcome::kPermanent, reason, std::move(message)};
  }
  static DnsStatus Transient(Reason reason, std::string message) {
    return DnsStatus{Outcome::kTransient, reason, std::move(message)};
  }
};

}  // namespace dns
