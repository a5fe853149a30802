// SMTP command-line and address parsers (RFC 5321 §4.1, RFC 6531 for SMTPUTF8, RFC 1870 SIZE,
// RFC 6152 8BITMIME, RFC 4954 §5 AUTH=, RFC 3030 BDAT).
//
// Contract: pure functions with no state, any thread. Inputs are one command line WITHOUT its
// CRLF; the caller (ServerSession) has already split lines on CRLF only and refused bare CR/LF.
// Results hold string_views into the input where noted, so the input must outlive them; parsed
// addresses are returned as owned strings. Nothing here allocates on the failure paths beyond the
// result itself, and no input makes these functions read out of bounds (they are fuzzed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay::smtp {

enum class Verb {
  kUnknown,
  kEhlo,
  kHelo,
  kMail,
  kRcpt,
  kData,
  kBdat,
  kRset,
  kNoop,
  kQuit,
  kVrfy,
  kExpn,
  kHelp,
  kStartTls,
  kAuth,
};

struct CommandLine {
  Verb verb = Verb::kUnknown;
  // Everything after the verb and the spaces that follow it; trailing spaces removed.
  std::string_view argument;
};

// Splits "VERB[ SP argument]". Verbs match case-insensitively (RFC 5321 §2.4) and only as a
// whole word: "MAILX" is kUnknown.
CommandLine ParseCommandLine(std::string_view line);

// RFC 5321 §4.1.2 limits (§4.5.3.1.1-3).
inline constexpr size_t kLocalPartBytesMax = 64;
inline constexpr size_t kDomainBytesMax = 255;
inline constexpr size_t kPathBytesMax = 256;

// A reverse-path or forward-path: the mailbox without angle brackets and without any source
// route (source routes are accepted and ignored, RFC 5321 §4.1.1.3 and Appendix C).
struct Path {
  std::string address;  // "local@domain", "" for the null path <>, "postmaster" alone allowed
  bool is_null() const { return address.empty(); }
  bool non_ascii = false;  // some byte >= 0x80: needs SMTPUTF8 (RFC 6531 §3.3)
};

enum class BodyType { kUnspecified, k7Bit, k8BitMime };

enum class DsnReturn : uint8_t { kUnspecified = 0, kFull = 1, kHeaders = 2 };
// NOTIFY's values (RFC 3461 §4.1): NEVER alone, or any of the other three.
inline constexpr uint8_t kNotifySuccess = 1;
inline constexpr uint8_t kNotifyFailure = 2;
inline constexpr uint8_t kNotifyDelay = 4;
inline constexpr uint8_t kNotifyNever = 8;
// RFC 3461 §4.4: ENVID at most 100 characters; §4.2: ORCPT at most 500.
inline constexpr size_t kEnvidBytesMax = 100;
inline constexpr size_t kOrcptBytesMax = 500;

// MAIL FROM parameters (esmtp-param, RFC 5321 §4.1.2).
struct MailParams {
  std::optional<uint64_t> size_bytes;  // SIZE= (RFC 1870 §3)
  BodyType body = BodyType::kUnspecified;
  bool smtputf8 = false;            // SMTPUTF8 (RFC 6531 §3.4)
  std::optional<std::string> auth;  // AUTH=<mailbox> decoded from xtext, "<>" kept (RFC 4954 §5)
  // XCAMPAIGN=<name>, the relay's own extension (advertised on the submission ports): the
  // campaign the message belongs to, xtext-decoded; a valid label (IsValidLabel).
  std::optional<std::string> campaign;
  // DSN (RFC 3461 §4.3, §4.4): RET=FULL|HDRS, what a failure report returns; ENVID=<xtext>,
  // decoded, printable ASCII, at most kEnvidBytesMax.
  DsnReturn ret = DsnReturn::kUnspecified;
  std::optional<std::string> envid;
  bool requiretls = false;  // REQUIRETLS (RFC 8689 §4.1), no value
};

// RCPT TO parameters: DSN's NOTIFY and ORCPT (RFC 3461 §4.1, §4.2).
struct RcptParams {
  uint8_t notify = 0;  // kNotify* bits; 0: no NOTIFY (the relay's default: failures and delays)
  // ORCPT=addr-type;xtext, kept as "addr-type;address" with the address decoded ("rfc822;a@b");
  // empty: none.
  std::string orcpt;
};

// A tenant's or a campaign's name: 1 to kLabelBytesMax of letters, digits and "-_.+@:/ ", not
// starting or ending with a space ("spring-2027/a").
inline constexpr size_t kLabelBytesMax = 64;
bool IsValidLabel(std::string_view name);

enum class ArgError {
  kNone,
  kSyntax,          // "FROM:"/"TO:" missing or the whole argument malformed -> 501 5.5.4
  kPathSyntax,      // the path is not RFC 5321 §4.1.2 syntax -> 501 5.1.7 / 5.1.3
  kPathTooLong,     // §4.5.3.1 limits -> 501 5.1.7 / 5.1.3
  kParamSyntax,     // a parameter's value is malformed -> 501 5.5.4
  kParamUnknown,    // not an extension we advertised -> 555 5.5.4 (§4.1.1.11)
  kParamDuplicate,  // the same keyword twice -> 501 5.5.4
  kNullNotAllowed,  // RCPT TO:<> -> 501 5.1.3
};

struct MailCommand {
  Path path;
  MailParams params;
};

struct RcptCommand {
  Path path;
  RcptParams params;
};

// Parses the argument of MAIL: "FROM:<path> [SP param]*". One or more spaces after the colon are
// tolerated (common client behaviour); everything else is strict.
ArgError ParseMailArgument(std::string_view argument, MailCommand* out);
// Parses the argument of RCPT: "TO:<path> [SP param]*"; NOTIFY and ORCPT are the parameters
// known. "<Postmaster>" without a domain is allowed (§4.1.1.3).
ArgError ParseRcptArgument(std::string_view argument, RcptCommand* out);

// Parses a path including its angle brackets ("<a@b>", "<>", "<@r1,@r2:a@b>").
ArgError ParsePath(std::string_view text, bool allow_null, Path* out);

// True for a syntactically valid Domain (§4.1.2), U-labels allowed when `allow_utf8`.
bool IsValidDomain(std::string_view domain, bool allow_utf8);
// True for an address-literal "[...]" (§4.1.3: IPv4, "IPv6:" and general literals).
bool IsValidAddressLiteral(std::string_view literal);
// True when `text` is well-formed UTF-8 (RFC 3629), no overlongs or surrogates.
bool IsValidUtf8(std::string_view text);

// BDAT argument "chunk-size [SP LAST]" (RFC 3030 §2). Returns false on syntax errors.
bool ParseBdatArgument(std::string_view argument, uint64_t* chunk_bytes, bool* last);

// EHLO/HELO argument: a Domain or an address literal (§4.1.1.1). Returns false when malformed.
bool IsValidHeloArgument(std::string_view argument);

// Encodes `text` as RFC 3461 §4 xtext: '+', '=' and bytes outside 33..126 become "+XX".
std::string EncodeXtext(std::string_view text);
// Decodes RFC 3461 §4 xtext ("+XX" hex escapes). Returns false on malformed input.
bool DecodeXtext(std::string_view text, std::string* out);

}  // namespace relay::smtp
