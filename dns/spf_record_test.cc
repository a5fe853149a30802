// The SPF record parser and macro expansion without DNS: the macro examples of RFC 7208 §7.4,
// record selection (§4.5), and the syntax errors that must be permerrors.
#include "dns/spf_record.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace dns::spf {
namespace {

MacroContext Rfc74Context(bool v6) {
  MacroContext c;
  c.sender = "strong-bad@email.example.com";
  c.local_part = "strong-bad";
  c.sender_domain = "email.example.com";
  c.domain = "email.example.com";
  c.helo = "mx.example.org";
  c.ipv6 = v6;
  EXPECT_TRUE(ParseIp(v6 ? "2001:db8::cb01" : "192.0.2.3", &c.address, &c.ipv6));
  c.ip = v6 ? "2001:db8::cb01" : "192.0.2.3";
  return c;
}

std::string Expand(const std::string& s, bool v6 = false) {
  absl::StatusOr<std::string> out = ExpandMacros(s, Rfc74Context(v6), false, 4096);
  EXPECT_TRUE(out.ok()) << s << ": " << out.status();
  return out.ok() ? *out : "<error>";
}

// RFC 7208 §7.4, every example in the order given there.
TEST(SpfMacroTest, Rfc7208Section74Examples) {
  EXPECT_EQ(Expand("%{s}"), "strong-bad@email.example.com");
  EXPECT_EQ(Expand("%{o}"), "email.example.com");
  EXPECT_EQ(Expand("%{d}"), "email.example.com");
  EXPECT_EQ(Expand("%{d4}"), "email.example.com");
  EXPECT_EQ(Expand("%{d3}"), "email.example.com");
  EXPECT_EQ(Expand("%{d2}"), "example.com");
  EXPECT_EQ(Expand("%{d1}"), "com");
  EXPECT_EQ(Expand("%{dr}"), "com.example.email");
  EXPECT_EQ(Expand("%{d2r}"), "example.email");
  EXPECT_EQ(Expand("%{l}"), "strong-bad");
  EXPECT_EQ(Expand("%{l-}"), "strong.bad");
  EXPECT_EQ(Expand("%{lr}"), "strong-bad");
  EXPECT_EQ(Expand("%{lr-}"), "bad.strong");
  EXPECT_EQ(Expand("%{l1r-}"), "strong");
  EXPECT_EQ(Expand("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(Expand("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(Expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(Expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}"),
            "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(Expand("%{d2}.trusted-domains.example.net"), "example.com.trusted-domains.example.net");
  EXPECT_EQ(Expand("%{ir}.%{v}._spf.%{d2}", true),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacroTest, EscapesAndUpperCase) {
  EXPECT_EQ(Expand("%%%_%-"), "% %20");
  // §7.3: an upper-case macro letter URL-escapes the value.
  MacroContext c = Rfc74Context(false);
  c.local_part = "a b/c";
  absl::StatusOr<std::string> out = ExpandMacros("%{L}", c, false, 4096);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "a%20b%2Fc");
  EXPECT_EQ(Expand("%{H}"), "mx.example.org");
  EXPECT_EQ(Expand("%{i}"), "192.0.2.3");
  EXPECT_EQ(Expand("%{D}"), "email.example.com");
}

TEST(SpfMacroTest, ExplanationOnlyMacrosAndSyntaxErrors) {
  MacroContext c = Rfc74Context(false);
  c.receiver = "mx.receiver.example";
  c.timestamp_s = 1234;
  absl::StatusOr<std::string> out = ExpandMacros(
      "%{i} is not one of %{d}'s designated mail servers (%{c} %{r} %{t})", c, true, 4096);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "192.0.2.3 is not one of email.example.com's designated mail servers "
            "(192.0.2.3 mx.receiver.example 1234)");
  // c, r and t outside explanations, spaces, bad letters, zero digits, lone '%'.
  for (const char* bad :
       {"%{c}", "%{r}.x.com", "%{t}", "a b", "%{x}", "%{d0}", "%{d", "%", "%a", "%{d2r!}", "%{}"}) {
    EXPECT_FALSE(ExpandMacros(bad, c, false, 4096).ok()) << bad;
  }
}

TEST(SpfMacroTest, DomainSpecTruncatesFromTheLeft) {
  MacroContext c = Rfc74Context(false);
  c.local_part = std::string(60, 'a') + "." + std::string(60, 'b') + "." + std::string(60, 'c') +
                 "." + std::string(60, 'd');
  absl::StatusOr<std::string> out = ExpandDomainSpec("%{l}.example.com", c, 253);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_LE(out->size(), 253u);
  EXPECT_EQ(out->substr(0, 60), std::string(60, 'b'));
  EXPECT_FALSE(ExpandDomainSpec("a..example.com", c, 253).ok());
  EXPECT_EQ(*ExpandDomainSpec("_spf.example.com.", c, 253), "_spf.example.com");
}

// A record of many macros of a long sender: only the part that is kept is built, and it is what
// the whole expansion would give (the start of an explanation; the last labels of a name).
TEST(SpfMacroTest, LongExpansionsKeepTheirPart) {
  MacroContext c = Rfc74Context(false);
  c.local_part = std::string(60, 'l') + "." + std::string(60, 'm');
  std::string spec;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&spec, "%{l}.x", i, ".");
  spec += "%{d}";
  absl::StatusOr<std::string> head = ExpandMacros(spec, c, false, 512);
  ASSERT_TRUE(head.ok()) << head.status();
  std::string start;
  for (int i = 0; i < 5; ++i) absl::StrAppend(&start, c.local_part, ".x", i, ".");
  EXPECT_EQ(*head, start.substr(0, 512));
  absl::StatusOr<std::string> name = ExpandDomainSpec(spec, c, 253);
  ASSERT_TRUE(name.ok()) << name.status();
  // The whole would end "...<l>.x1998.<l>.x1999.email.example.com"; labels go from the left
  // until 253 bytes are left.
  EXPECT_LE(name->size(), 253u);
  EXPECT_TRUE(absl::EndsWith(*name, "x1998." + c.local_part + ".x1999.email.example.com")) << *name;
  EXPECT_GT(name->size(), 200u);
}

TEST(SpfRecordTest, SelectsVersionOneOnly) {
  EXPECT_TRUE(IsSpfRecord("v=spf1"));
  EXPECT_TRUE(IsSpfRecord("v=spf1 -all"));
  EXPECT_TRUE(IsSpfRecord("V=SpF1 ~all"));  // §4.5: case-insensitive
  EXPECT_FALSE(IsSpfRecord("v=spf10"));
  EXPECT_FALSE(IsSpfRecord("v=spf1mx"));
  EXPECT_FALSE(IsSpfRecord("spf2.0/pra -all"));
  EXPECT_FALSE(IsSpfRecord(" v=spf1 -all"));
}

TEST(SpfRecordTest, ParsesEveryMechanismAndModifier) {
  absl::StatusOr<Record> r = ParseRecord(
      "v=spf1  +all -include:_spf.example.net ~a ?a:mail.example.com/24//64 mx/30 "
      "MX:example.org ptr ptr:example.com ip4:192.0.2.128/28 ip6:2001:db8::/32 "
      "exists:%{ir}.%{v}._spf.%{d2} redirect=example.org exp=explain._spf.%{d} moo=cow ");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->mechanisms.size(), 11u);
  EXPECT_TRUE(r->has_all);
  EXPECT_EQ(r->mechanisms[0].kind, MechanismKind::kAll);
  EXPECT_EQ(r->mechanisms[1].qualifier, Qualifier::kFail);
  EXPECT_EQ(r->mechanisms[1].domain_spec, "_spf.example.net");
  EXPECT_EQ(r->mechanisms[2].qualifier, Qualifier::kSoftFail);
  EXPECT_EQ(r->mechanisms[2].domain_spec, "");
  const Mechanism& dual = r->mechanisms[3];
  EXPECT_EQ(dual.qualifier, Qualifier::kNeutral);
  EXPECT_EQ(dual.domain_spec, "mail.example.com");
  EXPECT_EQ(dual.cidr4_bits, 24);
  EXPECT_EQ(dual.cidr6_bits, 64);
  EXPECT_EQ(r->mechanisms[4].kind, MechanismKind::kMx);
  EXPECT_EQ(r->mechanisms[4].cidr4_bits, 30);
  EXPECT_EQ(r->mechanisms[4].cidr6_bits, 128);
  EXPECT_EQ(r->mechanisms[5].kind, MechanismKind::kMx);  // case-insensitive name
  EXPECT_EQ(r->mechanisms[6].kind, MechanismKind::kPtr);
  EXPECT_EQ(r->mechanisms[7].domain_spec, "example.com");
  EXPECT_EQ(r->mechanisms[8].cidr4_bits, 28);
  EXPECT_EQ(r->mechanisms[8].network[3], 128);
  EXPECT_EQ(r->mechanisms[9].cidr6_bits, 32);
  EXPECT_EQ(r->mechanisms[9].network[1], 0x01);
  EXPECT_EQ(r->mechanisms[10].kind, MechanismKind::kExists);
  EXPECT_EQ(r->redirect, "example.org");
  EXPECT_EQ(r->explanation, "explain._spf.%{d}");
  EXPECT_EQ(r->mechanisms[9].text, "ip6:2001:db8::/32");

  absl::StatusOr<Record> empty = ParseRecord("v=spf1");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->mechanisms.empty());
  // "a//64" alone: only the IPv6 length.
  absl::StatusOr<Record> v6 = ParseRecord("v=spf1 a//64");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->mechanisms[0].cidr4_bits, 32);
  EXPECT_EQ(v6->mechanisms[0].cidr6_bits, 64);
}

