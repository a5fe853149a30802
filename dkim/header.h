// Header block parsing and header selection for DKIM (RFC 5322 §2.2, RFC 6376 §5.4).
//
// ParseHeaderBlock splits the header block of a message (everything before the empty line) into
// fields, keeping each field's exact bytes (folding and final CRLF) because simple
// canonicalization hashes them as they are. It refuses input that has no defined DKIM meaning:
// a line that is neither a field nor a continuation, an invalid field name, NUL bytes, bare CR or
// bare LF. 8-bit bytes in field values are kept (RFC 6532 allows UTF-8 there) and hashed as bytes.
//
// SelectHeaders applies the bottom-up instance rule of RFC 6376 §5.4.2.
//
// Plain computation; the returned views point into the caller's buffer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace dkim {

// Named limits for header input.
inline constexpr size_t kHeaderBlockBytesMax = 1 << 20;  // 1 MiB of header block
inline constexpr size_t kHeaderFieldCountMax = 1000;

struct HeaderField {
  std::string_view name;  // as written, without trailing WSP
  std::string_view raw;   // the whole field: "Name: value" with folding and its CRLF
};

// `block` is the header block including the CRLF that ends its last field, without the empty
// line. An empty block gives no fields.
absl::StatusOr<std::vector<HeaderField>> ParseHeaderBlock(std::string_view block);

// Case-insensitive ASCII comparison of field names.
bool HeaderNameEquals(std::string_view a, std::string_view b);

// Hash and equality of field names for hash containers keyed by a name, case-insensitive.
struct HeaderNameHash {
  size_t operator()(std::string_view name) const;
};
struct HeaderNameEq {
  bool operator()(std::string_view a, std::string_view b) const { return HeaderNameEquals(a, b); }
};

// RFC 6376 §5.4.2: for each name of `names` (in order, repeats allowed), the bottom-most field of
// that name not yet used; nullptr when none is left (a name that signs "no such field"). Linear in
// the fields plus the names.
std::vector<const HeaderField*> SelectHeaders(const std::vector<HeaderField>& fields,
                                              const std::vector<std::string_view>& names);

// The field with the value of its b= tag removed (RFC 6376 §3.7; RFC 8617 §4.1.2 and §4.1.3 for
// ARC), FWS inside the value included, the final CRLF kept: what a signature's own field
// contributes to the data it signs.
std::string StripBValue(std::string_view field);

// The address of the From field, as the domain below is taken from it: comments and quoted
// strings dropped, the angle-addr if there is one, white space removed ("Joe (x, <a@b>)
// <joe@Example.COM>" -> "joe@Example.COM"). Refuses several mailboxes or an unclosed '<'.
absl::StatusOr<std::string> FromAddress(std::string_view from_field_raw);

// The domain of the From field's address, lower-cased: "Joe <joe@Example.COM>" -> "example.com".
// Refuses a From with no address, no '@', or several mailboxes.
absl::StatusOr<std::string> FromDomain(std::string_view from_field_raw);

}  // namespace dkim
