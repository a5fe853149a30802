// relayctl init and dns-records: the directory written, the config loading as relayd loads it,
// the records printed, and the refusal to touch a directory holding an earlier init.
#include "tools/relayctl/init_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "relay/server/config.h"
#include "tools/relayctl/dns_records.h"

namespace relay::relayctl {
namespace {

namespace fs = std::filesystem;

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  std::string base = t != nullptr ? t : "/tmp";
  std::string tmpl = base + "/init_testXXXXXX";
  char* made = mkdtemp(tmpl.data());
  return made == nullptr ? base : std::string(made);
}

// Runs `command` with `args`; returns its exit code, `out` gets what it printed to `out`.
int RunCommand(int (*command)(int, char**, FILE*), std::vector<std::string> args,
               std::string* out) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  int rc = command(static_cast<int>(args.size()), argv.data(), f);
  std::fclose(f);
  *out = std::string(buf, len);
  std::free(buf);
  return rc;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class InitTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = TempDir() + "/relay"; }

  int Init(std::string* out) {
    return RunCommand(
        InitCommand,
        {"init", "example.test", "--dir", dir_, "--hostname", "mail.example.test", "--ipv4",
         "192.0.2.10", "--ipv6", "2001:db8::25", "--ipv6", "2001:db8:1::/64"},
        out);
  }

  std::string dir_;
};

TEST_F(InitTest, WritesAConfigThatLoadsWithBothKeysAndTheEgressPool) {
  std::string zone;
  ASSERT_EQ(Init(&zone), 0);
  absl::StatusOr<server::Config> c = server::LoadConfig(dir_ + "/relayd.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hostname, "mail.example.test");
  ASSERT_EQ(c->dkim_keys.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(c->dkim_keys[0].selector, "rsa"));
  EXPECT_TRUE(absl::StartsWith(c->dkim_keys[1].selector, "ed"));
  ASSERT_EQ(c->delivery.sources.size(), 3u);
  EXPECT_EQ(c->delivery.sources[0].address, "192.0.2.10");
  EXPECT_EQ(c->delivery.sources[0].ehlo_name, "mail.example.test");
  EXPECT_EQ(c->delivery.sources[2].prefix, "2001:db8:1::/64");
  EXPECT_EQ(c->delivery.sources[2].count, kPrefixCountDefault);
  EXPECT_EQ(c->submission_listen, (std::vector<std::string>{"0.0.0.0:587", "[::]:587"}));
  EXPECT_EQ(c->submissions_listen, (std::vector<std::string>{"0.0.0.0:465", "[::]:465"}));
  EXPECT_TRUE(fs::exists(c->tls_cert_path));
  EXPECT_TRUE(fs::exists(c->tls_key_path));
  for (const server::DkimKeyConfig& k : c->dkim_keys) {
    struct stat st;
    ASSERT_EQ(stat(k.key_path.c_str(), &st), 0) << k.key_path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << k.key_path;
  }
  EXPECT_TRUE(absl::StrContains(ReadFile(dir_ + "/relayd.toml"), "SELF-SIGNED"));

  // The records printed: zone-file lines, fully qualified.
  EXPECT_TRUE(absl::StrContains(zone, "example.test. ")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "IN MX    10 mail.example.test.")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "IN A     192.0.2.10")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "IN AAAA  2001:db8::25")) << zone;
  EXPECT_TRUE(absl::StrContains(
      zone, "\"v=spf1 ip4:192.0.2.10 ip6:2001:db8::25 ip6:2001:db8:1::/64 ~all\""))
      << zone;
  EXPECT_TRUE(
      absl::StrContains(zone, "\"v=DMARC1; p=none; rua=mailto:dmarc-reports@example.test\""))
      << zone;
  EXPECT_TRUE(absl::StrContains(zone, "10.2.0.192.in-addr.arpa.")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "IN PTR   mail.example.test.")) << zone;
  // The prefix's derived addresses: prefix + 1 .. + 4, named 1.mail.example.test ...
  EXPECT_TRUE(absl::StrContains(zone, "IN AAAA  2001:db8:1::4")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "4.mail.example.test.")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, ReverseOwner("2001:db8:1::4") + ". ")) << zone;
  EXPECT_FALSE(absl::StrContains(zone, "2001:db8:1::5")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "every address the relay sends from needs a PTR")) << zone;
  // Both DKIM records; the RSA one split into strings of at most 255 bytes.
  EXPECT_TRUE(absl::StrContains(zone, "._domainkey.example.test. ")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "\"v=DKIM1; k=ed25519; p=")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "\"v=DKIM1; k=rsa; p=")) << zone;

  // dns-records prints the same from the config written.
  std::string again;
  ASSERT_EQ(
      RunCommand(DnsRecordsCommand, {"dns-records", "--config", dir_ + "/relayd.toml"}, &again), 0);
  EXPECT_EQ(again, zone);
}

