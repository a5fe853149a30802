// A message parsed once for every check that reads it: its header fields (dkim/header.h), its body,
// and the canonical body hashes the checks ask for (dkim/canon.h). Port 25 verifies the DKIM
// signatures of a stranger's message (dkim/verifier.h), validates its ARC chain and seals it
// (dkim/arc.h); each of them parsing a header block of up to 1 MiB again, and hashing the body
// again for every signature, multiplied what a hostile message costs (issue 13).
//
//   ASSIGN_OR_RETURN(dkim::ParsedMessage m, dkim::ParsedMessage::Parse(message));
//   m.WantBodyHash(Canonicalization::kRelaxed, -1);  // optional: ask for all before the first
//   const dkim::BodyHash& h = m.Body(Canonicalization::kRelaxed, -1);
//
// The message is split at its first empty line (RFC 5322 §2.1); without one it is all header and
// the body is empty. The fields and the body are views into the caller's bytes, which must outlive
// the ParsedMessage and every copy of it.
//
// Body hashes: Body(c, l) runs one pass over the body per canonicalization, keeping the digest at
// every length asked for so far (WantBodyHash); a length asked for later costs another pass. The
// hashes are shared by copies (a copy with fields added above, WithFields, has the same body).
// Not thread-safe: one thread at a time, the hand-over between threads ordered by the caller (as
// a worker pool's queue does).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/canon.h"
#include "dkim/header.h"

namespace dkim {

struct BodyHash {
  std::string digest;            // SHA-256, 32 bytes
  uint64_t canonical_bytes = 0;  // of the whole canonical body
  bool saw_bare_line_break = false;
};

class ParsedMessage {
 public:
  // `message`: the whole message with CRLF line ends. Fails as ParseHeaderBlock does.
  static absl::StatusOr<ParsedMessage> Parse(std::string_view message);
  // `message` with `block` (header fields, each ending in CRLF) above its fields: what a
  // forwarder's new fields make of it. Same body, same body hashes.
  static absl::StatusOr<ParsedMessage> WithFields(std::string_view block,
                                                  const ParsedMessage& message);
  // `message` without the fields `drop` says yes to: what the message with those fields cut out
  // of its bytes parses to (the fields left still view `message`'s bytes). Same body, same body
  // hashes.
  static ParsedMessage WithoutFields(const ParsedMessage& message,
                                     const std::function<bool(const HeaderField&)>& drop);

  const std::vector<HeaderField>& fields() const { return fields_; }
  std::string_view body() const { return body_; }

  // Asks for the hash of the first `length_limit` canonical bytes of the body (< 0: all of it),
  // so that the pass that computes one computes them all.
  void WantBodyHash(Canonicalization c, int64_t length_limit) const;
  // The hash of the first `length_limit` canonical bytes (< 0: all), computed on first use.
  const BodyHash& Body(Canonicalization c, int64_t length_limit) const;

 private:
  struct Hashes {
    // Per canonicalization: the lengths asked for, and those the last pass computed.
    std::array<std::vector<uint64_t>, 2> wanted;
    std::array<std::map<int64_t, BodyHash>, 2> done;
  };

  ParsedMessage() = default;

  std::vector<HeaderField> fields_;
  std::string_view body_;
  std::shared_ptr<Hashes> hashes_ = std::make_shared<Hashes>();
};

}  // namespace dkim
