// The DKIM signer (RFC 6376 §5, RFC 8463): one Signer per shard, built at start and on reload;
// one SigningSession per message, fed while DATA streams in.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<dkim::Signer> signer, dkim::Signer::Create(config));
//   dkim::SigningSession session = signer->Begin();
//   session.Update(chunk);  // message bytes after dot-unstuffing, CRLF lines, any chunk borders
//   absl::StatusOr<std::string> fields = session.Finish(unix_time_s);
//
// Finish returns the DKIM-Signature field(s) to prepend, each folded at 78 columns and ending in
// CRLF; an empty string when no key matches the From domain (the message goes out unsigned and
// report() says why); an error when signing is refused: no From, several From, malformed or
// oversized header, bare CR or LF line breaks. A refused message never gets a signature.
//
// At Create the keys are loaded and the fixed part of each DKIM-Signature (v, a, c, d, i, q, s
// and its folding) is prepared once per (domain, selector). Per message only the body hash, the
// header hash and one private-key operation per signature remain. The session buffers the header
// block (needed at the end) up to kHeaderBlockBytesMax; the body is only hashed.
//
// Signing-domain choice, from the From address's domain F: the first of F, F's parent domains
// (a.b.example.com, b.example.com, example.com) that appears in `domain_map` (its target is the
// signing domain) or has keys of its own (d=F or d=parent: aligned for DMARC); else
// `default_signing_domain` if set; else no signature. Every key of the chosen domain signs (dual
// RSA + Ed25519 is two keys with the same domain and different selectors).
//
// A Signer is immutable after Create; it may be shared by threads, but each shard normally owns
// its copy. A session belongs to one thread and must not outlive its Signer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dkim/canon.h"
#include "dkim/key.h"

namespace dkim {

struct SigningKeyConfig {
  std::string domain;    // d=
  std::string selector;  // s=
  std::string key_path;  // PEM file (or base64 Ed25519 seed); the algorithm follows from the key
  // Instead of key_path: the key file's contents (tests, keys from a secret store).
  std::string key_contents;
  std::string identity;  // i=, optional (e.g. "@example.com")
};

struct DomainMapping {
  std::string from_domain;     // matches this domain and its subdomains
  std::string signing_domain;  // must have keys
};

struct SignerConfig {
  std::vector<SigningKeyConfig> keys;
  // Header fields to sign, in h= order; empty means DefaultSignedHeaders().
  std::vector<std::string> headers;
  // Fields listed once more than they occur (RFC 6376 §8.15), so none can be added after signing.
  std::vector<std::string> oversigned_headers = {"from", "to", "subject"};
  Canonicalization header_canonicalization = Canonicalization::kRelaxed;
  Canonicalization body_canonicalization = Canonicalization::kRelaxed;
  std::vector<DomainMapping> domain_map;
  std::string default_signing_domain;  // empty: unmatched From domains go unsigned
  int64_t expire_s = 0;                // > 0 adds x= t + expire_s (§3.5)
  bool include_query_method = false;   // adds q=dns/txt (the default, §3.5)
  // Between h= names: ":" (compact) or " : " (the layout of RFC 8463's example).
  std::string header_list_separator = ":";
};

const std::vector<std::string>& DefaultSignedHeaders();

struct SignReport {
  std::string from_domain;
  std::string signing_domain;  // empty when unsigned
  int signature_count = 0;
  std::vector<KeyAlgorithm> algorithms;  // of each signature, in the order of the fields
  std::string unsigned_reason;  // set when the message passes unsigned
};

class Signer;

class SigningSession {
 public:
  SigningSession(SigningSession&&) noexcept = default;
  SigningSession& operator=(SigningSession&&) = delete;

  void Update(std::string_view chunk);
  absl::StatusOr<std::string> Finish(int64_t unix_time_s);
  const SignReport& report() const { return report_; }

 private:
  friend class Signer;
  SigningSession(const Signer* signer, std::string forced_domain);

  const Signer* signer_;
  std::string forced_domain_;  // empty: the domain comes from the From field
  std::string header_;         // the header block, buffered until its end
  bool in_body_ = false;
  BodyHasher body_;
  absl::Status error_;         // first refusal seen while streaming
  SignReport report_;
};

class Signer {
 public:
  static absl::StatusOr<std::unique_ptr<Signer>> Create(const SignerConfig& config);

  SigningSession Begin() const { return SigningSession(this, ""); }
  // Signs with the keys of `signing_domain` (chosen as for a From in that domain) whatever the
  // From says: for a sender allowed to use the From address but not to sign for its domain.
  SigningSession BeginFor(std::string signing_domain) const {
    return SigningSession(this, std::move(signing_domain));
  }

  size_t key_count() const { return keys_.size(); }

 private:
  friend class SigningSession;
  struct PreparedKey {
    PrivateKey key;
    std::string domain;
    std::string head;         // "DKIM-Signature: v=1; a=..; c=..; d=..; [i=..;] [q=..;] s=..;"
    size_t head_column = 0;   // column after `head`, for folding what follows
  };

  Signer() = default;
  // Keys signing for `from_domain`, and the chosen domain; nullptr when none.
  const std::vector<size_t>* KeysFor(std::string_view from_domain, std::string* domain) const;

  std::vector<PreparedKey> keys_;
  absl::flat_hash_map<std::string, std::vector<size_t>> keys_by_domain_;
  absl::flat_hash_map<std::string, std::string> domain_map_;
  std::string default_domain_;
  std::vector<std::string> header_names_;
  std::vector<bool> oversigned_;  // parallel to header_names_
  Canonicalization header_canon_ = Canonicalization::kRelaxed;
  Canonicalization body_canon_ = Canonicalization::kRelaxed;
  int64_t expire_s_ = 0;
  std::string header_list_separator_;
};

// Folds a header field at `width_max` columns by putting CRLF before the whitespace between
// tokens (RFC 5322 §2.2.3).
class HeaderFolder {
 public:
  static constexpr size_t kWidthMax = 78;
  HeaderFolder(std::string* out, size_t column) : out_(out), column_(column) {}
  // Appends `token`, preceded by one space if `space` or by "CRLF SP" if it would not fit.
  void Add(std::string_view token, bool space);
  // Appends `value` split across lines as needed (for b=, whose FWS verifiers ignore).
  void AddSplittable(std::string_view value);
  size_t column() const { return column_; }

 private:
  std::string* out_;
  size_t column_;
};

}  // namespace dkim
