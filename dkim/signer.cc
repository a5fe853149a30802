#include "dkim/signer.h"

#include <openssl/sha.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dkim/header.h"
#include "relay/base/status_macros.h"

namespace dkim {
namespace {

std::string Lower(std::string_view s) {
  return absl::AsciiStrToLower(absl::string_view(s.data(), s.size()));
}

// Room kept in the header buffer before it has to grow: most header blocks fit.
constexpr size_t kHeaderReserveBytes = 4096;
// Room for one folded DKIM-Signature with a 4096-bit RSA signature.
constexpr size_t kSignatureFieldBytesEstimate = 1024;

}  // namespace

const std::vector<std::string>& DefaultSignedHeaders() {
  static const auto* const kHeaders = new std::vector<std::string>{
      "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
      "references", "mime-version", "content-type", "content-transfer-encoding",
      "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id"};
  return *kHeaders;
}

void HeaderFolder::Add(std::string_view token, bool space) {
  size_t needed = token.size() + (space ? 1 : 0);
  if (column_ + needed > kWidthMax && column_ > 1) {
    out_->append("\r\n ");
    column_ = 1;
  } else if (space) {
    out_->push_back(' ');
    ++column_;
  }
  out_->append(token);
  column_ += token.size();
}

void HeaderFolder::AddSplittable(std::string_view value) {
  while (!value.empty()) {
    size_t room = column_ < kWidthMax ? kWidthMax - column_ : 0;
    if (room == 0) {
      out_->append("\r\n ");
      column_ = 1;
      continue;
    }
    size_t n = std::min(room, value.size());
    out_->append(value.substr(0, n));
    column_ += n;
    value.remove_prefix(n);
  }
}

absl::StatusOr<std::unique_ptr<Signer>> Signer::Create(const SignerConfig& config) {
  std::unique_ptr<Signer> signer(new Signer());
  signer->header_canon_ = config.header_canonicalization;
  signer->body_canon_ = config.body_canonicalization;
  signer->expire_s_ = config.expire_s;
  signer->header_list_separator_ = config.header_list_separator;
  if (config.header_list_separator != ":" && config.header_list_separator != " : ") {
    return absl::InvalidArgumentError("header_list_separator must be \":\" or \" : \"");
  }
  const std::vector<std::string>& names =
      config.headers.empty() ? DefaultSignedHeaders() : config.headers;
  for (const std::string& name : names) {
    bool seen = false;
    for (const std::string& n : signer->header_names_) seen |= HeaderNameEquals(n, name);
    if (seen || name.empty()) continue;
    if (name.find_first_of(": \t\r\n;") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad header name \"", name, "\""));
    }
    signer->header_names_.push_back(name);
    bool over = false;
    for (const std::string& o : config.oversigned_headers) over |= HeaderNameEquals(o, name);
    signer->oversigned_.push_back(over);
  }
  bool from_signed = false;
  for (const std::string& n : signer->header_names_) from_signed |= HeaderNameEquals(n, "from");
  // RFC 6376 §5.4: From must be signed.
  if (!from_signed) return absl::InvalidArgumentError("the header list must include From");

  for (const SigningKeyConfig& kc : config.keys) {
    if (kc.domain.empty() || kc.selector.empty()) {
      return absl::InvalidArgumentError("a DKIM key needs a domain and a selector");
    }
    absl::StatusOr<PrivateKey> key = kc.key_contents.empty()
                                         ? PrivateKey::FromFile(kc.key_path)
                                         : PrivateKey::FromFileContents(kc.key_contents);
    if (!key.ok()) {
      return absl::Status(key.status().code(),
                          absl::StrCat("DKIM key ", kc.selector, "._domainkey.", kc.domain, ": ",
                                       key.status().message()));
    }
    PreparedKey pk{std::move(*key), Lower(kc.domain), "", 0};
    // The precomputed part: everything before t=.
    pk.head = "DKIM-Signature: v=1;";
    HeaderFolder f(&pk.head, pk.head.size());
    f.Add(absl::StrCat("a=", std::string(AlgorithmTagValue(pk.key.algorithm())), ";"), true);
    f.Add(absl::StrCat("c=", std::string(CanonicalizationName(config.header_canonicalization)),
                       "/", std::string(CanonicalizationName(config.body_canonicalization)), ";"),
          true);
    f.Add(absl::StrCat("d=", pk.domain, ";"), true);
    if (!kc.identity.empty()) f.Add(absl::StrCat("i=", kc.identity, ";"), true);
    if (config.include_query_method) f.Add("q=dns/txt;", true);
    f.Add(absl::StrCat("s=", kc.selector, ";"), true);
    pk.head_column = f.column();
    signer->keys_by_domain_[pk.domain].push_back(signer->keys_.size());
    signer->keys_.push_back(std::move(pk));
  }
  for (const DomainMapping& m : config.domain_map) {
    std::string target = Lower(m.signing_domain);
    if (!signer->keys_by_domain_.contains(target)) {
      return absl::InvalidArgumentError(
          absl::StrCat("domain map ", m.from_domain, " -> ", target, ": no key for ", target));
    }
    signer->domain_map_[Lower(m.from_domain)] = target;
  }
  if (!config.default_signing_domain.empty()) {
    signer->default_domain_ = Lower(config.default_signing_domain);
    if (!signer->keys_by_domain_.contains(signer->default_domain_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("default signing domain ", signer->default_domain_, " has no key"));
    }
  }
  return signer;
}

