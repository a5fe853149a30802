#include "relay/server/users.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace relay::server {
namespace {

// Cheap parameters for tests; the cost of the default is measured by users_bench.
constexpr ScryptParams kFast{10, 8, 1};

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::trunc);
  out << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Hash(const std::string& password) { return HashPassword(password, kFast).value(); }

TEST(PasswordHashTest, RoundTripAndSelfDescribingFormat) {
  std::string hash = Hash("correct horse");
  EXPECT_EQ(hash.rfind("$scrypt$ln=10,r=8,p=1$", 0), 0u) << hash;
  EXPECT_TRUE(VerifyPasswordHash(hash, "correct horse"));
  EXPECT_FALSE(VerifyPasswordHash(hash, "correct horsf"));
  EXPECT_FALSE(VerifyPasswordHash(hash, ""));
  EXPECT_NE(Hash("correct horse"), hash);  // A fresh salt each time.
  // The default parameters are written out and verify.
  auto strong = HashPassword("pw", ScryptParams());
  ASSERT_TRUE(strong.ok());
  EXPECT_EQ(strong->rfind("$scrypt$ln=15,r=8,p=1$", 0), 0u);
  EXPECT_TRUE(VerifyPasswordHash(*strong, "pw"));
}

TEST(PasswordHashTest, MalformedHashesAreRejectedAndMatchNothing) {
  for (const char* bad :
       {"", "plain", "$scrypt$ln=10,r=8$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=10,r=8,p=1$!!$a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
        "$scrypt$ln=10,r=8,p=1,x=2$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5", "$bcrypt$whatever"}) {
    EXPECT_FALSE(ValidatePasswordHash(bad).ok()) << bad;
    EXPECT_FALSE(VerifyPasswordHash(bad, "x")) << bad;
  }
  EXPECT_FALSE(HashPassword("", kFast).ok());
  EXPECT_FALSE(HashPassword("x", ScryptParams{22, 8, 1}).ok());  // 512 MiB: over the bound.
}

class UserDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath("users");
    WriteFile(path_,
              "# Relay users\n"
              "\n"
              "app@Example.COM\t" +
                  Hash("app-pw") +
                  "\n"
                  "# the reporting job\n"
                  "reports  " +
                  Hash("rep-pw") +
                  "  reports@example.com,@Example.org\n"
                  "bare " +
                  Hash("bare-pw") + "\n");
    options_.clock = &clock_;
    options_.credential_cache_ttl_ms = 60000;
    options_.credential_cache_entries_max = 2;
  }

  std::shared_ptr<UserDb> LoadOk() {
    auto db = UserDb::Load(path_, options_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? *db : nullptr;
  }

  std::string path_;
  FakeClock clock_;
  UserDbOptions options_;
};

TEST_F(UserDbTest, LoadsUsersInFileOrderWithNormalizedNames) {
  auto db = LoadOk();
  EXPECT_EQ(db->List(), (std::vector<std::string>{"app@example.com", "reports", "bare"}));
  ASSERT_NE(db->Find("app@EXAMPLE.com"), nullptr);  // Domain case does not matter ...
  EXPECT_EQ(db->Find("App@example.com"), nullptr);  // ... the local part does.
  EXPECT_EQ(db->Find("reports")->may_send_as,
            (std::vector<std::string>{"reports@example.com", "@Example.org"}));
}

int64_t ThreadCpuNanos() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

TEST_F(UserDbTest, UnknownUserCostsAFullScrypt) {
  // So that the time to answer does not tell which names exist. CPU time of this thread, so
  // other work on the machine does not matter; a skipped scrypt would be ~1000 times cheaper.
  auto db = LoadOk();
  int64_t start = ThreadCpuNanos();
  EXPECT_FALSE(db->Verify("nobody", "x"));
  int64_t unknown = ThreadCpuNanos() - start;
  std::string strong = HashPassword("pw", ScryptParams()).value();
  start = ThreadCpuNanos();
  EXPECT_FALSE(VerifyPasswordHash(strong, "x"));
  int64_t known = ThreadCpuNanos() - start;
  EXPECT_GT(unknown * 3, known) << unknown << " vs " << known;
}

TEST_F(UserDbTest, VerifyChecksThePassword) {
  auto db = LoadOk();
  EXPECT_TRUE(db->Verify("app@example.com", "app-pw"));
  EXPECT_TRUE(db->Verify("app@EXAMPLE.com", "app-pw"));
  EXPECT_FALSE(db->Verify("app@example.com", "rep-pw"));
  EXPECT_FALSE(db->Verify("reports", "app-pw"));
  EXPECT_FALSE(db->Verify("nobody", "app-pw"));
  EXPECT_TRUE(db->Verify("bare", "bare-pw"));
}

