// Fuzz target for DKIM key records and key files (dkim/key.h): a TXT record comes from whatever
// DNS server the signing domain names, a key file from the operator's disk. Checks, beyond memory
// safety:
//   - ParseTagList: every tag is a substring of the input, no name twice, names well-formed;
//   - SplitTxtStrings: strings of at most 255 bytes that join back to the input;
//   - a record that parses gives a key that refuses a signature it did not make;
//   - a key file that loads publishes a record that parses to the same algorithm, and its
//     signature verifies with that record's key.
#include <set>
#include <string>
#include <string_view>

#include "dkim/key.h"
#include "tools/fuzz/fuzz.h"

namespace dkim {
namespace {

bool Within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void FuzzKey(std::string_view input) {
  absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> tags =
      ParseTagList(input);
  if (tags.ok()) {
    std::set<std::string_view> names;
    for (const auto& [name, value] : *tags) {
      FUZZ_CHECK(!name.empty() && Within(name, input) && Within(value, input));
      FUZZ_CHECK(names.insert(name).second);
    }
  }

  std::vector<std::string> strings = SplitTxtStrings(input);
  std::string joined;
  for (const std::string& s : strings) {
    FUZZ_CHECK(s.size() <= 255);
    joined += s;
  }
  FUZZ_CHECK(joined == input);

  const std::string digest(32, '\x5a');
  absl::StatusOr<PublicKey> public_key = PublicKey::FromRecord(input);
  if (public_key.ok()) {
    FUZZ_CHECK(!public_key->VerifyDigest(digest, std::string(64, '\x01')));
    FUZZ_CHECK(!public_key->VerifyDigest(digest, ""));
  }

  absl::StatusOr<PrivateKey> private_key = PrivateKey::FromFileContents(input);
  if (private_key.ok()) {
    absl::StatusOr<PublicKey> published = PublicKey::FromRecord(private_key->PublicKeyRecord());
    FUZZ_CHECK(published.ok());
    FUZZ_CHECK(published->algorithm() == private_key->algorithm());
    absl::StatusOr<std::string> signature = private_key->SignDigest(digest);
    FUZZ_CHECK(signature.ok());
    FUZZ_CHECK(published->VerifyDigest(digest, *signature));
  }
}

// A record whose p= is long base64 (of no valid key).
std::string LongKey(size_t bytes) {
  return relay::fuzz::Repeat("v=DKIM1; k=rsa; p=", "QUFB", "", bytes);
}

// A PEM file whose body is long base64.
std::string LongPem(size_t bytes) {
  return relay::fuzz::Repeat("-----BEGIN PRIVATE KEY-----\n",
                             "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n",
                             "-----END PRIVATE KEY-----\n", bytes);
}

// A tag list of many distinct tags.
std::string DistinctTags(size_t bytes) {
  std::string out = "v=DKIM1";
  for (size_t i = 0; out.size() < bytes; ++i) out += "; t" + std::to_string(i) + "=y";
  return out;
}

}  // namespace
}  // namespace dkim

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "dkim_key",
      .run = dkim::FuzzKey,
      // Tags are 32-byte pairs for as little as 4 input bytes ("a=1;"), twice that while the
      // vector grows; the decoded key and the split strings are each about the input.
      .bounds = {.heap_peak_bytes = {64 << 10, 32},
                 .heap_allocated_bytes = {256 << 10, 64},
                 .allocations = {512, 1}},
      .scaled = {{.name = "long p=", .make = dkim::LongKey},
                 {.name = "long PEM", .make = dkim::LongPem},
                 {.name = "distinct tags", .make = dkim::DistinctTags}},
  };
  return target;
}
