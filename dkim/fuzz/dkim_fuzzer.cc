// Fuzz target for the header parser, the canonicalizers, the signer and the verifier.
//
// Input: a message (arbitrary bytes). Checks, besides "no crash, no sanitizer report":
//   - the body hash does not depend on where the body is split into chunks;
//   - whatever the signer accepts verifies with the verifier (never a wrong signature);
//   - the verifier never passes a signature on the input unless it carries one we made.
// Built as a libFuzzer target with clang (dkim/fuzz/build_libfuzzer.sh) and, under Bazel with
// GCC, driven by dkim/fuzz/fuzz_replay_test.cc.
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

void Check(bool condition, const char* what) {
  if (!condition) {
    fprintf(stderr, "dkim fuzz invariant violated: %s\n", what);
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Fixture& fixture = GetFixture();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t split = size == 0 ? 0 : data[0] % (size + 1);

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
  for (dkim::Canonicalization c : {dkim::Canonicalization::kSimple,
                                   dkim::Canonicalization::kRelaxed}) {
    dkim::BodyHasher whole(c), parts(c);
    whole.Update(input);
    parts.Update(input.substr(0, split));
    parts.Update(input.substr(split));
    Check(whole.Finish() == parts.Finish(), "body hash depends on chunking");
  }

  // Sign; whatever is signed must verify.
  dkim::KeyLookup lookup = [&fixture](std::string_view, std::string_view)
      -> absl::StatusOr<std::string> { return fixture.record; };
  for (const dkim::Signer* signer : {fixture.relaxed.get(), fixture.simple.get()}) {
    dkim::SigningSession session = signer->Begin();
    session.Update(input.substr(0, split));
    session.Update(input.substr(split));
    absl::StatusOr<std::string> sigs = session.Finish(1700000000);
    if (!sigs.ok() || sigs->empty()) continue;
    std::string message = *sigs + std::string(input);
    std::vector<dkim::VerifyResult> results = dkim::VerifyMessage(message, lookup, 1700000000);
    Check(!results.empty(), "signed message has no signature");
    Check(results[0].status == dkim::VerifyStatus::kPass, "own signature does not verify");
  }

  // The verifier on raw input, with a key it will accept.
  (void)dkim::VerifyMessage(input, lookup, 1700000000);
  return 0;
}
