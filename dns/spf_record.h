// SPF records and macros (RFC 7208 §4.5, §4.6, §5, §6, §7) as pure functions: selecting the
// v=spf1 record among a name's TXT records, parsing it into terms, and expanding macro strings.
// The DNS side is in dns/spf.h. Problems are returned as text that names the offending term,
// because the operator tool prints them as they are.
//
// Pure computation; any thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dns::spf {

// RFC 7208 §4.6.2: the qualifier gives the result when a mechanism matches.
enum class Qualifier : char { kPass = '+', kFail = '-', kSoftFail = '~', kNeutral = '?' };

enum class MechanismKind { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

const char* MechanismName(MechanismKind kind);

struct Mechanism {
  Qualifier qualifier = Qualifier::kPass;
  MechanismKind kind = MechanismKind::kAll;
  // The unexpanded domain-spec (§4.8); empty means the current domain (a, mx, ptr).
  std::string domain_spec;
  // CIDR prefix lengths (§5.6): a and mx carry both, ip4 the first, ip6 the second.
  int cidr4_bits = 32;
  int cidr6_bits = 128;
  // ip4 (first 4 bytes) or ip6 network.
  std::array<uint8_t, 16> network{};
  // The term as written, for reports.
  std::string text;

  // include, a, mx, ptr and exists query the DNS (§4.6.4); so does redirect.
  bool QueriesDns() const;
};

struct Record {
  std::vector<Mechanism> mechanisms;
  // The unexpanded domain-specs of redirect= and exp= (§6), if present.
  std::optional<std::string> redirect;
  std::optional<std::string> explanation;
  bool has_all = false;
};

// True if `txt` (a TXT record's strings joined) is an SPF version 1 record: "v=spf1" followed by
// a space or the end, case-insensitively (§4.5).
bool IsSpfRecord(std::string_view txt);

// Parses a record selected by IsSpfRecord. The error message names the problem and the term:
// "unknown mechanism 'ipv4:192.0.2.1'", "invalid ip4 network in 'ip4:192.0.2.300'", ...
absl::StatusOr<Record> ParseRecord(std::string_view txt);

// Whether a macro string uses %{p} (so that the caller resolves the validated name first).
bool UsesPtrMacro(std::string_view macro_string);

// The values macros expand to (§7.3).
struct MacroContext {
  std::string sender;                      // s
  std::string local_part;                  // l
  std::string sender_domain;               // o
  std::string domain;                      // d: the current domain
  std::string ip;                          // c: the client address as text (canonical)
  bool ipv6 = false;                       // for i and v
  std::array<uint8_t, 16> address{};       // the client address (IPv4 in the first 4 bytes)
  std::string validated_name = "unknown";  // p
  std::string helo;                        // h
  std::string receiver = "unknown";        // r
  int64_t timestamp_s = 0;                 // t
};

// The dotted form %{i} takes: "192.0.2.3", or 32 dot-separated nibbles for IPv6 (§7.3).
std::string DottedIp(const std::array<uint8_t, 16>& address, bool ipv6);

// Expands a macro-string (§7.1) and returns at most the first `bytes_max` bytes of it (the rest
// is never built: a record of many macros of a long sender would expand to megabytes).
// `explanation` allows c, r, t and spaces (the explain-string of §6.2). Syntax errors give
// InvalidArgument naming the problem.
absl::StatusOr<std::string> ExpandMacros(std::string_view macro_string, const MacroContext& context,
                                         bool explanation, size_t bytes_max);

// Expands a domain-spec into a name to look up: macros expanded, a final dot dropped, and labels
// removed from the left until it fits `bytes_max` (§7.3). An expansion that is not a valid name
// (empty label, label over 63 bytes) is InvalidArgument.
absl::StatusOr<std::string> ExpandDomainSpec(std::string_view domain_spec,
                                             const MacroContext& context, size_t bytes_max);

// A name check_host() may start from (§4.3): labels of 1-63 bytes, at least two labels, at most
// 253 bytes (a final dot allowed).
bool IsValidDomain(std::string_view domain);

// Parses an IPv4 or IPv6 address; IPv4-mapped IPv6 is returned as IPv4 (§5).
bool ParseIp(std::string_view text, std::array<uint8_t, 16>* address, bool* ipv6);

// Whether the first `bits` bits of two addresses agree.
bool PrefixMatches(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits);

}  // namespace dns::spf
