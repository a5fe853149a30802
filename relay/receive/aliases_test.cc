#include "relay/receive/aliases.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace relay::receive {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<Aliases> Make(std::vector<AliasesFile> files, AliasesOptions options = {}) {
  return Aliases::Build(files, options);
}

AliasesFile File(std::string domain, std::string text) {
  return AliasesFile{domain, "aliases/" + domain, std::move(text)};
}

TEST(AliasesTest, NamedAliasCatchAllAndUnknown) {
  auto a = Make({File("local.test",
                      "# the owner\n"
                      "postmaster: admin   # local target\n"
                      "admin: Someone@Gmail.example, other@example.org\n"
                      "\n"
                      "*: me@gmail.example\n"),
                 File("nocatch.test", "bob: bob@example.net\n")});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->IsLocalDomain("LOCAL.test"));
  EXPECT_FALSE(a->IsLocalDomain("example.org"));

  Expansion e = a->Expand("postmaster@local.test");
  EXPECT_EQ(e.status, ExpandStatus::kExpanded);
  // External local parts keep their case; domains are lower-cased.
  EXPECT_THAT(e.targets, ElementsAre("Someone@gmail.example", "other@example.org"));

  e = a->Expand("anything@local.test");
  EXPECT_EQ(e.status, ExpandStatus::kExpanded);
  EXPECT_THAT(e.targets, ElementsAre("me@gmail.example"));

  e = a->Expand("bob@nocatch.test");
  EXPECT_THAT(e.targets, ElementsAre("bob@example.net"));
  EXPECT_EQ(a->Expand("alice@nocatch.test").status, ExpandStatus::kUnknownUser);
  EXPECT_EQ(a->Expand("x@example.org").status, ExpandStatus::kNotLocal);
  EXPECT_EQ(a->Expand("no-at-sign").status, ExpandStatus::kNotLocal);
}

TEST(AliasesTest, CaseInsensitiveAndSuffixDropped) {
  auto a = Make({File("local.test", "Bob: bob@example.net\nbob+list: list@example.net\n")});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->Expand("BOB@Local.Test").targets, ElementsAre("bob@example.net"));
  EXPECT_THAT(a->Expand("bob+news@local.test").targets, ElementsAre("bob@example.net"));
  // A line for the full local part wins over the suffix rule.
  EXPECT_THAT(a->Expand("Bob+List@local.test").targets, ElementsAre("list@example.net"));
  EXPECT_EQ(a->Expand("bobby@local.test").status, ExpandStatus::kUnknownUser);

  AliasesOptions no_suffix;
  no_suffix.suffix_separators = "";
  auto b = Make({File("local.test", "bob: bob@example.net\n")}, no_suffix);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->Expand("bob+x@local.test").status, ExpandStatus::kUnknownUser);
}

TEST(AliasesTest, RecursiveAcrossDomainsWithDeduplication) {
  auto a = Make({File("a.test", "team: alice, bob@b.test\nalice: alice@ext.example\n"),
                 File("b.test", "bob: alice@a.test, bob@ext.example\n")});
  ASSERT_TRUE(a.ok()) << a.status();
  // alice@ext.example is reached twice (a diamond, not a loop) and listed once.
  EXPECT_THAT(a->Expand("team@a.test").targets,
              ElementsAre("alice@ext.example", "bob@ext.example"));
}

TEST(AliasesTest, LoopIsAConfigErrorNamingTheLine) {
  auto a = Make({File("local.test", "a: b\nb: c\nc: a\n")});
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("alias loop"));
  EXPECT_THAT(a.status().message(), HasSubstr("aliases/local.test:"));
  // The catch-all pointing back into its own domain loops for any unknown user.
  auto b = Make({File("local.test", "*: nobody\n")});
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("alias loop"));
  EXPECT_THAT(b.status().message(), HasSubstr("aliases/local.test:1"));
  // Across domains.
  auto c = Make({File("a.test", "x: x@b.test\n"), File("b.test", "x: x@a.test\n")});
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("alias loop"));
}

