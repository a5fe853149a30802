// The DKIM verifier (RFC 6376 §6, RFC 8463, RFC 8301): checks every DKIM-Signature field of a
// message and returns one result per signature, in the order the fields appear.
//
// Keys come from a caller-supplied lookup, so the verifier does no I/O itself: the relay's tools
// pass a DNS lookup, tests pass a map. The lookup returns the TXT record text (strings joined);
// NotFound means "no key" (permerror), any other error is temporary (temperror).
//
// Results: pass; fail (the signature or body hash does not match); permerror (the signature or
// key record is unusable); temperror (key lookup failed temporarily); neutral (the key record is
// in testing mode, t=y, and the signature did not pass). Verification of rsa-sha1 is refused
// (RFC 8301 §3.1).
//
// Plain computation plus the lookup callback; any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/message.h"

namespace dkim {

using KeyLookup =
    std::function<absl::StatusOr<std::string>(std::string_view selector, std::string_view domain)>;

enum class VerifyStatus { kPass, kFail, kTempError, kPermError, kNeutral };

std::string_view VerifyStatusName(VerifyStatus s);

struct VerifyResult {
  VerifyStatus status = VerifyStatus::kPermError;
  std::string reason;  // empty on pass
  std::string domain;  // d=
  std::string selector;
  std::string algorithm;  // a=
};

// Named limit: signatures beyond this many are not checked (a message could carry thousands).
inline constexpr size_t kSignaturesCheckedMax = 16;

// `message` is the whole message with CRLF line endings. `now_s` is for x= (expiry).
std::vector<VerifyResult> VerifyMessage(std::string_view message, const KeyLookup& lookup,
                                        int64_t now_s);

// The same for a message already parsed (dkim/message.h), checking its first `signatures_max`
// signatures (at most kSignaturesCheckedMax). Linear in the header block; the body is
// canonicalized once per canonicalization the signatures name, whatever their number and l=.
std::vector<VerifyResult> VerifyMessage(const ParsedMessage& message, const KeyLookup& lookup,
                                        int64_t now_s,
                                        size_t signatures_max = kSignaturesCheckedMax);

}  // namespace dkim
