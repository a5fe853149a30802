// The Organizational Domain of RFC 7489 §3.2: the public suffix of a name plus one label, from
// the Public Suffix List. The list is Debian's (package publicsuffix) read through Debian's libpsl:
// the newer of libpsl's built-in copy and /usr/share/publicsuffix/public_suffix_list.dafsa, so an
// updated publicsuffix package takes effect at the next start without a rebuild. Both sections of
// the list count (ICANN and private: "alice.github.io" is its own organization).
//
//   "mail.example.co.uk" -> "example.co.uk"
//   "a.b.test"           -> "b.test"   (not listed: the list's default rule "*" applies)
//   "co.uk"              -> "co.uk"    (a public suffix is its own organizational domain)
//
// Names are compared in lower case; an A-label ("xn--...") is a label like any other.
//
// Thread-safe: the list is loaded once, on first use, and only read afterwards.
#pragma once

#include <string>
#include <string_view>

namespace relay::receive {

std::string OrganizationalDomain(std::string_view domain);

// Loads the list now (so that a start-up, not the first message, pays for it) and says how many
// rules it has, -1 when unknown (the built-in DAFSA does not count them).
int LoadPublicSuffixList();

}  // namespace relay::receive
