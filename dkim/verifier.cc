#include "dkim/verifier.h"

#include <openssl/sha.h>

#include <algorithm>
#include <charconv>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dkim/canon.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/message.h"

namespace dkim {
namespace {

inline bool IsFws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string Lower(std::string_view s) {
  return absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
}

bool ParseUint(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}


struct Signature {
  std::string_view a, b, bh, c, d, h, i, l, q, s, t, x, v;
};

// One DKIM-Signature field, its tags read and checked (§6.1.1) before any key or hash is needed.
struct Prepared {
  const HeaderField* field = nullptr;
  VerifyResult result;  // final when `usable` is false
  bool usable = false;
  Signature sig;
  KeyAlgorithm algorithm = KeyAlgorithm::kRsaSha256;
  Canonicalization hc = Canonicalization::kSimple;
  Canonicalization bc = Canonicalization::kSimple;
  std::vector<std::string_view> names;  // h=
  int64_t length_limit = -1;
};

Prepared Prepare(const HeaderField& sig_field, int64_t now_s) {
  Prepared p;
  p.field = &sig_field;
  VerifyResult& r = p.result;
  auto perm = [&p](std::string reason) {
    p.result.status = VerifyStatus::kPermError;
    p.result.reason = std::move(reason);
    return std::move(p);
  };
  std::string_view value = sig_field.raw.substr(sig_field.raw.find(':') + 1);
  absl::StatusOr<std::vector<std::pair<std::string_view, std::string_view>>> tags =
      ParseTagList(value);
  if (!tags.ok()) return perm(std::string(tags.status().message()));
  Signature& sig = p.sig;
  for (auto [name, val] : *tags) {
    if (name == "a") sig.a = val;
    else if (name == "b") sig.b = val;
    else if (name == "bh") sig.bh = val;
    else if (name == "c") sig.c = val;
    else if (name == "d") sig.d = val;
    else if (name == "h") sig.h = val;
    else if (name == "i") sig.i = val;
    else if (name == "l") sig.l = val;
    else if (name == "q") sig.q = val;
    else if (name == "s") sig.s = val;
    else if (name == "t") sig.t = val;
    else if (name == "x") sig.x = val;
    else if (name == "v") sig.v = val;
  }
  r.domain = Lower(sig.d);
  r.selector = std::string(sig.s);
  r.algorithm = std::string(sig.a);
  // §6.1.1: required tags and their values.
  if (sig.v != "1") return perm("v= is not 1");
  if (sig.a.empty() || sig.b.empty() || sig.bh.empty() || sig.d.empty() || sig.h.empty() ||
      sig.s.empty()) {
    return perm("missing required tag");
  }
  if (sig.a == "rsa-sha256") {
    p.algorithm = KeyAlgorithm::kRsaSha256;
  } else if (sig.a == "ed25519-sha256") {
    p.algorithm = KeyAlgorithm::kEd25519Sha256;
  } else if (sig.a == "rsa-sha1") {
    return perm("rsa-sha1 is not accepted (RFC 8301)");
  } else {
    return perm(absl::StrCat("unknown algorithm ", std::string(sig.a)));
  }
  if (!sig.c.empty()) {
    std::string_view hs = sig.c, bs = "simple";
    if (size_t slash = sig.c.find('/'); slash != std::string_view::npos) {
      hs = sig.c.substr(0, slash);
      bs = sig.c.substr(slash + 1);
    }
    auto parse = [](std::string_view s, Canonicalization* c) {
      if (s == "simple") *c = Canonicalization::kSimple;
      else if (s == "relaxed") *c = Canonicalization::kRelaxed;
      else return false;
      return true;
    };
    if (!parse(hs, &p.hc) || !parse(bs, &p.bc)) return perm("unknown canonicalization");
  }
  if (!sig.q.empty() && sig.q != "dns/txt") return perm("unknown query method");
  // The h= list; From must be among it (§5.4).
  bool from_signed = false;
  for (size_t pos = 0; pos <= sig.h.size();) {
    size_t colon = sig.h.find(':', pos);
    std::string_view name =
        sig.h.substr(pos, colon == std::string_view::npos ? std::string_view::npos : colon - pos);
    while (!name.empty() && IsFws(name.front())) name.remove_prefix(1);
    while (!name.empty() && IsFws(name.back())) name.remove_suffix(1);
    if (name.empty()) return perm("empty name in h=");
    from_signed |= HeaderNameEquals(name, "from");
    p.names.push_back(name);
    if (colon == std::string_view::npos) break;
    pos = colon + 1;
  }
  if (!from_signed) return perm("from not signed");
  // i= must be within d= (§3.5).
  const std::string& domain = r.domain;
  if (!sig.i.empty()) {
    size_t at = sig.i.rfind('@');
    if (at == std::string_view::npos) return perm("i= has no @");
    std::string idomain = Lower(sig.i.substr(at + 1));
    if (idomain != domain &&
        !(idomain.size() > domain.size() &&
          idomain.compare(idomain.size() - domain.size(), domain.size(), domain) == 0 &&
          idomain[idomain.size() - domain.size() - 1] == '.')) {
      return perm("i= domain is not d= or its subdomain");
    }
  }
  if (!sig.l.empty() && !ParseUint(sig.l, &p.length_limit)) return perm("bad l=");
  if (!sig.x.empty()) {
    int64_t x = 0, t = 0;
    if (!ParseUint(sig.x, &x)) return perm("bad x=");
    if (!sig.t.empty() && ParseUint(sig.t, &t) && x < t) return perm("x= before t=");
    if (now_s > x) return perm("signature expired");
  }
  p.usable = true;
  return p;
}

// The rest of §6.1: the key (§6.1.2), the body hash and the header hash (§6.1.3).
VerifyResult Finish(Prepared p, const ParsedMessage& message, const KeyLookup& lookup) {
  VerifyResult& r = p.result;
  const Signature& sig = p.sig;
  auto perm = [&r](std::string reason) {
    r.status = VerifyStatus::kPermError;
    r.reason = std::move(reason);
    return r;
  };
  absl::StatusOr<std::string> record = lookup(sig.s, r.domain);
  if (!record.ok()) {
    if (record.status().code() == absl::StatusCode::kNotFound) {
      return perm(absl::StrCat("no key: ", record.status().message()));
    }
    r.status = VerifyStatus::kTempError;
    r.reason = absl::StrCat("key lookup: ", record.status().message());
    return r;
  }
  absl::StatusOr<PublicKey> key = PublicKey::FromRecord(*record);
  if (!key.ok()) return perm(absl::StrCat("key record: ", key.status().message()));
  if (key->algorithm() != p.algorithm) return perm("key type does not match a=");
  if (key->strict() && !sig.i.empty()) {
    std::string_view idomain = sig.i.substr(sig.i.rfind('@') + 1);
    if (Lower(idomain) != r.domain) return perm("key t=s forbids a subdomain in i=");
  }
  auto fail = [&r, &key](std::string reason) {
    r.status = key->testing() ? VerifyStatus::kNeutral : VerifyStatus::kFail;
    r.reason = std::move(reason);
    return r;
  };
  // The body hash (§6.1.3 steps 1-3), shared with the other signatures of the message.
  const BodyHash& body = message.Body(p.bc, p.length_limit);
  if (p.length_limit >= 0 && body.canonical_bytes < static_cast<uint64_t>(p.length_limit)) {
    return perm("l= exceeds the body length");
  }
  std::string expected_bh;
  if (!Base64Decode(sig.bh, &expected_bh)) return perm("bad base64 in bh=");
  if (expected_bh != body.digest) return fail("body hash mismatch");
  // The header hash (§6.1.3 steps 4-5).
  std::string data;
  for (const HeaderField* f : SelectHeaders(message.fields(), p.names)) {
    if (f != nullptr) AppendCanonicalHeader(p.hc, f->raw, true, &data);
  }
  AppendCanonicalHeader(p.hc, StripBValue(p.field->raw), false, &data);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(data.data()), data.size(), digest);
  std::string signature;
  if (!Base64Decode(sig.b, &signature)) return perm("bad base64 in b=");
  if (!key->VerifyDigest(std::string_view(reinterpret_cast<char*>(digest), sizeof(digest)),
                         signature)) {
    return fail("signature did not verify");
  }
  r.status = VerifyStatus::kPass;
  return r;
}

}  // namespace

