#include "dns/outcome.h"

#include "absl/strings/str_cat.h"

namespace dns {

const char* ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kNone:
      return "none";
    case Reason::kNxDomain:
      return "nxdomain";
    case Reason::kNoData:
      return "nodata";
    case Reason::kNullMx:
      return "null-mx";
    case Reason::kNoAddresses:
      return "no-addresses";
    case Reason::kServFail:
      return "servfail";
    case Reason::kRefused:
      return "refused";
    case Reason::kTimeout:
      return "timeout";
    case Reason::kNetwork:
      return "network";
    case Reason::kMalformed:
      return "malformed";
    case Reason::kBadName:
      return "bad-name";
    case Reason::kOther:
      return "other";
  }
  return "?";
}

std::string DnsStatus::ToString() const {
  if (ok()) return "ok";
  return absl::StrCat(permanent() ? "permanent " : "transient ", ReasonName(reason), ": ", message);
}

}  // namespace dns
