#include "relay/tlspolicy/tls_memory.h"

#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "relay/base/replace_file.h"

namespace relay::tlspolicy {
namespace {

constexpr int64_t kDay = int64_t{86400} * 1000;
constexpr int64_t kNow = 20430 * kDay + 5000;

TEST(TlsMemoryTest, RemembersForgetsAndExpires) {
  TlsMemory m({.enabled = true, .days = 30, .domains_max = 10});
  EXPECT_FALSE(m.Requires("example.org", kNow));
  m.Remember("Example.ORG", kNow);
  EXPECT_TRUE(m.Requires("example.org", kNow));
  EXPECT_TRUE(m.Requires("example.org", kNow + 30 * kDay));
  EXPECT_FALSE(m.Requires("example.org", kNow + 31 * kDay));  // no TLS delivery for too long
  m.Remember("example.org", kNow + 31 * kDay);                // a new one
  EXPECT_TRUE(m.Requires("example.org", kNow + 31 * kDay));
  EXPECT_TRUE(m.Forget("EXAMPLE.org"));
  EXPECT_FALSE(m.Forget("example.org"));
  EXPECT_FALSE(m.Requires("example.org", kNow));
  m.Remember("bad\tname", kNow);  // never written to the file as a line breaker
  size_t total = 0;
  EXPECT_TRUE(m.List(10, &total).empty());
}

TEST(TlsMemoryTest, DisabledRemembersNothing) {
  TlsMemory m({.enabled = false});
  m.Remember("example.org", kNow);
  EXPECT_FALSE(m.Requires("example.org", kNow));
}

TEST(TlsMemoryTest, BoundedByDomainsMax) {
  TlsMemory m({.enabled = true, .days = 30, .domains_max = 3});
  for (int i = 0; i < 5; ++i) m.Remember("d" + std::to_string(i) + ".example", kNow);
  size_t total = 0;
  std::vector<TlsMemoryEntry> list = m.List(2, &total);
  EXPECT_EQ(total, 3u);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].domain, "d0.example");  // sorted
  EXPECT_FALSE(m.Requires("d4.example", kNow));
}

TEST(TlsMemoryTest, TheFileSurvivesARestart) {
  char dir[] = "/tmp/tls-memory-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/tls-memory";
  {
    TlsMemory m({.enabled = true, .days = 30, .domains_max = 10});
    ASSERT_TRUE(m.Load(path, kNow).ok());  // none yet
    m.SetFile(path);
    m.Remember("a.example", kNow - 40 * kDay);  // too old by the next start
    m.Remember("b.example", kNow);
    m.Flush();
  }
  TlsMemory again({.enabled = true, .days = 30, .domains_max = 10});
  ASSERT_TRUE(again.Load(path, kNow).ok());
  EXPECT_TRUE(again.Requires("b.example", kNow));
  size_t total = 0;
  again.List(10, &total);
  EXPECT_EQ(total, 1u);
  unlink(path.c_str());
  rmdir(dir);
}

TEST(TlsMemoryTest, ParsesOnlyWhatItWrites) {
  std::vector<TlsMemoryEntry> read = ParseTlsMemoryFile(
      "# comment\nok.example\t20430\nUPPER.example\t1\nno-day.example\n\tx\nneg.example\t-1\n"
      "big.example\t99999999999999999999\nlast.example\t3",
      10);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].domain, "ok.example");
  EXPECT_EQ(read[0].day, 20430);
  EXPECT_EQ(read[1].domain, "last.example");
  EXPECT_EQ(ParseTlsMemoryFile(FormatTlsMemoryFile(read), 10).size(), 2u);
  EXPECT_EQ(ParseTlsMemoryFile("a.x\t1\nb.x\t2\nc.x\t3\n", 2).size(), 2u);
}

}  // namespace
}  // namespace relay::tlspolicy