const std::vector<size_t>* Signer::KeysFor(std::string_view from_domain,
                                           std::string* domain) const {
  // A name longer than DNS allows has no key of its own (RFC 1035 §2.3.4), and walking its
  // labels would hash the rest of it once per label: quadratic in a From field of any length.
  constexpr size_t kDomainBytesMax = 253;
  std::string_view candidate = from_domain.size() <= kDomainBytesMax ? from_domain : "";
  while (!candidate.empty()) {
    const absl::string_view c(candidate.data(), candidate.size());  // absl's own string_view
    if (auto it = domain_map_.find(c); it != domain_map_.end()) {
      *domain = it->second;
      return &keys_by_domain_.find(it->second)->second;
    }
    if (auto it = keys_by_domain_.find(c); it != keys_by_domain_.end()) {
      *domain = it->first;
      return &it->second;
    }
    size_t dot = candidate.find('.');
    if (dot == std::string_view::npos) break;
    candidate.remove_prefix(dot + 1);
    // Stop at the top-level domain: a key for "com" must not sign everything.
    if (candidate.find('.') == std::string_view::npos) break;
  }
  if (!default_domain_.empty()) {
    *domain = default_domain_;
    return &keys_by_domain_.find(default_domain_)->second;
  }
  return nullptr;
}

SigningSession::SigningSession(const Signer* signer, std::string forced_domain)
    : signer_(signer), forced_domain_(std::move(forced_domain)), body_(signer->body_canon_) {
  header_.reserve(kHeaderReserveBytes);
}

void SigningSession::Update(std::string_view chunk) {
  if (!error_.ok() || chunk.empty()) return;
  if (in_body_) {
    body_.Update(chunk);
    return;
  }
  size_t old_size = header_.size();
  header_.append(chunk);
  // The header block ends at the first empty line (RFC 5322 §2.1); a message may start with it.
  size_t body_start = std::string::npos;
  size_t header_end = 0;
  if (header_.size() >= 2 && header_[0] == '\r' && header_[1] == '\n') {
    header_end = 0;
    body_start = 2;
  } else {
    size_t from = old_size >= 3 ? old_size - 3 : 0;
    size_t sep = header_.find("\r\n\r\n", from);
    if (sep != std::string::npos) {
      header_end = sep + 2;
      body_start = sep + 4;
    }
  }
  if (body_start != std::string::npos) {
    in_body_ = true;
    body_.Update(std::string_view(header_).substr(body_start));
    header_.resize(header_end);
  }
  if (header_.size() > kHeaderBlockBytesMax) {
    error_ = absl::InvalidArgumentError(
        absl::StrCat("header block exceeds ", kHeaderBlockBytesMax, " bytes"));
    header_.clear();
    header_.shrink_to_fit();
  }
}

