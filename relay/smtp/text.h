// Small string helpers over std::string_view for the SMTP code. Debian's abseil keeps
// absl::string_view distinct from std::string_view, so its ascii/match/StrCat helpers do not take
// ours. Pure functions, any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace relay::smtp {

inline char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c; }

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// The length of the longest prefix of `text` of at most `bytes_max` bytes that does not end inside
// a UTF-8 sequence (RFC 3629 §3: a sequence is a lead byte and up to three 10xxxxxx continuation
// bytes), so that text cut to fit a record stays valid UTF-8 when it was. Input that is not UTF-8
// is cut at most three bytes short of bytes_max.
inline size_t Utf8PrefixBytes(std::string_view text, size_t bytes_max) {
  if (text.size() <= bytes_max) return text.size();
  size_t n = bytes_max;
  for (int back = 0; back < 3 && n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80;
       ++back) {
    --n;
  }
  return n;
}

// Appended to text that was cut, so that a reader of a log or a DSN knows there was more.
inline constexpr std::string_view kTruncatedMark = " [truncated]";

// `text` when it fits in `bytes_max` bytes; otherwise its start, cut at a character boundary and
// followed by kTruncatedMark, the whole at most `bytes_max` bytes.
inline std::string TruncateText(std::string_view text, size_t bytes_max) {
  if (text.size() <= bytes_max) return std::string(text);
  if (bytes_max < kTruncatedMark.size()) {
    return std::string(text.substr(0, Utf8PrefixBytes(text, bytes_max)));
  }
  std::string out(text.substr(0, Utf8PrefixBytes(text, bytes_max - kTruncatedMark.size())));
  out.append(kTruncatedMark);
  return out;
}

// Concatenates string pieces in one allocation.
template <typename... Pieces>
std::string Concat(const Pieces&... pieces) {
  const std::string_view views[] = {std::string_view(pieces)...};
  size_t total = 0;
  for (std::string_view v : views) total += v.size();
  std::string out;
  out.reserve(total);
  for (std::string_view v : views) out.append(v.data(), v.size());
  return out;
}

}  // namespace relay::smtp
