#include "dkim/signer.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/test_util.h"
#include "dkim/verifier.h"
#include "gtest/gtest.h"

namespace dkim {
namespace {

using ::dkim::testing::SplitFields;
using ::dkim::testing::TagValue;
using ::dkim::testing::TestData;

constexpr int64_t kRfc8463Time = 1528637909;
constexpr int64_t kNow = 1700000000;

// RFC 8463 Appendix A.2 public keys.
constexpr char kRfcEd25519Record[] =
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
constexpr char kRfcRsaRecord[] =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/b"
    "yYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKr"
    "M3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K"
    "4w3QIDAQAB";

absl::StatusOr<std::string> Sign(const Signer& signer, std::string_view message, int64_t now) {
  SigningSession session = signer.Begin();
  session.Update(message);
  return session.Finish(now);
}

// A lookup serving fixed records.
KeyLookup MapLookup(absl::flat_hash_map<std::string, std::string> records) {
  return [records = std::move(records)](std::string_view selector,
                                        std::string_view domain) -> absl::StatusOr<std::string> {
    auto it = records.find(absl::StrCat(std::string(selector), "._domainkey.", std::string(domain)));
    if (it == records.end()) return absl::NotFoundError("NXDOMAIN");
    return it->second;
  };
}

// RFC 8463 Appendix A: with the published keys, message and header list, the signer reproduces
// the published bh= and b= of both signatures (Ed25519 and RSASSA-PKCS1-v1_5 are deterministic).
TEST(SignerTest, Rfc8463AppendixA) {
  SignerConfig config;
  config.keys.push_back({"football.example.com", "brisbane", "", TestData("rfc8463-ed25519.key"),
                         "@football.example.com"});
  config.keys.push_back(
      {"football.example.com", "test", "", TestData("rfc8463-rsa.pem"), "@football.example.com"});
  config.headers = {"from", "to", "subject", "date", "message-id"};
  config.oversigned_headers = {"from", "subject", "date"};
  config.include_query_method = true;
  config.header_list_separator = " : ";
  absl::StatusOr<std::unique_ptr<Signer>> signer = Signer::Create(config);
  ASSERT_TRUE(signer.ok()) << signer.status();
  std::string message = TestData("rfc8463-message.eml");
  absl::StatusOr<std::string> out = Sign(**signer, message, kRfc8463Time);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<std::string> fields = SplitFields(*out);
  ASSERT_EQ(fields.size(), 2u) << *out;
  EXPECT_EQ(TagValue(fields[0], "a"), "ed25519-sha256");
  EXPECT_EQ(TagValue(fields[0], "bh"), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
  EXPECT_EQ(TagValue(fields[0], "h"), "from:to:subject:date:message-id:from:subject:date");
  EXPECT_EQ(TagValue(fields[0], "b"),
            "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1"
            "Dw==");
  EXPECT_EQ(TagValue(fields[1], "a"), "rsa-sha256");
  EXPECT_EQ(TagValue(fields[1], "bh"), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
  EXPECT_EQ(TagValue(fields[1], "b"),
            "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rp"
            "o1tFOeS9mPYQTnGdaSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY"
            "+8=");
  EXPECT_EQ((*signer)->key_count(), 2u);

  // The published public keys are the ones our keys produce.
  absl::StatusOr<PrivateKey> ed = PrivateKey::FromFileContents(TestData("rfc8463-ed25519.key"));
  ASSERT_TRUE(ed.ok());
  EXPECT_EQ(ed->PublicKeyRecord(), kRfcEd25519Record);

  // And the signed message verifies with them.
  std::vector<VerifyResult> results =
      VerifyMessage(*out + message,
                    MapLookup({{"brisbane._domainkey.football.example.com", kRfcEd25519Record},
                               {"test._domainkey.football.example.com", kRfcRsaRecord}}),
                    kRfc8463Time);
  ASSERT_EQ(results.size(), 2u);
  for (const VerifyResult& r : results) {
    EXPECT_EQ(r.status, VerifyStatus::kPass) << r.selector << ": " << r.reason;
  }
}

// The RFC's own signed message, as published, verifies.
TEST(VerifierTest, Rfc8463PublishedMessage) {
  std::string signed_message = absl::StrCat(
      "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
      " d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
      " subject : date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
      " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
      " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
      "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
      " d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
      " date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
      " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
      " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
      " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n",
      TestData("rfc8463-message.eml"));
  KeyLookup lookup =
      MapLookup({{"brisbane._domainkey.football.example.com", kRfcEd25519Record},
                 {"test._domainkey.football.example.com", kRfcRsaRecord}});
  std::vector<VerifyResult> results = VerifyMessage(signed_message, lookup, kRfc8463Time);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, VerifyStatus::kPass) << results[0].reason;
  EXPECT_EQ(results[1].status, VerifyStatus::kPass) << results[1].reason;

  std::string altered = signed_message;
  altered.replace(altered.find("Is dinner ready?"), 16, "Is dinner burnt?");
  for (const VerifyResult& r : VerifyMessage(altered, lookup, kRfc8463Time)) {
    EXPECT_EQ(r.status, VerifyStatus::kFail);
  }
  // A lookup that fails temporarily gives temperror; a missing key permerror.
  KeyLookup broken = [](std::string_view, std::string_view) -> absl::StatusOr<std::string> {
    return absl::UnavailableError("SERVFAIL");
  };
  EXPECT_EQ(VerifyMessage(signed_message, broken, kRfc8463Time)[0].status,
            VerifyStatus::kTempError);
  EXPECT_EQ(VerifyMessage(signed_message, MapLookup({}), kRfc8463Time)[0].status,
            VerifyStatus::kPermError);
  // Testing mode turns a failure into neutral.
  KeyLookup testing = MapLookup(
      {{"brisbane._domainkey.football.example.com", absl::StrCat(kRfcEd25519Record, "; t=y")},
       {"test._domainkey.football.example.com", kRfcRsaRecord}});
  EXPECT_EQ(VerifyMessage(altered, testing, kRfc8463Time)[0].status, VerifyStatus::kNeutral);
}

class RoundTripTest : public ::testing::TestWithParam<std::tuple<Canonicalization, bool>> {};

std::string Repeated(std::string_view unit, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out.append(unit);
  return out;
}

std::string SampleMessage() {
  return "Received: from a by b; Fri, 1 Jan 2021 00:00:00 +0000\r\n"
         "From: \"Sender, Esq.\" <sender@Mail.Example.COM>\r\n"
         "To: rcpt@example.net,\r\n\t other@example.org\r\n"
         "Subject:   A   folded\r\n  subject  \r\n"
         "Date: Fri, 1 Jan 2021 00:00:00 +0000\r\n"
         "Message-ID: <1@mail.example.com>\r\n"
         "X-Unsigned: yes\r\n"
         "\r\n"
         "Body line one  \r\n"
         "\tindented\t\tline\r\n"
         "\r\n"
         "last line\r\n"
         "\r\n\r\n";
}

TEST_P(RoundTripTest, SignThenVerify) {
  auto [canon, dual] = GetParam();
  absl::StatusOr<PrivateKey> rsa = PrivateKey::Generate(KeyAlgorithm::kRsaSha256, 2048);
  absl::StatusOr<PrivateKey> ed = PrivateKey::Generate(KeyAlgorithm::kEd25519Sha256, 0);
  ASSERT_TRUE(rsa.ok() && ed.ok());
  SignerConfig config;
  config.keys.push_back({"example.com", "rsa1", "", *rsa->ToPem(), ""});
  if (dual) config.keys.push_back({"example.com", "ed1", "", *ed->ToPem(), ""});
  config.header_canonicalization = canon;
  config.body_canonicalization = canon;
  config.expire_s = 3600;
  absl::StatusOr<std::unique_ptr<Signer>> signer = Signer::Create(config);
  ASSERT_TRUE(signer.ok()) << signer.status();
  std::string message = SampleMessage();
  absl::StatusOr<std::string> sigs = Sign(**signer, message, kNow);
  ASSERT_TRUE(sigs.ok()) << sigs.status();
  std::vector<std::string> fields = SplitFields(*sigs);
  ASSERT_EQ(fields.size(), dual ? 2u : 1u);
  for (const std::string& f : fields) {
    // Folded at 78 columns, every line but the first starts with WSP, ends in CRLF.
    size_t start = 0;
    while (start < f.size()) {
      size_t eol = f.find("\r\n", start);
      ASSERT_NE(eol, std::string::npos);
      EXPECT_LE(eol - start, HeaderFolder::kWidthMax) << f;
      start = eol + 2;
    }
    EXPECT_EQ(TagValue(f, "d"), "example.com");
    EXPECT_EQ(TagValue(f, "x"), std::to_string(kNow + 3600));
    EXPECT_EQ(TagValue(f, "h"),
              "from:to:subject:date:message-id:from:to:subject");
  }
  KeyLookup lookup = MapLookup({{"rsa1._domainkey.example.com", rsa->PublicKeyRecord()},
                                {"ed1._domainkey.example.com", ed->PublicKeyRecord()}});
  std::string signed_message = *sigs + message;
  for (const VerifyResult& r : VerifyMessage(signed_message, lookup, kNow)) {
    EXPECT_EQ(r.status, VerifyStatus::kPass) << r.selector << ": " << r.reason;
  }
  // Alterations after signing.
  std::vector<std::string> altered;
  altered.push_back(signed_message + "appended\r\n");
  altered.push_back(*sigs + "From: evil@example.com\r\n" + message);   // From is over-signed
  altered.push_back(*sigs + "Subject: other\r\n" + message);          // so is Subject
  std::string changed = signed_message;
  changed.replace(changed.find("one"), 3, "two");
  altered.push_back(changed);
  for (const std::string& m : altered) {
    for (const VerifyResult& r : VerifyMessage(m, lookup, kNow)) {
      EXPECT_NE(r.status, VerifyStatus::kPass) << m;
    }
  }
  // Expired.
  for (const VerifyResult& r : VerifyMessage(signed_message, lookup, kNow + 3601)) {
    EXPECT_EQ(r.status, VerifyStatus::kPermError);
  }
  // Unsigned headers and whitespace changes that relaxed allows.
  std::string tolerated = *sigs + "X-Added: later\r\n" + message;
  for (const VerifyResult& r : VerifyMessage(tolerated, lookup, kNow)) {
    EXPECT_EQ(r.status, VerifyStatus::kPass) << r.reason;
  }
  if (canon == Canonicalization::kRelaxed) {
    std::string spaced = signed_message;
    spaced.replace(spaced.find("Body line one"), 13, "Body    line one");
    for (const VerifyResult& r : VerifyMessage(spaced, lookup, kNow)) {
      EXPECT_EQ(r.status, VerifyStatus::kPass) << r.reason;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, RoundTripTest,
                         ::testing::Combine(::testing::Values(Canonicalization::kSimple,
                                                              Canonicalization::kRelaxed),
                                            ::testing::Bool()));

std::unique_ptr<Signer> Ed25519Signer(SignerConfig config = {}) {
  config.keys.push_back({"football.example.com", "brisbane", "",
                         TestData("rfc8463-ed25519.key"), ""});
  absl::StatusOr<std::unique_ptr<Signer>> signer = Signer::Create(config);
  EXPECT_TRUE(signer.ok()) << signer.status();
  return std::move(*signer);
}

// Signing the same message fed in chunks split at every point gives the same signature.
TEST(SignerTest, EverySplitPointSameSignature) {
  std::unique_ptr<Signer> signer = Ed25519Signer();
  std::string message = TestData("rfc8463-message.eml") + "  trailing \t \r\n\r\n \r\n";
  absl::StatusOr<std::string> whole = Sign(*signer, message, kNow);
  ASSERT_TRUE(whole.ok()) << whole.status();
  for (size_t i = 0; i <= message.size(); ++i) {
    SigningSession session = signer->Begin();
    session.Update(std::string_view(message).substr(0, i));
    session.Update(std::string_view(message).substr(i));
    absl::StatusOr<std::string> split = session.Finish(kNow);
    ASSERT_TRUE(split.ok()) << split.status();
    ASSERT_EQ(*split, *whole) << "split at " << i;
  }
  SigningSession bytewise = signer->Begin();
  for (char c : message) bytewise.Update(std::string_view(&c, 1));
  EXPECT_EQ(*bytewise.Finish(kNow), *whole);
}

TEST(SignerTest, RefusesBadInput) {
  std::unique_ptr<Signer> signer = Ed25519Signer();
  const std::string from = "From: joe@football.example.com\r\n";
  struct Case {
    std::string message;
    std::string error_part;
  } cases[] = {
      {"To: a@b.c\r\n\r\nbody\r\n", "no From"},
      {from + from + "\r\nbody\r\n", "more than one From"},
      {"From: joe@football.example.com\nTo: x@y.z\n\nbody\n", "bare LF"},
      {from + "\r\nbody\nwith bare LF\r\n", "bare CR or LF in body"},
      {from + "\r\nbody\rwith bare CR\r\n", "bare CR or LF in body"},
      {from + "Bad Name: x\r\n\r\n", "invalid header field name"},
      {from + "no colon here\r\n\r\n", "without a colon"},
      {" continuation first\r\n" + from + "\r\n", "continuation"},
      {from + "X-Nul: a" + std::string(1, '\0') + "b\r\n\r\n", "NUL"},
      {"From: no domain here\r\n\r\n", "no domain"},
      {"From: a@football.example.com, b@football.example.com\r\n\r\n", "several mailboxes"},
      {from + "Subject: " + std::string(kHeaderBlockBytesMax, 'x') + "\r\n\r\n", "exceeds"},
      {from + "Subject: no final CRLF", "without CRLF"},
      // A header already at the field limit has no room for the signature: signed, it would
      // fail every verifier that applies the limit, ours included.
      {from + Repeated("X: 1\r\n", kHeaderFieldCountMax - 1) + "\r\n", "no room"},
      {from + "Subject: " + std::string(kHeaderBlockBytesMax - 200, 'x') + "\r\n\r\n",
       "with its DKIM-Signature exceeds"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::string> out = Sign(*signer, c.message, kNow);
    ASSERT_FALSE(out.ok()) << c.message.substr(0, 80);
    EXPECT_NE(out.status().message().find(c.error_part), std::string::npos)
        << out.status() << " wanted " << c.error_part;
  }
}

TEST(SignerTest, DefinedBehaviourForOddButValidInput) {
  std::unique_ptr<Signer> signer = Ed25519Signer();
  PrivateKey key = *PrivateKey::FromFileContents(TestData("rfc8463-ed25519.key"));
  KeyLookup lookup =
      MapLookup({{"brisbane._domainkey.football.example.com", key.PublicKeyRecord()}});
  const std::string from = "From: joe@football.example.com\r\n";
  for (std::string message : {
           from,                                              // no empty line, no body
           from + "\r\n",                                     // empty body
           from + "Subject: caf\xc3\xa9 \xe2\x82\xac\r\n\r\nb\r\n",  // 8-bit header value
           from + "\r\nno final CRLF",                        // body without final CRLF
       }) {
    absl::StatusOr<std::string> out = Sign(*signer, message, kNow);
    ASSERT_TRUE(out.ok()) << out.status();
    std::vector<VerifyResult> results = VerifyMessage(*out + message, lookup, kNow);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, VerifyStatus::kPass) << results[0].reason;
  }
}

TEST(SignerTest, SigningDomainChoice) {
  absl::StatusOr<PrivateKey> ed = PrivateKey::Generate(KeyAlgorithm::kEd25519Sha256, 0);
  std::string pem = *ed->ToPem();
  SignerConfig config;
  config.keys.push_back({"example.com", "s1", "", pem, ""});
  config.keys.push_back({"brand.example", "s2", "", pem, ""});
  config.keys.push_back({"relay.example", "s3", "", pem, ""});
  config.domain_map.push_back({"shop.example", "brand.example"});
  absl::StatusOr<std::unique_ptr<Signer>> signer = Signer::Create(config);
  ASSERT_TRUE(signer.ok()) << signer.status();
  auto domain_for = [&](const std::string& from_domain) {
    SigningSession s = (*signer)->Begin();
    s.Update("From: x@" + from_domain + "\r\n\r\nhi\r\n");
    absl::StatusOr<std::string> out = s.Finish(kNow);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() && !out->empty() ? TagValue(*out, "d") : std::string("(unsigned)");
  };
  EXPECT_EQ(domain_for("example.com"), "example.com");
  EXPECT_EQ(domain_for("News.Example.com"), "example.com");   // parent, aligned
  EXPECT_EQ(domain_for("shop.example"), "brand.example");     // mapped
  EXPECT_EQ(domain_for("eu.shop.example"), "brand.example");  // mapped via parent
  EXPECT_EQ(domain_for("other.org"), "(unsigned)");
  EXPECT_EQ(domain_for("com"), "(unsigned)");

  SigningSession s = (*signer)->Begin();
  s.Update("From: x@other.org\r\n\r\n");
  EXPECT_EQ(*s.Finish(kNow), "");
  EXPECT_EQ(s.report().from_domain, "other.org");
  EXPECT_NE(s.report().unsigned_reason.find("other.org"), std::string::npos);

  // BeginFor: the key comes from the sender's own domain, whatever the From says (a submitter
  // allowed to write that From, but not to sign for its domain).
  auto forced = [&](const std::string& from_domain, const std::string& own) {
    SigningSession f = (*signer)->BeginFor(own);
    f.Update("From: x@" + from_domain + "\r\n\r\nhi\r\n");
    absl::StatusOr<std::string> out = f.Finish(kNow);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() && !out->empty() ? TagValue(*out, "d") : std::string("(unsigned)");
  };
  EXPECT_EQ(forced("brand.example", "example.com"), "example.com");
  EXPECT_EQ(forced("example.com", "shop.example"), "brand.example");
  EXPECT_EQ(forced("example.com", "other.org"), "(unsigned)");

  config.default_signing_domain = "relay.example";
  signer = Signer::Create(config);
  ASSERT_TRUE(signer.ok());
  EXPECT_EQ(domain_for("other.org"), "relay.example");

  config.domain_map.push_back({"x.example", "nokey.example"});
  EXPECT_FALSE(Signer::Create(config).ok());
}

TEST(SignerTest, CreateRefusesBadConfig) {
  SignerConfig config;
  config.keys.push_back({"example.com", "s", "/nonexistent/key.pem", "", ""});
  EXPECT_FALSE(Signer::Create(config).ok());
  config.keys[0].key_path.clear();
  config.keys[0].key_contents = "not a key";
  EXPECT_FALSE(Signer::Create(config).ok());
  config = SignerConfig();
  config.headers = {"to", "subject"};  // From must be signed
  EXPECT_FALSE(Signer::Create(config).ok());
}

}  // namespace
}  // namespace dkim
