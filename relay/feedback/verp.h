// VERP return paths: for a sending domain that has a bounce domain, each recipient's copy leaves
// with its own envelope sender, `bounces+<token>@<bounce domain>`, so that a bounce that comes
// back later (a DSN, a bounce text) or a complaint (ARF) names the message and the recipient it
// is about, whatever the receiver wrote in it.
//
// The token is `<queue id>.<recipient index>.<mac>`: the queue id (queue::MessageId's text, hex
// and dashes), the recipient's index in the envelope, and 12 base32 characters (60 bits) of
// HMAC-SHA256(secret, "verp1", tenant, queue id, index, lower-cased recipient address). The
// recipient's address is not in the token (the local part stays within RFC 5321's 64 octets):
// the MAC binds it, and the report names it (Final-Recipient, the returned message's To:, the
// bounce text), so the address that verifies among those a report names is the recipient. A
// token cannot be moved to another message, recipient or tenant, nor forged without the secret.
// Several secrets: the first signs, all verify (rotation).
//
// Each bounce domain belongs to one sending domain (its tenant): the bounce domain should be a
// subdomain of the sending domain, so that SPF of the return path aligns with the From domain
// for DMARC (RFC 7489 §3.1.2).
//
// Immutable after Make; any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace relay::feedback {

struct VerpDomain {
  std::string domain;         // the sending domain (tenant), lower-case
  std::string bounce_domain;  // where its bounces come back, lower-case
};

struct VerpOptions {
  std::vector<std::string> secrets;    // the first signs; none empty
  std::string local_part = "bounces";  // bounces+TOKEN@...; bare, the feedback-loop address
  std::vector<VerpDomain> domains;
};

// What a VERP address says, once its structure is read (not yet authenticated: Verifies).
struct VerpToken {
  std::string tenant;    // the sending domain its bounce domain belongs to
  std::string queue_id;  // as queue::MessageId::ToString writes it
  uint32_t recipient_index = 0;
  std::string mac;  // lower-case base32
};

class Verp {
 public:
  // An error names what is wrong: no secret, a domain or bounce domain given twice, a bounce
  // domain that is also a sending domain, a local part that is not a dot-atom.
  static absl::StatusOr<std::unique_ptr<const Verp>> Make(VerpOptions options);

  // The bounce domain of `sender`'s domain; nullptr when it has none (or `sender` is null).
  const VerpDomain* ForSender(std::string_view sender) const;
  // The return path for recipient `index` (`address`) of message `queue_id`, sent by `sender`;
  // nullopt when `sender`'s domain has no bounce domain or the path would pass RFC 5321's
  // 256 octets (§4.5.3.1.3).
  std::optional<std::string> ReturnPath(std::string_view sender, std::string_view queue_id,
                                        uint32_t index, std::string_view address) const;

  // The sending domain whose bounce domain `domain` is; nullptr when it is none.
  const VerpDomain* ForBounceDomain(std::string_view domain) const;
  // `local_part` at bounce domain `domain` read as a token; nullopt when it is not one (a
  // bare local part, the feedback-loop address, is not a token either).
  std::optional<VerpToken> Parse(std::string_view local_part, std::string_view domain) const;
  // Parse of a whole address.
  std::optional<VerpToken> ParseAddress(std::string_view address) const;
  // True when `local_part` is the bare local part (reports sent to a feedback-loop address).
  bool IsFeedbackAddress(std::string_view local_part) const;
  // True when `token`'s MAC is right for `address` under one of the secrets (constant time).
  bool Verifies(const VerpToken& token, std::string_view address) const;

  const std::string& local_part() const { return options_.local_part; }

 private:
  explicit Verp(VerpOptions options);
  std::string Mac(const std::string& secret, std::string_view tenant, std::string_view queue_id,
                  uint32_t index, std::string_view address) const;

  VerpOptions options_;
  absl::flat_hash_map<std::string, size_t> by_domain_;         // sending domain -> domains[i]
  absl::flat_hash_map<std::string, size_t> by_bounce_domain_;  // bounce domain -> domains[i]
};

}  // namespace relay::feedback
