#include "dkim/arc.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dkim/canon.h"
#include "dkim/header.h"
#include "dkim/message.h"
#include "dkim/signer.h"
#include "relay/base/status_macros.h"

namespace dkim {
namespace {

constexpr char kSealName[] = "ARC-Seal";
constexpr char kMessageSignatureName[] = "ARC-Message-Signature";
constexpr char kAuthResultsName[] = "ARC-Authentication-Results";
// Room for one folded ARC field with a 4096-bit RSA signature.
constexpr size_t kFieldBytesEstimate = 1024;

inline bool IsFws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string Lower(std::string_view s) {
  return absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsFws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsFws(s.back())) s.remove_suffix(1);
  return s;
}

bool ParseInstance(std::string_view s, int* out) {
  s = Trim(s);
  if (s.empty() || s.size() > 3) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && *out >= 1 && *out <= kArcInstanceMax;
}

// Which of the three ARC fields a header field is, or -1. The index is the field's place in a
// set in the order the ARC-Seal signs them (RFC 8617 §5.1.1): AAR, AMS, AS.
int ArcKind(std::string_view name) {
  if (HeaderNameEquals(name, kAuthResultsName)) return 0;
  if (HeaderNameEquals(name, kMessageSignatureName)) return 1;
  if (HeaderNameEquals(name, kSealName)) return 2;
  return -1;
}

// The value of a field: everything after the first colon.
std::string_view FieldValue(const HeaderField& f) { return f.raw.substr(f.raw.find(':') + 1); }

// i= of an ARC field: the first tag of the AAR's "i=N; payload" (§4.1.1), the i= tag of the
// others (§4.1.2, §4.1.3). 0 when missing or invalid.
int InstanceOf(const HeaderField& f, int kind) {
  std::string_view value = FieldValue(f);
  int i = 0;
  if (kind == 0) {
    value = Trim(value);
    if (value.empty() || (value[0] != 'i' && value[0] != 'I')) return 0;
    value.remove_prefix(1);
    value = Trim(value);
    if (value.empty() || value[0] != '=') return 0;
    size_t semi = value.find(';');
    if (semi == std::string_view::npos) return 0;
    return ParseInstance(value.substr(1, semi - 1), &i) ? i : 0;
  }
  auto tags = ParseTagList(value);
  if (!tags.ok()) return 0;
  for (auto [name, v] : *tags) {
    if (name == "i") return ParseInstance(v, &i) ? i : 0;
  }
  return 0;
}

// The ARC fields of a message by instance: sets[i][kind] (nullptr when missing), plus whether a
// field was repeated or carried no valid instance.
struct ArcSets {
  std::map<int, std::array<const HeaderField*, 3>> sets;
  std::string problem;
  int instance_max() const { return sets.empty() ? 0 : sets.rbegin()->first; }
};

ArcSets CollectSets(const std::vector<HeaderField>& fields) {
  ArcSets out;
  for (const HeaderField& f : fields) {
    int kind = ArcKind(f.name);
    if (kind < 0) continue;
    int i = InstanceOf(f, kind);
    if (i == 0) {
      if (out.problem.empty()) {
        out.problem = absl::StrCat(std::string(f.name), " without a valid instance (i=1..50)");
      }
      continue;
    }
    auto [it, inserted] = out.sets.try_emplace(i);
    if (inserted) it->second = {nullptr, nullptr, nullptr};
    if (it->second[kind] != nullptr) {
      if (out.problem.empty()) out.problem = absl::StrCat("two ", std::string(f.name), " i=", i);
      continue;
    }
    it->second[kind] = &f;
  }
  return out;
}

struct Tags {
  std::string_view a, b, bh, c, cv, d, h, i, s, t, x;
};

absl::StatusOr<Tags> ParseSignatureTags(const HeaderField& f) {
  ASSIGN_OR_RETURN(auto list, ParseTagList(FieldValue(f)));
  Tags t;
  for (auto [name, v] : list) {
    if (name == "a")
      t.a = v;
    else if (name == "b")
      t.b = v;
    else if (name == "bh")
      t.bh = v;
    else if (name == "c")
      t.c = v;
    else if (name == "cv")
      t.cv = v;
    else if (name == "d")
      t.d = v;
    else if (name == "h")
      t.h = v;
    else if (name == "i")
      t.i = v;
    else if (name == "s")
      t.s = v;
    else if (name == "t")
      t.t = v;
    else if (name == "x")
      t.x = v;
  }
  return t;
}

// Checks b= of `field`, whose header hash so far (the canonical fields it signs before itself) is
// `signed_before`, fetching the key with `lookup`. Returns "" on success, else why not.
std::string VerifySignature(const HeaderField& field, const Tags& tags, Canonicalization hc,
                            SHA256_CTX signed_before, const KeyLookup& lookup, int64_t now_s) {
  if (tags.a.empty() || tags.b.empty() || tags.d.empty() || tags.s.empty()) {
    return "missing a=, b=, d= or s=";
  }
  KeyAlgorithm algorithm;
  if (tags.a == "rsa-sha256") {
    algorithm = KeyAlgorithm::kRsaSha256;
  } else if (tags.a == "ed25519-sha256") {
    algorithm = KeyAlgorithm::kEd25519Sha256;
  } else {
    return absl::StrCat("unsupported algorithm ", std::string(tags.a));
  }
  if (!tags.x.empty()) {
    int64_t x = 0;
    auto [p, ec] = std::from_chars(tags.x.data(), tags.x.data() + tags.x.size(), x);
    if (ec != std::errc() || p != tags.x.data() + tags.x.size()) return "bad x=";
    if (now_s > x) return "signature expired";
  }
  std::string domain = Lower(tags.d);
  absl::StatusOr<std::string> record = lookup(tags.s, domain);
  if (!record.ok()) {
    return absl::StrCat(record.status().code() == absl::StatusCode::kNotFound
                            ? "no key for "
                            : "key lookup failed temporarily for ",
                        std::string(tags.s), "._domainkey.", domain, ": ",
                        record.status().message());
  }
  absl::StatusOr<PublicKey> key = PublicKey::FromRecord(*record);
  if (!key.ok()) return absl::StrCat("key record: ", key.status().message());
  if (key->algorithm() != algorithm) return "key type does not match a=";
  std::string own;
  AppendCanonicalHeader(hc, StripBValue(field.raw), false, &own);
  SHA256_Update(&signed_before, own.data(), own.size());
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256_Final(digest, &signed_before);
  std::string signature;
  if (!Base64Decode(tags.b, &signature)) return "bad base64 in b=";
  if (!key->VerifyDigest(std::string_view(reinterpret_cast<char*>(digest), sizeof(digest)),
                         signature)) {
    return "signature did not verify";
  }
  return "";
}

// Hashes the canonical form of `field` with its CRLF (a field signed before the signature).
void HashCanonical(Canonicalization c, std::string_view field, SHA256_CTX* sha,
                   std::string* scratch) {
  scratch->clear();
  AppendCanonicalHeader(c, field, true, scratch);
  SHA256_Update(sha, scratch->data(), scratch->size());
}

bool ParseCanon(std::string_view c, Canonicalization* hc, Canonicalization* bc) {
  // RFC 8617 §4.1.2 takes c= from DKIM; ARC sealers use relaxed/relaxed, and an absent c= is
  // read as that (as the reference implementations do).
  *hc = *bc = Canonicalization::kRelaxed;
  if (c.empty()) return true;
  std::string_view hs = c, bs = "simple";
  if (size_t slash = c.find('/'); slash != std::string_view::npos) {
    hs = c.substr(0, slash);
    bs = c.substr(slash + 1);
  }
  auto parse = [](std::string_view s, Canonicalization* out) {
    if (s == "simple")
      *out = Canonicalization::kSimple;
    else if (s == "relaxed")
      *out = Canonicalization::kRelaxed;
    else
      return false;
    return true;
  };
  return parse(hs, hc) && parse(bs, bc);
}

// The ARC-Message-Signature check of §5.2 step 4.
std::string VerifyMessageSignature(const HeaderField& ams, const ParsedMessage& m,
                                   const KeyLookup& lookup, int64_t now_s, std::string* domain) {
  absl::StatusOr<Tags> tags = ParseSignatureTags(ams);
  if (!tags.ok()) return std::string(tags.status().message());
  if (tags->bh.empty() || tags->h.empty()) return "missing bh= or h=";
  *domain = Lower(tags->d);
  Canonicalization hc, bc;
  if (!ParseCanon(tags->c, &hc, &bc)) return "unknown canonicalization";
  std::vector<std::string_view> names;
  for (size_t pos = 0; pos <= tags->h.size();) {
    size_t colon = tags->h.find(':', pos);
    std::string_view name = Trim(tags->h.substr(
        pos, colon == std::string_view::npos ? std::string_view::npos : colon - pos));
    if (name.empty()) return "empty name in h=";
    // §4.1.2: the AMS must not sign ARC-Seal (it does not exist yet for this set).
    if (HeaderNameEquals(name, kSealName)) return "h= names ARC-Seal";
    names.push_back(name);
    if (colon == std::string_view::npos) break;
    pos = colon + 1;
  }
  std::string expected_bh;
  if (!Base64Decode(tags->bh, &expected_bh)) return "bad base64 in bh=";
  if (expected_bh != m.Body(bc, -1).digest) return "body hash mismatch";
  SHA256_CTX sha;
  SHA256_Init(&sha);
  std::string scratch;
  for (const HeaderField* f : SelectHeaders(m.fields(), names)) {
    if (f != nullptr) HashCanonical(hc, f->raw, &sha, &scratch);
  }
  return VerifySignature(ams, *tags, hc, sha, lookup, now_s);
}

}  // namespace

