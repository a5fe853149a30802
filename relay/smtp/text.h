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
