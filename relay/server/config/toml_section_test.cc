#include "relay/server/config/toml_section.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::server::config {
namespace {

enum class Color { kRed, kBlue };

class SectionTest : public ::testing::Test {
 protected:
  Section Load(const std::string& text) {
    absl::StatusOr<toml::table> doc = ParseDocument(text, "r.toml");
    EXPECT_TRUE(doc.ok()) << doc.status();
    doc_ = std::move(*doc);
    return Section("r.toml", "", doc_);
  }
  Section Sub(const Section& root, const char* key) {
    absl::StatusOr<std::optional<Section>> t = root.Table(key);
    EXPECT_TRUE(t.ok() && t->has_value());
    return **t;
  }
  toml::table doc_;
};

TEST_F(SectionTest, ReadsValuesAndLeavesAbsentOnesAlone) {
  Section root = Load("name = \"x\"\n[t]\nn = 5\nb = true\nl = [\"a\", \"b\"]\nf = 0.5\n"
                      "c = \"blue\"\nis = [1, 2, 2]\n");
  std::string name = "default";
  ASSERT_TRUE(root.String("name", &name).ok());
  EXPECT_EQ(name, "x");
  Section t = Sub(root, "t");
  EXPECT_EQ(t.name(), "t");
  int n = 1, absent = 7;
  bool b = false;
  std::vector<std::string> l;
  double f = 0;
  Color c = Color::kRed;
  std::vector<int64_t> is;
  std::optional<uint32_t> opt;
  ASSERT_TRUE(t.Int("n", &n, 0, 10).ok());
  ASSERT_TRUE(t.Int("absent", &absent, 0, 10).ok());
  ASSERT_TRUE(t.Int("n", &opt, 0, 10).ok());
  ASSERT_TRUE(t.Bool("b", &b).ok());
  ASSERT_TRUE(t.StringList("l", &l).ok());
  ASSERT_TRUE(t.Fraction("f", &f, 0, 1).ok());
  ASSERT_TRUE(t.Enum("c", &c, {{"red", Color::kRed}, {"blue", Color::kBlue}}).ok());
  ASSERT_TRUE(t.IntList("is", &is, 1, 9, /*non_decreasing=*/true).ok());
  EXPECT_EQ(n, 5);
  EXPECT_EQ(absent, 7);
  EXPECT_EQ(opt, 5u);
  EXPECT_TRUE(b);
  EXPECT_EQ(l, (std::vector<std::string>{"a", "b"}));
  EXPECT_DOUBLE_EQ(f, 0.5);
  EXPECT_EQ(c, Color::kBlue);
  EXPECT_EQ(is, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(t.Keys(), (std::vector<std::string>{"b", "c", "f", "is", "l", "n"}));  // toml++ sorts
}

// Every error reads FILE:LINE:COLUMN: SECTION.KEY: PROBLEM.
TEST_F(SectionTest, ErrorsHaveOneForm) {
  Section root = Load("[t]\nn = 50\ns = 3\nx = 1\nl = [\"a\", 2]\nc = \"green\"\nf = 1e77\n"
                      "is = [3, 1]\n[[arr]]\nk = 1\n[[arr]]\nk = true\n");
  Section t = Sub(root, "t");
  int n = 0;
  std::string s;
  std::vector<std::string> l;
  Color c = Color::kRed;
  std::vector<int64_t> is;
  EXPECT_EQ(std::string(t.Int("n", &n, 0, 10).message()), "r.toml:2:5: t.n: must be between 0 and 10 (got 50)");
  EXPECT_EQ(std::string(t.String("s", &s).message()), "r.toml:3:5: t.s: must be a string");
  EXPECT_EQ(std::string(t.Known({"n", "s", "l", "c", "f", "is"}).message()), "r.toml:4:5: t.x: unknown key");
  EXPECT_EQ(std::string(t.StringList("l", &l).message()), "r.toml:5:11: t.l[1]: must be a string");
  EXPECT_EQ(std::string(t.Enum("c", &c, {{"red", Color::kRed}, {"blue", Color::kBlue}}).message()),
            "r.toml:6:5: t.c: must be one of \"red\", \"blue\" (got \"green\")");
  // A float is not taken for an integer (toml++'s conversion would be undefined for 1e77).
  EXPECT_EQ(std::string(t.Int("f", &n, 0, 10).message()), "r.toml:7:5: t.f: must be an integer");
  EXPECT_EQ(std::string(t.IntList("is", &is, 1, 9, true).message()),
            "r.toml:8:10: t.is[1]: must not be less than the one before");
  EXPECT_EQ(std::string(t.Error("missing", "is required").message()), "r.toml:1:1: t.missing: is required");
  absl::StatusOr<std::vector<Section>> arr = root.Tables("arr");
  ASSERT_TRUE(arr.ok());
  ASSERT_EQ(arr->size(), 2u);
  EXPECT_EQ((*arr)[1].name(), "arr[1]");
  bool k = false;
  EXPECT_EQ(std::string((*arr)[0].Bool("k", &k).message()), "r.toml:10:5: arr[0].k: must be true or false");
  EXPECT_EQ(std::string(root.Table("arr").status().message()), "r.toml:9:1: arr: must be a table");
  EXPECT_EQ(std::string(t.Tables("n").status().message()),
            "r.toml:2:5: t.n: must be an array of tables ([[t.n]])");
}

TEST(ParseDocument, SyntaxErrorsNameFileLineAndColumn) {
  absl::StatusOr<toml::table> doc = ParseDocument("a = 1\nb = = 2\n", "bad.toml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().message().rfind("bad.toml:2:", 0), 0u) << doc.status();
  EXPECT_EQ(std::string(ParseFile("/nonexistent/relayd.toml").status().message()),
            "/nonexistent/relayd.toml: cannot be read");
}

}  // namespace
}  // namespace relay::server::config
