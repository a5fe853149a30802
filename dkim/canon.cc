#include "dkim/canon.h"

#include <openssl/base64.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace dkim {
namespace {

constexpr std::string_view kCrlf = "\r\n";

inline bool IsWsp(char c) { return c == ' ' || c == '\t'; }

inline char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

}  // namespace

std::string_view CanonicalizationName(Canonicalization c) {
  return c == Canonicalization::kSimple ? "simple" : "relaxed";
}

void AppendCanonicalHeader(Canonicalization c, std::string_view field, bool with_crlf,
                           std::string* out) {
  if (c == Canonicalization::kSimple) {
    // §3.4.1: the field exactly as it is, folding included.
    bool has_crlf = field.size() >= 2 && field.substr(field.size() - 2) == kCrlf;
    if (has_crlf && !with_crlf) field.remove_suffix(2);
    out->append(field);
    if (with_crlf && !has_crlf) out->append(kCrlf);
    return;
  }
  // §3.4.2 relaxed.
  size_t colon = field.find(':');
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && IsWsp(name.back())) name.remove_suffix(1);
  for (char ch : name) out->push_back(ToLowerAscii(ch));
  out->push_back(':');
  if (colon != std::string_view::npos) {
    std::string_view value = field.substr(colon + 1);
    bool wsp = false;
    bool started = false;  // WSP after the colon is deleted
    for (size_t i = 0; i < value.size(); ++i) {
      char ch = value[i];
      // Unfold: CRLF pairs are removed, the WSP that follows collapses with its neighbours.
      if (ch == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
        ++i;
        continue;
      }
      if (IsWsp(ch)) {
        wsp = true;
        continue;
      }
      if (wsp && started) out->push_back(' ');
      wsp = false;
      started = true;
      out->push_back(ch);
    }
    // Trailing WSP is dropped by never writing a pending `wsp`.
  }
  if (with_crlf) out->append(kCrlf);
}

void BodyCanonicalizer::Update(std::string_view chunk) {
  if (chunk.empty()) return;
  if (canon_ == Canonicalization::kSimple) {
    UpdateSimple(chunk.data(), chunk.data() + chunk.size());
  } else {
    UpdateRelaxed(chunk.data(), chunk.data() + chunk.size());
  }
}

void BodyCanonicalizer::FlushPendingBeforeContent() {
  // Empty lines followed by content are part of the body after all.
  for (; pending_crlf_count_ > 0; --pending_crlf_count_) sink_->Write(kCrlf);
  if (wsp_pending_) {
    sink_->Write(" ");
    wsp_pending_ = false;
  }
  line_has_content_ = true;
  body_has_content_ = true;
}

void BodyCanonicalizer::EndLine() {
  // Relaxed §3.4.4: whitespace at the end of a line is ignored.
  wsp_pending_ = false;
  line_has_content_ = false;
  ++pending_crlf_count_;
}

// The byte loops below look at each byte once and hand runs of ordinary bytes to the sink in one
// call, so hashing dominates and no copy is made.
void BodyCanonicalizer::UpdateSimple(const char* p, const char* end) {
  if (cr_pending_) {
    cr_pending_ = false;
    if (*p == '\n') {
      EndLine();
      ++p;
    } else {
      // The CR of the previous chunk was a bare CR: an ordinary byte.
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\r");
    }
  }
  while (p < end) {
    const char* run = p;
    // memchr scans many bytes per step; an LF before the next CR can only be a bare LF.
    const char* cr = static_cast<const char*>(std::memchr(p, '\r', end - p));
    if (cr == nullptr) cr = end;
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', cr - p));
    p = lf != nullptr ? lf : cr;
    if (p > run) {
      FlushPendingBeforeContent();
      sink_->Write(std::string_view(run, p - run));
    }
    if (p == end) break;
    if (*p == '\n') {
      // Bare LF (a CRLF never reaches here: its LF is consumed with the CR).
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\n");
      ++p;
      continue;
    }
    // CR: look at the next byte, possibly in the next chunk.
    if (p + 1 == end) {
      cr_pending_ = true;
      return;
    }
    if (p[1] == '\n') {
      EndLine();
      p += 2;
    } else {
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\r");
      ++p;
    }
  }
}

void BodyCanonicalizer::UpdateRelaxed(const char* p, const char* end) {
  if (cr_pending_) {
    cr_pending_ = false;
    if (*p == '\n') {
      EndLine();
      ++p;
    } else {
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\r");
    }
  }
  while (p < end) {
    const char* run = p;
    for (; p < end; ++p) {
      char c = *p;
      if (c == '\r' || c == '\n' || c == '\t') break;
      // A single SP inside a run of content stays as it is: the common case in prose, kept in
      // the run so that it costs nothing. Runs of WSP and WSP before CR take the slow path.
      if (c == ' ' && (p == run || p + 1 == end || p[1] == ' ' || p[1] == '\t' ||
                       p[1] == '\r')) {
        break;
      }
    }
    if (p > run) {
      FlushPendingBeforeContent();
      sink_->Write(std::string_view(run, p - run));
    }
    if (p == end) break;
    char ch = *p;
    if (ch == ' ' || ch == '\t') {
      // §3.4.4: a run of WSP becomes one SP, written only if content follows on this line.
      wsp_pending_ = true;
      ++p;
      continue;
    }
    if (ch == '\n') {
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\n");
      ++p;
      continue;
    }
    if (p + 1 == end) {
      cr_pending_ = true;
      return;
    }
    if (p[1] == '\n') {
      EndLine();
      p += 2;
    } else {
      saw_bare_line_break_ = true;
      FlushPendingBeforeContent();
      sink_->Write("\r");
      ++p;
    }
  }
}

