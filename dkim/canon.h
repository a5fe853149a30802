// Canonicalization of RFC 6376 §3.4 (simple and relaxed) for header fields and bodies, and the
// streaming body hasher used by the signer and the verifier.
//
// BodyCanonicalizer is fed the body in chunks of any size; chunk borders may fall anywhere
// (inside CRLF, inside a run of whitespace, inside trailing empty lines). It keeps only a few
// bytes of state, never the body. The canonical bytes go to a sink as runs of input (no copy for
// ordinary bytes). BodyHasher adds SHA-256 and the l= length limit of §3.5 on top.
//
// Bare CR and bare LF (a CR not followed by LF, an LF not preceded by CR) are hashed as ordinary
// bytes, as the reference verifiers do, and reported through saw_bare_line_break() so that the
// signer can refuse such a message rather than produce a signature verifiers disagree on.
//
// Not thread-safe: one object per message. Plain computation, no I/O.
#pragma once

#include <openssl/sha.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dkim {

enum class Canonicalization { kSimple, kRelaxed };

std::string_view CanonicalizationName(Canonicalization c);

// Header field canonicalization, §3.4.1 and §3.4.2. `field` is one complete header field as it
// appeared in the message: "Name: value" with its folding, with or without its final CRLF.
// Appends the canonical form with a CRLF when `with_crlf` (the signed header fields) or without
// (the DKIM-Signature field itself, §3.7).
void AppendCanonicalHeader(Canonicalization c, std::string_view field, bool with_crlf,
                           std::string* out);

// Receives canonical body bytes.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void Write(std::string_view bytes) = 0;
};

// Streaming body canonicalization, §3.4.3 (simple) and §3.4.4 (relaxed).
class BodyCanonicalizer {
 public:
  BodyCanonicalizer(Canonicalization c, BodySink* sink) : canon_(c), sink_(sink) {}
  // For owners that move: the state is copied, the sink is re-pointed.
  void set_sink(BodySink* sink) { sink_ = sink; }

  void Update(std::string_view chunk);
  // Flushes the end of the body: the final CRLF rules of §3.4.3 / §3.4.4. Call once.
  void Finish();

  bool saw_bare_line_break() const { return saw_bare_line_break_; }

 private:
  void UpdateSimple(const char* p, const char* end);
  void UpdateRelaxed(const char* p, const char* end);
  // Writes the pending empty lines and whitespace before content on the current line.
  void FlushPendingBeforeContent();
  void EndLine();

  Canonicalization canon_;
  BodySink* sink_;
  // Line breaks of lines already ended but not yet written: they are dropped if only empty lines
  // follow until the end of the body.
  uint64_t pending_crlf_count_ = 0;
  bool cr_pending_ = false;         // the previous byte was CR (may be the first half of CRLF)
  bool wsp_pending_ = false;        // relaxed: a run of WSP not yet written as one SP
  bool line_has_content_ = false;   // the current line has written bytes
  bool body_has_content_ = false;   // anything but empty lines was written
  bool saw_bare_line_break_ = false;
  bool finished_ = false;
};

// Canonicalizes and SHA-256-hashes a body in one pass. `length_limit_bytes` < 0 means all
// (no l= tag); otherwise Finish gives the digest of only that many canonical bytes (§3.5 l=).
//
// Several l= values need no pass each: with `lengths`, one pass over the body also keeps the
// digest of the first `lengths[i]` canonical bytes for each i (DigestAt after Finish), as the
// verifier does for all the signatures of a message (issue 13: a stranger's message can carry
// many signatures, each with its own l=).
class BodyHasher : private BodySink {
 public:
  explicit BodyHasher(Canonicalization c, int64_t length_limit_bytes = -1);
  BodyHasher(Canonicalization c, std::vector<uint64_t> lengths);
  BodyHasher(BodyHasher&& other) noexcept;
  BodyHasher& operator=(BodyHasher&&) = delete;

  void Update(std::string_view chunk) { canon_.Update(chunk); }
  // Returns the 32-byte digest (of length_limit_bytes when given, else of the whole canonical
  // body). Call once.
  std::string Finish();
  // After Finish: the digest of the first `length` canonical bytes, `length` one of `lengths`
  // (the whole body when it has fewer). Empty for a length not asked for.
  std::string DigestAt(uint64_t length) const;

  bool saw_bare_line_break() const { return canon_.saw_bare_line_break(); }
  // Canonical bytes produced (including those beyond the l= limit).
  uint64_t canonical_bytes() const { return canonical_bytes_; }

 private:
  void Write(std::string_view bytes) override;
  // Hashes `bytes` (through the stage) and counts them.
  void Consume(std::string_view bytes);
  void FlushStage();
  // Keeps the digest of what was hashed so far for the next snapshot length.
  void Snapshot();

  static constexpr size_t kStageBytes = 4096;

  BodyCanonicalizer canon_;
  SHA256_CTX sha_;
  int64_t length_limit_bytes_ = -1;
  std::vector<uint64_t> snapshot_lengths_;     // ascending, no repeats
  std::vector<std::string> snapshot_digests_;  // one per length reached so far
  uint64_t canonical_bytes_ = 0;
  size_t staged_bytes_ = 0;
  char stage_[kStageBytes];  // canonical bytes not yet hashed
};

// Base64 without line breaks (RFC 4648 §4), as DKIM's b=, bh= and p= use.
std::string Base64Encode(std::string_view bytes);
// Decodes base64, ignoring whitespace (FWS inside tag values, §3.2). Returns false on bad input.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace dkim
