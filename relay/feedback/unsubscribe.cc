#include "relay/feedback/unsubscribe.h"

#include <openssl/base64.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "relay/feedback/hmac_token.h"

namespace relay::feedback {
namespace {

constexpr size_t kMacChars = 16;          // 80 bits
constexpr size_t kAddressBytesMax = 254;  // RFC 5321's path less the brackets
constexpr char kPathPrefix[] = "/u/";
constexpr size_t kPathPrefixBytes = 3;

bool IsDomainText(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string Base64Url(std::string_view bytes) {
  size_t len = 0;
  EVP_EncodedLength(&len, bytes.size());
  std::string out(len, '\0');
  size_t n = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()),
                             reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  out.resize(n);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<std::string> FromBase64Url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string std_text(text);
  for (char& c : std_text) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return std::nullopt;
    }
  }
  while (std_text.size() % 4 != 0) std_text += '=';
  size_t len = 0;
  if (!EVP_DecodedLength(&len, std_text.size())) return std::nullopt;
  std::string out(len, '\0');
  size_t n = 0;
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out.data()), &n, out.size(),
                        reinterpret_cast<const uint8_t*>(std_text.data()), std_text.size())) {
    return std::nullopt;
  }
  out.resize(n);
  return out;
}

absl::StatusOr<std::unique_ptr<const Unsubscribe>> Unsubscribe::Make(
    UnsubscribeOptions options, std::shared_ptr<const Verp> verp) {
  if (options.secrets.empty()) return absl::InvalidArgumentError("unsubscribe needs a secret");
  for (const std::string& s : options.secrets) {
    if (s.empty()) return absl::InvalidArgumentError("an unsubscribe secret is empty");
  }
  const std::string_view url = options.base_url;
  const std::string_view host = url.starts_with("https://") ? url.substr(8) : "";
  if (host.empty() || host.find_first_of("/?#@ ") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsubscribe url \"", options.base_url,
                     "\" must be https://HOST[:PORT] without a path (RFC 8058 §3.1: HTTPS only)"));
  }
  options.local_part = Lower(options.local_part);
  return std::unique_ptr<const Unsubscribe>(new Unsubscribe(std::move(options), std::move(verp)));
}

Unsubscribe::Unsubscribe(UnsubscribeOptions options, std::shared_ptr<const Verp> verp)
    : options_(std::move(options)), verp_(std::move(verp)) {}

std::string Unsubscribe::Mac(const std::string& secret, std::string_view tenant,
                             std::string_view address) const {
  return Base32Hmac(secret, {"unsub1", Lower(tenant), Lower(address)}, kMacChars);
}

std::string Unsubscribe::Url(std::string_view tenant, std::string_view address) const {
  return absl::StrCat(options_.base_url, kPathPrefix, Lower(tenant), "/", Base64Url(Lower(address)),
                      "/", Mac(options_.secrets.front(), tenant, address));
}

std::string Unsubscribe::HeaderFields(std::string_view tenant, std::string_view address) const {
  std::string fields = absl::StrCat("List-Unsubscribe: <", Url(tenant, address), ">");
  const VerpDomain* d = verp_ != nullptr ? verp_->ForSender("x@" + std::string(tenant)) : nullptr;
  if (d != nullptr) {
    // Folded before the second URI (RFC 5322 §2.2.3), so that each line stays short.
    absl::StrAppend(&fields, ",\r\n <mailto:", options_.local_part, "+",
                    Mac(options_.secrets.front(), tenant, address), "@", d->bounce_domain,
                    "?subject=unsubscribe>");
  }
  absl::StrAppend(&fields, "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
  return fields;
}

std::optional<Unsubscription> Unsubscribe::FromPath(std::string_view path) const {
  path = path.substr(0, path.find('?'));
  if (!path.starts_with(kPathPrefix)) return std::nullopt;
  path.remove_prefix(kPathPrefixBytes);
  const size_t a = path.find('/');
  const size_t b = a == std::string_view::npos ? a : path.find('/', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  const std::string_view tenant = path.substr(0, a);
  const std::string_view encoded = path.substr(a + 1, b - a - 1);
  const std::string_view mac = path.substr(b + 1);
  if (!IsDomainText(tenant) || encoded.size() > 4 * kAddressBytesMax / 3 + 4 ||
      mac.size() != kMacChars || !IsBase32(mac)) {
    return std::nullopt;
  }
  std::optional<std::string> address = FromBase64Url(encoded);
  if (!address || address->empty() || address->find('@') == std::string::npos) {
    return std::nullopt;
  }
  UnsubscribeToken token{Lower(tenant), Lower(mac)};
  if (!Verifies(token, *address)) return std::nullopt;
  return Unsubscription{token.tenant, Lower(*address)};
}

std::optional<UnsubscribeToken> Unsubscribe::ParseMailto(std::string_view address) const {
  const size_t at = address.rfind('@');
  if (verp_ == nullptr || at == std::string_view::npos) return std::nullopt;
  const VerpDomain* d = verp_->ForBounceDomain(address.substr(at + 1));
  const std::string_view local = address.substr(0, at);
  const size_t prefix = options_.local_part.size() + 1;
  if (d == nullptr || local.size() != prefix + kMacChars ||
      Lower(local.substr(0, prefix)) != options_.local_part + "+" ||
      !IsBase32(local.substr(prefix))) {
    return std::nullopt;
  }
  return UnsubscribeToken{d->domain, Lower(local.substr(prefix))};
}

bool Unsubscribe::Verifies(const UnsubscribeToken& token, std::string_view address) const {
  if (address.empty() || token.mac.size() != kMacChars) return false;
  return Base32HmacMatches(options_.secrets, {"unsub1", Lower(token.tenant), Lower(address)},
                           token.mac);
}

}  // namespace relay::feedback
