#include "dns/spf_test_zones.h"

namespace dns::spf_testing {

ZoneBuilder AppendixA() {
  ZoneBuilder z;
  // UnboundServer::Start waits for an answer about "test.": give it one at once.
  z.Zone("test");
  z.Zone("example.com")
      .Data("example.com. 300 IN MX 10 mail-a.example.com.")
      .Data("example.com. 300 IN MX 20 mail-b.example.com.")
      .Data("example.com. 300 IN A 192.0.2.10")
      .Data("amy.example.com. 300 IN A 192.0.2.65")
      .Data("bob.example.com. 300 IN A 192.0.2.66")
      .Data("mail-a.example.com. 300 IN A 192.0.2.129")
      .Data("mail-b.example.com. 300 IN A 192.0.2.130")
      .Data("www.example.com. 300 IN CNAME example.com.");
  z.Zone("example.org")
      .Data("example.org. 300 IN MX 10 mail-c.example.org.")
      .Data("mail-c.example.org. 300 IN A 192.0.2.140");
  z.Zone("2.0.192.in-addr.arpa")
      .Ptr("192.0.2.10", "example.com")
      .Ptr("192.0.2.65", "amy.example.com")
      .Ptr("192.0.2.66", "bob.example.com")
      .Ptr("192.0.2.129", "mail-a.example.com")
      .Ptr("192.0.2.130", "mail-b.example.com")
      .Ptr("192.0.2.140", "mail-c.example.org");
  // A PTR whose name does not resolve back to the address.
  z.Zone("10.in-addr.arpa").Ptr("10.0.0.4", "bob.example.com");
  return z;
}

std::string SuiteZones() {
  ZoneBuilder z = AppendixA();
  // A.4: both an address range and a PTR name in example.com are required.
  z.Txt("example.com", "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all")
      .Txt("ip4._spf.example.com", "v=spf1 -ip4:192.0.2.0/24 +all")
      .Txt("ptr._spf.example.com", "v=spf1 -ptr:example.com +all");
  z.Zone("example.net");
  z.Txt("allowed.example.net", "v=spf1 ip4:192.0.2.0/24 -all")
      .Txt("inc-pass.example.net", "v=spf1 include:allowed.example.net -all")
      .Data("norecord.example.net. 300 IN A 192.0.2.1")
      .Txt("inc-none.example.net", "v=spf1 include:norecord.example.net -all")
      .Txt("inc-nx.example.net", "v=spf1 include:nx.example.net -all")
      .Txt("inc-temp.example.net", "v=spf1 include:x.refused.example.net -all")
      .Txt("redir.example.net", "v=spf1 redirect=allowed.example.net")
      .Txt("redir-none.example.net", "v=spf1 redirect=norecord.example.net")
      .Txt("redir-all.example.net", "v=spf1 ?all redirect=allowed.example.net")
      .Txt("redir-exp.example.net", "v=spf1 redirect=expl.example.net exp=other.example.net")
      .Txt("other.example.net", "not this one")
      .Txt("expl.example.net", "v=spf1 ip4:192.0.2.0/24 -all exp=why.example.net")
      .Txt("why.example.net", "%{i} is not one of the designated mail servers of %{d}.")
      .Txt("expl-missing.example.net", "v=spf1 -all exp=nx.example.net")
      .Txt("void2.example.net", "v=spf1 a:nx1.example.net mx:nx2.example.net -all")
      .Txt("void3.example.net", "v=spf1 a:nx1.example.net a:nx2.example.net a:nx3.example.net -all")
      .Txt("two.example.net", "v=spf1 -all")
      .Txt("two.example.net", "V=SPF1 +all")
      .Txt("one.example.net", "v=spf1 -all")
      .Txt("one.example.net", "google-site-verification=abc")
      .Txt("one.example.net", "v=spf10 +all")
      .Txt("bad.example.net", "v=spf1 ipv4:192.0.2.1 -all")
      .Txt("late-error.example.net", "v=spf1 +all moo")
      .Data("split.example.net. 300 IN TXT \"v=spf1 ip4:192.0\" \".2.0/24 -all\"")
      .Txt("upper.example.net", "V=SPF1 IP4:192.0.2.0/24 -ALL")
      .Txt("v6.example.net", "v=spf1 ip6:2001:db8:aaaa::/48 a:host6.example.net//64 -all")
      .Txt("dual.example.net", "v=spf1 a:host6.example.net/24//64 -all")
      .Data("host6.example.net. 300 IN AAAA 2001:db8:bbbb:1::1")
      .Data("host6.example.net. 300 IN A 192.0.2.77")
      .Txt("dnsbl.example.net",
           "v=spf1 exists:%{l1r+}.mobile-users._spf.%{d} "
           "exists:%{ir}.%{l1r+}.remote-users._spf.%{d} -all")
      .Data("mary.mobile-users._spf.dnsbl.example.net. 300 IN A 127.0.0.2")
      .Data("15.15.168.192.joel.remote-users._spf.dnsbl.example.net. 300 IN A 127.0.0.2")
      .Txt("pmacro.example.net", "v=spf1 exists:%{p}.allow.example.net -all")
      .Data("amy.example.com.allow.example.net. 300 IN A 127.0.0.2")
      .Txt("manymx.example.net", "v=spf1 mx -all")
      .Txt("relay.example.net", "v=spf1 ip4:192.0.2.10 ~all")
      .Txt("relay-ok.example.net", "v=spf1 ip4:192.0.2.10 ip6:2001:db8::25 -all")
      .Txt("relay-deep.example.net", "v=spf1 ip4:192.0.2.10 include:limit10.example.net -all")
      .Txt("helo.example.net", "v=spf1 a -all")
      .Data("helo.example.net. 300 IN A 192.0.2.99");
  for (int i = 0; i < 11; ++i) {
    z.Data(absl::StrCat("manymx.example.net. 300 IN MX ", i, " mx", i, ".example.net."));
  }
  std::string includes;
  for (int i = 1; i <= 11; ++i) {
    z.Txt(absl::StrCat("l", i, ".example.net"), "v=spf1 -all");
    absl::StrAppend(&includes, " include:l", i, ".example.net");
    if (i == 10) z.Txt("limit10.example.net", absl::StrCat("v=spf1", includes, " -all"));
    if (i == 11) z.Txt("limit11.example.net", absl::StrCat("v=spf1", includes, " -all"));
  }
  z.Txt("nested.example.net", "v=spf1 include:limit10.example.net -all");
  // Corners of the grammar and of the macros, mostly for the comparison with pyspf.
  z.Txt("modchars.example.net", "v=spf1 moo.cow-far_out=man:dog/cat ip4:192.0.2.5 -all")
      .Txt("unknownmod.example.net", "v=spf1 foo=%{d}bar ?ip4:192.0.2.0/24 -all")
      .Txt("empty.example.net", "v=spf1")
      .Txt("zero.example.net", "v=spf1 ip4:0.0.0.0/0 ~ip6:::/0 -all")
      .Txt("ptrorg.example.net", "v=spf1 ptr:example.org -all")
      .Txt("mxzero.example.net", "v=spf1 mx:example.com//0 mx:example.org/0 -all")
      .Txt("caps.example.net", "v=spf1 A:AMY.EXAMPLE.COM/30 Mx:Example.Org -ALL")
      .Txt("loop.example.net", "v=spf1 redirect=loop.example.net")
      .Txt("incredir.example.net", "v=spf1 include:redir.example.net ~all")
      .Txt("helomacro.example.net", "v=spf1 exists:%{i}.%{v}.%{h}.chk.example.net -all")
      .Data("10.2.0.192.in-addr.mx.client.example.chk.example.net. 300 IN A 127.0.0.2")
      .Txt("upmacro.example.net", "v=spf1 exists:%{L}.%{O2}.%{i4r}.up.example.net -all")
      .Data("joel.example.net.5.2.0.192.up.example.net. 300 IN A 127.0.0.2")
      // RFC 7208 §7.1: transformers = *DIGIT [ "r" ]; the digits come first.
      .Txt("badmacro.example.net", "v=spf1 exists:%{ir4}.up.example.net -all")
      .Txt("leadzero.example.net", "v=spf1 ip4:192.0.2.5/032 -all")
      .Txt("qualifiers.example.net",
           "v=spf1 ?ip4:192.0.2.5 ~ip4:192.0.2.10 -ip4:192.0.2.65 +ip4:192.0.2.129 "
           "?ip6:2001:db8::25 ~ip6:2001:db8:aaaa::/48");
  std::string out = z.str();
  absl::StrAppend(&out, "  local-zone: \"refused.example.net.\" refuse\n");
  return out;
}

std::vector<std::string> SuiteDomains() {
  std::vector<std::string> names = {
      "example.com",
      "ip4._spf.example.com",
      "ptr._spf.example.com",
      "allowed.example.net",
      "inc-pass.example.net",
      "norecord.example.net",
      "inc-none.example.net",
      "inc-nx.example.net",
      "inc-temp.example.net",
      "redir.example.net",
      "redir-none.example.net",
      "redir-all.example.net",
      "redir-exp.example.net",
      "expl.example.net",
      "expl-missing.example.net",
      "void2.example.net",
      "void3.example.net",
      "two.example.net",
      "one.example.net",
      "bad.example.net",
      "late-error.example.net",
      "split.example.net",
      "upper.example.net",
      "v6.example.net",
      "dual.example.net",
      "dnsbl.example.net",
      "pmacro.example.net",
      "manymx.example.net",
      "relay.example.net",
      "relay-ok.example.net",
      "relay-deep.example.net",
      "helo.example.net",
      "limit10.example.net",
      "limit11.example.net",
      "nested.example.net",
      "nothere.example.net",
      "modchars.example.net",
      "unknownmod.example.net",
      "empty.example.net",
      "zero.example.net",
      "ptrorg.example.net",
      "mxzero.example.net",
      "caps.example.net",
      "loop.example.net",
      "incredir.example.net",
      "helomacro.example.net",
      "upmacro.example.net",
      "badmacro.example.net",
      "badmacro.example.net",
      "leadzero.example.net",
      "qualifiers.example.net",
  };
  return names;
}

}  // namespace dns::spf_testing