TEST_F(UserDbTest, MaySendAs) {
  auto db = LoadOk();
  // No list: the user's own address, domain case-insensitive, local part exact.
  EXPECT_TRUE(db->MaySendAs("app@example.com", "app@example.com"));
  EXPECT_TRUE(db->MaySendAs("app@example.com", "app@EXAMPLE.COM"));
  EXPECT_FALSE(db->MaySendAs("app@example.com", "App@example.com"));
  EXPECT_FALSE(db->MaySendAs("app@example.com", "other@example.com"));
  // Listed address and @domain.
  EXPECT_TRUE(db->MaySendAs("reports", "reports@example.com"));
  EXPECT_FALSE(db->MaySendAs("reports", "ceo@example.com"));
  EXPECT_TRUE(db->MaySendAs("reports", "anyone@example.org"));
  EXPECT_TRUE(db->MaySendAs("reports", "anyone@EXAMPLE.ORG"));
  EXPECT_FALSE(db->MaySendAs("reports", "anyone@sub.example.org"));
  EXPECT_FALSE(db->MaySendAs("reports", "anyone@example.org.evil"));
  // A bare name with no list sends as nobody; unknown users and non-addresses neither.
  EXPECT_FALSE(db->MaySendAs("bare", "bare@example.com"));
  EXPECT_FALSE(db->MaySendAs("nobody", "nobody@example.com"));
  EXPECT_FALSE(db->MaySendAs("reports", "example.org"));
  EXPECT_FALSE(db->MaySendAs("reports", ""));
}

TEST_F(UserDbTest, ErrorsNameTheFileAndLine) {
  struct Case {
    std::string contents;
    int line;
    std::string words;
  } cases[] = {
      {"# ok\nuser\n", 2, "expected NAME"},
      {"a " + Hash("x") + "\nb $scrypt$ln=10$x$y\n", 2, "ln, r and p"},
      {"a " + Hash("x") + "\n\na " + Hash("y") + "\n", 3, "appears twice"},
      {"a " + Hash("x") + " example.com\n", 1, "neither an address nor @domain"},
      {"a " + Hash("x") + " x@y z\n", 1, "expected NAME"},
      {"@example.com " + Hash("x") + "\n", 1, "not an address"},
      {"a plain-text-password\n", 1, "$scrypt$"},
  };
  for (const Case& c : cases) {
    WriteFile(path_, c.contents);
    auto db = UserDb::Load(path_, options_);
    ASSERT_FALSE(db.ok()) << c.contents;
    std::string message(db.status().message());
    EXPECT_NE(message.find("users file " + path_ + " line " + std::to_string(c.line) + ": "),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(c.words), std::string::npos) << message;
  }
  auto missing = UserDb::Load(TempPath("no-such-users"), options_);
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  auto empty = UserDb::LoadOrEmpty(TempPath("no-such-users"), options_);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ((*empty)->size(), 0u);
}

