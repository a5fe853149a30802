#include "bench/smtp_load_message.h"

#include <map>
#include <random>
#include <string>

#include "bench/smtp_sink_session.h"
#include "gtest/gtest.h"

namespace bench {
namespace {

// Collects what a receiver stores, to compare with what the generator says it sent.
class Store : public SinkSessionDelegate {
 public:
  std::string OnMessage(const SinkEnvelope&, std::string_view content) override {
    last = std::string(content);
    return {};
  }
  std::string last;
};

TEST(MessageFactoryTest, SizesAreExactAndTheWireUnstuffsToTheContent) {
  MessageOptions options;
  options.sizes = "1000,4K,100K";
  auto f = MessageFactory::Create(options);
  ASSERT_TRUE(f.ok()) << f.status();
  std::mt19937_64 rng(1);
  std::map<size_t, int> seen;
  for (uint64_t seq = 0; seq < 30; ++seq) {
    BuiltMessage m;
    f->Build(seq, 0, rng, &m);
    seen[m.content_bytes]++;
    Store store;
    SinkSession session(SinkSessionOptions(), &store);
    std::string out;
    session.OnBytes("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<" + m.rcpt + ">\r\nDATA\r\n", &out);
    session.OnBytes(m.wire, &out);
    ASSERT_EQ(store.last.size(), m.content_bytes);
    EXPECT_NE(store.last.find("\r\n.dot-stuffed line"), std::string::npos);
    EXPECT_NE(store.last.find("\r\nX-Bench-Sent: "), std::string::npos);
    EXPECT_NE(store.last.find("\r\nMessage-ID: <" + std::to_string(seq) + ".0."),
              std::string::npos);
  }
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_GT(seen[1000], 0);
  EXPECT_GT(seen[4096], 0);
  EXPECT_GT(seen[102400], 0);
}

TEST(MessageFactoryTest, DomainMixFollowsTheWeights) {
  MessageOptions options;
  options.domains = "gmail.test:67,hotmail.test:9,yahoo.test:6,other.test:18";
  auto f = MessageFactory::Create(options);
  ASSERT_TRUE(f.ok());
  std::mt19937_64 rng(7);
  std::map<std::string, int> counts;
  constexpr int kN = 5000;
  for (int i = 0; i < kN; ++i) {
    BuiltMessage m;
    f->Build(i, 1, rng, &m);
    counts[m.rcpt.substr(m.rcpt.find('@') + 1)]++;
  }
  EXPECT_NEAR(counts["gmail.test"] / double(kN), 0.67, 0.03);
  EXPECT_NEAR(counts["hotmail.test"] / double(kN), 0.09, 0.03);
  EXPECT_NEAR(counts["yahoo.test"] / double(kN), 0.06, 0.03);
  EXPECT_NEAR(counts["other.test"] / double(kN), 0.18, 0.03);
}

TEST(MessageFactoryTest, BadFlagsAreRefused) {
  MessageOptions options;
  options.sizes = "4096:x";
  EXPECT_FALSE(MessageFactory::Create(options).ok());
  options.sizes = "0";
  EXPECT_FALSE(MessageFactory::Create(options).ok());
  options.sizes = "4096";
  options.domains = "a.test:-1";
  EXPECT_FALSE(MessageFactory::Create(options).ok());
}

}  // namespace
}  // namespace bench
