// CarryDsnParameters (relay/server/smtp_connection.h): the client's DSN parameters reach the
// queued envelope by address, forwarded targets by their alias, and port 25 asks for no success
// notice and no full return.
#include "gtest/gtest.h"
#include "relay/server/smtp_connection.h"

namespace relay::server {
namespace {

smtp::Envelope Client() {
  smtp::Envelope env;
  env.params.envid = "e1";
  env.params.ret = smtp::DsnReturn::kFull;
  env.recipients = {"a@example.org", "alias@local.test", "b@example.org"};
  env.rcpt_params.resize(3);
  env.rcpt_params[0].notify = smtp::kNotifySuccess | smtp::kNotifyFailure;
  env.rcpt_params[0].orcpt = "rfc822;A@example.org";
  env.rcpt_params[1].notify = smtp::kNotifySuccess;
  return env;
}

TEST(CarryDsnTest, SubmissionKeepsEverythingByAddress) {
  queue::Envelope q;
  q.recipients = {"b@example.org", "a@example.org"};  // order and a recipient left out
  CarryDsnParameters(Client(), /*received=*/false, &q);
  EXPECT_EQ(q.attributes.envid, "e1");
  EXPECT_EQ(q.attributes.dsn_ret, static_cast<uint8_t>(smtp::DsnReturn::kFull));
  ASSERT_EQ(q.notify.size(), 2u);
  EXPECT_EQ(q.notify[0], 0);
  EXPECT_EQ(q.notify[1], smtp::kNotifySuccess | smtp::kNotifyFailure);
  EXPECT_EQ(q.orcpt[1], "rfc822;A@example.org");
}

TEST(CarryDsnTest, PortTwentyFiveDropsSuccessAndFullReturn) {
  queue::Envelope q;
  q.recipients = {"a@example.org", "me@gmail.test", "you@gmail.test"};
  q.original_recipients = {"", "alias@local.test", "alias@local.test"};
  CarryDsnParameters(Client(), /*received=*/true, &q);
  EXPECT_EQ(q.attributes.dsn_ret, static_cast<uint8_t>(smtp::DsnReturn::kHeaders));
  ASSERT_EQ(q.notify.size(), 3u);
  EXPECT_EQ(q.notify[0], smtp::kNotifyFailure);
  // The alias asked for SUCCESS only: its targets get NEVER, not the default.
  EXPECT_EQ(q.notify[1], smtp::kNotifyNever);
  EXPECT_EQ(q.notify[2], smtp::kNotifyNever);
}

TEST(CarryDsnTest, NoParametersNoVectors) {
  smtp::Envelope env;
  env.recipients = {"a@example.org"};
  env.rcpt_params.resize(1);
  queue::Envelope q;
  q.recipients = env.recipients;
  CarryDsnParameters(env, /*received=*/false, &q);
  EXPECT_TRUE(q.notify.empty());
  EXPECT_TRUE(q.orcpt.empty());
  EXPECT_TRUE(q.attributes.empty());
}

}  // namespace
}  // namespace relay::server
