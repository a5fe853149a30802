// The DNS data of the SPF tests: RFC 7208 Appendix A (example.com, example.org and their reverse
// zones) and one name per case under example.net, as unbound "server:" lines for
// dns/testing/unbound_server.h. Shared by dns/spf_test.cc and dns/spf_pyspf_test.cc.
//
// Test-only; pure functions.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dns::spf_testing {

class ZoneBuilder {
 public:
  ZoneBuilder& Zone(const std::string& name) {
    absl::StrAppend(&z_, "  local-zone: \"", name, ".\" static\n");
    return Data(absl::StrCat(name, ". 3600 IN SOA ns.", name, ". hostmaster.", name,
                             ". 1 3600 600 86400 60"));
  }
  ZoneBuilder& Data(const std::string& rr) {
    absl::StrAppend(&z_, "  local-data: '", rr, "'\n");
    return *this;
  }
  // Text over 255 bytes is published as several character-strings (RFC 7208 §3.3).
  ZoneBuilder& Txt(const std::string& name, const std::string& text) {
    std::string rr = absl::StrCat(name, ". 300 IN TXT");
    for (size_t i = 0; i < text.size(); i += 255) {
      absl::StrAppend(&rr, " \"", text.substr(i, 255), "\"");
    }
    return Data(rr);
  }
  ZoneBuilder& Ptr(const std::string& ip, const std::string& name) {
    absl::StrAppend(&z_, "  local-data-ptr: \"", ip, " ", name, "\"\n");
    return *this;
  }
  std::string str() const { return z_; }

 private:
  std::string z_;
};

// RFC 7208 Appendix A, without example.com's own SPF record (each case adds it).
ZoneBuilder AppendixA();

// Appendix A with the A.4 record at example.com, plus the example.net cases.
std::string SuiteZones();

// The names in SuiteZones() that publish an SPF record (or are meant to be checked).
std::vector<std::string> SuiteDomains();

}  // namespace dns::spf_testing
