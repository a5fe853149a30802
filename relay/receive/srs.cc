#include "relay/receive/srs.h"

#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace relay::receive {
namespace {

constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// libsrs2 and postsrsd accept any of these after "SRS0" / "SRS1".
constexpr std::string_view kSeparators = "=+-";

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(Av(s)); }

bool IEquals(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(Av(a), Av(b));
}

std::string Base64(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(kBase64[(v >> 18) & 63]);
    out.push_back(kBase64[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kBase64[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kBase64[v & 63] : '=');
  }
  return out;
}

int Base32Value(char c) {
  c = absl::ascii_toupper(static_cast<unsigned char>(c));
  for (int i = 0; i < 32; ++i) {
    if (kBase32[i] == c) return i;
  }
  return -1;
}

// Splits "local@domain" at the last '@'.
bool SplitAddress(std::string_view address, std::string_view* local, std::string_view* domain) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return false;
  *local = address.substr(0, at);
  *domain = address.substr(at + 1);
  return true;
}

// The part of an SRS0 address an SRS1 address carries: "=HHHH=TT=domain=local", its first
// character the SRS0 address's separator.
bool IsCarriedSrs0(std::string_view carried) {
  return carried.size() >= 2 && kSeparators.find(carried[0]) != std::string_view::npos;
}

}  // namespace

std::string SrsTimestamp(int64_t now_s) {
  int64_t slot = (now_s / kSrsTimePrecisionS) % kSrsTimeSlots;
  if (slot < 0) slot += kSrsTimeSlots;
  return {kBase32[(slot >> 5) & 31], kBase32[slot & 31]};
}

absl::StatusOr<std::unique_ptr<Srs>> Srs::Create(const SrsConfig& config) {
  if (config.domain.empty() || config.domain.find('@') != std::string::npos) {
    return absl::InvalidArgumentError("SRS needs the forwarding domain");
  }
  if (config.secrets.empty()) return absl::InvalidArgumentError("SRS needs a secret");
  for (const std::string& s : config.secrets) {
    if (s.empty()) return absl::InvalidArgumentError("an SRS secret is empty");
  }
  // A base64 HMAC-SHA1 has 28 characters (27 without padding).
  if (config.hash_chars < 1 || config.hash_chars > 27) {
    return absl::InvalidArgumentError("SRS hash_chars must be 1 to 27");
  }
  if (config.hash_chars_min < 0 || config.hash_chars_min > config.hash_chars) {
    return absl::InvalidArgumentError("SRS hash_chars_min must be 0 to hash_chars");
  }
  if (config.age_days_max < 1 || config.age_days_max >= kSrsTimeSlots) {
    return absl::InvalidArgumentError("SRS age_days_max must be 1 to 1023");
  }
  if (kSeparators.find(config.separator) == std::string_view::npos) {
    return absl::InvalidArgumentError("SRS separator must be '=', '+' or '-'");
  }
  SrsConfig c = config;
  c.domain = Lower(c.domain);
  if (c.hash_chars_min == 0) c.hash_chars_min = c.hash_chars;
  return std::unique_ptr<Srs>(new Srs(std::move(c)));
}

bool Srs::IsSrs(std::string_view local_part) {
  return local_part.size() >= 5 &&
         (IEquals(local_part.substr(0, 4), "SRS0") || IEquals(local_part.substr(0, 4), "SRS1")) &&
         kSeparators.find(local_part[4]) != std::string_view::npos;
}

std::string Srs::Hash(const std::string& secret,
                      std::initializer_list<std::string_view> fields) const {
  HMAC_CTX ctx;
  HMAC_CTX_init(&ctx);
  HMAC_Init_ex(&ctx, secret.data(), secret.size(), EVP_sha1(), nullptr);
  for (std::string_view f : fields) {
    // libsrs2 hashes the fields lower-cased, so that a case-smashed address still checks.
    std::string lower = Lower(f);
    HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(lower.data()), lower.size());
  }
  uint8_t mac[SHA_DIGEST_LENGTH];
  unsigned mac_len = 0;
  HMAC_Final(&ctx, mac, &mac_len);
  HMAC_CTX_cleanup(&ctx);
  return Base64(mac, mac_len).substr(0, config_.hash_chars);
}

