#include "dkim/message.h"

#include <algorithm>
#include <utility>

#include "relay/base/status_macros.h"

namespace dkim {
namespace {

size_t Index(Canonicalization c) { return c == Canonicalization::kSimple ? 0 : 1; }

}  // namespace

absl::StatusOr<ParsedMessage> ParsedMessage::Parse(std::string_view message) {
  size_t header_end, body_start;
  if (message.substr(0, 2) == "\r\n") {
    header_end = 0;
    body_start = 2;
  } else if (size_t sep = message.find("\r\n\r\n"); sep != std::string_view::npos) {
    header_end = sep + 2;
    body_start = sep + 4;
  } else {
    header_end = body_start = message.size();
  }
  ParsedMessage m;
  ASSIGN_OR_RETURN(m.fields_, ParseHeaderBlock(message.substr(0, header_end)));
  m.body_ = message.substr(body_start);
  return m;
}

absl::StatusOr<ParsedMessage> ParsedMessage::WithFields(std::string_view block,
                                                        const ParsedMessage& message) {
  ParsedMessage m;
  ASSIGN_OR_RETURN(m.fields_, ParseHeaderBlock(block));
  if (m.fields_.size() + message.fields_.size() > kHeaderFieldCountMax) {
    return absl::InvalidArgumentError("too many header fields");
  }
  m.fields_.insert(m.fields_.end(), message.fields_.begin(), message.fields_.end());
  m.body_ = message.body_;
  m.hashes_ = message.hashes_;
  return m;
}

ParsedMessage ParsedMessage::WithoutFields(const ParsedMessage& message,
                                           const std::function<bool(const HeaderField&)>& drop) {
  ParsedMessage m;
  for (const HeaderField& f : message.fields_) {
    if (!drop(f)) m.fields_.push_back(f);
  }
  m.body_ = message.body_;
  m.hashes_ = message.hashes_;
  return m;
}

void ParsedMessage::WantBodyHash(Canonicalization c, int64_t length_limit) const {
  if (length_limit < 0) return;  // every pass computes the whole body's hash
  std::vector<uint64_t>& wanted = hashes_->wanted[Index(c)];
  const uint64_t length = static_cast<uint64_t>(length_limit);
  if (std::find(wanted.begin(), wanted.end(), length) == wanted.end()) wanted.push_back(length);
}

const BodyHash& ParsedMessage::Body(Canonicalization c, int64_t length_limit) const {
  std::map<int64_t, BodyHash>& done = hashes_->done[Index(c)];
  if (auto it = done.find(length_limit); it != done.end()) return it->second;
  WantBodyHash(c, length_limit);
  // One pass for every length asked for so far (what an earlier pass computed is kept).
  BodyHasher hasher(c, hashes_->wanted[Index(c)]);
  hasher.Update(body_);
  BodyHash whole;
  whole.digest = hasher.Finish();
  whole.canonical_bytes = hasher.canonical_bytes();
  whole.saw_bare_line_break = hasher.saw_bare_line_break();
  for (uint64_t length : hashes_->wanted[Index(c)]) {
    BodyHash h = whole;
    h.digest = hasher.DigestAt(length);
    done[static_cast<int64_t>(length)] = std::move(h);
  }
  done[-1] = std::move(whole);
  return done.at(length_limit);
}

}  // namespace dkim
