// SRS with fixed secrets and times. The expected addresses were computed independently of this
// code from the libsrs2 format (HMAC-SHA1 over the lower-cased fields, base64, 4 characters;
// day number modulo 1024 in base32): 1700000000 s is day 19675, slot 219, "G3".
#include "relay/receive/srs.h"

#include "gtest/gtest.h"

namespace relay::receive {
namespace {

constexpr int64_t kNow = 1700000000;
constexpr int64_t kDay = 86400;

std::unique_ptr<Srs> Make(std::string domain, std::vector<std::string> secrets,
                          int age_days_max = 21) {
  SrsConfig c;
  c.domain = std::move(domain);
  c.secrets = std::move(secrets);
  c.age_days_max = age_days_max;
  auto srs = Srs::Create(c);
  EXPECT_TRUE(srs.ok()) << srs.status();
  return srs.ok() ? std::move(*srs) : nullptr;
}

TEST(SrsTest, TimestampIsDayModulo1024InBase32) {
  EXPECT_EQ(SrsTimestamp(kNow), "G3");
  EXPECT_EQ(SrsTimestamp(0), "AA");
  EXPECT_EQ(SrsTimestamp(1023 * kDay), "77");
  EXPECT_EQ(SrsTimestamp(1024 * kDay), "AA");
}

TEST(SrsTest, ForwardMatchesHandComputedVector) {
  auto srs = Make("fwd.example", {"tops3cret"});
  EXPECT_EQ(srs->Forward("Alice@example.com", kNow).value(),
            "SRS0=OOpg=G3=example.com=Alice@fwd.example");
}

TEST(SrsTest, ReverseGivesOriginalSender) {
  auto srs = Make("fwd.example", {"tops3cret"});
  EXPECT_EQ(srs->Reverse("SRS0=OOpg=G3=example.com=Alice@fwd.example", kNow).value(),
            "Alice@example.com");
  // Hash and timestamp case do not matter (some MTAs lower-case local parts).
  EXPECT_EQ(srs->Reverse("srs0=oopg=g3=example.com=alice@fwd.example", kNow + 3 * kDay).value(),
            "alice@example.com");
}

TEST(SrsTest, NullSenderStaysNullAndOwnDomainUnchanged) {
  auto srs = Make("fwd.example", {"s"});
  EXPECT_EQ(srs->Forward("", kNow).value(), "");
  EXPECT_EQ(srs->Forward("bob@FWD.example", kNow).value(), "bob@FWD.example");
  EXPECT_EQ(srs->Forward("nodomain", kNow).status().code(), absl::StatusCode::kInvalidArgument);
  // Reverse would split "ex=mple.com" at its '=': the bounce could never be reversed.
  EXPECT_EQ(srs->Forward("alice@ex=mple.com", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  // An SRS1 sender whose first hop is not followed by an SRS0 address's fields: its SRS1 would
  // not reverse either.
  EXPECT_EQ(srs->Forward("SRS1=Bs30=hop1.example=OOpg=G3=example.com=Alice@hop2.example", kNow)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SrsTest, SecondHopMakesSrs1AndReversesToFirstHop) {
  auto hop1 = Make("hop1.example", {"tops3cret"});
  auto hop2 = Make("hop2.example", {"other"});
  auto hop3 = Make("hop3.example", {"third"});
  std::string a1 = hop1->Forward("Alice@example.com", kNow).value();
  EXPECT_EQ(a1, "SRS0=OOpg=G3=example.com=Alice@hop1.example");
  std::string a2 = hop2->Forward(a1, kNow).value();
  EXPECT_EQ(a2, "SRS1=Bs30=hop1.example==OOpg=G3=example.com=Alice@hop2.example");
  // A third hop keeps pointing at hop1, with its own hash.
  std::string a3 = hop3->Forward(a2, kNow).value();
  EXPECT_EQ(a3.substr(0, 5), "SRS1=");
  EXPECT_NE(a3.find("=hop1.example==OOpg=G3=example.com=Alice@hop3.example"), std::string::npos)
      << a3;
  // Bounces travel back: hop3 and hop2 give hop1's SRS0, hop1 gives the sender.
  EXPECT_EQ(hop3->Reverse(a3, kNow).value(), a1);
  EXPECT_EQ(hop2->Reverse(a2, kNow).value(), a1);
  EXPECT_EQ(hop1->Reverse(a1, kNow).value(), "Alice@example.com");
  // hop2 cannot vouch for hop3's address.
  EXPECT_EQ(hop2->Reverse(a3, kNow).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(SrsTest, PreciseErrors) {
  auto srs = Make("fwd.example", {"tops3cret"});
  EXPECT_EQ(srs->Reverse("alice@fwd.example", kNow).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(srs->Reverse("SRS0=XXXX=G3=example.com=Alice@fwd.example", kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The hash covers the timestamp: changing it is a bad hash, not a different age.
  EXPECT_EQ(srs->Reverse("SRS0=OOpg=G4=example.com=Alice@fwd.example", kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(srs->Reverse("SRS0=OOp=G3=example.com=Alice@fwd.example", kNow).status().code(),
            absl::StatusCode::kPermissionDenied);  // shorter than hash_chars_min
  EXPECT_EQ(srs->Reverse("SRS0=OOpg=G3=example.com@fwd.example", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(srs->Reverse("SRS0=OOpg@fwd.example", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(srs->Reverse("SRS0=OOpg=G!=example.com=Alice@fwd.example", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(srs->Reverse("SRS1=abcd=hop1.example@fwd.example", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SrsTest, MaximumAge) {
  auto srs = Make("fwd.example", {"tops3cret"}, 21);
  const std::string a = "SRS0=OOpg=G3=example.com=Alice@fwd.example";
  EXPECT_TRUE(srs->Reverse(a, kNow + 21 * kDay).ok());
  absl::StatusOr<std::string> old = srs->Reverse(a, kNow + 22 * kDay);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(old.status().message().find("22 days"), std::string::npos) << old.status();
  // Across the 1024-day wrap of the wheel.
  const int64_t late = 1023 * kDay;
  std::string b = srs->Forward("x@example.com", late).value();
  EXPECT_TRUE(srs->Reverse(b, late + 2 * kDay).ok());
  // A stamp from the future counts as very old (libsrs2's rule).
  EXPECT_EQ(srs->Reverse(a, kNow - kDay).status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(SrsTest, SecretRotation) {
  auto old_srs = Make("fwd.example", {"old"});
  auto rotated = Make("fwd.example", {"new", "old"});
  std::string a = old_srs->Forward("u@example.org", kNow).value();
  EXPECT_EQ(rotated->Reverse(a, kNow).value(), "u@example.org");
  std::string b = rotated->Forward("u@example.org", kNow).value();
  EXPECT_NE(a, b);
  EXPECT_EQ(old_srs->Reverse(b, kNow).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(SrsTest, SeparatorAndLongAddresses) {
  SrsConfig c;
  c.domain = "fwd.example";
  c.secrets = {"tops3cret"};
  c.separator = '+';
  auto srs = Srs::Create(c).value();
  // Only the first separator changes; the hash does not cover it for SRS0.
  EXPECT_EQ(srs->Forward("Alice@example.com", kNow).value(),
            "SRS0+OOpg=G3=example.com=Alice@fwd.example");
  EXPECT_EQ(srs->Reverse("SRS0+OOpg=G3=example.com=Alice@fwd.example", kNow).value(),
            "Alice@example.com");
  EXPECT_EQ(srs->Forward(std::string(240, 'a') + "@example.com", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A local part with '=' survives the round trip.
  std::string odd = srs->Forward("a=b@example.com", kNow).value();
  EXPECT_EQ(srs->Reverse(odd, kNow).value(), "a=b@example.com");
}

TEST(SrsTest, ConfigErrors) {
  SrsConfig c;
  c.domain = "fwd.example";
  EXPECT_FALSE(Srs::Create(c).ok());  // no secret
  c.secrets = {""};
  EXPECT_FALSE(Srs::Create(c).ok());
  c.secrets = {"s"};
  c.separator = '_';
  EXPECT_FALSE(Srs::Create(c).ok());
  c.separator = '=';
  c.hash_chars = 0;
  EXPECT_FALSE(Srs::Create(c).ok());
}

}  // namespace
}  // namespace relay::receive
