#include "relay/receive/org_domain.h"

#include <libpsl.h>

#include "absl/strings/ascii.h"

namespace relay::receive {
namespace {

// Kept for the life of the process: shards read it concurrently (libpsl's lookups only read).
const psl_ctx_t* List() {
  static const psl_ctx_t* const list = [] {
    // NULL: libpsl's distribution file (/usr/share/publicsuffix/public_suffix_list.dafsa on
    // Debian) when it is newer than the built-in copy.
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest != nullptr ? latest : psl_builtin();
  }();
  return list;
}

}  // namespace

int LoadPublicSuffixList() {
  const psl_ctx_t* list = List();
  return list == nullptr ? -1 : psl_suffix_count(list);
}

std::string OrganizationalDomain(std::string_view domain) {
  std::string name = absl::AsciiStrToLower(absl::string_view(domain.data(), domain.size()));
  while (!name.empty() && name.back() == '.') name.pop_back();
  const psl_ctx_t* list = List();
  if (list == nullptr || name.empty()) return name;
  // NULL for a public suffix itself (§3.2 step 4 has no label to add): the name stands alone.
  const char* registrable = psl_registrable_domain(list, name.c_str());
  if (registrable == nullptr) return name;
  return std::string(registrable);
}

}  // namespace relay::receive