std::string_view VerifyStatusName(VerifyStatus s) {
  switch (s) {
    case VerifyStatus::kPass: return "pass";
    case VerifyStatus::kFail: return "fail";
    case VerifyStatus::kTempError: return "temperror";
    case VerifyStatus::kPermError: return "permerror";
    case VerifyStatus::kNeutral: return "neutral";
  }
  return "permerror";
}

std::vector<VerifyResult> VerifyMessage(const ParsedMessage& message, const KeyLookup& lookup,
                                        int64_t now_s, size_t signatures_max) {
  signatures_max = std::min(signatures_max, kSignaturesCheckedMax);
  std::vector<VerifyResult> results;
  size_t from_count = 0;
  for (const HeaderField& f : message.fields()) from_count += HeaderNameEquals(f.name, "from");
  std::vector<Prepared> prepared;
  for (const HeaderField& f : message.fields()) {
    if (!HeaderNameEquals(f.name, "dkim-signature")) continue;
    if (prepared.size() == signatures_max) break;
    if (from_count != 1) {
      // RFC 6376 §8.15 / RFC 5322 §3.6: which From the reader shows would be ambiguous.
      Prepared p;
      p.result.reason = absl::StrCat("message has ", from_count, " From fields");
      prepared.push_back(std::move(p));
      continue;
    }
    const Prepared& p = prepared.emplace_back(Prepare(f, now_s));
    // Every body hash the signatures need comes from one pass per canonicalization.
    if (p.usable) message.WantBodyHash(p.bc, p.length_limit);
  }
  for (Prepared& p : prepared) {
    results.push_back(p.usable ? Finish(std::move(p), message, lookup) : std::move(p.result));
  }
  return results;
}

std::vector<VerifyResult> VerifyMessage(std::string_view message, const KeyLookup& lookup,
                                        int64_t now_s) {
  absl::StatusOr<ParsedMessage> parsed = ParsedMessage::Parse(message);
  if (!parsed.ok()) {
    VerifyResult r;
    r.reason = absl::StrCat("header: ", parsed.status().message());
    return {std::move(r)};
  }
  return VerifyMessage(*parsed, lookup, now_s);
}

}  // namespace dkim