TEST(SpfRecordTest, SyntaxErrorsNameTheTerm) {
  struct Case {
    const char* record;
    const char* problem;
  } cases[] = {
      {"v=spf1 ipv4:192.0.2.1 -all", "unknown mechanism 'ipv4:192.0.2.1'"},
      {"v=spf1 ip4:1.2.3.4 -all moo", "unknown mechanism 'moo'"},
      {"v=spf1 redirect:example.org", "unknown mechanism 'redirect:example.org'"},
      {"v=spf1 moo.cow/far_out=man:dog/cat", "unknown mechanism"},
      {"v=spf1 ip4:192.0.2.300", "invalid ip4 network in 'ip4:192.0.2.300'"},
      {"v=spf1 ip4:192.0.2.0/33", "invalid prefix length"},
      {"v=spf1 ip4:192.0.2.0/024", "invalid prefix length"},
      {"v=spf1 ip6:2001:db8::/129", "invalid prefix length"},
      {"v=spf1 ip6:192.0.2.1", "invalid ip6 network"},
      {"v=spf1 a/33", "invalid IPv4 prefix length"},
      {"v=spf1 mx//129", "invalid IPv6 prefix length"},
      {"v=spf1 a:foo-bar -all", "domain-spec does not end"},
      {"v=spf1 a:example.123", "invalid top label"},
      {"v=spf1 include", "missing domain in 'include'"},
      {"v=spf1 exists:", "missing domain"},
      {"v=spf1 all:foo", "'all' takes no argument"},
      {"v=spf1 -all.", "unknown mechanism '-all.'"},
      {"v=spf1 redirect=a.example.com redirect=b.example.com", "second redirect= modifier"},
      {"v=spf1 exp=a.example.com exp=b.example.com", "second exp= modifier"},
      {"v=spf1 a:%{x}.example.com", "unknown macro letter"},
      {"v=spf1 foo=%{q}", "unknown macro letter"},
      {"v=spf1 a:ctrl.example.com\rptr -all", "invalid character"},
      {"v=spf1 \x80"
       "a:example.net -all",
       "unknown mechanism"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Record> r = ParseRecord(c.record);
    ASSERT_FALSE(r.ok()) << c.record;
    EXPECT_NE(std::string(r.status().message()).find(c.problem), std::string::npos)
        << c.record << " -> " << r.status().message();
  }
}

TEST(SpfRecordTest, DomainsAndAddresses) {
  EXPECT_TRUE(IsValidDomain("example.com"));
  EXPECT_TRUE(IsValidDomain("example.com."));
  EXPECT_FALSE(IsValidDomain("localhost"));
  EXPECT_FALSE(IsValidDomain("a..example.com"));
  EXPECT_FALSE(IsValidDomain(std::string(64, 'a') + ".example.com"));
  EXPECT_TRUE(IsValidDomain(std::string(63, 'a') + ".example.com"));

  std::array<uint8_t, 16> a{}, b{};
  bool v6 = true;
  ASSERT_TRUE(ParseIp("::ffff:192.0.2.7", &a, &v6));  // §5: mapped IPv4 is IPv4
  EXPECT_FALSE(v6);
  ASSERT_TRUE(ParseIp("192.0.2.0", &b, &v6));
  EXPECT_TRUE(PrefixMatches(a, b, 24));
  EXPECT_TRUE(PrefixMatches(a, b, 29));
  EXPECT_FALSE(PrefixMatches(a, b, 30));
  EXPECT_TRUE(PrefixMatches(a, b, 0));
  EXPECT_FALSE(ParseIp("192.0.2", &a, &v6));
  EXPECT_EQ(DottedIp(b, false), "192.0.2.0");
}

// Records come from the network: random mutations of valid ones must parse or fail cleanly,
// and whatever parses must expand without trouble (run under ASan/UBSan as well).
TEST(SpfRecordTest, MutatedRecordsNeverCrash) {
  const std::vector<std::string> seeds = {
      "v=spf1 +all",
      "v=spf1 a:mail.example.com/24//64 mx/30 ptr:example.com -all",
      "v=spf1 ip4:192.0.2.128/28 ip6:2001:db8::/32 ~all",
      "v=spf1 exists:%{ir}.%{v}._spf.%{d2} include:%{l1r+}.%{d} redirect=%{o}",
      "v=spf1 -include:ip4._spf.%{d} exp=explain._spf.%{d} moo=%{L-}%%%_%-",
  };
  const std::string alphabet = "v=spf1 %{}:/.-+~?aimxptrdlsohcv0123456789_,\x80";
  std::mt19937 random(12345);
  MacroContext context = Rfc74Context(true);
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[random() % seeds.size()];
    int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      size_t at = random() % s.size();
      switch (random() % 3) {
        case 0:
          s[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          s.erase(at, 1 + random() % 3);
          break;
        default:
          s.insert(at, 1, alphabet[random() % alphabet.size()]);
      }
    }
    absl::StatusOr<Record> r = ParseRecord(s);
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
      continue;
    }
    ++parsed;
    for (const Mechanism& m : r->mechanisms) {
      if (!m.domain_spec.empty()) (void)ExpandDomainSpec(m.domain_spec, context, 253);
    }
    if (r->redirect) (void)ExpandDomainSpec(*r->redirect, context, 253);
    if (r->explanation) (void)ExpandMacros(*r->explanation, context, true, 512);
  }
  // The mutations are small: a good share stays valid and exercises the expansion.
  EXPECT_GT(parsed, 1000);
}

}  // namespace
}  // namespace dns::spf
