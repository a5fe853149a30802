// SMTP reply formatting: "code enhanced-code text" lines (RFC 5321 §4.2, RFC 2034, RFC 3463).
//
// Contract: pure functions over caller-owned strings; no state, any thread. Replies are appended
// to a caller's string so that several pipelined replies are batched into one write (RFC 2920
// §3.1) without allocating per reply once the string has grown.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace relay::smtp {

// One reply in the form the session and its tests use: basic code, enhanced code (empty when the
// reply must not carry one: the greeting and the EHLO/HELO reply, RFC 2034 §3) and text.
struct Reply {
  int code = 0;
  std::string_view enhanced;
  std::string_view text;
};

// Appends "code SP [enhanced SP] text CRLF". The text must not contain CR or LF.
void AppendReply(std::string& out, int code, std::string_view enhanced, std::string_view text);
inline void AppendReply(std::string& out, const Reply& reply) {
  AppendReply(out, reply.code, reply.enhanced, reply.text);
}

// Appends a multi-line reply (RFC 5321 §4.2.1): every line but the last uses "code-", the last
// "code SP". Lines carry no enhanced code (used for EHLO and HELP).
void AppendMultilineReply(std::string& out, int code,
                          std::initializer_list<std::string_view> lines);
// Same, for a line list built at run time.
void AppendMultilineReply(std::string& out, int code, const std::string_view* lines, size_t count);

// True when `enhanced` is a well-formed enhanced status code "class.subject.detail" whose class
// is 2, 4 or 5 and agrees with the first digit of `code` (RFC 3463 §2).
bool IsValidEnhancedCode(int code, std::string_view enhanced);

}  // namespace relay::smtp
