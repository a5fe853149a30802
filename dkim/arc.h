// ARC, the Authenticated Received Chain (RFC 8617): validating the chain a message arrives with
// and sealing a new ARC set on it when the relay forwards it.
//
// Validation (RFC 8617 §5.2) takes the key lookup as a callback, as dkim/verifier.h does, so that
// dkim/ stays free of DNS: the receiver first fetches the keys ArcKeyNames() lists through its
// resolver, then validates from what it fetched. NotFound from the lookup is "no key", any other
// error is temporary; both make the chain fail (RFC 8617 §5.2 has no temporary result; the
// reason says which it was).
//
// Sealing (RFC 8617 §5.1) produces the three header fields of the next set i=N, in the order
// they are to be prepended: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results. Each is
// folded under 78 columns and ends in CRLF. The message given to Seal is the message as it will
// be forwarded (with the Authentication-Results and Received fields this hop adds); the new set
// goes on top of it. The ARC-Message-Signature is a DKIM-Signature-like field (§4.1.2: i=
// instead of v=, relaxed/relaxed) over the ArcSealer's header list and the body; the ARC-Seal
// (§4.1.3: i=, cv=, relaxed header canonicalisation, no body hash) covers every ARC set in
// increasing instance order, AAR, AMS, AS within each set (§5.1.1), its own b= empty; after a
// failed chain only the new set (§5.1.2). Reuses the canonicalisers, header parser and keys of
// dkim/. RSA-SHA256 and Ed25519-SHA256.
//
// An ArcSealer is immutable after Create and may be shared by threads; the free functions are
// plain computation. Nothing here does I/O except the caller's lookup.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/key.h"
#include "dkim/message.h"
#include "dkim/verifier.h"

namespace dkim {

// RFC 8617 §4.2.1: instances run from 1 to 50.
inline constexpr int kArcInstanceMax = 50;

// The chain validation status, cv= (RFC 8617 §4.1.3) and the arc= result of
// Authentication-Results (§10.2 registers none / pass / fail).
enum class ArcChainStatus { kNone, kPass, kFail };

// "none", "pass", "fail".
std::string_view ArcChainStatusName(ArcChainStatus status);

struct ArcValidation {
  ArcChainStatus status = ArcChainStatus::kNone;
  // The highest instance present (0 when the message carries no ARC field).
  int instance_max = 0;
  // Why the chain failed (empty on pass and none).
  std::string reason;
  // d= of the ARC-Message-Signature of the highest instance, when the chain passed.
  std::string domain;
};

// The (selector, domain) pairs whose keys validation will ask for: the highest instance's
// ARC-Message-Signature and every ARC-Seal, without repeats. Empty when the message has no ARC
// fields or its header cannot be parsed (validation then needs no key).
std::vector<std::pair<std::string, std::string>> ArcKeyNames(std::string_view message);
std::vector<std::pair<std::string, std::string>> ArcKeyNames(const ParsedMessage& message);

// Validates the ARC chain of `message` (the whole message, CRLF line ends) per RFC 8617 §5.2:
// every set 1..N present exactly once, the highest ARC-Message-Signature verifies, cv=none on
// i=1 and cv=pass on every later seal, and every ARC-Seal verifies. `now_s` is for x= expiry.
ArcValidation ValidateArcChain(std::string_view message, const KeyLookup& lookup, int64_t now_s);
// The same for a message already parsed (dkim/message.h), whose body hashes it shares. Linear in
// the header block: each ARC-Seal's data is the previous one's plus one set, hashed on from there.
ArcValidation ValidateArcChain(const ParsedMessage& message, const KeyLookup& lookup,
                               int64_t now_s);

struct ArcSealerConfig {
  std::string domain;        // d=
  std::string selector;      // s=
  std::string key_path;      // PEM file, as for DKIM signing (dkim/key.h)
  std::string key_contents;  // instead of key_path
  // The header fields the ARC-Message-Signature signs, in h= order; empty means
  // DefaultArcSignedHeaders(). ARC-Seal must not be among them (§4.1.2), nor any ARC field.
  std::vector<std::string> headers;
};

// DKIM's default list (dkim/signer.h) plus DKIM-Signature, so that the next hop can tell the
// original signature was there.
const std::vector<std::string>& DefaultArcSignedHeaders();

class ArcSealer {
 public:
  static absl::StatusOr<std::unique_ptr<ArcSealer>> Create(const ArcSealerConfig& config);

  // The new set for `message`. `auth_results` is this hop's Authentication-Results payload:
  // "authserv-id; method=result ..." (the value of the field without its name, folded or not),
  // which becomes the ARC-Authentication-Results after "i=N; ". `chain` is ValidateArcChain's
  // verdict on the message as received: kNone only when it carries no ARC set. Refuses a message
  // whose header cannot be parsed, has no From or several, bare CR or LF line breaks, or already
  // holds kArcInstanceMax sets.
  absl::StatusOr<std::string> Seal(std::string_view message, std::string_view auth_results,
                                   const ArcValidation& chain, int64_t now_s) const;
  // The same for a message already parsed: ParsedMessage::WithFields puts this hop's new fields
  // above the message as received without parsing it again.
  absl::StatusOr<std::string> Seal(const ParsedMessage& message, std::string_view auth_results,
                                   const ArcValidation& chain, int64_t now_s) const;

  const std::string& domain() const { return domain_; }
  const std::string& selector() const { return selector_; }

 private:
  explicit ArcSealer(PrivateKey key) : key_(std::move(key)) {}

  PrivateKey key_;
  std::string domain_;
  std::string selector_;
  std::vector<std::string> headers_;
};

}  // namespace dkim
