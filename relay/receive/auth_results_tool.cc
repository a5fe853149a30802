// auth_results_tool AUTHSERV_ID [--spf RESULT MAILFROM HELO] [--dkim RESULT D S B REASON]...
//                   [--dmarc RESULT FROM POLICY DISPOSITION] [--arc RESULT]
// Prints the Authentication-Results field built from the arguments (results by their RFC 8601
// names), for the test that parses it with another implementation. Exit status 2 on bad usage.
#include <cstdio>
#include <cstring>
#include <string>

#include "relay/receive/auth_results.h"

namespace {

template <typename Enum>
bool ParseVerdict(const char* name, Enum count_end, const char* (*namer)(Enum), Enum* out) {
  for (int i = 0; i <= static_cast<int>(count_end); ++i) {
    if (std::strcmp(namer(static_cast<Enum>(i)), name) == 0) {
      *out = static_cast<Enum>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace relay::receive;
  if (argc < 2) return 2;
  AuthResults r;
  r.authserv_id = argv[1];
  r.dkim_checked = false;
  for (int i = 2; i < argc;) {
    std::string opt = argv[i];
    if (opt == "--spf" && i + 3 < argc) {
      SpfAuth spf;
      if (!ParseVerdict(argv[i + 1], SpfVerdict::kPermError, SpfVerdictName, &spf.result)) return 2;
      spf.mailfrom = argv[i + 2];
      spf.helo = argv[i + 3];
      r.spf = spf;
      i += 4;
    } else if (opt == "--dkim" && i + 5 < argc) {
      DkimAuth d;
      if (!ParseVerdict(argv[i + 1], DkimVerdict::kPermError, DkimVerdictName, &d.result)) {
        return 2;
      }
      d.domain = argv[i + 2];
      d.selector = argv[i + 3];
      d.signature_prefix = argv[i + 4];
      d.reason = argv[i + 5];
      r.dkim.push_back(d);
      r.dkim_checked = true;
      i += 6;
    } else if (opt == "--dmarc" && i + 4 < argc) {
      DmarcAuth d;
      if (!ParseVerdict(argv[i + 1], DmarcVerdict::kPermError, DmarcVerdictName, &d.result)) {
        return 2;
      }
      d.header_from = argv[i + 2];
      d.policy = argv[i + 3];
      d.disposition = argv[i + 4];
      r.dmarc = d;
      i += 5;
    } else if (opt == "--arc" && i + 1 < argc) {
      ArcVerdict a;
      if (!ParseVerdict(argv[i + 1], ArcVerdict::kFail, ArcVerdictName, &a)) return 2;
      r.arc = a;
      i += 2;
    } else {
      return 2;
    }
  }
  fputs(BuildAuthResultsHeader(r).c_str(), stdout);
  return 0;
}
