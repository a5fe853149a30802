// The Authentication-Results header field (RFC 8601) the port-25 receiver adds to mail it
// accepts: the SPF result of the MAIL FROM (or HELO) identity, one DKIM result per signature and
// optionally the DMARC result and the ARC chain's result.
//
//   Authentication-Results: mx.example.org;
//   	spf=pass smtp.mailfrom=alice@example.com;
//   	dkim=pass header.d=example.com header.s=sel header.b=AbCd1234;
//   	dmarc=pass header.from=example.com;
//   	arc=none
//
// Method names and results are those of the IANA registry (RFC 8601 §2.7.1 dkim, §2.7.2 spf,
// RFC 7489 §11.2 dmarc, RFC 8617 §10.2 arc). A DMARC fail carries the domain's policy in a
// comment, as the large receivers write it: "dmarc=fail (p=reject dis=reject)
// header.from=example.com", dis being what was applied after pct= (RFC 7489 §6.6.4).
// A property value is written bare when RFC 8601 §2.2's pvalue allows it
// (a MIME token, or an address "local@domain" whose local part is a dot-atom or already quoted);
// an address with another local part gets that local part quoted ("a b"@example.com), anything
// else becomes a quoted-string (a header.b with "/"). The authserv-id is the relay's host
// name. Each result goes on its own line, indented with a tab, so lines stay under 78 columns for
// ordinary names; a single overlong token is never broken. Without any result the field says
// "none" (§2.2). Text that could break the field (CR, LF, control bytes) is dropped from values.
//
// Pure functions, any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dkim/header.h"

namespace relay::receive {

// RFC 7208 §2.6 results, as RFC 8601 §2.7.2 names them. dns/spf.h has the same values.
enum class SpfVerdict { kNone, kNeutral, kPass, kFail, kSoftFail, kTempError, kPermError };

struct SpfAuth {
  SpfVerdict result = SpfVerdict::kNone;
  // The identity checked: "smtp.mailfrom" is the MAIL FROM address (for the null sender
  // RFC 7208 §2.4 checks "postmaster@" + HELO name: pass that); "smtp.helo" the HELO name when
  // the HELO identity was checked. Empty ones are left out.
  std::string mailfrom;
  std::string helo;
};

// RFC 8601 §2.7.1; kNone is "the message was not signed".
enum class DkimVerdict { kNone, kPass, kFail, kPolicy, kNeutral, kTempError, kPermError };

struct DkimAuth {
  DkimVerdict result = DkimVerdict::kNone;
  std::string domain;    // header.d
  std::string selector;  // header.s
  // The first characters of b= (RFC 6008 §4: at least 8 tell signatures apart).
  std::string signature_prefix;
  // Why it was not pass, in reason="..." (RFC 8601 §2.2); empty leaves it out.
  std::string reason;
};

enum class ArcVerdict { kNone, kPass, kFail };

// RFC 7489 §11.2.
enum class DmarcVerdict { kNone, kPass, kFail, kTempError, kPermError };

struct DmarcAuth {
  DmarcVerdict result = DmarcVerdict::kNone;
  std::string header_from;  // the RFC5322.From domain; empty leaves header.from out
  // For the comment of a fail: the policy requested (p=, or sp= for a subdomain) and the
  // disposition applied ("none", "quarantine", "reject"); empty leaves the comment out.
  std::string policy;
  std::string disposition;
};

struct AuthResults {
  std::string authserv_id;  // the relay's host name
  std::optional<SpfAuth> spf;
  // One per signature checked; empty gives "dkim=none" when `dkim_checked`.
  std::vector<DkimAuth> dkim;
  bool dkim_checked = true;
  std::optional<DmarcAuth> dmarc;
  std::optional<ArcVerdict> arc;
};

// Named limits.
inline constexpr size_t kAuthResultsReasonBytesMax = 80;
inline constexpr size_t kSignaturePrefixCharsMax = 12;
inline constexpr size_t kAuthResultsWidthMax = 78;

const char* SpfVerdictName(SpfVerdict v);
const char* DkimVerdictName(DkimVerdict v);
const char* ArcVerdictName(ArcVerdict v);
const char* DmarcVerdictName(DmarcVerdict v);

// The field value after "Authentication-Results:" without a leading space or final CRLF, folded
// as the field would be: "mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@b.example". It is also the
// payload of the ARC-Authentication-Results (dkim/arc.h).
std::string AuthResultsPayload(const AuthResults& results);

// "Authentication-Results: " + payload + CRLF, to prepend to the message.
std::string BuildAuthResultsHeader(const AuthResults& results);

// A property value as RFC 8601 §2.2 pvalue allows: unchanged if it is a MIME token (RFC 2045
// §5.1) or local@domain with a dot-atom or quoted-string local part; local@domain with its local
// part quoted; else a quoted-string.
std::string AuthResultsValue(std::string_view value);

// RFC 8601 §5: an Authentication-Results field that names our own authserv-id but comes from
// outside was not written by us (a forgery meant to make a later reader trust it). The message
// without those fields (compared case-insensitively; the authserv-id is the first value after
// the field name, past any CFWS), or nullopt when it holds none, the usual case, so that nothing
// is copied. Other Authentication-Results fields, and ARC-Authentication-Results (part of their
// ARC sets), stay. Linear in the message's header block; a block that does not parse is left
// as it is (the DKIM and ARC checks already reported it).
std::optional<std::string> WithoutOwnAuthResults(std::string_view message,
                                                 std::string_view authserv_id);
// The same from the header fields of `message` already parsed (views into it, as
// dkim::ParsedMessage holds them): no parse of its own, for the port-25 checks that parsed it once.
std::optional<std::string> WithoutOwnAuthResults(std::string_view message,
                                                 const std::vector<dkim::HeaderField>& fields,
                                                 std::string_view authserv_id);
// Whether `field` is one of those that WithoutOwnAuthResults removes.
bool ClaimsAuthservId(const dkim::HeaderField& field, std::string_view authserv_id);

}  // namespace relay::receive