std::string_view ArcChainStatusName(ArcChainStatus status) {
  switch (status) {
    case ArcChainStatus::kNone:
      return "none";
    case ArcChainStatus::kPass:
      return "pass";
    case ArcChainStatus::kFail:
      return "fail";
  }
  return "fail";
}

const std::vector<std::string>& DefaultArcSignedHeaders() {
  static const auto* const kHeaders = [] {
    auto* v = new std::vector<std::string>(DefaultSignedHeaders());
    v->push_back("dkim-signature");
    return v;
  }();
  return *kHeaders;
}

std::vector<std::pair<std::string, std::string>> ArcKeyNames(const ParsedMessage& message) {
  std::vector<std::pair<std::string, std::string>> out;
  ArcSets arc = CollectSets(message.fields());
  auto add = [&out](const HeaderField* f) {
    if (f == nullptr) return;
    absl::StatusOr<Tags> tags = ParseSignatureTags(*f);
    if (!tags.ok() || tags->s.empty() || tags->d.empty()) return;
    std::pair<std::string, std::string> name(std::string(tags->s), Lower(tags->d));
    // At most kArcInstanceMax + 1 names: a search is cheaper than a set.
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  };
  if (arc.sets.empty()) return out;
  add(arc.sets.rbegin()->second[1]);
  for (auto it = arc.sets.rbegin(); it != arc.sets.rend(); ++it) add(it->second[2]);
  return out;
}

