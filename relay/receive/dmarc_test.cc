// DMARC evaluation (RFC 7489 §6.6): identifier alignment, the policy of a subdomain, pct
// sampling, temporary errors, the From field, and what port 25 does with the outcome.
#include "relay/receive/dmarc.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::receive {
namespace {

DmarcDiscovery Found(const std::string& text, const std::string& domain = "example.com",
                     bool organizational = false) {
  DmarcDiscovery d;
  d.status = DmarcDiscovery::Status::kFound;
  d.record = ParseDmarcRecord(text).value();
  d.domain = domain;
  d.organizational = organizational;
  return d;
}

DkimAuth Dkim(DkimVerdict result, const std::string& domain) {
  DkimAuth a;
  a.result = result;
  a.domain = domain;
  return a;
}

DmarcIdentifiers Ids(const std::string& from, SpfVerdict spf, const std::string& spf_domain,
                     std::vector<DkimAuth> dkim = {}) {
  DmarcIdentifiers ids;
  ids.from_domain = from;
  ids.spf = spf;
  ids.spf_domain = spf_domain;
  ids.dkim = std::move(dkim);
  return ids;
}

constexpr int kSampled = 0;      // a roll every pct above 0 selects
constexpr int kNotSampled = 99;  // a roll only pct=100 selects

TEST(DmarcAlignment, RelaxedComparesOrganizationalDomains) {
  EXPECT_TRUE(DmarcAligned("example.com", "example.com", DmarcAlignment::kRelaxed));
  EXPECT_TRUE(DmarcAligned("mail.example.com", "example.com", DmarcAlignment::kRelaxed));
  EXPECT_TRUE(DmarcAligned("example.com", "news.example.com", DmarcAlignment::kRelaxed));
  EXPECT_TRUE(DmarcAligned("a.example.com", "b.example.com", DmarcAlignment::kRelaxed));
  EXPECT_TRUE(DmarcAligned("Example.COM.", "example.com", DmarcAlignment::kRelaxed));
  EXPECT_FALSE(DmarcAligned("example.net", "example.com", DmarcAlignment::kRelaxed));
  // The public suffix list, not "the last two labels": two organizations under co.uk.
  EXPECT_FALSE(DmarcAligned("evil.co.uk", "bank.co.uk", DmarcAlignment::kRelaxed));
  EXPECT_TRUE(DmarcAligned("mail.bank.co.uk", "bank.co.uk", DmarcAlignment::kRelaxed));
  EXPECT_FALSE(DmarcAligned("", "example.com", DmarcAlignment::kRelaxed));
}

TEST(DmarcAlignment, StrictComparesNames) {
  EXPECT_TRUE(DmarcAligned("example.com", "EXAMPLE.com", DmarcAlignment::kStrict));
  EXPECT_FALSE(DmarcAligned("mail.example.com", "example.com", DmarcAlignment::kStrict));
  EXPECT_FALSE(DmarcAligned("example.com", "news.example.com", DmarcAlignment::kStrict));
}

TEST(Dmarc, PassesWithAlignedSpfOrAlignedDkim) {
  DmarcDiscovery reject = Found("v=DMARC1; p=reject");
  // SPF alone, for a bounce subdomain of the same organization.
  DmarcOutcome o =
      EvaluateDmarc(Ids("example.com", SpfVerdict::kPass, "bounces.example.com"), reject, kSampled);
  EXPECT_EQ(o.result, DmarcVerdict::kPass);
  EXPECT_TRUE(o.spf_aligned);
  EXPECT_FALSE(o.dkim_aligned);
  // DKIM alone: SPF failed (a forwarder's IP), the signature survived.
  o = EvaluateDmarc(
      Ids("example.com", SpfVerdict::kFail, "example.com",
          {Dkim(DkimVerdict::kFail, "example.com"), Dkim(DkimVerdict::kPass, "example.com")}),
      reject, kSampled);
  EXPECT_EQ(o.result, DmarcVerdict::kPass);
  EXPECT_TRUE(o.dkim_aligned);
  EXPECT_EQ(o.disposition, DmarcPolicy::kNone);
}

TEST(Dmarc, PassingButUnalignedIsAFailure) {
  // The classic spoof: SPF and DKIM pass, for the sender's own domain, not the From domain's.
  DmarcOutcome o = EvaluateDmarc(Ids("bank.example", SpfVerdict::kPass, "spammer.example",
                                     {Dkim(DkimVerdict::kPass, "spammer.example")}),
                                 Found("v=DMARC1; p=reject", "bank.example"), kSampled);
  EXPECT_EQ(o.result, DmarcVerdict::kFail);
  EXPECT_EQ(o.policy, DmarcPolicy::kReject);
  EXPECT_EQ(o.disposition, DmarcPolicy::kReject);
  EXPECT_EQ(o.problem, "spf=pass (not aligned), DKIM passes only for other domains");
  EXPECT_EQ(o.policy_domain, "bank.example");
}

TEST(Dmarc, StrictModesRefuseSubdomains) {
  DmarcIdentifiers ids = Ids("example.com", SpfVerdict::kPass, "bounces.example.com",
                             {Dkim(DkimVerdict::kPass, "mail.example.com")});
  EXPECT_EQ(EvaluateDmarc(ids, Found("v=DMARC1; p=reject"), kSampled).result, DmarcVerdict::kPass);
  EXPECT_EQ(EvaluateDmarc(ids, Found("v=DMARC1; p=reject; aspf=s"), kSampled).result,
            DmarcVerdict::kPass);  // DKIM still aligns, relaxed
  EXPECT_EQ(EvaluateDmarc(ids, Found("v=DMARC1; p=reject; adkim=s"), kSampled).result,
            DmarcVerdict::kPass);  // SPF still aligns, relaxed
  EXPECT_EQ(EvaluateDmarc(ids, Found("v=DMARC1; p=reject; adkim=s; aspf=s"), kSampled).result,
            DmarcVerdict::kFail);
}

TEST(Dmarc, SubdomainPolicyAppliesOnlyThroughTheOrganizationalDomain) {
  DmarcIdentifiers ids = Ids("news.example.com", SpfVerdict::kFail, "news.example.com");
  // The From domain has no record of its own: the organizational domain's sp= applies.
  DmarcOutcome o =
      EvaluateDmarc(ids, Found("v=DMARC1; p=reject; sp=quarantine", "example.com", true), kSampled);
  EXPECT_EQ(o.policy, DmarcPolicy::kQuarantine);
  EXPECT_EQ(o.disposition, DmarcPolicy::kQuarantine);
  // Without sp=, p= covers subdomains too.
  o = EvaluateDmarc(ids, Found("v=DMARC1; p=reject", "example.com", true), kSampled);
  EXPECT_EQ(o.policy, DmarcPolicy::kReject);
  // A record published at the subdomain itself: its p=, whatever its sp= says.
  o = EvaluateDmarc(ids, Found("v=DMARC1; p=reject; sp=none", "news.example.com", false), kSampled);
  EXPECT_EQ(o.policy, DmarcPolicy::kReject);
}

TEST(Dmarc, PctSamplingFallsBackToTheNextMilderPolicy) {
  DmarcIdentifiers ids = Ids("example.com", SpfVerdict::kFail, "example.com");
  auto disposition = [&](const char* record, int roll) {
    return EvaluateDmarc(ids, Found(record), roll).disposition;
  };
  // pct=100 (the default) applies to every roll, pct=0 to none (§6.6.4).
  EXPECT_EQ(disposition("v=DMARC1; p=reject", kNotSampled), DmarcPolicy::kReject);
  EXPECT_EQ(disposition("v=DMARC1; p=reject; pct=100", kNotSampled), DmarcPolicy::kReject);
  EXPECT_EQ(disposition("v=DMARC1; p=reject; pct=0", kSampled), DmarcPolicy::kQuarantine);
  EXPECT_EQ(disposition("v=DMARC1; p=quarantine; pct=0", kSampled), DmarcPolicy::kNone);
  EXPECT_EQ(disposition("v=DMARC1; p=none; pct=0", kSampled), DmarcPolicy::kNone);
  // In between, the roll decides: rolls 0..24 are a quarter of [0, 100).
  EXPECT_EQ(disposition("v=DMARC1; p=reject; pct=25", 24), DmarcPolicy::kReject);
  EXPECT_EQ(disposition("v=DMARC1; p=reject; pct=25", 25), DmarcPolicy::kQuarantine);
  // The requested policy is reported as published either way.
  EXPECT_EQ(EvaluateDmarc(ids, Found("v=DMARC1; p=reject; pct=0"), kSampled).policy,
            DmarcPolicy::kReject);
}

TEST(Dmarc, DiscoveryOutcomesAndTemporaryErrors) {
  DmarcIdentifiers ids = Ids("example.com", SpfVerdict::kFail, "example.com");
  EXPECT_EQ(EvaluateDmarc(ids, DmarcDiscovery(), kSampled).result, DmarcVerdict::kNone);
  DmarcDiscovery d;
  d.status = DmarcDiscovery::Status::kTempError;
  d.problem = "_dmarc.example.com: transient timeout";
  DmarcOutcome o = EvaluateDmarc(ids, d, kSampled);
  EXPECT_EQ(o.result, DmarcVerdict::kTempError);
  EXPECT_EQ(o.problem, d.problem);
  d.status = DmarcDiscovery::Status::kPermError;
  EXPECT_EQ(EvaluateDmarc(ids, d, kSampled).result, DmarcVerdict::kPermError);
  // An aligned check without an answer could still have passed: temperror, not fail.
  DmarcDiscovery reject = Found("v=DMARC1; p=reject");
  EXPECT_EQ(
      EvaluateDmarc(Ids("example.com", SpfVerdict::kTempError, "example.com"), reject, kSampled)
          .result,
      DmarcVerdict::kTempError);
  EXPECT_EQ(EvaluateDmarc(Ids("example.com", SpfVerdict::kFail, "example.com",
                              {Dkim(DkimVerdict::kTempError, "example.com")}),
                          reject, kSampled)
                .result,
            DmarcVerdict::kTempError);
  // ... but a temperror for some other domain changes nothing.
  EXPECT_EQ(EvaluateDmarc(Ids("example.com", SpfVerdict::kTempError, "other.example",
                              {Dkim(DkimVerdict::kTempError, "other.example")}),
                          reject, kSampled)
                .result,
            DmarcVerdict::kFail);
}

TEST(Dmarc, TheFromField) {
  EXPECT_EQ(MessageFromDomain("From: Alice <alice@Example.COM>\r\nTo: b@c\r\n\r\nbody\r\n").value(),
            "example.com");
  EXPECT_EQ(MessageFromDomain("Subject: x\r\nfrom: a@example.net\r\n\r\n").value(), "example.net");
  auto problem = [](const char* m) { return std::string(MessageFromDomain(m).status().message()); };
  EXPECT_EQ(problem("To: b@c\r\n\r\nbody\r\n"), "no From field");
  EXPECT_EQ(problem("From: a@example.com\r\nFrom: ceo@bank.example\r\n\r\n"), "2 From fields");
  EXPECT_EQ(problem("From: a@example.com, ceo@bank.example\r\n\r\n"),
            "From: From has several mailboxes");
  EXPECT_EQ(problem("From: undisclosed\r\n\r\n"), "From: From has no domain");
  // The body is not the header: a From line there does not count.
  EXPECT_EQ(problem("\r\nFrom: a@example.com\r\n"), "no From field");

  DmarcIdentifiers ids;
  ids.from_problem = "2 From fields";
  DmarcOutcome o = EvaluateDmarc(ids, Found("v=DMARC1; p=reject"), kSampled);
  EXPECT_EQ(o.result, DmarcVerdict::kPermError);
  EXPECT_EQ(o.problem, "2 From fields");
}

TEST(Dmarc, AuthenticationResults) {
  DmarcOutcome o = EvaluateDmarc(Ids("bank.example", SpfVerdict::kFail, "bank.example"),
                                 Found("v=DMARC1; p=reject; pct=0", "bank.example"), kSampled);
  AuthResults ar;
  ar.authserv_id = "mx.local.test";
  ar.dkim_checked = false;
  ar.dmarc = ToDmarcAuth(o);
  EXPECT_EQ(AuthResultsPayload(ar),
            "mx.local.test;\r\n\tdmarc=fail (p=reject dis=quarantine) header.from=bank.example");
  o.result = DmarcVerdict::kPass;
  ar.dmarc = ToDmarcAuth(o);
  EXPECT_EQ(AuthResultsPayload(ar), "mx.local.test;\r\n\tdmarc=pass header.from=bank.example");
  ar.dmarc = ToDmarcAuth(DmarcOutcome());
  EXPECT_EQ(AuthResultsPayload(ar), "mx.local.test;\r\n\tdmarc=none");
}

TEST(InboundDecision, DmarcPolicyMapsToTheConfiguredAction) {
  DmarcIdentifiers ids = Ids("bank.example", SpfVerdict::kSoftFail, "bank.example");
  InboundPolicy policy;  // the defaults: refuse, quarantine-header, refuse
  DmarcOutcome reject = EvaluateDmarc(ids, Found("v=DMARC1; p=reject", "bank.example"), kSampled);
  InboundDecision d = DecideInbound(ids, &reject, policy);
  EXPECT_EQ(d.action, InboundAction::kRefuse);
  EXPECT_EQ(d.reply_text,
            "Unauthenticated mail from bank.example is refused by bank.example's DMARC policy "
            "(p=reject)");
  EXPECT_EQ(d.why,
            "dmarc=fail header.from=bank.example p=reject dis=reject: spf=softfail, no DKIM "
            "signature passes");
  policy.dmarc_reject = InboundAction::kQuarantineHeader;
  EXPECT_EQ(DecideInbound(ids, &reject, policy).action, InboundAction::kQuarantineHeader);
  policy.dmarc_reject = InboundAction::kAccept;
  EXPECT_EQ(DecideInbound(ids, &reject, policy).action, InboundAction::kAccept);

  policy = InboundPolicy();
  DmarcOutcome quarantine =
      EvaluateDmarc(ids, Found("v=DMARC1; p=quarantine", "bank.example"), kSampled);
  EXPECT_EQ(DecideInbound(ids, &quarantine, policy).action, InboundAction::kQuarantineHeader);
  // pct=0 turns a reject into a quarantine, never into a refusal.
  DmarcOutcome sampled_out =
      EvaluateDmarc(ids, Found("v=DMARC1; p=reject; pct=0", "bank.example"), kSampled);
  EXPECT_EQ(DecideInbound(ids, &sampled_out, policy).action, InboundAction::kQuarantineHeader);
  DmarcOutcome none = EvaluateDmarc(ids, Found("v=DMARC1; p=none", "bank.example"), kSampled);
  EXPECT_EQ(DecideInbound(ids, &none, policy).action, InboundAction::kAccept);
}

TEST(InboundDecision, TemporaryErrorsAreNeverRefused) {
  DmarcIdentifiers ids = Ids("bank.example", SpfVerdict::kTempError, "bank.example");
  DmarcOutcome o = EvaluateDmarc(ids, Found("v=DMARC1; p=reject", "bank.example"), kSampled);
  ASSERT_EQ(o.result, DmarcVerdict::kTempError);
  EXPECT_EQ(DecideInbound(ids, &o, InboundPolicy()).action, InboundAction::kAccept);
}

TEST(InboundDecision, SpfFailWithoutDkim) {
  InboundPolicy policy;
  // A domain without DMARC whose SPF ends in -all: refused unless a signature verifies.
  DmarcIdentifiers ids = Ids("forger.example", SpfVerdict::kFail, "forger.example");
  DmarcOutcome none = EvaluateDmarc(ids, DmarcDiscovery(), kSampled);
  InboundDecision d = DecideInbound(ids, &none, policy);
  EXPECT_EQ(d.action, InboundAction::kRefuse);
  EXPECT_EQ(d.reply_text,
            "SPF of forger.example does not authorize this host, and no DKIM signature verifies");
  // Any passing signature saves it, aligned or not: the message is someone's responsibility.
  ids.dkim = {Dkim(DkimVerdict::kPass, "mailinglist.example")};
  EXPECT_EQ(DecideInbound(ids, &none, policy).action, InboundAction::kAccept);
  ids.dkim.clear();
  // Without DMARC evaluated the rule still holds; and it can be turned off.
  EXPECT_EQ(DecideInbound(ids, nullptr, policy).action, InboundAction::kRefuse);
  policy.refuse_spf_fail_without_dkim = false;
  EXPECT_EQ(DecideInbound(ids, nullptr, policy).action, InboundAction::kAccept);
  // softfail (~all) is not fail.
  policy = InboundPolicy();
  ids.spf = SpfVerdict::kSoftFail;
  EXPECT_EQ(DecideInbound(ids, nullptr, policy).action, InboundAction::kAccept);
}

TEST(InboundDecision, AMessageWithoutOneFromAddress) {
  DmarcIdentifiers ids;
  ids.from_problem = "2 From fields";
  ids.spf = SpfVerdict::kPass;
  DmarcOutcome o = EvaluateDmarc(ids, DmarcDiscovery(), kSampled);
  InboundDecision d = DecideInbound(ids, &o, InboundPolicy());
  EXPECT_EQ(d.action, InboundAction::kRefuse);
  EXPECT_EQ(d.reply_text, "A message needs exactly one From: address (RFC 5322 section 3.6)");
  // Without DMARC, the From field is nobody's business here.
  EXPECT_EQ(DecideInbound(ids, nullptr, InboundPolicy()).action, InboundAction::kAccept);
}

TEST(InboundDecision, ActionNames) {
  for (InboundAction a :
       {InboundAction::kAccept, InboundAction::kQuarantineHeader, InboundAction::kRefuse}) {
    EXPECT_EQ(ParseInboundAction(InboundActionName(a)), a);
  }
  EXPECT_FALSE(ParseInboundAction("reject").has_value());
  EXPECT_FALSE(ParseInboundAction("Refuse").has_value());
}

}  // namespace
}  // namespace relay::receive
