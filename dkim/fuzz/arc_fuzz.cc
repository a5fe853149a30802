// Fuzz target for ARC (dkim/arc.h): the chain a forwarded message arrives with on port 25 is
// validated, and the message sealed again when it is forwarded. The input is the message. Keys:
// example.org's Ed25519 key (selector "arc", RFC 8463's test key, which also seals here) and
// forwarder.example's RSA key (selector "rsa"); any other key is missing. Checks:
//   - ArcKeyNames lists each (selector, domain) once, at most one per seal and one more;
//   - the validation's status agrees with its instance and reason;
//   - whatever the sealer accepts, sealed on a chain that passed or had none, validates as a
//     pass one instance higher, for our domain; sealed on a failed chain, fails; the seal and
//     message signature are folded under 78 columns;
//   - validation is deterministic.
#include <string>
#include <string_view>

#include "dkim/arc.h"
#include "dkim/key.h"
#include "tools/fuzz/fuzz.h"

namespace dkim {
namespace {

constexpr int64_t kNow = 1763836600;
constexpr char kEd25519Seed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
// dkim/testdata/rfc8463-rsa.pem's public key.
constexpr char kRsaRecord[] =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6w"
    "y5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9"
    "PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
constexpr char kAuthResults[] = "relay.example.org; spf=pass smtp.mailfrom=alice@sender.example";

struct Fixture {
  std::unique_ptr<ArcSealer> sealer;
  std::string ed25519_record;
  KeyLookup lookup;
};

const Fixture& GetFixture() {
  static const Fixture* const fixture = [] {
    auto* f = new Fixture();
    ArcSealerConfig config;
    config.domain = "example.org";
    config.selector = "arc";
    config.key_contents = kEd25519Seed;
    f->sealer = std::move(*ArcSealer::Create(config));
    f->ed25519_record = PrivateKey::FromFileContents(kEd25519Seed)->PublicKeyRecord();
    f->lookup = [f](std::string_view selector,
                    std::string_view domain) -> absl::StatusOr<std::string> {
      if (selector == "arc" && domain == "example.org") return f->ed25519_record;
      if (selector == "rsa" && domain == "forwarder.example") return std::string(kRsaRecord);
      return absl::NotFoundError("no such key");
    };
    return f;
  }();
  return *fixture;
}

void CheckValidation(const ArcValidation& v) {
  FUZZ_CHECK(v.instance_max >= 0 && v.instance_max <= kArcInstanceMax);
  switch (v.status) {
    case ArcChainStatus::kNone:
      FUZZ_CHECK(v.instance_max == 0 && v.reason.empty() && v.domain.empty());
      break;
    case ArcChainStatus::kPass:
      FUZZ_CHECK(v.instance_max >= 1 && v.reason.empty() && !v.domain.empty());
      break;
    case ArcChainStatus::kFail:
      FUZZ_CHECK(!v.reason.empty() && v.domain.empty());
      break;
  }
}

// The lines of the ARC-Seal and ARC-Message-Signature fields the sealer wrote.
void CheckFolding(std::string_view sealed) {
  size_t pos = 0;
  while (pos < sealed.size()) {
    const size_t eol = sealed.find("\r\n", pos);
    FUZZ_CHECK(eol != std::string_view::npos);
    const std::string_view line = sealed.substr(pos, eol - pos);
    if (line.substr(0, 27) == "ARC-Authentication-Results:") break;  // the payload as given
    FUZZ_CHECK_MSG(line.size() <= 78, std::string(line));
    pos = eol + 2;
  }
}

void FuzzArc(std::string_view message) {
  const Fixture& fixture = GetFixture();
  const auto names = ArcKeyNames(message);
  FUZZ_CHECK(names.size() <= kArcInstanceMax + 1);
  for (size_t i = 0; i < names.size(); ++i) {
    FUZZ_CHECK(!names[i].first.empty() && !names[i].second.empty());
    for (size_t j = 0; j < i; ++j) FUZZ_CHECK(names[i] != names[j]);
  }

  const ArcValidation v = ValidateArcChain(message, fixture.lookup, kNow);
  CheckValidation(v);
  const ArcValidation again = ValidateArcChain(message, fixture.lookup, kNow);
  FUZZ_CHECK(again.status == v.status && again.reason == v.reason && again.domain == v.domain);

  absl::StatusOr<std::string> sealed = fixture.sealer->Seal(message, kAuthResults, v, kNow);
  if (!sealed.ok()) return;
  CheckFolding(*sealed);
  const std::string forwarded = *sealed + std::string(message);
  const ArcValidation next = ValidateArcChain(forwarded, fixture.lookup, kNow);
  CheckValidation(next);
  if (v.status == ArcChainStatus::kFail) {
    FUZZ_CHECK(next.status == ArcChainStatus::kFail);
  } else {
    FUZZ_CHECK_MSG(next.status == ArcChainStatus::kPass, next.reason);
    FUZZ_CHECK(next.instance_max == v.instance_max + 1 && next.domain == "example.org");
  }
}

constexpr char kHeader[] =
    "From: Alice <alice@sender.example>\r\nTo: list@example.org\r\nSubject: s\r\n";

// A long body, sealed: the body hash of the ARC-Message-Signature.
std::string LongBody(size_t bytes) {
  const std::string message =
      relay::fuzz::Repeat(std::string(kHeader) + "\r\n", "a line of the body\r\n", "", bytes);
  const ArcValidation none;
  return *GetFixture().sealer->Seal(message, kAuthResults, none, kNow) + message;
}

// Ten ARC sets with long Authentication-Results payloads: each seal covers every set below it.
std::string LongChain(size_t bytes) {
  std::string message = std::string(kHeader) + "\r\nbody\r\n";
  ArcValidation chain;
  for (int i = 0; i < 10; ++i) {
    const std::string payload =
        relay::fuzz::Repeat("relay.example.org;", " spf=pass", "", bytes / 10);
    message = *GetFixture().sealer->Seal(message, payload, chain, kNow) + message;
    chain = ValidateArcChain(message, GetFixture().lookup, kNow);
  }
  return message;
}

}  // namespace
}  // namespace dkim

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "arc",
      .run = dkim::FuzzArc,
      // The parsed fields, the canonical data each seal signs (every set below it: up to 50
      // times the sets' bytes in a chain of 50, in turn, not at once), the sealed copy and its
      // validation.
      .bounds = {.heap_peak_bytes = {64 << 10, 16},
                 .heap_allocated_bytes = {256 << 10, 256},
                 .allocations = {4096, 2}},
      .init = [] { (void)dkim::GetFixture(); },
      .scaled = {{.name = "long body", .make = dkim::LongBody},
                 {.name = "ten sets of long payloads", .make = dkim::LongChain}},
  };
  return target;
}