absl::StatusOr<std::string> SigningSession::Finish(int64_t unix_time_s) {
  RETURN_IF_ERROR(error_);
  // Without an empty line the whole message is header and the body is empty (RFC 5322 §3.5).
  ASSIGN_OR_RETURN(std::vector<HeaderField> fields, ParseHeaderBlock(header_));
  const HeaderField* from = nullptr;
  for (const HeaderField& f : fields) {
    if (!HeaderNameEquals(f.name, "from")) continue;
    // RFC 5322 §3.6: exactly one From; two would let a verifier and a mail reader disagree.
    if (from != nullptr) return absl::InvalidArgumentError("message has more than one From");
    from = &f;
  }
  if (from == nullptr) return absl::InvalidArgumentError("message has no From");
  ASSIGN_OR_RETURN(report_.from_domain, FromDomain(from->raw));
  const std::string& lookup = forced_domain_.empty() ? report_.from_domain : forced_domain_;
  const std::vector<size_t>* keys = signer_->KeysFor(lookup, &report_.signing_domain);
  if (keys == nullptr) {
    report_.unsigned_reason = absl::StrCat("no DKIM key for ",
                                           forced_domain_.empty() ? "From" : "sender's",
                                           " domain ", lookup);
    return std::string();
  }
  // The signed message must stay within the limits verifiers apply (ours among them), or it
  // would go out with a signature nobody can check.
  if (fields.size() + keys->size() > kHeaderFieldCountMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("header has ", fields.size(), " fields: no room for ", keys->size(),
                     " DKIM-Signature within ", kHeaderFieldCountMax));
  }
  if (body_.saw_bare_line_break()) {
    // Verifiers disagree on bare CR/LF; a signature on it would fail somewhere.
    return absl::InvalidArgumentError("bare CR or LF in body (line endings must be CRLF)");
  }
  std::string body_hash = Base64Encode(body_.Finish());

  // h=: each configured name once per occurrence (§5.4.2 picks them bottom-up), then each
  // over-signed name once more, at the end (§8.15): that extra entry signs "no further field".
  std::vector<std::string_view> names;
  names.reserve(signer_->header_names_.size() + 8);
  for (const std::string& name : signer_->header_names_) {
    for (const HeaderField& f : fields) {
      if (HeaderNameEquals(f.name, name)) names.push_back(name);
    }
  }
  for (size_t i = 0; i < signer_->header_names_.size(); ++i) {
    if (signer_->oversigned_[i]) names.push_back(signer_->header_names_[i]);
  }
  std::vector<const HeaderField*> selected = SelectHeaders(fields, names);
  std::string canon;
  canon.reserve(header_.size() + kSignatureFieldBytesEstimate);
  for (const HeaderField* f : selected) {
    if (f != nullptr) AppendCanonicalHeader(signer_->header_canon_, f->raw, true, &canon);
  }
  SHA256_CTX headers_sha;
  SHA256_Init(&headers_sha);
  SHA256_Update(&headers_sha, canon.data(), canon.size());

  const bool spaced = signer_->header_list_separator_ == " : ";
  std::string out;
  out.reserve(keys->size() * kSignatureFieldBytesEstimate);
  std::string field;
  field.reserve(kSignatureFieldBytesEstimate);
  for (size_t index : *keys) {
    const Signer::PreparedKey& pk = signer_->keys_[index];
    field.assign(pk.head);
    HeaderFolder f(&field, pk.head_column);
    f.Add(absl::StrCat("t=", unix_time_s, ";"), true);
    if (signer_->expire_s_ > 0) f.Add(absl::StrCat("x=", unix_time_s + signer_->expire_s_, ";"), true);
    for (size_t i = 0; i < names.size(); ++i) {
      bool last = i + 1 == names.size();
      std::string token = absl::StrCat(i == 0 ? "h=" : "", std::string(names[i]));
      if (spaced) {
        f.Add(token, true);
        f.Add(last ? ";" : ":", !last);
      } else {
        token.push_back(last ? ';' : ':');
        f.Add(token, i == 0);
      }
    }
    f.Add(absl::StrCat("bh=", body_hash, ";"), true);
    f.Add("b=", true);
    // §3.7: the field is hashed with an empty b= and without its final CRLF.
    canon.clear();
    AppendCanonicalHeader(signer_->header_canon_, field, false, &canon);
    SHA256_CTX sha = headers_sha;
    SHA256_Update(&sha, canon.data(), canon.size());
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_Final(digest, &sha);
    ASSIGN_OR_RETURN(std::string sig,
                     pk.key.SignDigest(std::string_view(reinterpret_cast<char*>(digest),
                                                        sizeof(digest))));
    f.AddSplittable(Base64Encode(sig));
    field.append("\r\n");
    out.append(field);
    ++report_.signature_count;
    report_.algorithms.push_back(pk.key.algorithm());
  }
  if (header_.size() + out.size() > kHeaderBlockBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("header block with its DKIM-Signature exceeds ",
                                                   kHeaderBlockBytesMax, " bytes"));
  }
  return out;
}

}  // namespace dkim