std::vector<std::pair<std::string, std::string>> ArcKeyNames(std::string_view message) {
  absl::StatusOr<ParsedMessage> m = ParsedMessage::Parse(message);
  if (!m.ok()) return {};
  return ArcKeyNames(*m);
}

ArcValidation ValidateArcChain(const ParsedMessage& m, const KeyLookup& lookup, int64_t now_s) {
  ArcValidation v;
  auto fail = [&v](std::string reason) {
    v.status = ArcChainStatus::kFail;
    v.reason = std::move(reason);
    v.domain.clear();
    return v;
  };
  ArcSets arc = CollectSets(m.fields());
  v.instance_max = arc.instance_max();
  if (arc.sets.empty() && arc.problem.empty()) return v;  // §5.2 step 1: cv=none
  if (!arc.problem.empty()) return fail(arc.problem);
  const int n = v.instance_max;
  // Step 2: the most recent seal already records a failure.
  if (const HeaderField* top_seal = arc.sets.rbegin()->second[2]; top_seal != nullptr) {
    absl::StatusOr<Tags> t = ParseSignatureTags(*top_seal);
    if (t.ok() && t->cv == "fail") return fail(absl::StrCat("ARC-Seal i=", n, " says cv=fail"));
  }
  // Step 3: every set 1..N complete, cv=none on the first seal only.
  std::vector<Tags> seals(n + 1);
  for (int i = 1; i <= n; ++i) {
    auto it = arc.sets.find(i);
    if (it == arc.sets.end()) return fail(absl::StrCat("ARC set i=", i, " is missing"));
    for (int kind = 0; kind < 3; ++kind) {
      if (it->second[kind] == nullptr) {
        static constexpr const char* kNames[] = {kAuthResultsName, kMessageSignatureName,
                                                 kSealName};
        return fail(absl::StrCat(std::string(kNames[kind]), " i=", i, " is missing"));
      }
    }
    absl::StatusOr<Tags> t = ParseSignatureTags(*it->second[2]);
    if (!t.ok()) return fail(absl::StrCat("ARC-Seal i=", i, ": ", t.status().message()));
    if (!t->h.empty()) return fail(absl::StrCat("ARC-Seal i=", i, " has h="));  // §4.1.3
    std::string_view expected = i == 1 ? "none" : "pass";
    if (t->cv != expected) {
      return fail(absl::StrCat("ARC-Seal i=", i, " has cv=", std::string(t->cv), ", not ",
                               std::string(expected)));
    }
    seals[i] = *t;
  }
  // Step 4: the most recent ARC-Message-Signature.
  std::string domain;
  if (std::string why = VerifyMessageSignature(*arc.sets[n][1], m, lookup, now_s, &domain);
      !why.empty()) {
    return fail(absl::StrCat("ARC-Message-Signature i=", n, ": ", why));
  }
  // Step 6: every ARC-Seal, newest first, each over the sets up to its own (§5.1.1 order). Seal
  // i signs what seal i-1 signs, then AS i-1, AAR i and AMS i: one pass over the sets keeps the
  // hash state where each seal's data ends, instead of hashing sets 1..i again for every i (which
  // made a chain of 50 large sets cost 25 times its size).
  std::vector<SHA256_CTX> signed_before(n + 1);
  {
    SHA256_CTX running;
    SHA256_Init(&running);
    std::string scratch;
    for (int i = 1; i <= n; ++i) {
      const Canonicalization relaxed = Canonicalization::kRelaxed;
      if (i > 1) HashCanonical(relaxed, arc.sets[i - 1][2]->raw, &running, &scratch);
      HashCanonical(relaxed, arc.sets[i][0]->raw, &running, &scratch);
      HashCanonical(relaxed, arc.sets[i][1]->raw, &running, &scratch);
      signed_before[i] = running;
    }
  }
  for (int i = n; i >= 1; --i) {
    if (std::string why = VerifySignature(*arc.sets[i][2], seals[i], Canonicalization::kRelaxed,
                                          signed_before[i], lookup, now_s);
        !why.empty()) {
      return fail(absl::StrCat("ARC-Seal i=", i, ": ", why));
    }
  }
  v.status = ArcChainStatus::kPass;
  v.domain = std::move(domain);
  return v;
}

