#include "relay/smtp/sasl.h"

#include "absl/strings/escaping.h"
#include "relay/smtp/text.h"

namespace relay::smtp {

SaslMechanism ParseSaslMechanism(std::string_view name) {
  if (EqualsIgnoreCase(name, "PLAIN")) return SaslMechanism::kPlain;
  if (EqualsIgnoreCase(name, "LOGIN")) return SaslMechanism::kLogin;
  return SaslMechanism::kUnknown;
}

SaslResponse DecodeSaslResponse(std::string_view line, std::string* decoded) {
  decoded->clear();
  if (line == "*") return SaslResponse::kCancelled;
  if (line == "=") return SaslResponse::kOk;   // empty initial response (RFC 4954 §4)
  if (line.empty()) return SaslResponse::kOk;  // empty continuation response
  // Strict RFC 4648 base64: length a multiple of 4, alphabet only, padding only at the end.
  if (line.size() % 4 != 0) return SaslResponse::kBadBase64;
  for (size_t i = 0; i < line.size(); ++i) {
    const unsigned char c = line[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '+' || c == '/';
    if (alpha) continue;
    if (c == '=' && i + 2 >= line.size()) {
      if (i + 2 == line.size() && line[i + 1] != '=') return SaslResponse::kBadBase64;
      continue;
    }
    return SaslResponse::kBadBase64;
  }
  absl::string_view in(line.data(), line.size());
  if (!absl::Base64Unescape(in, decoded)) return SaslResponse::kBadBase64;
  return SaslResponse::kOk;
}

bool SplitPlain(std::string_view decoded, PlainCredentials* out) {
  const size_t first = decoded.find('\0');
  if (first == std::string_view::npos) return false;
  const size_t second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return false;
  if (decoded.find('\0', second + 1) != std::string_view::npos) return false;
  const std::string_view authzid = decoded.substr(0, first);
  const std::string_view authcid = decoded.substr(first + 1, second - first - 1);
  const std::string_view password = decoded.substr(second + 1);
  if (authcid.empty() || password.empty()) return false;
  out->authzid.assign(authzid.data(), authzid.size());
  out->authcid.assign(authcid.data(), authcid.size());
  out->password.assign(password.data(), password.size());
  return true;
}

std::string Base64Encode(std::string_view data) {
  return absl::Base64Escape(absl::string_view(data.data(), data.size()));
}

}  // namespace relay::smtp
