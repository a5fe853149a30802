// The MACs of the relay's own addresses and links (VERP return paths, unsubscribe links):
// HMAC-SHA256 over NUL-separated fields (so that no two tuples hash alike), its first bits as
// lower-case base32 (RFC 4648 §6's alphabet, 5 bits a character): safe in a local part and in a
// URL path, and readable again whatever case a mail system gives it back in.
//
// Pure computation; any thread.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace relay::feedback {

// `chars` characters (at most 51: 256 bits) of HMAC-SHA256(secret, fields joined by NUL).
std::string Base32Hmac(std::string_view secret, std::initializer_list<std::string_view> fields,
                       size_t chars);
// True when `mac` is what one of `secrets` gives for `fields` (compared in constant time).
bool Base32HmacMatches(const std::vector<std::string>& secrets,
                       std::initializer_list<std::string_view> fields, std::string_view mac);
// a-z and 2-7, in any case.
bool IsBase32(std::string_view s);
std::string Lower(std::string_view s);

}  // namespace relay::feedback
