// Fuzz target for the header parser, the canonicalizers, the signer and the verifier.
//
// Input: a message (arbitrary bytes). Checks, besides "no crash, no sanitizer report":
//   - the body hash does not depend on where the body is split into chunks;
//   - whatever the signer accepts verifies with the verifier (never a wrong signature);
//   - the verifier never passes a signature on the input unless it carries one we made.
// Built by relay_fuzz_test (tools/bazel/fuzz.bzl): a GCC replay test and a libFuzzer target.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "dkim/canon.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/signer.h"
#include "dkim/verifier.h"
#include "tools/fuzz/fuzz.h"

namespace {

// RFC 8463 Appendix A.1's Ed25519 seed: deterministic and cheap.
constexpr char kSeed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";

struct Fixture {
  std::unique_ptr<dkim::Signer> relaxed;
  std::unique_ptr<dkim::Signer> simple;
  std::string record;
};

const Fixture& GetFixture() {
  static const Fixture* const fixture = [] {
    auto* f = new Fixture();
    dkim::SignerConfig config;
    config.keys.push_back({"example.com", "fz", "", kSeed, ""});
    config.default_signing_domain = "example.com";
    f->relaxed = std::move(*dkim::Signer::Create(config));
    config.header_canonicalization = dkim::Canonicalization::kSimple;
    config.body_canonicalization = dkim::Canonicalization::kSimple;
    f->simple = std::move(*dkim::Signer::Create(config));
    f->record = dkim::PrivateKey::FromFileContents(kSeed)->PublicKeyRecord();
    return f;
  }();
  return *fixture;
}

void FuzzDkim(std::string_view input) {
  const Fixture& fixture = GetFixture();
  const size_t size = input.size();
  size_t split = size == 0 ? 0 : static_cast<uint8_t>(input[0]) % (size + 1);

  // Header parsing and canonicalization of whatever parses.
  size_t sep = input.find("\r\n\r\n");
  std::string_view header_block = sep == std::string_view::npos ? input : input.substr(0, sep + 2);
  absl::StatusOr<std::vector<dkim::HeaderField>> fields = dkim::ParseHeaderBlock(header_block);
  if (fields.ok()) {
    std::string out;
    for (const dkim::HeaderField& f : *fields) {
      dkim::AppendCanonicalHeader(dkim::Canonicalization::kRelaxed, f.raw, true, &out);
      dkim::AppendCanonicalHeader(dkim::Canonicalization::kSimple, f.raw, false, &out);
      if (dkim::HeaderNameEquals(f.name, "from")) (void)dkim::FromDomain(f.raw);
    }
  }

  // Chunking does not change the body hash.
  for (dkim::Canonicalization c :
       {dkim::Canonicalization::kSimple, dkim::Canonicalization::kRelaxed}) {
    dkim::BodyHasher whole(c), parts(c);
    whole.Update(input);
    parts.Update(input.substr(0, split));
    parts.Update(input.substr(split));
    FUZZ_CHECK(whole.Finish() == parts.Finish());  // chunking does not matter
  }

  // Sign; whatever is signed must verify.
  dkim::KeyLookup lookup = [&fixture](std::string_view,
                                      std::string_view) -> absl::StatusOr<std::string> {
    return fixture.record;
  };
  for (const dkim::Signer* signer : {fixture.relaxed.get(), fixture.simple.get()}) {
    dkim::SigningSession session = signer->Begin();
    session.Update(input.substr(0, split));
    session.Update(input.substr(split));
    absl::StatusOr<std::string> sigs = session.Finish(1700000000);
    if (!sigs.ok() || sigs->empty()) continue;
    std::string message = *sigs + std::string(input);
    std::vector<dkim::VerifyResult> results = dkim::VerifyMessage(message, lookup, 1700000000);
    FUZZ_CHECK(!results.empty());                                // our signature is there
    FUZZ_CHECK(results[0].status == dkim::VerifyStatus::kPass);  // and it verifies
  }

  // The verifier on raw input, with a key it will accept.
  (void)dkim::VerifyMessage(input, lookup, 1700000000);
}

constexpr char kEmptyBodyHash[] = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

// A message with a long body of ordinary lines: canonicalization and hashing.
std::string LongBody(size_t bytes) {
  return relay::fuzz::Repeat("From: a@example.com\r\nSubject: s\r\n\r\n",
                             "A line of the body,  with\tspaces \r\n", "", bytes);
}

// A DKIM-Signature whose h= names "x" over many X fields (at most kHeaderFieldCountMax):
// SelectHeaders scans the fields once per name.
std::string SignedHeaderList(size_t bytes) {
  const size_t count = std::min<size_t>(bytes / 8, dkim::kHeaderFieldCountMax - 2);
  std::string h = "from";
  while (h.size() < bytes / 4) h += ":x";
  std::string m = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=fz; ";
  m += std::string("bh=") + kEmptyBodyHash + "; h=" + h + "; b=AAAA\r\n";
  for (size_t i = 0; i < count; ++i) m += "X: 1\r\n";
  return m + "From: a@example.com\r\n\r\n";
}

// A DKIM-Signature with many distinct tags: the tag-list parser's duplicate check.
std::string LongTagList(size_t bytes) {
  std::string m = "DKIM-Signature: v=1";
  for (size_t i = 0; m.size() < bytes; ++i) m += "; t" + std::to_string(i) + "=1";
  return m + "\r\nFrom: a@example.com\r\n\r\nbody\r\n";
}

// A From whose domain is many short labels: finding the signing key walks up the labels.
std::string LongFromDomain(size_t bytes) {
  return relay::fuzz::Repeat("From: a@", "x.", "example.com\r\n\r\nbody\r\n", bytes);
}

}  // namespace

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "dkim",
      .run = FuzzDkim,
      // A 6-byte header field becomes a 32-byte HeaderField (and twice that while the vector
      // grows) in each of the six parses of an input (here, two signers, three verifications).
      .bounds = {.heap_peak_bytes = {64 << 10, 48},
                 .heap_allocated_bytes = {256 << 10, 256},
                 .allocations = {2048, 0.25}},
      .init = [] { GetFixture(); },
      .scaled = {{.name = "long body", .make = LongBody},
                 {.name = "h= against as many fields", .make = SignedHeaderList},
                 {.name = "distinct tags", .make = LongTagList},
                 {.name = "From domain of many labels", .make = LongFromDomain}},
  };
  return target;
}
