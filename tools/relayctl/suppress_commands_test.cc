#include "tools/relayctl/suppress_commands.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "relay/feedback/suppression_list.h"

namespace relay::relayctl {
namespace {

std::string Tmp(const std::string& name) { return std::string(std::getenv("TEST_TMPDIR")) + "/" + name; }

int Suppress(std::vector<std::string> args) {
  args.insert(args.begin(), "suppress");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return SuppressCommand(static_cast<int>(argv.size()), argv.data());
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ParseCsvLine, Rfc4180) {
  EXPECT_EQ(*ParseCsvLine("a,b,,c"), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ(*ParseCsvLine("\"x, y\",\"say \"\"hi\"\"\",z"),
            (std::vector<std::string>{"x, y", "say \"hi\"", "z"}));
  EXPECT_EQ(*ParseCsvLine(""), (std::vector<std::string>{""}));
  EXPECT_EQ(*ParseCsvLine("a,"), (std::vector<std::string>{"a", ""}));
  EXPECT_FALSE(ParseCsvLine("\"open").ok());
  EXPECT_FALSE(ParseCsvLine("\"a\"b").ok());
  EXPECT_FALSE(ParseCsvLine("a\"b").ok());
  for (std::string f : {"plain", "with,comma", "with \"quote\"", ""}) {
    EXPECT_EQ((*ParseCsvLine(CsvField(f)))[0], f);
  }
}

TEST(SuppressCommand, AddListExportRemoveImport) {
  const std::string file = Tmp("cmd.mdb");
  EXPECT_EQ(Suppress({"add", "Gone@Gmail.test", "--tenant", "example.com", "--reason", "complaint",
                 "--note", "FBL, from Yahoo", "--file", file}),
            0);
  EXPECT_EQ(Suppress({"add", "x@y.test", "--tenant", "other.example", "--file", file}), 0);
  EXPECT_EQ(Suppress({"add", "x@y.test", "--file", file}), 2);  // no tenant
  EXPECT_EQ(Suppress({"add", "x@y.test", "--tenant", "t", "--reason", "angry", "--file", file}), 2);
  EXPECT_EQ(Suppress({"list", "--file", file}), 0);

  const std::string csv = Tmp("export.csv");
  ASSERT_EQ(Suppress({"export", "--tenant", "example.com", "--out", csv, "--file", file}), 0);
  const std::string text = Read(csv);
  EXPECT_EQ(text.rfind("tenant,address,reason,category,time,queue_id,detail\n"
                       "example.com,gone@gmail.test,complaint,,20",
                       0),
            0u)
      << text;
  EXPECT_NE(text.find("Z,,\"FBL, from Yahoo\"\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("other.example"), std::string::npos);

  EXPECT_EQ(Suppress({"remove", "gone@gmail.test", "--tenant", "example.com", "--file", file}), 0);
  EXPECT_EQ(Suppress({"remove", "gone@gmail.test", "--tenant", "example.com", "--file", file}), 1);
  // The export reads back as it was written.
  ASSERT_EQ(Suppress({"import", csv, "--file", file}), 0);
  {
    auto list = feedback::SuppressionList::Open({.path = file, .map_bytes_max = size_t{1} << 30});
    ASSERT_TRUE(list.ok());
    auto e = (*list)->Find("example.com", "gone@gmail.test");
    ASSERT_TRUE(e.ok() && e->has_value());
    EXPECT_EQ((*e)->reason, feedback::SuppressionReason::kComplaint);
    EXPECT_EQ((*e)->detail, "FBL, from Yahoo");
  }
  // Plain lists: one address a line with --tenant, or tenant,address.
  const std::string plain = Tmp("plain.csv");
  std::ofstream(plain) << "a1@x.test\r\n\na2@x.test\n";
  ASSERT_EQ(Suppress({"import", plain, "--tenant", "news.example", "--file", file}), 0);
  std::ofstream(Tmp("pairs.csv")) << "news.example,a3@x.test\nnews.example,not-an-address\n";
  EXPECT_EQ(Suppress({"import", Tmp("pairs.csv"), "--file", file}), 1);  // line 2
  // A line longer than the import's bound is an error, never held whole.
  std::ofstream(Tmp("long.csv")) << "news.example,a4@x.test\nnews.example,"
                                 << std::string(1 << 20, 'x') << "@x.test\n";
  EXPECT_EQ(Suppress({"import", Tmp("long.csv"), "--file", file}), 1);
  auto list = feedback::SuppressionList::Open({.path = file, .map_bytes_max = size_t{1} << 30});
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE((*list)->Find("news.example", "a2@x.test")->has_value());
  EXPECT_TRUE((*list)->Find("news.example", "a3@x.test")->has_value());  // before the bad line
  EXPECT_TRUE((*list)->Find("news.example", "a4@x.test")->has_value());
  EXPECT_EQ(*(*list)->Count(), 6u);
}

}  // namespace
}  // namespace relay::relayctl
