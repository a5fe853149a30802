#include "relay/server/config/event_sections.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "relay/base/status_macros.h"

namespace relay::server::config {
namespace {

absl::StatusOr<EventsSettings> Parse(const std::string& text) {
  ASSIGN_OR_RETURN(toml::table doc, ParseDocument(text, "relayd.toml"));
  return ParseEvents(Section("relayd.toml", "", doc), std::getenv("TEST_TMPDIR"));
}

constexpr char kHook[] =
    "[[events.webhook]]\nname = \"app\"\nurl = \"https://hooks.example.com/x\"\n"
    "tenants = [\"Example.COM\"]\n";

TEST(Events, NoWebhookNoJournal) {
  auto s = Parse("");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->enabled());
}

TEST(Events, ReadsAWebhookWithItsSecretFile) {
  std::ofstream(std::string(std::getenv("TEST_TMPDIR")) + "/hook.secret")
      << "0123456789abcdef0123\n";
  auto s = Parse(std::string("[events]\njournal_bytes_max = 1048576\n") + kHook +
                 "secret_file = \"hook.secret\"\nevents = [\"bounced\"]\nbatch_events_max = 10\n");
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->webhooks.size(), 1u);
  const events::WebhookOptions& w = s->webhooks[0];
  EXPECT_EQ(w.secret, "0123456789abcdef0123");
  EXPECT_EQ(w.tenants, std::vector<std::string>{"example.com"});
  EXPECT_EQ(w.events, std::vector<std::string>{"bounced"});
  EXPECT_EQ(w.batch_events_max, 10u);
  EXPECT_EQ(s->journal_bytes_max, 1048576u);
  EXPECT_EQ(s->sync_interval_ms, 100);
  auto strict = Parse(std::string("[events]\nsync = \"with-queue\"\n") + kHook +
                      "secret = \"0123456789abcdef\"\n");
  ASSERT_TRUE(strict.ok()) << strict.status();
  EXPECT_EQ(strict->sync_interval_ms, 0);
}

constexpr char kAmqp[] =
    "[[events.amqp]]\nname = \"bus\"\nurl = \"amqp://relay@10.0.0.5/mail\"\n"
    "tenants = [\"*\"]\n";

TEST(Events, ReadsAnAmqpSinkWithItsPasswordFile) {
  std::ofstream(std::string(std::getenv("TEST_TMPDIR")) + "/amqp.password") << "s3cret pw \n";
  auto s = Parse(std::string(kAmqp) +
                 "password_file = \"amqp.password\"\n"
                 "events = [\"bounced\", \"complained\"]\nheartbeat_s = 0\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->enabled()) << "an AMQP sink alone turns the journal on";
  ASSERT_EQ(s->amqp.size(), 1u);
  const events::AmqpOptions& a = s->amqp[0];
  EXPECT_EQ(a.name, "bus");
  EXPECT_EQ(a.password, "s3cret pw");
  EXPECT_EQ(a.exchange, "relay.events");
  EXPECT_EQ(a.exchange_type, "topic");
  EXPECT_TRUE(a.declare_exchange);
  EXPECT_EQ(a.heartbeat_s, 0);
  EXPECT_EQ(a.timeout_ms, 10000);
  EXPECT_EQ(a.events, (std::vector<std::string>{"bounced", "complained"}));
  auto amq = Parse(std::string(kAmqp) +
                   "exchange = \"amq.topic\"\ndeclare_exchange = false\n"
                   "exchange_type = \"fanout\"\n");
  ASSERT_TRUE(amq.ok()) << amq.status();
  EXPECT_EQ(amq->amqp[0].exchange, "amq.topic");
  EXPECT_EQ(amq->amqp[0].exchange_type, "fanout");
}

TEST(Events, RefusesWhatCannotWork) {
  const std::string secret = "secret = \"0123456789abcdef\"\n";
  struct Case {
    std::string text, error;
  } cases[] = {
      {kHook, "needs exactly one of secret and secret_file"},
      {std::string(kHook) + "secret = \"short\"\n", "at least 16 bytes"},
      {std::string(kHook) + secret + "events = [\"opened\"]\n", "\"opened\" is not an event"},
      {"[[events.webhook]]\nname = \"a\"\nurl = \"http://hooks.example.com/\"\n"
       "tenants = [\"*\"]\n" +
           secret,
       "http:// only to a loopback address"},
      {"[[events.webhook]]\nname = \"A b\"\nurl = \"https://x/\"\ntenants = [\"*\"]\n" + secret,
       "may hold only"},
      {std::string(kHook) + secret + kHook + secret, "names another sink too"},
      {std::string(kHook) + secret + "retry_initial_ms = 5000\nretry_ms_max = 1000\n",
       "less than retry_initial_ms"},
      {"[[events.webhook]]\nname = \"a\"\nurl = \"https://x/\"\n" + secret, "tenants: is required"},
      {"[[events.amqp]]\nname = \"bus\"\nurl = \"amqps://broker/%2f\"\ntenants = [\"*\"]\n",
       "amqps:// is not offered"},
      {"[[events.amqp]]\nname = \"bus\"\nurl = \"amqp://broker/\"\ntenants = [\"*\"]\n",
       "empty vhost"},
      {"[[events.amqp]]\nname = \"bus\"\nurl = \"amqp://u:p@broker\"\ntenants = [\"*\"]\n"
       "password_file = \"amqp.password\"\n",
       "give one of them"},
      {std::string(kAmqp) + "password_file = \"no-such.password\"\n", "cannot read"},
      {std::string(kAmqp) + "exchange_type = \"x-delayed\"\n", "must be one of"},
      {std::string(kAmqp) + "exchange = \"amq.topic\"\n", "declare_exchange = false"},
      {std::string(kAmqp) + "exchange = \"a b\"\n", "may hold only"},
      {std::string(kAmqp) + "secret = \"0123456789abcdef\"\n", "unknown key"},
      {std::string(kHook) + secret +
           "[[events.amqp]]\nname = \"app\"\nurl = \"amqp://b\"\n"
           "tenants = [\"*\"]\n",
       "names another sink too"},
  };
  for (const Case& c : cases) {
    auto s = Parse(c.text);
    ASSERT_FALSE(s.ok()) << c.text;
    EXPECT_NE(std::string(s.status().message()).find(c.error), std::string::npos)
        << s.status() << "\nwanted: " << c.error;
  }
}

}  // namespace
}  // namespace relay::server::config