ArcValidation ValidateArcChain(std::string_view message, const KeyLookup& lookup, int64_t now_s) {
  absl::StatusOr<ParsedMessage> m = ParsedMessage::Parse(message);
  if (!m.ok()) {
    // Without a parsable header there is no chain to speak of, but also nothing to trust.
    ArcValidation v;
    v.status = ArcChainStatus::kFail;
    v.reason = absl::StrCat("header: ", m.status().message());
    return v;
  }
  return ValidateArcChain(*m, lookup, now_s);
}

absl::StatusOr<std::unique_ptr<ArcSealer>> ArcSealer::Create(const ArcSealerConfig& config) {
  if (config.domain.empty() || config.selector.empty()) {
    return absl::InvalidArgumentError("an ARC key needs a domain and a selector");
  }
  absl::StatusOr<PrivateKey> key = config.key_contents.empty()
                                       ? PrivateKey::FromFile(config.key_path)
                                       : PrivateKey::FromFileContents(config.key_contents);
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat("ARC key ", config.selector, "._domainkey.", config.domain,
                                     ": ", key.status().message()));
  }
  std::unique_ptr<ArcSealer> sealer(new ArcSealer(std::move(*key)));
  sealer->domain_ = Lower(config.domain);
  sealer->selector_ = config.selector;
  const std::vector<std::string>& names =
      config.headers.empty() ? DefaultArcSignedHeaders() : config.headers;
  bool from_signed = false;
  for (const std::string& name : names) {
    if (name.empty() || name.find_first_of(": \t\r\n;") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad header name \"", name, "\""));
    }
    if (ArcKind(name) >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("the ARC-Message-Signature must not sign ", name, " (RFC 8617 §4.1.2)"));
    }
    bool seen = false;
    for (const std::string& n : sealer->headers_) seen |= HeaderNameEquals(n, name);
    if (!seen) sealer->headers_.push_back(Lower(name));
    from_signed |= HeaderNameEquals(name, "from");
  }
  if (!from_signed) return absl::InvalidArgumentError("the header list must include From");
  return sealer;
}

