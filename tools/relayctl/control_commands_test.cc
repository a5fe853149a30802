#include "tools/relayctl/control_commands.h"

#include <string>

#include "gtest/gtest.h"

namespace relay::relayctl {
namespace {

// Two shards' shares of one (site, source) queue make one row; the most waiting comes first.
TEST(ReadyTableTest, SumsTheShardsSharesOfAQueue) {
  const std::string entries =
      "mx.example.org\texample\t127.0.0.3\t2\t1\t2\t20\tslowed to 50% for 598 s|"
      "mx.example.org\texample\t127.0.0.3\t3\t1\t2\t20\t|"
      "aspmx.l.google.com\tgoogle\t127.0.0.4\t40\t5\t5\t0\tsuspended for 60 s: 421 4.7.28|"
      "not\tenough\tfields|"
      "x\ty\tz\tnot-a-number\t0\t0\t0\t";
  const std::string table = FormatReadyTable(entries);
  const size_t google = table.find("aspmx.l.google.com");
  const size_t example = table.find("mx.example.org ");
  ASSERT_NE(google, std::string::npos) << table;
  ASSERT_NE(example, std::string::npos) << table;
  EXPECT_LT(google, example) << "the most waiting first:\n" << table;
  const std::string example_row = table.substr(example, table.find('\n', example) - example);
  EXPECT_NE(example_row.find(" 5 "), std::string::npos) << example_row;   // 2 + 3 waiting
  EXPECT_NE(example_row.find(" 40 "), std::string::npos) << example_row;  // 20 + 20 per second
  EXPECT_NE(example_row.find("slowed to 50% for 598 s"), std::string::npos) << example_row;
  const std::string google_row = table.substr(google, table.find('\n', google) - google);
  EXPECT_NE(google_row.find(" - "), std::string::npos) << "no rate: " << google_row;
  EXPECT_NE(google_row.find("suspended for 60 s: 421 4.7.28"), std::string::npos);
  EXPECT_NE(table.find("TOTAL"), std::string::npos);
  EXPECT_EQ(table.find("enough"), std::string::npos);
  EXPECT_EQ(FormatReadyTable(""),
            "no ready queue has work, connections, a suspension or a backoff\n");
}

}  // namespace
}  // namespace relay::relayctl
