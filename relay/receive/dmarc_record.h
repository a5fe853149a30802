// The DMARC policy record (RFC 7489 §6.3, §6.4), as a domain publishes it at _dmarc.<domain>:
//
//   v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=50; rua=mailto:dmarc@example.com
//
// The text comes from any DNS server, so the parser is one pass over at most
// kDmarcRecordBytesMax bytes, keeps no state per tag beyond the handful it knows, and ignores the
// tags it does not know (§6.3). It does its own tag splitting rather than dkim::ParseTagList's:
// DMARC's separator allows only WSP around ';' and '=' (§6.4), a duplicate of a tag it ignores is
// harmless here, and the duplicate check stays linear.
//
// Pure functions, any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"

namespace relay::receive {

// §6.3 p= and sp=.
enum class DmarcPolicy { kNone, kQuarantine, kReject };
// §6.3 adkim= and aspf=: "r" relaxed (same organizational domain), "s" strict (same name).
enum class DmarcAlignment { kRelaxed, kStrict };

struct DmarcRecord {
  DmarcPolicy p = DmarcPolicy::kNone;
  // For subdomains of the domain that published the record; absent: p= applies (§6.3).
  std::optional<DmarcPolicy> sp;
  DmarcAlignment adkim = DmarcAlignment::kRelaxed;
  DmarcAlignment aspf = DmarcAlignment::kRelaxed;
  int pct = 100;  // the share of failing mail the policy is applied to (§6.6.4)
};

// A record longer than this is refused (permerror): the policy tags take a few dozen bytes and
// the report URIs the rest; real records stay well under 512.
inline constexpr size_t kDmarcRecordBytesMax = 2048;

const char* DmarcPolicyName(DmarcPolicy p);  // "none", "quarantine", "reject"

// True when `text` starts with the version tag (§6.4: "v" *WSP "=" *WSP "DMARC1", then a
// separator or the end): only such TXT records at _dmarc.<domain> count (§6.6.3 steps 2 and 4).
bool IsDmarcRecord(std::string_view text);

// The policy of a record that IsDmarcRecord accepts. InvalidArgument, naming the tag, for: a
// record over the limit, no version tag first, a tag spec without '=', an invalid value of p=,
// sp=, adkim=, aspf= or pct=, or one of those given twice. §6.6.3 step 6: a record whose p= is
// missing or invalid, or whose sp= is invalid, but which has a syntactically valid rua= is taken
// as p=none (and no sp=); the other problems make the whole record invalid.
absl::StatusOr<DmarcRecord> ParseDmarcRecord(std::string_view text);

}  // namespace relay::receive