absl::StatusOr<std::string> ArcSealer::Seal(std::string_view message, std::string_view auth_results,
                                            const ArcValidation& chain, int64_t now_s) const {
  ASSIGN_OR_RETURN(ParsedMessage m, ParsedMessage::Parse(message));
  return Seal(m, auth_results, chain, now_s);
}

absl::StatusOr<std::string> ArcSealer::Seal(const ParsedMessage& m, std::string_view auth_results,
                                            const ArcValidation& chain, int64_t now_s) const {
  size_t from_count = 0;
  for (const HeaderField& f : m.fields()) from_count += HeaderNameEquals(f.name, "from");
  if (from_count != 1) {
    return absl::InvalidArgumentError(absl::StrCat("message has ", from_count, " From fields"));
  }
  ArcSets arc = CollectSets(m.fields());
  const int n = arc.instance_max() + 1;
  if (n > kArcInstanceMax) {
    return absl::FailedPreconditionError(
        absl::StrCat("message already has ", kArcInstanceMax, " ARC sets (RFC 8617 §4.2.1)"));
  }
  ArcChainStatus cv = chain.status;
  // §5.1: the first set says cv=none, later ones pass or fail. A message whose only ARC fields
  // were unusable (no valid instance) failed validation: its first set records that (§5.1.2).
  if (n == 1 && cv == ArcChainStatus::kPass) {
    return absl::InvalidArgumentError("no ARC set on the message, yet its chain passed");
  }
  if (n > 1 && cv == ArcChainStatus::kNone) {
    return absl::InvalidArgumentError("the message has ARC sets, yet its chain status is none");
  }
  const BodyHash& body = m.Body(Canonicalization::kRelaxed, -1);
  if (body.saw_bare_line_break) {
    return absl::InvalidArgumentError("bare CR or LF in body (line endings must be CRLF)");
  }
  std::string body_hash = Base64Encode(body.digest);
  const std::string algorithm(AlgorithmTagValue(key_.algorithm()));
  const std::string t = absl::StrCat("t=", now_s, ";");

  // ARC-Authentication-Results (§4.1.1): "i=N; " and this hop's payload.
  std::string_view payload = Trim(auth_results);
  std::string aar = absl::StrCat(kAuthResultsName, ": i=", n, "; ", std::string(payload), "\r\n");
  // Its canonical form must not depend on how the caller ended the payload's lines.
  ASSIGN_OR_RETURN(std::vector<HeaderField> aar_check, ParseHeaderBlock(aar));
  if (aar_check.size() != 1) {
    return absl::InvalidArgumentError("the Authentication-Results payload spans several fields");
  }

  // ARC-Message-Signature (§4.1.2): like a DKIM-Signature, i= instead of v=.
  std::vector<std::string_view> names;
  for (const std::string& name : headers_) {
    for (const HeaderField& f : m.fields()) {
      if (HeaderNameEquals(f.name, name)) names.push_back(name);
    }
  }
  std::string ams = absl::StrCat(kMessageSignatureName, ": i=", n, ";");
  ams.reserve(kFieldBytesEstimate);
  {
    HeaderFolder f(&ams, ams.size());
    f.Add(absl::StrCat("a=", algorithm, ";"), true);
    f.Add("c=relaxed/relaxed;", true);
    f.Add(absl::StrCat("d=", domain_, ";"), true);
    f.Add(absl::StrCat("s=", selector_, ";"), true);
    f.Add(t, true);
    for (size_t i = 0; i < names.size(); ++i) {
      std::string token = absl::StrCat(i == 0 ? "h=" : "", std::string(names[i]));
      token.push_back(i + 1 == names.size() ? ';' : ':');
      f.Add(token, i == 0);
    }
    f.Add(absl::StrCat("bh=", body_hash, ";"), true);
    f.Add("b=", true);
    std::string data;
    data.reserve(4096);
    for (const HeaderField* h : SelectHeaders(m.fields(), names)) {
      if (h != nullptr) AppendCanonicalHeader(Canonicalization::kRelaxed, h->raw, true, &data);
    }
    AppendCanonicalHeader(Canonicalization::kRelaxed, ams, false, &data);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), digest);
    ASSIGN_OR_RETURN(std::string sig, key_.SignDigest(std::string_view(
                                          reinterpret_cast<char*>(digest), sizeof(digest))));
    f.AddSplittable(Base64Encode(sig));
    ams.append("\r\n");
  }

  // ARC-Seal (§4.1.3): the sets in increasing instance order, AAR, AMS, AS in each (§5.1.1);
  // after a failed chain only the new set (§5.1.2).
  std::string as = absl::StrCat(kSealName, ": i=", n, ";");
  as.reserve(kFieldBytesEstimate);
  {
    HeaderFolder f(&as, as.size());
    f.Add(absl::StrCat("a=", algorithm, ";"), true);
    f.Add(absl::StrCat("cv=", std::string(ArcChainStatusName(cv)), ";"), true);
    f.Add(absl::StrCat("d=", domain_, ";"), true);
    f.Add(absl::StrCat("s=", selector_, ";"), true);
    f.Add(t, true);
    f.Add("b=", true);
    std::string data;
    if (cv == ArcChainStatus::kPass) {
      for (int j = 1; j < n; ++j) {
        auto it = arc.sets.find(j);
        if (it == arc.sets.end() || it->second[0] == nullptr || it->second[1] == nullptr ||
            it->second[2] == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("chain said pass but ARC set i=", j, " is incomplete"));
        }
        for (const HeaderField* h : it->second) {
          AppendCanonicalHeader(Canonicalization::kRelaxed, h->raw, true, &data);
        }
      }
    }
    AppendCanonicalHeader(Canonicalization::kRelaxed, aar, true, &data);
    AppendCanonicalHeader(Canonicalization::kRelaxed, ams, true, &data);
    AppendCanonicalHeader(Canonicalization::kRelaxed, as, false, &data);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), digest);
    ASSIGN_OR_RETURN(std::string sig, key_.SignDigest(std::string_view(
                                          reinterpret_cast<char*>(digest), sizeof(digest))));
    f.AddSplittable(Base64Encode(sig));
    as.append("\r\n");
  }
  return absl::StrCat(as, ams, aar);
}

}  // namespace dkim