// relayd reads the file as its own user: an operator makes it root:relay 0640, and a save (as
// root, by relayctl) must keep that, or the next restart cannot read it.
TEST_F(UserDbTest, SaveKeepsTheFilesOwnerGroupAndMode) {
  ASSERT_EQ(chmod(path_.c_str(), 0640), 0);
  const bool root = geteuid() == 0;
  if (root) {
    ASSERT_EQ(chown(path_.c_str(), 1, 1), 0);
  }
  auto db = LoadOk();
  ASSERT_TRUE(db->Add("second@example.com", "pw", {}, kFast).ok());
  ASSERT_TRUE(db->Save().ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  if (root) {
    EXPECT_EQ(st.st_uid, 1u);
    EXPECT_EQ(st.st_gid, 1u);
  }
  EXPECT_TRUE(LoadOk()->Verify("second@example.com", "pw"));
}

TEST_F(UserDbTest, AddRemoveSaveKeepsCommentsAndIsPrivate) {
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  auto db = LoadOk();
  ASSERT_TRUE(db->Add("new@Example.net", "new-pw", {"@example.net"}, kFast).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(db->Add("new@example.NET", "x", {}, kFast)));
  EXPECT_FALSE(db->Add("has space", "x", {}, kFast).ok());
  EXPECT_FALSE(db->Add("x", "x", {"not-an-address"}, kFast).ok());
  ASSERT_TRUE(db->Remove("reports").ok());
  EXPECT_TRUE(absl::IsNotFound(db->Remove("reports")));
  ASSERT_TRUE(db->Save().ok());

  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640);  // 0644 before: the group's read is kept, others' not
  std::string text = ReadFile(path_);
  EXPECT_EQ(text.rfind("# Relay users\n\napp@example.com $scrypt$", 0), 0u) << text;
  EXPECT_NE(text.find("# the reporting job\n"), std::string::npos);
  EXPECT_NE(text.find("\nnew@example.net $scrypt$ln=10,r=8,p=1$"), std::string::npos) << text;
  EXPECT_NE(text.find(" @example.net\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("reports"), std::string::npos);

  auto reloaded = LoadOk();
  EXPECT_EQ(reloaded->List(),
            (std::vector<std::string>{"app@example.com", "bare", "new@example.net"}));
  EXPECT_TRUE(reloaded->Verify("new@example.net", "new-pw"));
  EXPECT_TRUE(reloaded->MaySendAs("new@example.net", "x@example.net"));
  ASSERT_TRUE(reloaded->SetPassword("bare", "changed", kFast).ok());
  EXPECT_TRUE(reloaded->Verify("bare", "changed"));
  EXPECT_FALSE(reloaded->Verify("bare", "bare-pw"));
}

// Saving a loaded file twice writes the same bytes, also for a comment line ending in CRs.
TEST_F(UserDbTest, SaveIsStableWithCarriageReturns) {
  const std::string hash = Hash("bare-pw");
  WriteFile(path_, "# crlf\r\r\n\r\r\nbare " + hash + "\r\n");
  ASSERT_TRUE(LoadOk()->Save().ok());
  const std::string once = ReadFile(path_);
  EXPECT_EQ(once, "# crlf\n\nbare " + hash + "\n");
  ASSERT_TRUE(LoadOk()->Save().ok());
  EXPECT_EQ(ReadFile(path_), once);
}

TEST_F(UserDbTest, CredentialCacheRemembersSuccessOnlyForAWhile) {
  auto db = LoadOk();
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw"));
  // Failures are never cached as anything.
  EXPECT_FALSE(db->Verify("app@example.com", "wrong"));
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "wrong"));
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw"));

  EXPECT_TRUE(db->Verify("app@example.com", "app-pw"));
  EXPECT_TRUE(db->CheckCachedCredentials("app@example.com", "app-pw"));
  EXPECT_TRUE(db->CheckCachedCredentials("app@EXAMPLE.com", "app-pw"));
  // A cached success does not make another password pass.
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw2"));
  EXPECT_FALSE(db->Verify("app@example.com", "app-pw2"));
  EXPECT_FALSE(db->CheckCachedCredentials("reports", "app-pw"));

  clock_.AdvanceMillis(59999);
  EXPECT_TRUE(db->CheckCachedCredentials("app@example.com", "app-pw"));
  clock_.AdvanceMillis(1);
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw"));
  EXPECT_TRUE(db->Verify("app@example.com", "app-pw"));  // Full check again, and re-cached.
  EXPECT_TRUE(db->CheckCachedCredentials("app@example.com", "app-pw"));

  // A new snapshot (the file changed and was reloaded) starts with nothing cached.
  auto reloaded = LoadOk();
  EXPECT_FALSE(reloaded->CheckCachedCredentials("app@example.com", "app-pw"));
  // A changed password invalidates the entry even in a mutated copy.
  ASSERT_TRUE(db->SetPassword("app@example.com", "new-pw", kFast).ok());
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw"));
}

TEST_F(UserDbTest, CredentialCacheIsBounded) {
  auto db = LoadOk();  // entries_max = 2.
  ASSERT_TRUE(db->Verify("app@example.com", "app-pw"));
  clock_.AdvanceMillis(10);
  ASSERT_TRUE(db->Verify("reports", "rep-pw"));
  clock_.AdvanceMillis(10);
  ASSERT_TRUE(db->Verify("bare", "bare-pw"));
  EXPECT_FALSE(db->CheckCachedCredentials("app@example.com", "app-pw"));  // Oldest evicted.
  EXPECT_TRUE(db->CheckCachedCredentials("reports", "rep-pw"));
  EXPECT_TRUE(db->CheckCachedCredentials("bare", "bare-pw"));
}

TEST_F(UserDbTest, SnapshotIsSafeToVerifyFromManyThreads) {
  options_.clock = RealClock::Get();
  options_.credential_cache_entries_max = 16;
  std::shared_ptr<const UserDb> db = LoadOk();
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        if (!db->Verify("app@example.com", "app-pw")) ++wrong;
        if (db->Verify("reports", t % 2 ? "rep-pw" : "bad")) wrong += t % 2 ? 0 : 1;
        if (!db->MaySendAs("reports", "x@example.org")) ++wrong;
        (void)db->CheckCachedCredentials("bare", "bare-pw");
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace relay::server