void BodyCanonicalizer::Finish() {
  if (finished_) return;
  finished_ = true;
  if (cr_pending_) {
    // The body ended in a bare CR.
    cr_pending_ = false;
    saw_bare_line_break_ = true;
    FlushPendingBeforeContent();
    sink_->Write("\r");
  }
  if (canon_ == Canonicalization::kSimple) {
    // §3.4.3: trailing empty lines are removed; an empty body becomes one CRLF; a last line
    // without CRLF gets one (as the reference implementations do).
    sink_->Write(kCrlf);
    return;
  }
  // §3.4.4 (with erratum 3133): an empty body stays empty; a non-empty one ends in exactly one
  // CRLF.
  if (body_has_content_) sink_->Write(kCrlf);
}

BodyHasher::BodyHasher(Canonicalization c, int64_t length_limit_bytes)
    : BodyHasher(c, length_limit_bytes < 0
                        ? std::vector<uint64_t>()
                        : std::vector<uint64_t>{static_cast<uint64_t>(length_limit_bytes)}) {
  length_limit_bytes_ = length_limit_bytes;
}

BodyHasher::BodyHasher(Canonicalization c, std::vector<uint64_t> lengths)
    : canon_(c, this), snapshot_lengths_(std::move(lengths)) {
  std::sort(snapshot_lengths_.begin(), snapshot_lengths_.end());
  snapshot_lengths_.erase(std::unique(snapshot_lengths_.begin(), snapshot_lengths_.end()),
                          snapshot_lengths_.end());
  snapshot_digests_.reserve(snapshot_lengths_.size());
  SHA256_Init(&sha_);
}

BodyHasher::BodyHasher(BodyHasher&& other) noexcept
    : canon_(other.canon_),
      sha_(other.sha_),
      length_limit_bytes_(other.length_limit_bytes_),
      snapshot_lengths_(std::move(other.snapshot_lengths_)),
      snapshot_digests_(std::move(other.snapshot_digests_)),
      canonical_bytes_(other.canonical_bytes_),
      staged_bytes_(other.staged_bytes_) {
  canon_.set_sink(this);
  std::memcpy(stage_, other.stage_, staged_bytes_);
}

void BodyHasher::Write(std::string_view bytes) {
  // A snapshot length inside these bytes (or at their end): hash up to it and keep the digest.
  while (snapshot_digests_.size() < snapshot_lengths_.size() &&
         snapshot_lengths_[snapshot_digests_.size()] <= canonical_bytes_ + bytes.size()) {
    const size_t take =
        static_cast<size_t>(snapshot_lengths_[snapshot_digests_.size()] - canonical_bytes_);
    Consume(bytes.substr(0, take));
    bytes.remove_prefix(take);
    Snapshot();
  }
  Consume(bytes);
}

void BodyHasher::Consume(std::string_view bytes) {
  const size_t n = bytes.size();
  canonical_bytes_ += n;
  if (n == 0) return;
  // Small pieces (a CRLF, one SP, a short run) are gathered: one SHA256_Update per few KiB
  // instead of one per piece.
  if (staged_bytes_ + n > sizeof(stage_)) FlushStage();
  if (n >= sizeof(stage_)) {
    SHA256_Update(&sha_, bytes.data(), n);
    return;
  }
  std::memcpy(stage_ + staged_bytes_, bytes.data(), n);
  staged_bytes_ += n;
}

void BodyHasher::FlushStage() {
  if (staged_bytes_ > 0) SHA256_Update(&sha_, stage_, staged_bytes_);
  staged_bytes_ = 0;
}

void BodyHasher::Snapshot() {
  FlushStage();
  SHA256_CTX copy = sha_;
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256_Final(reinterpret_cast<uint8_t*>(digest.data()), &copy);
  snapshot_digests_.push_back(std::move(digest));
}

std::string BodyHasher::Finish() {
  canon_.Finish();
  FlushStage();
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256_Final(reinterpret_cast<uint8_t*>(digest.data()), &sha_);
  // Lengths beyond the body: everything there is (§3.5 leaves such an l= to the verifier).
  while (snapshot_digests_.size() < snapshot_lengths_.size()) snapshot_digests_.push_back(digest);
  if (length_limit_bytes_ >= 0) return DigestAt(static_cast<uint64_t>(length_limit_bytes_));
  return digest;
}

std::string BodyHasher::DigestAt(uint64_t length) const {
  auto it = std::lower_bound(snapshot_lengths_.begin(), snapshot_lengths_.end(), length);
  if (it == snapshot_lengths_.end() || *it != length) return "";
  const size_t i = static_cast<size_t>(it - snapshot_lengths_.begin());
  return i < snapshot_digests_.size() ? snapshot_digests_[i] : "";
}

std::string Base64Encode(std::string_view bytes) {
  size_t len = 0;
  EVP_EncodedLength(&len, bytes.size());
  std::string out(len, '\0');
  size_t written = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(out.data()),
                                   reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  out.resize(written);
  return out;
}

bool Base64Decode(std::string_view text, std::string* out) {
  std::string clean;
  clean.reserve(text.size());
  for (char ch : text) {
    if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
    clean.push_back(ch);
  }
  size_t max_len = 0;
  if (!EVP_DecodedLength(&max_len, clean.size())) return false;
  out->assign(max_len, '\0');
  size_t len = 0;
  if (!EVP_DecodeBase64(reinterpret_cast<uint8_t*>(out->data()), &len, max_len,
                        reinterpret_cast<const uint8_t*>(clean.data()), clean.size())) {
    return false;
  }
  out->resize(len);
  return true;
}

}  // namespace dkim
