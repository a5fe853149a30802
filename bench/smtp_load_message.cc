#include "bench/smtp_load_message.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/common/time.h"

namespace bench {

namespace {

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
constexpr size_t kBodyLineBytes = 76;
constexpr size_t kFillerBytes = 64 * 1024;

}  // namespace

const std::string& WeightedChoice::Pick(std::mt19937_64& rng) const {
  if (values.size() == 1) return values.front();
  double x = std::uniform_real_distribution<double>(0, cumulative.back())(rng);
  size_t i = std::upper_bound(cumulative.begin(), cumulative.end(), x) - cumulative.begin();
  return values[std::min(i, values.size() - 1)];
}

absl::StatusOr<WeightedChoice> ParseWeighted(const std::string& text) {
  WeightedChoice out;
  double total = 0;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> parts = absl::StrSplit(item, ':');
    double weight = 1;
    if (parts.size() > 2 || parts[0].empty() ||
        (parts.size() == 2 && (!absl::SimpleAtod(parts[1], &weight) || weight <= 0))) {
      return absl::InvalidArgumentError(absl::StrCat("bad weighted item \"", std::string(item),
                                                     "\" (want VALUE or VALUE:WEIGHT)"));
    }
    total += weight;
    out.values.push_back(parts[0]);
    out.cumulative.push_back(total);
  }
  if (out.values.empty()) return absl::InvalidArgumentError("empty list");
  return out;
}

absl::StatusOr<size_t> ParseSize(const std::string& text) {
  std::string digits = text;
  size_t scale = 1;
  if (!digits.empty() && (digits.back() == 'K' || digits.back() == 'k')) scale = 1024;
  if (!digits.empty() && (digits.back() == 'M' || digits.back() == 'm')) scale = 1024 * 1024;
  if (scale != 1) digits.pop_back();
  uint64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n == 0 || n > (1u << 30)) {
    return absl::InvalidArgumentError(absl::StrCat("bad size \"", text, "\""));
  }
  return static_cast<size_t>(n * scale);
}

absl::StatusOr<MessageFactory> MessageFactory::Create(const MessageOptions& options) {
  MessageFactory f;
  f.options_ = options;
  auto sizes = ParseWeighted(options.sizes);
  if (!sizes.ok())
    return absl::InvalidArgumentError(absl::StrCat("--size: ", sizes.status().message()));
  f.sizes_ = *sizes;
  for (const auto& s : f.sizes_.values) {
    auto n = ParseSize(s);
    if (!n.ok()) return n.status();
  }
  auto domains = ParseWeighted(options.domains);
  if (!domains.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--domains: ", domains.status().message()));
  }
  f.domains_ = *domains;
  std::mt19937_64 rng(42);
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
  f.filler_.resize(kFillerBytes);
  for (char& c : f.filler_) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  f.run_id_ = absl::StrCat(getpid(), ".", WallNanos() / 1000000);
  return f;
}

void MessageFactory::Build(uint64_t seq, int thread, std::mt19937_64& rng,
                           BuiltMessage* out) const {
  size_t target = *ParseSize(sizes_.Pick(rng));
  const std::string& domain = domains_.Pick(rng);
  out->rcpt = absl::StrCat("user", rng() % options_.users_per_domain, "@", domain);
  std::string& w = out->wire;
  w.clear();
  absl::StrAppend(&w, "From: <", options_.from, ">\r\nTo: <", out->rcpt, ">\r\nSubject: bench ",
                  thread, "-", seq, "\r\nDate: ",
                  absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", absl::Now(), absl::UTCTimeZone()),
                  "\r\nMessage-ID: <", seq, ".", thread, ".", run_id_,
                  "@load.bench.test>\r\nX-Bench-Sent: ", WallNanos(),
                  "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
  // The dot line: stuffed on the wire ("..") and one byte shorter in the content.
  static constexpr std::string_view kDotLine = "..dot-stuffed line (RFC 5321 4.5.2)\r\n";
  w.append(kDotLine);
  size_t content = w.size() - 1;
  size_t offset = (seq * 7919 + static_cast<size_t>(thread) * 104729) % (filler_.size() - 1024);
  while (content + kBodyLineBytes + 2 <= target) {
    w.append(filler_, offset, kBodyLineBytes);
    w.append("\r\n");
    content += kBodyLineBytes + 2;
    offset += kBodyLineBytes;
    if (offset + kBodyLineBytes > filler_.size()) offset = seq % 1024;
  }
  if (content + 2 < target) {
    // A last shorter line brings the content to exactly the target size.
    size_t n = target - content - 2;
    w.append(filler_, 0, n);
    // The filler never starts a line with '.', so no stuffing is needed here.
    w.append("\r\n");
    content += n + 2;
  }
  w.append(".\r\n");
  out->content_bytes = content;
}

}  // namespace bench
