#include "relay/smtp/reply.h"

#include "relay/base/check.h"

namespace relay::smtp {
namespace {

void AppendCode(std::string& out, int code, char separator) {
  DCHECK(code >= 200 && code <= 599);
  char digits[4] = {static_cast<char>('0' + code / 100), static_cast<char>('0' + code / 10 % 10),
                    static_cast<char>('0' + code % 10), separator};
  out.append(digits, 4);
}

}  // namespace

void AppendReply(std::string& out, int code, std::string_view enhanced, std::string_view text) {
  DCHECK(text.find_first_of("\r\n") == std::string_view::npos);
  DCHECK(enhanced.empty() || IsValidEnhancedCode(code, enhanced));
  AppendCode(out, code, ' ');
  if (!enhanced.empty()) {
    out.append(enhanced);
    out.push_back(' ');
  }
  out.append(text);
  out.append("\r\n");
}

void AppendMultilineReply(std::string& out, int code, const std::string_view* lines, size_t count) {
  DCHECK(count > 0);
  for (size_t i = 0; i < count; ++i) {
    AppendCode(out, code, i + 1 == count ? ' ' : '-');
    out.append(lines[i]);
    out.append("\r\n");
  }
}

void AppendMultilineReply(std::string& out, int code,
                          std::initializer_list<std::string_view> lines) {
  AppendMultilineReply(out, code, lines.begin(), lines.size());
}

bool IsValidEnhancedCode(int code, std::string_view enhanced) {
  // class "." subject "." detail; class 2/4/5, subject 1-3 digits, detail 1-3 digits (§2).
  if (enhanced.size() < 5) return false;
  const char cls = enhanced[0];
  if (cls != '2' && cls != '4' && cls != '5') return false;
  if (cls - '0' != code / 100) return false;
  if (enhanced[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (i < enhanced.size() && enhanced[i] >= '0' && enhanced[i] <= '9') {
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3) return false;
    if (part == 0) {
      if (i >= enhanced.size() || enhanced[i] != '.') return false;
      ++i;
    }
  }
  return i == enhanced.size();
}

}  // namespace relay::smtp
