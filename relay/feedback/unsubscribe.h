// One-click unsubscribe (RFC 8058): the links the relay writes into bulk mail and reads back.
//
// Mail a tenant marks as bulk gets, before it is DKIM-signed (so the signature covers both,
// RFC 8058 §4):
//   List-Unsubscribe: <https://HOST/u/<tenant>/<address, base64url>/<mac>>,
//     <mailto:unsubscribe+<mac>@<the tenant's bounce domain>>
//   List-Unsubscribe-Post: List-Unsubscribe=One-Click
// The MAC is 16 base32 characters (80 bits) of HMAC-SHA256(secret, "unsub1", tenant, lower-cased
// address): a link unsubscribes that address from that tenant's mail and nothing else, and
// cannot be made without the secret. The HTTPS URL carries the address; the mailto does not
// (its local part stays short), and is verified against the address the unsubscribe message
// comes from (its envelope sender or From:), which is the subscriber's when a mail client sends
// it. The mailto is left out for a tenant without a bounce domain ([[feedback.verp]]).
//
// Immutable after Make; any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/feedback/verp.h"

namespace relay::feedback {

struct UnsubscribeOptions {
  std::vector<std::string> secrets;  // the first signs; none empty
  std::string base_url;              // "https://unsubscribe.example.com", no path
  std::string local_part = "unsubscribe";
};

struct Unsubscription {
  std::string tenant;   // lower-case
  std::string address;  // lower-case
};

// The mailto side once its structure is read (authenticated by Verifies).
struct UnsubscribeToken {
  std::string tenant;
  std::string mac;
};

class Unsubscribe {
 public:
  // `verp` (may be null) names each tenant's bounce domain, where the mailto goes.
  static absl::StatusOr<std::unique_ptr<const Unsubscribe>> Make(UnsubscribeOptions options,
                                                                 std::shared_ptr<const Verp> verp);

  // The two header fields, folded, CRLF-terminated, for mail from `tenant` to `address`.
  std::string HeaderFields(std::string_view tenant, std::string_view address) const;
  std::string Url(std::string_view tenant, std::string_view address) const;
  // The path ("/u/...") of a URL Url made: read and verified; nullopt for any other path.
  std::optional<Unsubscription> FromPath(std::string_view path) const;
  // `address` read as a mailto token (unsubscribe+MAC at a bounce domain); nullopt otherwise.
  std::optional<UnsubscribeToken> ParseMailto(std::string_view address) const;
  bool Verifies(const UnsubscribeToken& token, std::string_view address) const;

  const std::string& local_part() const { return options_.local_part; }

 private:
  Unsubscribe(UnsubscribeOptions options, std::shared_ptr<const Verp> verp);
  std::string Mac(const std::string& secret, std::string_view tenant,
                  std::string_view address) const;

  UnsubscribeOptions options_;
  std::shared_ptr<const Verp> verp_;
};

// Base64url without padding (RFC 4648 §5), and its reading (nullopt for any other character or
// a length no encoding has).
std::string Base64Url(std::string_view bytes);
std::optional<std::string> FromBase64Url(std::string_view text);

}  // namespace relay::feedback
