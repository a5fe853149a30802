// MTA-STS (RFC 8461): what a domain's policy says, and the relay's cache of policies on disk.
// Pure text and matching, no I/O: the TXT lookup and the HTTPS fetch are the caller's.
//
//   _mta-sts.<domain> TXT  "v=STSv1; id=20260101T000000;"          ParseStsRecord
//   https://mta-sts.<domain>/.well-known/mta-sts.txt               ParseStsPolicy
//       version: STSv1
//       mode: enforce
//       mx: mail.example.com
//       mx: *.example.net
//       max_age: 604800
//
// Every parser takes untrusted bytes (a DNS answer, a web server's body, the cache file a bad disk
// or a hand edit changed), is linear in them, and bounds what it keeps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::tlspolicy {

// RFC 8461 §3.2: a policy is at most kept this long.
inline constexpr int64_t kStsMaxAgeMax = 31557600;
// What the relay reads of a policy body (Google's limit for the file it serves is 64 KB).
inline constexpr size_t kStsPolicyBytesMax = 64 << 10;
// mx lines kept (a policy with more is refused, not cut: a cut list could refuse a valid MX).
inline constexpr size_t kStsMxMax = 64;

enum class StsMode { kNone, kTesting, kEnforce };
std::string_view StsModeName(StsMode mode);

struct StsPolicy {
  StsMode mode = StsMode::kNone;
  std::vector<std::string> mx;  // patterns, lower case: "mail.example.com", "*.example.net"
  int64_t max_age_s = 0;        // at most kStsMaxAgeMax
};

// The policy of `text` (§3.2; CRLF or LF line ends). Fields are "name: value"; unknown fields are
// ignored, a repeated field other than mx keeps its first value. version must be STSv1, mode
// enforce|testing|none, max_age 0..kStsMaxAgeMax (a larger one is cut to it, as §3.2 says to
// treat it), at least one mx unless mode is none. An error names what is wrong.
absl::StatusOr<StsPolicy> ParseStsPolicy(std::string_view text);
// The policy's lines as RFC 8460 §4.4 reports them: "version: STSv1", "mode: ...", each "mx: ...",
// "max_age: ...".
std::vector<std::string> StsPolicyLines(const StsPolicy& policy);

// The policy id of a domain's _mta-sts TXT answer (§3.1): records not starting "v=STSv1" are
// dropped; exactly one must remain and parse. NotFound: the domain has no policy; InvalidArgument:
// several records or a bad one (also no policy, but worth a log line).
absl::StatusOr<std::string> ParseStsRecord(const std::vector<std::string>& txt);

// §4.1: `host` (an MX name, a trailing dot ignored) matches `pattern` exactly or, for
// "*.suffix", has exactly one more label than the suffix. Case-insensitive.
bool StsPatternMatches(std::string_view pattern, std::string_view host);
bool StsMxAllowed(const StsPolicy& policy, std::string_view host);

// One cached policy, as kept in <spool>/mta-sts.
struct StsCacheEntry {
  std::string domain;  // lower case
  std::string id;      // the TXT record's id when the policy was fetched
  int64_t fetched_unix_s = 0;
  StsPolicy policy;  // expires at fetched_unix_s + policy.max_age_s
};

// One line per entry: domain TAB id TAB fetched TAB mode TAB max_age TAB mx,mx,...
std::string FormatStsCacheFile(const std::vector<StsCacheEntry>& entries);
// The entries of `text`, at most `max`; a line that does not parse is skipped.
std::vector<StsCacheEntry> ParseStsCacheFile(std::string_view text, size_t max);

}  // namespace relay::tlspolicy
