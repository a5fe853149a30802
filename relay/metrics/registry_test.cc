#include "relay/metrics/registry.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace relay::metrics {
namespace {

FamilyOptions Opt(std::string help, double scale = 1.0, std::vector<uint64_t> bounds = {}) {
  FamilyOptions o;
  o.help = std::move(help);
  o.scale = scale;
  o.bounds = std::move(bounds);
  return o;
}

TEST(RegistryTest, CountersSumTheShards) {
  Registry r(3);
  Counter c = r.AddCounter("relay_things_total", Opt("Things."));
  r.Freeze();
  c.Add(0);
  c.Add(1, 5);
  c.Add(2, 10);
  c.Add(2);
  EXPECT_EQ(r.SumForTest(c), 17u);
  EXPECT_EQ(r.Render(),
            "# HELP relay_things_total Things.\n"
            "# TYPE relay_things_total counter\n"
            "relay_things_total 17\n");
  c.Set(1, 100);  // a module's own total published as the shard's value
  EXPECT_EQ(r.SumForTest(c), 112u);
}

TEST(RegistryTest, GaugesGoBothWaysAndSumSigned) {
  Registry r(2);
  Gauge g = r.AddGauge("relay_open", Opt("Open."), {{"listener", "submission"}});
  r.Freeze();
  g.Add(0, 3);
  g.Add(1, -5);
  EXPECT_EQ(r.SumForTest(g), -2);
  EXPECT_NE(r.Render().find("relay_open{listener=\"submission\"} -2\n"), std::string::npos);
  g.Set(0, 7);
  g.Set(1, 1);
  EXPECT_EQ(r.SumForTest(g), 8);
}

TEST(RegistryTest, SeriesOfOneFamilyShareHelpAndType) {
  Registry r(1);
  Counter a = r.AddCounter("relay_x_total", Opt("X."), {{"site", "google"}});
  Counter b = r.AddCounter("relay_x_total", Opt("X."), {{"site", "default"}});
  Counter a2 = r.AddCounter("relay_x_total", Opt("X."), {{"site", "google"}});
  r.Freeze();
  a.Add(0, 2);
  a2.Add(0, 1);  // the same series as `a`
  b.Add(0, 4);
  EXPECT_EQ(r.series(), 2u);
  EXPECT_EQ(r.Render(),
            "# HELP relay_x_total X.\n"
            "# TYPE relay_x_total counter\n"
            "relay_x_total{site=\"google\"} 3\n"
            "relay_x_total{site=\"default\"} 4\n");
}

TEST(RegistryTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(Registry::EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(Registry::EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");
  Registry r(1);
  Counter c =
      r.AddCounter("relay_y_total", Opt("Line one\nline \\two"), {{"rule", "we\"ird\\name\n"}});
  r.Freeze();
  c.Add(0);
  EXPECT_EQ(r.Render(),
            "# HELP relay_y_total Line one\\nline \\\\two\n"
            "# TYPE relay_y_total counter\n"
            "relay_y_total{rule=\"we\\\"ird\\\\name\\n\"} 1\n");
}

TEST(RegistryTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r(2);
  Histogram h =
      r.AddHistogram("relay_wait_seconds", Opt("Wait.", 1e-6, {100, 1000, 10000}), {{"kind", "a"}});
  r.Freeze();
  h.Observe(0, 50);     // <= 100
  h.Observe(1, 100);    // <= 100 (bounds are inclusive: le)
  h.Observe(0, 101);    // <= 1000
  h.Observe(1, 5000);   // <= 10000
  h.Observe(0, 20000);  // +Inf only
  EXPECT_EQ(r.Render(),
            "# HELP relay_wait_seconds Wait.\n"
            "# TYPE relay_wait_seconds histogram\n"
            "relay_wait_seconds_bucket{kind=\"a\",le=\"0.0001\"} 2\n"
            "relay_wait_seconds_bucket{kind=\"a\",le=\"0.001\"} 3\n"
            "relay_wait_seconds_bucket{kind=\"a\",le=\"0.01\"} 4\n"
            "relay_wait_seconds_bucket{kind=\"a\",le=\"+Inf\"} 5\n"
            "relay_wait_seconds_sum{kind=\"a\"} 0.025251\n"
            "relay_wait_seconds_count{kind=\"a\"} 5\n");
}

TEST(RegistryTest, UnscaledHistogramWithoutLabels) {
  Registry r(1);
  Histogram h = r.AddHistogram("relay_batch_records", Opt("Batch.", 1.0, {1, 4}));
  r.Freeze();
  h.Observe(0, 3);
  h.Observe(0, 3);
  EXPECT_EQ(r.Render(),
            "# HELP relay_batch_records Batch.\n"
            "# TYPE relay_batch_records histogram\n"
            "relay_batch_records_bucket{le=\"1\"} 0\n"
            "relay_batch_records_bucket{le=\"4\"} 2\n"
            "relay_batch_records_bucket{le=\"+Inf\"} 2\n"
            "relay_batch_records_sum 6\n"
            "relay_batch_records_count 2\n");
}

TEST(RegistryTest, CallbacksAreEvaluatedAtScrape) {
  Registry r(1);
  double v = 1.5;
  r.AddCallback("relay_start_time_seconds", MetricType::kGauge, Opt("Start."), {},
                [&v] { return v; });
  r.AddCallback("relay_build_info", MetricType::kGauge, Opt("Build."), {{"version", "1.0"}},
                [] { return 1.0; });
  r.Freeze();
  EXPECT_NE(r.Render().find("relay_start_time_seconds 1.5\n"), std::string::npos);
  v = 1763850000;
  EXPECT_NE(r.Render().find("relay_start_time_seconds 1763850000\n"), std::string::npos);
  EXPECT_NE(r.Render().find("relay_build_info{version=\"1.0\"} 1\n"), std::string::npos);
}

TEST(RegistryTest, FormatDouble) {
  EXPECT_EQ(Registry::FormatDouble(0.0005), "0.0005");
  EXPECT_EQ(Registry::FormatDouble(2.5), "2.5");
  EXPECT_EQ(Registry::FormatDouble(12), "12");
  EXPECT_EQ(Registry::FormatDouble(1.0 / 3), "0.333333333333333");
  EXPECT_EQ(Registry::FormatDouble(1e300), "1e+300");
}

TEST(RegistryTest, DefaultHandlesAreNoOps) {
  Counter c;
  Gauge g;
  Histogram h;
  c.Add(0);
  g.Add(0, 1);
  h.Observe(0, 1);
  EXPECT_FALSE(c.valid() || g.valid() || h.valid());
}

TEST(RegistryTest, ConcurrentShardWritersWhileScraping) {
  constexpr int kShards = 4;
  constexpr uint64_t kPerShard = 200000;
  Registry r(kShards);
  Counter c = r.AddCounter("relay_c_total", Opt("C."));
  Histogram h = r.AddHistogram("relay_h", Opt("H.", 1.0, {10}));
  r.Freeze();
  std::vector<std::thread> writers;
  for (int s = 0; s < kShards; ++s) {
    writers.emplace_back([&, s] {
      for (uint64_t i = 0; i < kPerShard; ++i) {
        c.Add(s);
        h.Observe(s, i % 20);
      }
    });
  }
  uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    uint64_t now = r.SumForTest(c);
    EXPECT_GE(now, last);  // a counter never goes backwards between scrapes
    last = now;
    std::string text = r.Render();
    EXPECT_NE(text.find("relay_h_bucket{le=\"+Inf\"}"), std::string::npos);
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(r.SumForTest(c), kShards * kPerShard);
  std::string text = r.Render();
  EXPECT_NE(text.find("relay_h_bucket{le=\"10\"} " + std::to_string(kShards * kPerShard * 11 / 20)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("relay_h_count " + std::to_string(kShards * kPerShard)), std::string::npos);
}

TEST(RegistryDeathTest, RegistrationAfterFreezeAndBadNamesAreFatal) {
  Registry r(1);
  r.Freeze();
  EXPECT_DEATH(r.AddCounter("relay_late_total", Opt("Late.")), "frozen");
  Registry r2(1);
  EXPECT_DEATH(r2.AddCounter("relay-bad", Opt("Bad.")), "ValidName");
  EXPECT_DEATH(r2.AddCounter("relay_ok_total", Opt("Ok."), {{"__reserved", "x"}}), "ValidName");
  r2.AddCounter("relay_two_total", Opt("Two."), {{"a", "1"}});
  EXPECT_DEATH(r2.AddGauge("relay_two_total", Opt("Two."), {{"a", "1"}}), "type");
}

}  // namespace
}  // namespace relay::metrics
