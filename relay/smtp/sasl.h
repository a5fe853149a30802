// SASL decoding for SMTP AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN (the de-facto mechanism of
// draft-murchison-sasl-login), base64 responses and the "*" cancellation.
//
// Contract: pure functions, any thread. Decoded credentials are returned in caller-owned
// strings; the caller wipes them when done. No input makes them read out of bounds (fuzzed).
#pragma once

#include <string>
#include <string_view>

namespace relay::smtp {

enum class SaslMechanism { kUnknown, kPlain, kLogin };

// Case-insensitive mechanism name (RFC 4954 §4).
SaslMechanism ParseSaslMechanism(std::string_view name);

enum class SaslResponse {
  kOk,         // decoded
  kCancelled,  // the client sent "*" (RFC 4954 §4) -> 501 5.0.0
  kBadBase64,  // -> 501 5.5.2
  kMalformed,  // decoded, but not what the mechanism expects -> 501 5.5.2
};

// Decodes one client response line (without CRLF). "=" is the empty initial response (§4).
SaslResponse DecodeSaslResponse(std::string_view line, std::string* decoded);

struct PlainCredentials {
  std::string authzid;  // may be empty: act as `authcid`
  std::string authcid;
  std::string password;
};

// Splits the decoded PLAIN message "[authzid] NUL authcid NUL passwd" (RFC 4616 §2). authcid and
// passwd must be non-empty and neither field may contain NUL.
bool SplitPlain(std::string_view decoded, PlainCredentials* out);

// Base64 for server challenges ("334 VXNlcm5hbWU6").
std::string Base64Encode(std::string_view data);

}  // namespace relay::smtp
