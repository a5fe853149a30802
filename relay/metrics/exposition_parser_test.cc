#include "relay/metrics/exposition_parser.h"

#include <cmath>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "relay/metrics/relay_metrics.h"

namespace relay::metrics {
namespace {

TEST(ExpositionParserTest, ReadsBackTheRelaysOwnExposition) {
  RelayMetricsOptions o;
  o.shards = 2;
  o.sites = {"google", "default"};
  o.sources = {"192.0.2.10"};
  o.version = "1.0 \"quoted\" back\\slash\nsecond line";  // every escape of the format
  RelayMetrics m(o);
  m.messages_received.Add(1, 5);
  m.fsync_us.Observe(0, 400);
  m.Recipient(0, RecipientResult::kDelivered, m.SiteIndex("google"), 0);
  const std::string text = m.Render();
  absl::StatusOr<std::vector<ExpositionSample>> samples = ParseExposition(text);
  ASSERT_TRUE(samples.ok()) << samples.status();
  size_t lines = 0;
  for (size_t p = 0; p < text.size(); p = text.find('\n', p) + 1) lines += text[p] != '#';
  EXPECT_EQ(samples->size(), lines);
  bool build = false, received = false, bucket = false, delivered = false;
  for (const ExpositionSample& s : *samples) {
    if (s.name == "relay_build_info") {
      build = s.Label("version") == o.version && s.value == 1;
    } else if (s.name == "relay_messages_received_total") {
      received = s.labels.empty() && s.value == 5;
    } else if (s.name == "relay_queue_fsync_seconds_bucket" && s.Label("le") == "+Inf") {
      bucket = s.value == 1;
    } else if (s.name == "relay_recipients_delivered_total" && s.Label("site") == "google" &&
               s.Label("source") == "192.0.2.10") {
      delivered = s.value == 1;
    }
  }
  EXPECT_TRUE(build && received && bucket && delivered) << text;
}

TEST(ExpositionParserTest, ValuesTimestampsBlanksAndComments) {
  auto samples = ParseExposition(
      "# HELP a_total Something.\n"
      "# TYPE a_total counter\n"
      "\n"
      "a_total 12\n"
      "b{x=\"1\" , y = \"2\",} -3.5e2 1700000000000\r\n"
      "c +Inf\n"
      "d -Inf\n"
      "e NaN\n"
      "f 1e-06\n"
      "ns:rule_total{} 0\n"
      "  g\t7");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 8u);
  EXPECT_EQ((*samples)[0].value, 12);
  EXPECT_EQ((*samples)[1].name, "b");
  EXPECT_EQ((*samples)[1].Label("y"), "2");
  EXPECT_EQ((*samples)[1].value, -350);
  EXPECT_TRUE(std::isinf((*samples)[2].value) && (*samples)[2].value > 0);
  EXPECT_TRUE(std::isinf((*samples)[3].value) && (*samples)[3].value < 0);
  EXPECT_TRUE(std::isnan((*samples)[4].value));
  EXPECT_DOUBLE_EQ((*samples)[5].value, 1e-6);
  EXPECT_EQ((*samples)[6].name, "ns:rule_total");
  EXPECT_EQ((*samples)[7].name, "g");
  EXPECT_EQ((*samples)[7].value, 7);
}

TEST(ExpositionParserTest, MalformedLinesAreErrorsNamingTheLine) {
  for (const char* bad : {"a", "a{", "a{x=\"1}", "a{x=\"1\\t\"} 1", "a{x=1} 1",
                          "a{x=\"1\" y=\"2\"} 1", "a{:x=\"1\"} 1", "a 12abc", "a 0x10", "a 1 2 3",
                          "a 1 12.5", "1a 1", "a{x=\"1\"}1", "<html> 1"}) {
    auto r = ParseExposition(std::string("ok 1\n") + bad + "\n");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("line 2: expected"), std::string::npos)
        << bad << ": " << r.status();
  }
}

TEST(ExpositionParserTest, LimitsAreEnforced) {
  ExpositionLimits limits;
  limits.bytes_max = 100;
  limits.line_bytes_max = 20;
  limits.samples_max = 2;
  limits.labels_max = 2;
  EXPECT_EQ(ParseExposition(std::string(101, '#'), limits).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseExposition("a 1\n# " + std::string(30, 'x') + "\n", limits).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseExposition("a 1\nb 2\nc 3\n", limits).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(ParseExposition("a 1\nb 2\n", limits).ok());
  auto labels = ParseExposition("a{x=\"\",y=\"\",z=\"\"} 1", limits);
  EXPECT_FALSE(labels.ok());
  EXPECT_NE(labels.status().message().find("more than 2 labels"), std::string::npos);
}

// Random byte flips, cuts and insertions of a real exposition: every result is a value or an
// error, never a crash or a hang (run it under --config=asan too).
TEST(ExpositionParserTest, MutatedInputNeverBreaksTheParser) {
  RelayMetricsOptions o;
  o.sites = {"google"};
  o.sources = {"192.0.2.10"};
  RelayMetrics m(o);
  const std::string text = m.Render();
  std::mt19937 random(20240601);
  const char alphabet[] = "{}\"\\=, \n\t#+-.eE0123456789abcInfNa:_";
  size_t ok = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string t = text;
    const int edits = 1 + static_cast<int>(random() % 8);
    for (int e = 0; e < edits && !t.empty(); ++e) {
      size_t at = random() % t.size();
      switch (random() % 3) {
        case 0:
          t[at] = alphabet[random() % (sizeof(alphabet) - 1)];
          break;
        case 1:
          t.erase(at, 1 + random() % 16);
          break;
        default:
          t.insert(at, 1, alphabet[random() % (sizeof(alphabet) - 1)]);
          break;
      }
    }
    ok += ParseExposition(t).ok();
  }
  EXPECT_GT(ok, 0u);  // some edits land in HELP text and stay valid
}

}  // namespace
}  // namespace relay::metrics