absl::Status Srs::CheckHash(std::string_view hash,
                            std::initializer_list<std::string_view> fields) const {
  if (hash.size() < static_cast<size_t>(config_.hash_chars_min)) {
    return absl::PermissionDeniedError(
        absl::StrCat("SRS hash \"", std::string(hash), "\" is too short"));
  }
  for (const std::string& secret : config_.secrets) {
    std::string expected = Hash(secret, fields);
    if (hash.size() <= expected.size() && IEquals(hash, expected.substr(0, hash.size()))) {
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(
      absl::StrCat("SRS hash \"", std::string(hash), "\" does not match (forged or other secret)"));
}

absl::StatusOr<std::string> Srs::Forward(std::string_view sender, int64_t now_s) const {
  if (sender.empty()) return std::string();  // RFC 5321 §4.5.5: the null sender stays null.
  std::string_view local, domain;
  if (!SplitAddress(sender, &local, &domain)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sender \"", std::string(sender), "\" is not local@domain"));
  }
  if (IEquals(domain, config_.domain)) return std::string(sender);
  // '=' separates the fields of an SRS address: Reverse would cut such a domain in two and the
  // hash would not match, so the bounce could never come back. No host name has one.
  if (domain.find('=') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("sender domain \"", std::string(domain), "\" has an '='"));
  }
  std::string out;
  const std::string sep(1, config_.separator);
  if (local.size() > 5 && IEquals(local.substr(0, 4), "SRS1") &&
      kSeparators.find(local[4]) != std::string_view::npos) {
    // SRS1<sep>HHHH=first-hop=<rest>: keep the first hop and what it carries, re-hash for us.
    std::string_view rest = local.substr(5);
    size_t eq1 = rest.find('=');
    size_t eq2 = eq1 == std::string_view::npos ? eq1 : rest.find('=', eq1 + 1);
    std::string_view carried =
        eq2 == std::string_view::npos ? std::string_view() : rest.substr(eq2 + 1);
    // What Reverse will ask of it: a first hop, then the SRS0 address's fields.
    if (eq2 == std::string_view::npos || eq2 == eq1 + 1 || !IsCarriedSrs0(carried)) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed SRS1 sender \"", std::string(sender), "\""));
    }
    std::string_view first_hop = rest.substr(eq1 + 1, eq2 - eq1 - 1);
    out = absl::StrCat("SRS1", sep, Hash(config_.secrets[0], {first_hop, carried}), "=",
                       std::string(first_hop), "=", std::string(carried), "@", config_.domain);
  } else if (local.size() > 5 && IEquals(local.substr(0, 4), "SRS0") &&
             kSeparators.find(local[4]) != std::string_view::npos) {
    // An SRS0 address made by the previous hop: point back at that hop (libsrs2's SRS1).
    std::string_view carried = local.substr(4);  // "=HHHH=TT=domain=local", separator included
    out = absl::StrCat("SRS1", sep, Hash(config_.secrets[0], {domain, carried}), "=",
                       std::string(domain), "=", std::string(carried), "@", config_.domain);
  } else {
    std::string tt = SrsTimestamp(now_s);
    out = absl::StrCat("SRS0", sep, Hash(config_.secrets[0], {tt, domain, local}), "=", tt, "=",
                       std::string(domain), "=", std::string(local), "@", config_.domain);
  }
  if (out.size() > kSrsAddressBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("SRS address for \"", std::string(sender),
                                                   "\" would exceed ", kSrsAddressBytesMax,
                                                   " bytes"));
  }
  return out;
}

absl::StatusOr<std::string> Srs::Reverse(std::string_view address, int64_t now_s) const {
  std::string_view local, domain;
  if (!SplitAddress(address, &local, &domain)) local = address;
  if (!IsSrs(local)) {
    return absl::NotFoundError(absl::StrCat("\"", std::string(address), "\" is not SRS"));
  }
  auto malformed = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed SRS address \"", std::string(address), "\": ", std::string(why)));
  };
  const bool srs1 = local[3] == '1';
  std::string_view rest = local.substr(5);
  size_t eq1 = rest.find('=');
  if (eq1 == std::string_view::npos) return malformed("no hash");
  std::string_view hash = rest.substr(0, eq1);
  rest.remove_prefix(eq1 + 1);
  if (srs1) {
    // HHHH=first-hop=<sep>HHHH=TT=domain=local
    size_t eq = rest.find('=');
    if (eq == std::string_view::npos || eq == 0) return malformed("no first hop");
    std::string_view first_hop = rest.substr(0, eq);
    std::string_view carried = rest.substr(eq + 1);
    if (!IsCarriedSrs0(carried)) return malformed("nothing after the first hop");
    if (absl::Status s = CheckHash(hash, {first_hop, carried}); !s.ok()) return s;
    return absl::StrCat("SRS0", std::string(carried), "@", std::string(first_hop));
  }
  // SRS0: HHHH=TT=domain=local
  size_t eq2 = rest.find('=');
  if (eq2 == std::string_view::npos) return malformed("no timestamp");
  std::string_view tt = rest.substr(0, eq2);
  rest.remove_prefix(eq2 + 1);
  size_t eq3 = rest.find('=');
  if (eq3 == std::string_view::npos || eq3 == 0) return malformed("no domain");
  std::string_view orig_domain = rest.substr(0, eq3);
  std::string_view orig_local = rest.substr(eq3 + 1);
  if (orig_local.empty()) return malformed("no local part");
  if (tt.size() != 2 || Base32Value(tt[0]) < 0 || Base32Value(tt[1]) < 0) {
    return malformed("bad timestamp");
  }
  if (absl::Status s = CheckHash(hash, {tt, orig_domain, orig_local}); !s.ok()) return s;
  // libsrs2's age rule: days since the stamp, modulo the 1024-day wheel.
  int then = Base32Value(tt[0]) << 5 | Base32Value(tt[1]);
  int64_t now = (now_s / kSrsTimePrecisionS) % kSrsTimeSlots;
  if (now < 0) now += kSrsTimeSlots;
  if (now < then) now += kSrsTimeSlots;
  if (now - then > config_.age_days_max) {
    return absl::DeadlineExceededError(absl::StrCat("SRS address \"", std::string(address),
                                                    "\" expired (", now - then, " days old, ",
                                                    config_.age_days_max, " allowed)"));
  }
  return absl::StrCat(std::string(orig_local), "@", std::string(orig_domain));
}

}  // namespace relay::receive