TEST_F(InitTest, RefusesADirectoryHoldingAnEarlierInit) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0);
  ASSERT_EQ(mkdir((dir_ + "/tls").c_str(), 0700), 0);
  std::ofstream(dir_ + "/tls/cert.pem") << "operator's file\n";
  std::string out;
  EXPECT_EQ(Init(&out), 1);
  EXPECT_EQ(out, "");
  EXPECT_FALSE(fs::exists(dir_ + "/relayd.toml"));
  EXPECT_FALSE(fs::exists(dir_ + "/keys"));
  EXPECT_EQ(ReadFile(dir_ + "/tls/cert.pem"), "operator's file\n");

  // And a directory it wrote itself is not rewritten either.
  std::string other = dir_ + "2";
  ASSERT_EQ(RunCommand(InitCommand, {"init", "example.test", "--dir", other}, &out), 0);
  std::string config = ReadFile(other + "/relayd.toml");
  EXPECT_EQ(RunCommand(InitCommand, {"init", "other.test", "--dir", other}, &out), 1);
  EXPECT_EQ(ReadFile(other + "/relayd.toml"), config);
}

// The Debian package makes /etc/relay for its relayd.toml.example: init writes beside it.
TEST_F(InitTest, WritesIntoThePackagesDirectory) {
  ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
  std::ofstream(dir_ + "/relayd.toml.example") << "# the package's reference copy\n";
  std::string zone;
  ASSERT_EQ(Init(&zone), 0);
  EXPECT_TRUE(server::LoadConfig(dir_ + "/relayd.toml").ok());
  EXPECT_EQ(ReadFile(dir_ + "/relayd.toml.example"), "# the package's reference copy\n");
  struct stat st;
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
}

TEST_F(InitTest, WithoutSourcesTheKernelChoosesAndSpfUsesMx) {
  std::string zone;
  ASSERT_EQ(RunCommand(InitCommand, {"init", "Example.TEST", "--dir", dir_}, &zone), 0);
  absl::StatusOr<server::Config> c = server::LoadConfig(dir_ + "/relayd.toml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hostname, "mail.example.test");
  EXPECT_TRUE(c->delivery.sources.empty());
  EXPECT_TRUE(absl::StrContains(zone, "\"v=spf1 mx ~all\"")) << zone;
  EXPECT_TRUE(absl::StrContains(zone, "needs an A (and AAAA) record")) << zone;
}

TEST_F(InitTest, RejectsBadArguments) {
  std::string out;
  EXPECT_EQ(RunCommand(InitCommand, {"init", "--dir", dir_}, &out), 2);
  EXPECT_EQ(RunCommand(InitCommand,
                       {"init", "example.test", "--dir", dir_, "--ipv4", "2001:db8::1"}, &out),
            2);
  EXPECT_EQ(
      RunCommand(InitCommand, {"init", "example.test", "--dir", dir_, "--ipv6", "192.0.2.1"}, &out),
      2);
  EXPECT_FALSE(fs::exists(dir_));
}

TEST(ReverseOwnerTest, Ipv4AndIpv6) {
  EXPECT_EQ(ReverseOwner("192.0.2.10"), "10.2.0.192.in-addr.arpa");
  // RFC 3596 §2.5's example form: nibbles, least significant first.
  EXPECT_EQ(ReverseOwner("2001:db8::567:89ab"),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_EQ(ReverseOwner("not an address"), "");
  EXPECT_TRUE(SameName("Mail.Example.test.", "mail.example.test"));
  EXPECT_FALSE(SameName("mail.example.test", "mail2.example.test"));
}

}  // namespace
}  // namespace relay::relayctl
