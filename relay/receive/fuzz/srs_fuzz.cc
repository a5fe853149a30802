// Fuzz target for SRS (relay/receive/srs.h): Forward rewrites the envelope sender of mail we
// forward (any sender a stranger writes on port 25), Reverse decodes the addresses bounces come
// back to (anything anyone sends to our domain). Input: a config byte (separator, hash length),
// a day offset byte, then "sender\naddress". Checks:
//   - Forward's result fits kSrsAddressBytesMax and is at our domain;
//   - Reverse undoes Forward: the sender itself for an ordinary sender or an SRS0 address of
//     another hop, the first hop's SRS0 address for an SRS1 one;
//   - another secret cannot reverse it, nor can we once it is older than age_days_max;
//   - Reverse of anything never yields more than the address carries.
#include <string>
#include <string_view>

#include "relay/receive/aliases.h"
#include "relay/receive/srs.h"
#include "tools/fuzz/fuzz.h"

namespace relay::receive {
namespace {

constexpr int64_t kNow = 1700000000;
constexpr int64_t kDay = 86400;
constexpr char kDomain[] = "fwd.example";

std::unique_ptr<Srs> MakeSrs(char separator, int hash_chars, const char* secret) {
  SrsConfig config;
  config.domain = kDomain;
  config.secrets = {secret, "old-secret"};
  config.separator = separator;
  config.hash_chars = hash_chars;
  absl::StatusOr<std::unique_ptr<Srs>> srs = Srs::Create(config);
  FUZZ_CHECK(srs.ok());
  return std::move(*srs);
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if ((s[i] | 0x20) != (prefix[i] | 0x20)) return false;
  }
  return true;
}

void FuzzSrs(std::string_view data) {
  relay::fuzz::InputReader in(data);
  const uint8_t config = in.Byte();
  const char separator = "=+-"[config % 3];
  const int hash_chars = 1 + (config / 3) % 27;
  const int64_t now = kNow + static_cast<int64_t>(in.Byte()) * kDay;
  const std::string_view sender = in.Until('\n');
  const std::string_view address = in.Rest();
  std::unique_ptr<Srs> srs = MakeSrs(separator, hash_chars, "tops3cret");

  absl::StatusOr<std::string> forwarded = srs->Forward(sender, now);
  std::string_view local, domain;
  if (forwarded.ok() && !sender.empty() && SplitAddress(sender, &local, &domain) &&
      *forwarded != sender) {
    FUZZ_CHECK(forwarded->size() <= kSrsAddressBytesMax);
    FUZZ_CHECK(forwarded->size() > sizeof(kDomain) &&
               forwarded->substr(forwarded->size() - sizeof(kDomain)) ==
                   std::string("@") + kDomain);
    absl::StatusOr<std::string> back = srs->Reverse(*forwarded, now);
    FUZZ_CHECK_MSG(back.ok(), *forwarded + ": " + std::string(back.status().message()));
    // Forward rewrites an SRS address of another hop only when something follows its prefix.
    const bool from_srs = local.size() > 5 && Srs::IsSrs(local);
    if (from_srs && StartsWithNoCase(local, "SRS1")) {
      FUZZ_CHECK(StartsWithNoCase(*back, "SRS0"));  // the first hop's address
    } else {
      // An SRS0 address comes back with its prefix in capitals, as Reverse writes it.
      const std::string expected =
          from_srs ? "SRS0" + std::string(sender.substr(4)) : std::string(sender);
      FUZZ_CHECK_MSG(*back == expected, *forwarded + " reverses to " + *back);
    }
    if (hash_chars >= 8) {  // fewer characters collide now and then by chance
      std::unique_ptr<Srs> other = MakeSrs(separator, hash_chars, "another");
      FUZZ_CHECK(absl::IsPermissionDenied(other->Reverse(*forwarded, now).status()));
    }
    if (!from_srs) {
      FUZZ_CHECK(absl::IsDeadlineExceeded(srs->Reverse(*forwarded, now + 22 * kDay).status()));
    }
  }

  absl::StatusOr<std::string> reversed = srs->Reverse(address, now);
  if (reversed.ok()) FUZZ_CHECK(reversed->size() <= address.size());
}

// A sender with a long local part (refused past kSrsAddressBytesMax, after a hash of it all).
std::string LongSender(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\0\0", 2), "l", "@example.com\nx@y", bytes);
}

// A long SRS0 address to reverse (its hash is checked over all of it).
std::string LongAddress(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\0\0a@b\n", 6) + "SRS0=HHHH=AA=example.com=", "l",
                             "@fwd.example", bytes);
}

}  // namespace
}  // namespace relay::receive

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "srs",
      .run = relay::receive::FuzzSrs,
      // Lower-cased copies of the fields for the HMAC, and the result.
      .bounds = {.heap_peak_bytes = {16 << 10, 8},
                 .heap_allocated_bytes = {64 << 10, 32},
                 .allocations = {256, 0.1}},
      .scaled = {{.name = "long sender", .make = relay::receive::LongSender},
                 {.name = "long address to reverse", .make = relay::receive::LongAddress}},
  };
  return target;
}
