#include "relay/feedback/hmac_token.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "absl/strings/ascii.h"

namespace relay::feedback {
namespace {

constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";

}  // namespace

std::string Base32Hmac(std::string_view secret, std::initializer_list<std::string_view> fields,
                       size_t chars) {
  std::string data;
  bool first = true;
  for (std::string_view f : fields) {
    if (!first) data += '\0';
    data += f;
    first = false;
  }
  uint8_t mac[SHA256_DIGEST_LENGTH + 1] = {};  // one spare byte: the last window reads past
  unsigned mac_len = 0;
  HMAC(EVP_sha256(), secret.data(), secret.size(), reinterpret_cast<const uint8_t*>(data.data()),
       data.size(), mac, &mac_len);
  if (chars > SHA256_DIGEST_LENGTH * 8 / 5) chars = SHA256_DIGEST_LENGTH * 8 / 5;
  std::string out(chars, 'a');
  for (size_t i = 0; i < chars; ++i) {
    // The 5 bits at bit 5i, most significant first.
    const size_t bit = 5 * i;
    const unsigned two = (mac[bit / 8] << 8) | mac[bit / 8 + 1];
    out[i] = kBase32[(two >> (11 - bit % 8)) & 31];
  }
  return out;
}

bool Base32HmacMatches(const std::vector<std::string>& secrets,
                       std::initializer_list<std::string_view> fields, std::string_view mac) {
  bool ok = false;
  for (const std::string& secret : secrets) {
    const std::string expected = Base32Hmac(secret, fields, mac.size());
    ok |= expected.size() == mac.size() &&
          CRYPTO_memcmp(expected.data(), mac.data(), mac.size()) == 0;
  }
  return ok;
}

bool IsBase32(std::string_view s) {
  for (char c : s) {
    const char l = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (!((l >= 'a' && l <= 'z') || (l >= '2' && l <= '7'))) return false;
  }
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToLower(&out);
  return out;
}

}  // namespace relay::feedback
