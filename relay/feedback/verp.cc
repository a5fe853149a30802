#include "relay/feedback/verp.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "relay/feedback/hmac_token.h"

namespace relay::feedback {
namespace {

constexpr size_t kMacChars = 12;           // 60 bits
constexpr size_t kQueueIdCharsMax = 40;    // "<14 hex>-<2 hex>-<16 hex>"
constexpr size_t kPathBytesMax = 254;      // RFC 5321 §4.5.3.1.3 less the brackets
constexpr size_t kLocalPartBytesMax = 64;  // RFC 5321 §4.5.3.1.1
// The configured local part leaves the token room within 64 octets: "+", a queue id (about 20
// characters, 35 at most), ".", an index, ".", the MAC; ReturnPath checks each path.
constexpr size_t kConfiguredLocalPartBytesMax = 12;
constexpr uint32_t kIndexMax = 1u << 20;

std::string_view DomainOf(std::string_view address) {
  size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool IsAtext(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

bool IsDotAtom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.' ? s[i + 1] == '.' : !IsAtext(s[i])) return false;
  }
  return true;
}

bool IsQueueIdText(std::string_view s) {
  if (s.empty() || s.size() > kQueueIdCharsMax) return false;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<const Verp>> Verp::Make(VerpOptions options) {
  if (options.secrets.empty()) return absl::InvalidArgumentError("VERP needs a secret");
  for (const std::string& s : options.secrets) {
    if (s.empty()) return absl::InvalidArgumentError("a VERP secret is empty");
  }
  options.local_part = Lower(options.local_part);
  if (!IsDotAtom(options.local_part) || options.local_part.find('+') != std::string::npos ||
      options.local_part.size() > kConfiguredLocalPartBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VERP local part \"", options.local_part, "\" must be a dot-atom without '+' of at most ",
        kConfiguredLocalPartBytesMax, " characters (the token needs the rest of 64)"));
  }
  std::unique_ptr<Verp> verp(new Verp(std::move(options)));
  for (size_t i = 0; i < verp->options_.domains.size(); ++i) {
    VerpDomain& d = verp->options_.domains[i];
    d.domain = Lower(d.domain);
    d.bounce_domain = Lower(d.bounce_domain);
    if (d.domain.empty() || d.bounce_domain.empty()) {
      return absl::InvalidArgumentError("a VERP domain needs its domain and bounce_domain");
    }
    if (!verp->by_domain_.emplace(d.domain, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("VERP domain ", d.domain, " given twice"));
    }
    if (!verp->by_bounce_domain_.emplace(d.bounce_domain, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("bounce domain ", d.bounce_domain,
                       " serves two sending domains: each needs its own (its reports name it)"));
    }
  }
  for (const VerpDomain& d : verp->options_.domains) {
    if (verp->by_domain_.contains(d.bounce_domain)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bounce domain ", d.bounce_domain, " is also a sending domain"));
    }
  }
  return std::unique_ptr<const Verp>(std::move(verp));
}

Verp::Verp(VerpOptions options) : options_(std::move(options)) {}

const VerpDomain* Verp::ForSender(std::string_view sender) const {
  if (sender.empty()) return nullptr;
  auto it = by_domain_.find(Lower(DomainOf(sender)));
  return it == by_domain_.end() ? nullptr : &options_.domains[it->second];
}

const VerpDomain* Verp::ForBounceDomain(std::string_view domain) const {
  auto it = by_bounce_domain_.find(Lower(domain));
  return it == by_bounce_domain_.end() ? nullptr : &options_.domains[it->second];
}

std::string Verp::Mac(const std::string& secret, std::string_view tenant, std::string_view queue_id,
                      uint32_t index, std::string_view address) const {
  return Base32Hmac(
      secret, {"verp1", tenant, Lower(queue_id), std::to_string(index), Lower(address)}, kMacChars);
}

std::optional<std::string> Verp::ReturnPath(std::string_view sender, std::string_view queue_id,
                                            uint32_t index, std::string_view address) const {
  const VerpDomain* d = ForSender(sender);
  if (d == nullptr) return std::nullopt;
  std::string path = absl::StrCat(
      options_.local_part, "+", Lower(queue_id), ".", index, ".",
      Mac(options_.secrets.front(), d->domain, queue_id, index, address), "@", d->bounce_domain);
  // RFC 5321 §4.5.3.1.1 and §4.5.3.1.3: 64 octets of local part, 256 of path.
  if (path.find('@') > kLocalPartBytesMax || path.size() > kPathBytesMax) return std::nullopt;
  return path;
}

bool Verp::IsFeedbackAddress(std::string_view local_part) const {
  return IEquals(local_part, options_.local_part);
}

std::optional<VerpToken> Verp::Parse(std::string_view local_part, std::string_view domain) const {
  const VerpDomain* d = ForBounceDomain(domain);
  const size_t prefix = options_.local_part.size() + 1;
  if (d == nullptr || local_part.size() <= prefix ||
      !IEquals(local_part.substr(0, prefix - 1), options_.local_part) ||
      local_part[prefix - 1] != '+') {
    return std::nullopt;
  }
  std::string_view token = local_part.substr(prefix);
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos) return std::nullopt;
  std::string_view id = token.substr(0, dot1);
  std::string_view index = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view mac = token.substr(dot2 + 1);
  // The index as ReturnPath writes it: digits, no sign, no leading zero, so that each token has
  // one spelling.
  uint32_t n = 0;
  if (!IsQueueIdText(id) || index.empty() || index.size() > 7 ||
      (index.size() > 1 && index[0] == '0') ||
      index.find_first_not_of("0123456789") != std::string_view::npos || mac.size() != kMacChars ||
      !IsBase32(mac)) {
    return std::nullopt;
  }
  for (char c : index) n = n * 10 + static_cast<uint32_t>(c - '0');
  if (n >= kIndexMax) return std::nullopt;
  VerpToken t;
  t.tenant = d->domain;
  t.queue_id = Lower(id);
  t.recipient_index = n;
  t.mac = Lower(mac);
  return t;
}

std::optional<VerpToken> Verp::ParseAddress(std::string_view address) const {
  const size_t at = address.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  return Parse(address.substr(0, at), address.substr(at + 1));
}

bool Verp::Verifies(const VerpToken& token, std::string_view address) const {
  if (address.empty() || token.mac.size() != kMacChars) return false;
  return Base32HmacMatches(options_.secrets,
                           {"verp1", token.tenant, token.queue_id,
                            std::to_string(token.recipient_index), Lower(address)},
                           token.mac);
}

}  // namespace relay::feedback