TEST(AliasesTest, DepthLimit) {
  std::string chain;
  for (int i = 0; i < 5; ++i) chain += "u" + std::to_string(i) + ": u" + std::to_string(i + 1) + "\n";
  chain += "u5: end@ext.example\n";
  AliasesOptions deep;
  deep.depth_max = 6;
  EXPECT_TRUE(Make({File("local.test", chain)}, deep).ok());
  AliasesOptions shallow;
  shallow.depth_max = 3;
  auto a = Make({File("local.test", chain)}, shallow);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("deeper than depth_max 3"));
}

// Lists of lists: each line is expanded once, whatever the number of paths to it. Walking every
// path, ten levels of six lines naming all six of the next level took 6^10 steps.
TEST(AliasesTest, ListsOfListsExpandOnce) {
  std::string text;
  for (int level = 0; level < 10; ++level) {
    for (int i = 0; i < 6; ++i) {
      text += "l" + std::to_string(level) + "x" + std::to_string(i) + ":";
      for (int j = 0; j < 6; ++j) {
        text += j == 0 ? " " : ", ";
        text += level < 9 ? "l" + std::to_string(level + 1) + "x" + std::to_string(j)
                          : "m" + std::to_string(j) + "@ext.example";
      }
      text += "\n";
    }
  }
  auto a = Make({File("local.test", text)});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->Expand("l0x3@local.test").targets,
              ElementsAre("m0@ext.example", "m1@ext.example", "m2@ext.example", "m3@ext.example",
                          "m4@ext.example", "m5@ext.example"));
}

TEST(AliasesTest, LocalUserWithoutForwardingIsAConfigError) {
  auto a = Make({File("local.test", "postmaster: admin\n")});
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("aliases/local.test:1: target admin@local.test"));
  EXPECT_THAT(a.status().message(), HasSubstr("no mailboxes"));
}

TEST(AliasesTest, ParseErrorsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"ok: x@ext.example\nno colon here\n", "aliases/local.test:2: expected"},
      {": x@ext.example\n", ":1: no user before ':'"},
      {"a@b.test: x@ext.example\n", ":1: \"a@b.test\": a user is a local part only"},
      {"a: x@ext.example,\n", ":1: empty target"},
      {"a: x@\n", ":1: invalid target address \"x@\""},
      {"a: |/bin/cat\n", ":1: pipe aliases are not supported"},
      {"a: x@ext.example\nA: y@ext.example\n", ":2: user \"A\" already has a line at "
                                               "aliases/local.test:1"},
      {"a b: x@ext.example\n", ":1: invalid user"},
  };
  for (const Case& c : cases) {
    auto a = Make({File("local.test", c.text)});
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_THAT(a.status().message(), HasSubstr(c.error)) << c.text;
  }
  auto twice = Make({File("local.test", ""), File("LOCAL.test", "")});
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), HasSubstr("given aliases twice"));
}

TEST(AliasesTest, TargetsMax) {
  AliasesOptions options;
  options.targets_max = 2;
  auto a = Make({File("local.test", "list: a@x.example, b@x.example, c@x.example\n")}, options);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("more than 2 targets"));
}

TEST(AliasesTest, LoadReadsFilesAndNamesMissingOnes) {
  std::string dir = ::testing::TempDir();
  std::string path = dir + "/local.test";
  std::ofstream(path) << "*: me@ext.example # all of it\r\n";
  auto a = Aliases::Load({{"local.test", path}}, {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(a->Expand("z@local.test").targets, ElementsAre("me@ext.example"));
  auto missing = Aliases::Load({{"gone.test", dir + "/gone.test"}}, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("gone.test: cannot read"));
}

TEST(AliasesTest, HolderSwaps) {
  auto a = Make({File("one.test", "*: x@ext.example\n")});
  auto b = Make({File("two.test", "*: x@ext.example\n")});
  ASSERT_TRUE(a.ok() && b.ok());
  AliasesHolder holder(std::make_shared<const Aliases>(std::move(*a)));
  std::shared_ptr<const Aliases> before = holder.Get();
  holder.Set(std::make_shared<const Aliases>(std::move(*b)));
  EXPECT_TRUE(before->IsLocalDomain("one.test"));
  EXPECT_TRUE(holder.Get()->IsLocalDomain("two.test"));
  EXPECT_FALSE(holder.Get()->IsLocalDomain("one.test"));
}

}  // namespace
}  // namespace relay::receive
