// The README's table "What each check-dns problem means and how to fix it" lists exactly the
// problems check-dns can report (ProblemTexts()), with the same check, state and words, row for
// row: a problem added to the code without a row fails here, and so does a row the code cannot
// print. In the README a placeholder ({HOST} in the code) is the bare word (HOST), and backticks
// are only formatting.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tools/relayctl/check_dns.h"

namespace relay::relayctl {
namespace {

constexpr char kTableIntro[] = "What each `check-dns` problem means and how to fix it";

std::string ReadmePath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return "README.md";
  return absl::StrCat(srcdir, "/", workspace, "/README.md");
}

// "check | state | problem" of every row of the README's table, in order.
std::vector<std::string> ReadmeRows() {
  std::ifstream in(ReadmePath());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(buffer.str(), '\n');
  std::vector<std::string> rows;
  bool in_section = false;
  bool in_table = false;
  int row = 0;
  for (const std::string& line : lines) {
    if (!in_section) {
      in_section = absl::StartsWith(line, kTableIntro);
      continue;
    }
    if (!absl::StartsWith(line, "|")) {
      if (in_table) break;  // the table ends at its first line that is not a row
      continue;
    }
    in_table = true;
    if (++row <= 2) continue;  // header and separator
    absl::string_view cells = line;
    absl::ConsumePrefix(&cells, "| ");
    std::vector<std::string> c = absl::StrSplit(cells, " | ");
    if (c.size() < 4) {
      rows.push_back(absl::StrCat("(a row without 4 cells: ", line, ")"));
      continue;
    }
    rows.push_back(absl::StrCat(c[0], " | ", c[1], " | ", absl::StrReplaceAll(c[2], {{"`", ""}})));
  }
  return rows;
}

// "check | state | problem" of every problem the code can report, placeholders as bare words.
std::vector<std::string> CodeRows() {
  std::vector<std::string> rows;
  for (const ProblemText& p : ProblemTexts()) {
    rows.push_back(absl::StrCat(p.checks, " | ", ProblemKindName(p.kind), " | ",
                                absl::StrReplaceAll(p.text, {{"{", ""}, {"}", ""}})));
  }
  return rows;
}

std::vector<std::string> Missing(const std::vector<std::string>& from,
                                 const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const std::string& r : from) {
    if (std::find(in.begin(), in.end(), r) == in.end()) out.push_back(r);
  }
  return out;
}

TEST(CheckDnsProblemsTest, ReadmeTableHasEveryProblemTheToolReportsAndNoOther) {
  std::vector<std::string> readme = ReadmeRows();
  std::vector<std::string> code = CodeRows();
  ASSERT_FALSE(readme.empty()) << "no table after \"" << kTableIntro << "\" in " << ReadmePath();
  EXPECT_EQ(Missing(code, readme), std::vector<std::string>{})
      << "problems check-dns reports that the README's table lacks:\n  "
      << absl::StrJoin(Missing(code, readme), "\n  ");
  EXPECT_EQ(Missing(readme, code), std::vector<std::string>{})
      << "rows of the README's table that check-dns never reports:\n  "
      << absl::StrJoin(Missing(readme, code), "\n  ");
  if (Missing(code, readme).empty() && Missing(readme, code).empty()) {
    EXPECT_EQ(readme, code) << "the README's rows are not in the code's order";
  }
}

// A placeholder is {UPPER_CASE}: the README shows it as a word an operator recognises as one,
// and nothing else in a text uses braces.
TEST(CheckDnsProblemsTest, PlaceholdersAreUpperCaseWordsInBraces) {
  for (const ProblemText& p : ProblemTexts()) {
    absl::string_view t = p.text;
    for (size_t open = t.find('{'); open != absl::string_view::npos; open = t.find('{', open)) {
      size_t close = t.find('}', open);
      ASSERT_NE(close, absl::string_view::npos) << p.text;
      for (char c : t.substr(open + 1, close - open - 1)) {
        EXPECT_TRUE((c >= 'A' && c <= 'Z') || c == '_') << p.text;
      }
      open = close;
    }
    EXPECT_EQ(std::count(t.begin(), t.end(), '}'), std::count(t.begin(), t.end(), '{')) << p.text;
  }
}

TEST(CheckDnsProblemsTest, WarningsAreLinesOfTheirOwnState) {
  CheckLine l{.state = CheckState::kWarn,
              .check = "mx",
              .subject = "example.com",
              .published = "10 mx.provider.test",
              .expected = "10 mail.example.com",
              .problem = "the MX points at mx.provider.test, not at mail.example.com"};
  EXPECT_EQ(FormatCheckLine(l),
            "WARN mx       example.com | published: 10 mx.provider.test | expected: 10 "
            "mail.example.com | problem: the MX points at mx.provider.test, not at "
            "mail.example.com");
}

}  // namespace
}  // namespace relay::relayctl
