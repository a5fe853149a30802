#include "relay/smtp/server_session.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "relay/smtp/sasl.h"
#include "relay/smtp/text.h"

namespace relay::smtp {
namespace {

using namespace std::string_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class TestPolicy : public ServerPolicy {
 public:
  // alice may send as alice@example.com, anything @alice.example and the null sender.
  bool MaySendAs(std::string_view user, std::string_view address) override {
    ++send_as_calls;
    if (user != "alice") return false;
    return address.empty() || address == "alice@example.com" ||
           (address.size() > 14 && address.substr(address.size() - 14) == "@alice.example");
  }
  void OnMailFrom(std::string_view address) override { mail_from.emplace_back(address); }
  std::vector<std::string> mail_from;  // every accepted MAIL FROM, in order
  RcptDecision CheckRecipient(std::string_view address) override {
    auto ends = [&](std::string_view suffix) {
      return address.size() >= suffix.size() &&
             address.substr(address.size() - suffix.size()) == suffix;
    };
    if (ends("@unknown.example")) return RcptDecision::kUnknownUser;
    if (ends("@relay.example")) return RcptDecision::kRelayDenied;
    if (ends("@temp.example")) return RcptDecision::kTemporaryFailure;
    return RcptDecision::kAccept;
  }
  int send_as_calls = 0;
};

ServerConfig TestConfig() {
  ServerConfig config;
  config.hostname = "mx.test";
  config.tls_available = true;
  config.limits.errors_max = 100;  // tests of errors_max set it themselves
  return config;
}

std::string PlainResponse(std::string_view user, std::string_view password) {
  return Base64Encode(Concat(std::string(1, '\0'), user, std::string(1, '\0'), password));
}

// Plays the driver: answers credential checks (password "secret" is right), queues messages as
// Q1, Q2, ... and completes TLS handshakes, unless told to leave them to the test.
class Driver {
 public:
  explicit Driver(ServerConfig config = TestConfig()) : session(config, &policy) {}

  std::string Connect(bool implicit_tls = false) {
    const size_t before = written.size();
    Drain(session.OnConnected("192.0.2.1", implicit_tls));
    if (implicit_tls) Drain(session.OnTlsEstablished("TLSv1.3", "TLS_AES_128_GCM_SHA256"));
    return written.substr(before);
  }
  std::string Send(std::string_view bytes) {
    const size_t before = written.size();
    Drain(session.OnBytes(bytes));
    return written.substr(before);
  }
  // Implicit TLS, EHLO and AUTH PLAIN as alice; returns nothing, asserts success.
  void LoginAlice() {
    Connect(/*implicit_tls=*/true);
    Send("EHLO client.example\r\n");
    ASSERT_EQ(Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
              "235 2.7.0 Authentication successful\r\n");
  }

  void Drain(const ServerActions& first) {
    const ServerActions* a = &first;
    while (true) {
      written += a->write;
      if (a->close) {
        closed = true;
        return;
      }
      if (a->start_tls) {
        ++tls_starts;
        if (!auto_tls) return;
        a = &session.OnTlsEstablished("TLSv1.3", "TLS_AES_128_GCM_SHA256");
        continue;
      }
      if (a->check_credentials) {
        credentials.push_back(a->credentials);
        if (!auto_auth) return;
        a = &session.OnAuthResult(a->credentials.password == "secret" ? AuthResult::kOk
                                                                      : AuthResult::kFailed);
        continue;
      }
      if (a->message_ready) {
        messages.emplace_back(session.message());
        envelopes.push_back(session.envelope());
        if (!auto_queue) return;
        a = &session.OnMessageQueued("Q" + std::to_string(messages.size()));
        continue;
      }
      return;
    }
  }

  TestPolicy policy;
  ServerSession session;
  bool auto_tls = true;
  bool auto_auth = true;
  bool auto_queue = true;
  std::string written;
  bool closed = false;
  int tls_starts = 0;
  std::vector<CredentialCheck> credentials;
  std::vector<std::string> messages;
  std::vector<Envelope> envelopes;
};

constexpr std::string_view kEhloReplyTls =
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n";

TEST(ServerSession, GreetingAndEhloAdvertisement) {
  Driver d;
  EXPECT_EQ(d.Connect(), "220 mx.test ESMTP ready\r\n");
  // Plaintext: STARTTLS offered, AUTH not (it needs TLS by default).
  EXPECT_EQ(d.Send("EHLO client.example\r\n"),
            "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 36700160\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n"
            "250 STARTTLS\r\n");
  Driver tls;
  tls.Connect(/*implicit_tls=*/true);
  EXPECT_EQ(tls.Send("ehlo client.example\r\n"), kEhloReplyTls);
  EXPECT_TRUE(tls.session.esmtp());
  EXPECT_EQ(tls.session.ehlo_name(), "client.example");
  // No TLS configured and AUTH allowed without TLS (a port-25 style listener).
  ServerConfig config = TestConfig();
  config.tls_available = false;
  config.auth_requires_tls = false;
  Driver plain(config);
  plain.Connect();
  EXPECT_THAT(plain.Send("EHLO c\r\n"), HasSubstr("250-DSN\r\n250 AUTH PLAIN LOGIN\r\n"));
}

TEST(ServerSession, Helo) {
  Driver d;
  d.Connect();
  EXPECT_EQ(d.Send("HELO client.example\r\n"), "250 mx.test\r\n");
  EXPECT_FALSE(d.session.esmtp());
  EXPECT_EQ(d.Send("HELO\r\n"), "501 5.5.4 Syntax: HELO hostname\r\n");
  EXPECT_EQ(d.Send("EHLO bad name\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
}

TEST(ServerSession, SimpleCommands) {
  Driver d;
  d.Connect();
  EXPECT_EQ(d.Send("NOOP\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.Send("NOOP whatever\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.Send("RSET\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.Send("RSET x\r\n"), "501 5.5.4 Syntax: RSET\r\n");
  EXPECT_EQ(d.Send("VRFY bob\r\n"),
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n");
  EXPECT_EQ(d.Send("VRFY\r\n"), "501 5.5.4 Syntax: VRFY address\r\n");
  EXPECT_EQ(d.Send("EXPN list\r\n"), "502 5.5.1 EXPN not supported\r\n");
  EXPECT_THAT(d.Send("HELP\r\n"), StartsWith("214 2.0.0 "));
  EXPECT_EQ(d.Send("FOO bar\r\n"), "500 5.5.2 Command unrecognized\r\n");
  EXPECT_EQ(d.Send("\r\n"), "500 5.5.2 Command unrecognized\r\n");
  EXPECT_EQ(d.Send("QUIT now\r\n"), "501 5.5.4 Syntax: QUIT\r\n");
  EXPECT_EQ(d.Send("QUIT\r\nNOOP\r\n"), "221 2.0.0 Bye\r\n");
  EXPECT_TRUE(d.closed);
  EXPECT_TRUE(d.session.closed());
  EXPECT_EQ(d.Send("NOOP\r\n"), "");  // nothing after QUIT
}

TEST(ServerSession, SequenceErrors) {
  Driver d;
  d.Connect(/*implicit_tls=*/true);
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\n"), "503 5.5.1 Send HELO/EHLO first\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(d.Send("DATA\r\n"), "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN\r\n"), "503 5.5.1 Send EHLO first\r\n");
  d.Send("EHLO c.example\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\n"), "530 5.7.0 Authentication required\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\n"), "503 5.5.1 Nested MAIL command\r\n");
  EXPECT_EQ(d.Send("DATA\r\n"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN\r\n"), "503 5.5.1 Already authenticated\r\n");
  EXPECT_EQ(d.Send("DATA x\r\n"), "501 5.5.4 Syntax: DATA\r\n");
  EXPECT_EQ(d.Send("RSET\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command\r\n");
}

TEST(ServerSession, FullTransaction) {
  Driver d;
  d.LoginAlice();
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> SIZE=100 BODY=8BITMIME\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<bob@example.org>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<carol@example.net>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.Send("Subject: hi\r\n\r\nHello Bob.\r\n"), "");
  EXPECT_EQ(d.Send(".\r\n"), "250 2.0.0 Ok: queued as Q1\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0], "Subject: hi\r\n\r\nHello Bob.\r\n");
  const Envelope& env = d.envelopes[0];
  EXPECT_EQ(env.mail_from, "alice@example.com");
  EXPECT_EQ(env.params.size_bytes, 100u);
  EXPECT_EQ(env.params.body, BodyType::k8BitMime);
  EXPECT_EQ(env.recipients, (std::vector<std::string>{"bob@example.org", "carol@example.net"}));
  EXPECT_FALSE(env.chunked);
  // The transaction is over: a new one starts clean.
  EXPECT_EQ(d.Send("RCPT TO:<bob@example.org>\r\n"), "503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(d.session.errors(), 1);
}

TEST(ServerSession, EmptyMessageAndNullSender) {
  Driver d;
  d.LoginAlice();
  EXPECT_EQ(d.Send("MAIL FROM:<>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n.\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued as Q1\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0], "");
  EXPECT_EQ(d.envelopes[0].mail_from, "");
}

TEST(ServerSession, MailParametersAndAddresses) {
  Driver d;
  d.LoginAlice();
  EXPECT_EQ(d.Send("MAIL FROM:alice@example.com\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@@example.com>\r\n"),
            "501 5.1.7 Bad sender address syntax\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> MT-PRIORITY=3\r\n"),
            "555 5.5.4 Unsupported MAIL parameter\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> SIZE=x\r\n"), "501 5.5.4 Bad MAIL parameter\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> SIZE=36700161\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<bob@example.com>\r\n"),
            "550 5.7.1 Sender address not allowed for this user\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<jöran@alice.example>\r\n"),
            "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n");
  // Source route ignored, SMTPUTF8 address accepted with the parameter.
  EXPECT_EQ(d.Send("MAIL FROM:<@hop.example:jöran@alice.example> SMTPUTF8 SIZE=36700160 "
                   "AUTH=alice+40example.com\r\n"),
            "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<\"john doe\"@example.org>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<пользователь@пример.рф>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<>\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<a@b.example> XFOO=1\r\n"), "555 5.5.4 Unsupported RCPT parameter\r\n");
  EXPECT_EQ(d.Send("RCPT TO:a@b.example\r\n"), "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  d.Send("DATA\r\nx\r\n.\r\n");
  ASSERT_EQ(d.envelopes.size(), 1u);
  EXPECT_EQ(d.envelopes[0].mail_from, "jöran@alice.example");
  EXPECT_TRUE(d.envelopes[0].params.smtputf8);
  EXPECT_EQ(d.envelopes[0].params.auth, "alice@example.com");
  EXPECT_EQ(d.envelopes[0].recipients,
            (std::vector<std::string>{"\"john doe\"@example.org", "пользователь@пример.рф",
                                      "Postmaster"}));
}

// XCAMPAIGN is the relay's own MAIL parameter: advertised and taken where the listener offers it
// (submission), 555 elsewhere.
TEST(ServerSession, CampaignParameterOnlyWhereOffered) {
  ServerConfig config = TestConfig();
  config.campaigns = true;
  Driver d(config);
  d.Connect(/*implicit_tls=*/true);
  EXPECT_NE(d.Send("EHLO client.example\r\n").find("250-XCAMPAIGN\r\n"), std::string::npos);
  ASSERT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> XCAMPAIGN=a+0Ab\r\n"),
            "501 5.5.4 Bad MAIL parameter\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> XCAMPAIGN=spring+2D2027\r\n"),
            "250 2.1.0 Ok\r\n");
  d.Send("RCPT TO:<a@b.example>\r\nDATA\r\nx\r\n.\r\n");
  ASSERT_EQ(d.envelopes.size(), 1u);
  EXPECT_EQ(d.envelopes[0].params.campaign, "spring-2027");

  Driver plain;  // campaigns off: not advertised, not taken
  plain.Connect(/*implicit_tls=*/true);
  EXPECT_EQ(plain.Send("EHLO client.example\r\n").find("XCAMPAIGN"), std::string::npos);
  plain.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n");
  EXPECT_EQ(plain.Send("MAIL FROM:<alice@example.com> XCAMPAIGN=x\r\n"),
            "555 5.5.4 Unsupported MAIL parameter\r\n");
}

// DSN is offered; its parameters travel in the envelope, one RcptParams per recipient.
TEST(ServerSession, DsnParametersAreTakenAndKept) {
  Driver d;
  d.Connect(/*implicit_tls=*/true);
  EXPECT_NE(d.Send("EHLO client.example\r\n").find("250-DSN\r\n"), std::string::npos);
  ASSERT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> RET=HDRS ENVID=e1\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<a@b.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A@b.example\r\n"),
            "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<c@b.example>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<e@b.example> NOTIFY=NEVER,DELAY\r\n"),
            "501 5.5.4 Bad RCPT parameter\r\n");
  d.Send("DATA\r\nx\r\n.\r\n");
  ASSERT_EQ(d.envelopes.size(), 1u);
  const Envelope& e = d.envelopes[0];
  EXPECT_EQ(e.params.ret, DsnReturn::kHeaders);
  EXPECT_EQ(e.params.envid, "e1");
  ASSERT_EQ(e.rcpt_params.size(), 2u);
  EXPECT_EQ(e.rcpt_params[0].notify, kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(e.rcpt_params[0].orcpt, "rfc822;A@b.example");
  EXPECT_EQ(e.rcpt_params[1].notify, 0);

  ServerConfig off = TestConfig();
  off.dsn = false;
  Driver plain(off);
  plain.Connect(/*implicit_tls=*/true);
  EXPECT_EQ(plain.Send("EHLO client.example\r\n").find("DSN"), std::string::npos);
  plain.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n");
  EXPECT_EQ(plain.Send("MAIL FROM:<alice@example.com> RET=FULL\r\n"),
            "555 5.5.4 Unsupported MAIL parameter\r\n");
  EXPECT_EQ(plain.Send("MAIL FROM:<alice@example.com>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(plain.Send("RCPT TO:<a@b.example> NOTIFY=NEVER\r\n"),
            "555 5.5.4 Unsupported RCPT parameter\r\n");
}

// REQUIRETLS (RFC 8689 §4.1): offered only once TLS is up, taken only there, no value.
TEST(ServerSession, RequireTlsOnlyUnderTls) {
  ServerConfig config = TestConfig();
  config.requiretls = true;
  config.auth_required = false;
  Driver d(config);
  d.auto_tls = false;
  d.Connect();
  EXPECT_EQ(d.Send("EHLO client.example\r\n").find("REQUIRETLS"), std::string::npos);
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> REQUIRETLS\r\n"),
            "530 5.7.10 REQUIRETLS needs a TLS session\r\n");
  d.Send("STARTTLS\r\n");
  d.Drain(d.session.OnTlsEstablished("TLSv1.3", "TLS_AES_256_GCM_SHA384"));
  EXPECT_NE(d.Send("EHLO client.example\r\n").find("250-REQUIRETLS\r\n"), std::string::npos);
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> REQUIRETLS=yes\r\n"),
            "501 5.5.4 Bad MAIL parameter\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> REQUIRETLS REQUIRETLS\r\n"),
            "501 5.5.4 Bad MAIL parameter\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> requiretls\r\n"), "250 2.1.0 Ok\r\n");
  d.Send("RCPT TO:<a@b.example>\r\nDATA\r\nx\r\n.\r\n");
  ASSERT_EQ(d.envelopes.size(), 1u);
  EXPECT_TRUE(d.envelopes[0].params.requiretls);

  Driver off;  // not offered (port 25): not taken
  off.Connect(/*implicit_tls=*/true);
  EXPECT_EQ(off.Send("EHLO client.example\r\n").find("REQUIRETLS"), std::string::npos);
  off.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n");
  EXPECT_EQ(off.Send("MAIL FROM:<alice@example.com> REQUIRETLS\r\n"),
            "555 5.5.4 Unsupported MAIL parameter\r\n");
}

TEST(ServerSession, MailParamsNeedEhlo) {
  ServerConfig config = TestConfig();
  config.auth_required = false;  // port 25 style
  Driver d(config);
  d.Connect();
  d.Send("HELO c.example\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<a@b.example> BODY=8BITMIME\r\n"),
            "555 5.5.4 MAIL parameters need EHLO\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.policy.send_as_calls, 0);  // not authenticated: no send-as check
}

TEST(ServerSession, PolicyHearsOfEachAcceptedMailFrom) {
  Driver d;
  d.LoginAlice();
  EXPECT_EQ(d.Send("MAIL FROM:<bob@example.com>\r\n"),
            "550 5.7.1 Sender address not allowed for this user\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\n"), "250 2.1.0 Ok\r\n");
  d.Send("RSET\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n");
  ASSERT_EQ(d.policy.mail_from.size(), 2u);
  EXPECT_EQ(d.policy.mail_from[0], "alice@example.com");
  EXPECT_EQ(d.policy.mail_from[1], "");
}

TEST(ServerSession, RecipientDecisions) {
  Driver d;
  d.LoginAlice();
  d.Send("MAIL FROM:<alice@example.com>\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<x@unknown.example>\r\n"),
            "550 5.1.1 Recipient address rejected: user unknown\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<x@relay.example>\r\n"), "550 5.7.1 Relay access denied\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<x@temp.example>\r\n"),
            "451 4.3.0 Temporary failure, try again later\r\n");
  EXPECT_EQ(d.session.errors(), 2);  // the temporary failure is not the client's error
}

TEST(ServerSession, PipelinedTransactionsInOneChunk) {
  Driver d;
  d.LoginAlice();
  std::string input, expected;
  constexpr int kTransactions = 50;
  for (int i = 0; i < kTransactions; ++i) {
    input += "MAIL FROM:<alice@example.com>\r\nRCPT TO:<r" + std::to_string(i) +
             "@example.org>\r\nDATA\r\nSubject: " + std::to_string(i) + "\r\n\r\nbody\r\n.\r\n";
    expected +=
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
        "250 2.0.0 Ok: queued as Q" +
        std::to_string(i + 1) + "\r\n";
  }
  input += "QUIT\r\n";
  expected += "221 2.0.0 Bye\r\n";
  EXPECT_EQ(d.Send(input), expected);
  ASSERT_EQ(d.messages.size(), static_cast<size_t>(kTransactions));
  for (int i = 0; i < kTransactions; ++i) {
    EXPECT_EQ(d.messages[i], "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
    EXPECT_EQ(d.envelopes[i].recipients[0], "r" + std::to_string(i) + "@example.org");
  }
}

TEST(ServerSession, PausesWhileQueueing) {
  Driver d;
  d.LoginAlice();
  d.auto_queue = false;
  const std::string out = d.Send(
      "MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nhello\r\n.\r\n"
      "MAIL FROM:<alice@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nsecond\r\n.\r\n");
  EXPECT_EQ(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_TRUE(d.session.paused());
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.session.message(), "hello\r\n");
  // More input while paused is only buffered, and the message view does not change.
  EXPECT_EQ(d.Send("NOOP\r\n"), "");
  EXPECT_EQ(d.session.message(), "hello\r\n");
  // A temporary refusal: the transaction is reset, then the buffered input runs.
  d.written.clear();
  d.Drain(d.session.OnMessageRefused(kSpoolFull));
  EXPECT_EQ(d.written,
            "452 4.3.1 Insufficient system storage\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n");
  ASSERT_EQ(d.messages.size(), 2u);
  EXPECT_EQ(d.messages[1], "second\r\n");
  d.written.clear();
  d.Drain(d.session.OnMessageQueued("ABC"));
  EXPECT_EQ(d.written, "250 2.0.0 Ok: queued as ABC\r\n250 2.0.0 Ok\r\n");
  EXPECT_FALSE(d.session.paused());
}

TEST(ServerSession, DotUnstuffingByteForByte) {
  Driver d;
  d.LoginAlice();
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  d.Send(
      "..leading dot\r\n"
      "...two dots\r\n"
      ". space\r\n"
      "..\r\n"
      "a.b\r\n"
      " .\r\n"
      ".x.\r\n"
      "\r\n"
      "..\r\n"
      "last\r\n"
      ".\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0],
            ".leading dot\r\n"
            "..two dots\r\n"
            " space\r\n"
            ".\r\n"
            "a.b\r\n"
            " .\r\n"
            "x.\r\n"
            "\r\n"
            ".\r\n"
            "last\r\n");
}

TEST(ServerSession, EightBitAndNulBytesPassThrough) {
  Driver d;
  d.LoginAlice();
  const std::string body = "caf\xc3\xa9 \x80\xff\0tail\r\n"s;
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + body + ".\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0], body);
}

// The 2023 SMTP smuggling variants: none of them ends the message or starts a second one.
TEST(ServerSession, SmugglingVariantsAreRefused) {
  const std::vector<std::string> endings = {
      "\n.\n",   "\n.\r\n", "\r\n.\n",     "\r.\r",     "\r.\r\n",
      "\r\n.\r", "\n..\n",  "\r\n.\r\r\n", "\n.\r\r\n", "\r\n\n.\r\n",
  };
  for (const std::string& ending : endings) {
    SCOPED_TRACE(testing::PrintToString(ending));
    Driver d;
    d.LoginAlice();
    const std::string out = d.Send(
        "MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        "Subject: first\r\n\r\nbody" +
        ending +
        "MAIL FROM:<alice@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
        "Subject: smuggled\r\n\r\nevil\r\n.\r\n"
        "NOOP\r\n");
    EXPECT_EQ(out,
              "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
              "550 5.5.2 Message refused: bare CR or LF in content\r\n250 2.0.0 Ok\r\n");
    EXPECT_TRUE(d.messages.empty());
    // The transaction is gone.
    EXPECT_EQ(d.Send("DATA\r\n"), "503 5.5.1 Need MAIL command\r\n");
  }
}

TEST(ServerSession, BareCrOrLfAnywhereInContentIsRefused) {
  for (std::string body : {"a\nb\r\n", "a\rb\r\n", "line\r\r\n", "\n", "ok\r\n\r", "x\n\r\n"}) {
    SCOPED_TRACE(testing::PrintToString(body));
    Driver d;
    d.LoginAlice();
    d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    EXPECT_EQ(d.Send(body + "\r\n.\r\n"),
              "550 5.5.2 Message refused: bare CR or LF in content\r\n");
    EXPECT_TRUE(d.messages.empty());
  }
}

TEST(ServerSession, BareLfInCommandLine) {
  Driver d;
  d.Connect();
  EXPECT_EQ(d.Send("NOOP\nQUIT\r\n"),
            "500 5.5.2 Bare CR or LF in command line; only CRLF ends a line\r\n");
  EXPECT_FALSE(d.closed);
  EXPECT_EQ(d.Send("NO\rOP\r\n"),
            "500 5.5.2 Bare CR or LF in command line; only CRLF ends a line\r\n");
  EXPECT_EQ(d.Send("NOOP\r\n"), "250 2.0.0 Ok\r\n");
}

// Found by the fuzzer: a buffered partial line completed by a chunk whose first LF is bare.
TEST(ServerSession, PartialLineCompletedAcrossABareLf) {
  Driver d;
  d.Connect();
  EXPECT_EQ(d.Send("NO"), "");
  EXPECT_EQ(d.Send("OP\nX\r\nNOOP\r\n"),
            "500 5.5.2 Bare CR or LF in command line; only CRLF ends a line\r\n250 2.0.0 Ok\r\n");
}

TEST(ServerSession, Bdat) {
  Driver d;
  d.LoginAlice();
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 10\r\nSubject: "), "");
  EXPECT_EQ(d.Send("x"), "250 2.0.0 10 octets received\r\n");
  // Content is raw: a line that is only "." is data, no unstuffing.
  EXPECT_EQ(d.Send("BDAT 13 LAST\r\n\r\n.\r\n..body\r\n"), "250 2.0.0 Ok: queued as Q1\r\n");
  ASSERT_EQ(d.messages.size(), 1u);
  EXPECT_EQ(d.messages[0], "Subject: x\r\n.\r\n..body\r\n");
  EXPECT_TRUE(d.envelopes[0].chunked);
  // BDAT 0 LAST ends a message; content without a final CRLF gets one.
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 4\r\n"
                   "tailBDAT 0 LAST\r\n"),
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 4 octets received\r\n"
            "250 2.0.0 Ok: queued as Q2\r\n");
  ASSERT_EQ(d.messages.size(), 2u);
  EXPECT_EQ(d.messages[1], "tail\r\n");
  // DATA after BDAT in one transaction is refused (RFC 3030 §3).
  EXPECT_EQ(
      d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nBDAT 1\r\nxDATA\r\n"),
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 1 octets received\r\n"
      "503 5.5.1 DATA not allowed after BDAT\r\n");
  EXPECT_EQ(d.Send("RSET\r\n"), "250 2.0.0 Ok\r\n");
}

TEST(ServerSession, BdatErrorsConsumeTheChunk) {
  Driver d;
  d.LoginAlice();
  // Without MAIL: the chunk's bytes are skipped, never read as commands.
  EXPECT_EQ(d.Send("BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n"),
            "503 5.5.1 Need MAIL command\r\n250 2.0.0 Ok\r\n");
  EXPECT_FALSE(d.closed);
  d.Send("MAIL FROM:<alice@example.com>\r\n");
  EXPECT_EQ(d.Send("BDAT 4 LAST\r\nQUIT"), "554 5.5.1 No valid recipients\r\n");
  EXPECT_EQ(d.Send("BDAT x\r\n"), "501 5.5.4 Syntax: BDAT chunk-size [LAST]\r\n");
  EXPECT_FALSE(d.closed);
  // Bare LF in BDAT content refuses the message at its end.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 3\r\na\nb"), "250 2.0.0 3 octets received\r\n");
  EXPECT_EQ(d.Send("BDAT 2 LAST\r\n\r\n"),
            "550 5.5.2 Message refused: bare CR or LF in content\r\n");
  // A CR ending one chunk and LF starting the next is a proper CRLF.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 2\r\na\rBDAT 1 LAST\r\n\n"),
            "250 2.0.0 2 octets received\r\n250 2.0.0 Ok: queued as Q1\r\n");
  EXPECT_EQ(d.messages.back(), "a\r\n");
  // A message ending in a bare CR is refused.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 2 LAST\r\na\r"),
            "550 5.5.2 Message refused: bare CR or LF in content\r\n");
  EXPECT_EQ(d.messages.size(), 1u);
}

TEST(ServerSession, AuthPlainFlows) {
  Driver d;
  d.Connect(/*implicit_tls=*/true);
  d.Send("EHLO c.example\r\n");
  // Without initial response: "334 " then the response line.
  EXPECT_EQ(d.Send("AUTH PLAIN\r\n"), "334 \r\n");
  EXPECT_EQ(d.Send(PlainResponse("alice", "wrong") + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_FALSE(d.session.authenticated());
  EXPECT_EQ(d.session.errors(), 1);
  // Cancel with "*".
  EXPECT_EQ(d.Send("AUTH PLAIN\r\n*\r\n"), "334 \r\n501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN !!!!\r\n"), "501 5.5.2 Cannot decode response\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN =\r\n"), "501 5.5.2 Malformed PLAIN response\r\n");
  EXPECT_EQ(d.Send("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication type\r\n");
  EXPECT_EQ(d.Send("AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n");
  // With an authorization identity.
  const std::string authz = Base64Encode("boss\0alice\0secret"s);
  EXPECT_EQ(d.Send("AUTH PLAIN " + authz + "\r\n"), "235 2.7.0 Authentication successful\r\n");
  ASSERT_FALSE(d.credentials.empty());
  EXPECT_EQ(d.credentials.back().authzid, "boss");
  EXPECT_EQ(d.credentials.back().user, "alice");
  EXPECT_EQ(d.credentials.back().mechanism, SaslMechanism::kPlain);
  EXPECT_EQ(d.session.user(), "alice");
}

TEST(ServerSession, AuthLoginFlows) {
  Driver d;
  d.Connect(/*implicit_tls=*/true);
  d.Send("EHLO c.example\r\n");
  EXPECT_EQ(d.Send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(d.Send(Base64Encode("alice") + "\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(d.Send(Base64Encode("nope") + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  // Initial response carries the user name.
  EXPECT_EQ(d.Send("AUTH LOGIN " + Base64Encode("alice") + "\r\n"), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(d.Send(Base64Encode("secret") + "\r\n"), "235 2.7.0 Authentication successful\r\n");
  EXPECT_EQ(d.credentials.back().mechanism, SaslMechanism::kLogin);
  EXPECT_EQ(d.credentials.back().user, "alice");
  EXPECT_TRUE(d.session.authenticated());
}

TEST(ServerSession, AuthIsAsynchronousAndPausesInput) {
  Driver d;
  d.auto_auth = false;
  d.Connect(/*implicit_tls=*/true);
  d.Send("EHLO c.example\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") +
                   "\r\nMAIL FROM:<alice@example.com>\r\n"),
            "");
  ASSERT_EQ(d.credentials.size(), 1u);
  EXPECT_EQ(d.credentials[0].password, "secret");
  EXPECT_TRUE(d.session.paused());
  d.written.clear();
  d.Drain(d.session.OnAuthResult(AuthResult::kTemporaryFailure));
  EXPECT_EQ(d.written,
            "454 4.7.0 Temporary authentication failure\r\n530 5.7.0 Authentication required\r\n");
  d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") +
         "\r\nMAIL FROM:<alice@example.com>\r\n");
  d.written.clear();
  d.Drain(d.session.OnAuthResult(AuthResult::kOk));
  EXPECT_EQ(d.written, "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n");
}

TEST(ServerSession, AuthRules) {
  Driver d;
  d.Connect();
  d.Send("EHLO c.example\r\n");
  // Not before TLS (RFC 4954 §6).
  EXPECT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  EXPECT_TRUE(d.credentials.empty());
  // Not during a transaction.
  ServerConfig config = TestConfig();
  config.auth_required = false;
  Driver e(config);
  e.Connect(/*implicit_tls=*/true);
  e.Send("EHLO c.example\r\nMAIL FROM:<x@y.example>\r\n");
  EXPECT_EQ(e.Send("AUTH PLAIN\r\n"), "503 5.5.1 AUTH not permitted during a mail transaction\r\n");
  // AUTH lines may exceed the command line limit (RFC 4954 §4: 12288 octets).
  Driver f;
  f.Connect(/*implicit_tls=*/true);
  f.Send("EHLO c.example\r\n");
  const std::string long_password(1500, 'p');
  EXPECT_EQ(f.Send("AUTH PLAIN " + PlainResponse("alice", long_password) + "\r\n"),
            "535 5.7.8 Authentication credentials invalid\r\n");
  EXPECT_EQ(f.credentials.back().password, long_password);
}

TEST(ServerSession, StartTls) {
  Driver d;
  d.auto_tls = false;
  d.Connect();
  d.Send("EHLO c.example\r\n");
  EXPECT_EQ(d.Send("STARTTLS x\r\n"), "501 5.5.4 Syntax: STARTTLS\r\n");
  // Pipelined commands after STARTTLS are discarded (CVE-2011-0411).
  EXPECT_EQ(d.Send("STARTTLS\r\nMAIL FROM:<evil@example.com>\r\nNOOP\r\n"),
            "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(d.tls_starts, 1);
  EXPECT_EQ(d.Send("NOOP\r\n"), "");  // plaintext before the handshake: discarded too
  d.written.clear();
  d.Drain(d.session.OnTlsEstablished("TLSv1.3", "TLS_AES_256_GCM_SHA384"));
  EXPECT_EQ(d.written, "");  // no new greeting (RFC 3207 §4.2)
  EXPECT_TRUE(d.session.tls_active());
  EXPECT_EQ(d.session.tls_cipher(), "TLS_AES_256_GCM_SHA384");
  // Everything was forgotten: EHLO again first.
  EXPECT_EQ(d.Send("AUTH PLAIN\r\n"), "503 5.5.1 Send EHLO first\r\n");
  EXPECT_EQ(d.Send("EHLO c.example\r\n"), kEhloReplyTls);
  EXPECT_EQ(d.Send("STARTTLS\r\n"), "503 5.5.1 TLS already active\r\n");
  EXPECT_EQ(d.Send("AUTH PLAIN " + PlainResponse("alice", "secret") + "\r\n"),
            "235 2.7.0 Authentication successful\r\n");

  ServerConfig config = TestConfig();
  config.tls_available = false;
  Driver n(config);
  n.Connect();
  EXPECT_EQ(n.Send("STARTTLS\r\n"), "502 5.5.1 STARTTLS not available\r\n");
}

TEST(ServerSession, StartTlsForgetsTheTransaction) {
  ServerConfig config = TestConfig();
  config.auth_required = false;
  Driver d(config);
  d.Connect();
  d.Send("EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
  EXPECT_EQ(d.Send("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(d.Send("EHLO c.example\r\nDATA\r\n"),
            std::string(kEhloReplyTls) + "503 5.5.1 Need MAIL command\r\n");
}

TEST(ServerSession, CommandLineLimit) {
  ServerConfig config = TestConfig();
  Driver d(config);
  d.Connect();
  // 1024 octets including CRLF is allowed (RFC 5321's 512 and DSN's ORCPT), 1025 is not.
  const std::string at_limit = "NOOP " + std::string(1024 - 7, 'x') + "\r\n";
  ASSERT_EQ(at_limit.size(), 1024u);
  EXPECT_EQ(d.Send(at_limit), "250 2.0.0 Ok\r\n");
  const std::string over = "NOOP " + std::string(1024 - 6, 'x') + "\r\n";
  EXPECT_EQ(d.Send(over), "500 5.5.2 Line too long\r\n");
  // A line far beyond every limit, in pieces: one reply when its CRLF finally comes.
  std::string huge(20000, 'y');
  huge[12287] = '\r';  // a CR at the cut must not confuse the skipping
  EXPECT_EQ(d.Send(huge), "");
  EXPECT_EQ(d.Send("more\r"), "");
  EXPECT_EQ(d.Send("\nNOOP\r\n"), "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
  // Configurable.
  config.limits.command_line_bytes_max = 20;
  Driver s(config);
  s.Connect();
  EXPECT_EQ(s.Send("NOOP 123456789012\r\n"), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(s.Send("NOOP 12345678901234\r\n"), "500 5.5.2 Line too long\r\n");
}

TEST(ServerSession, DataLineLimit) {
  Driver d;
  d.LoginAlice();
  const std::string ok_line = std::string(998, 'a') + "\r\n";
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(d.Send(ok_line + ".\r\n"), "250 2.0.0 Ok: queued as Q1\r\n");
  EXPECT_EQ(d.messages.back(), ok_line);
  // 999 octets: refused at the end of data; the session goes on.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(d.Send(std::string(999, 'a') + "\r\n.\r\n"),
            "500 5.5.2 Message refused: line longer than 998 octets\r\n");
  // A very long line sent in pieces, ending with "." on its own line afterwards.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  for (int i = 0; i < 100; ++i) EXPECT_EQ(d.Send(std::string(700, '.')), "");
  EXPECT_EQ(d.Send("\r\n.\r\nNOOP\r\n"),
            "500 5.5.2 Message refused: line longer than 998 octets\r\n250 2.0.0 Ok\r\n");
  EXPECT_EQ(d.messages.size(), 1u);
  // BDAT content obeys the same limit.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 1001 LAST\r\n" + std::string(999, 'b') + "\r\n"),
            "500 5.5.2 Message refused: line longer than 998 octets\r\n");
}

TEST(ServerSession, MessageSizeLimit) {
  ServerConfig config = TestConfig();
  config.limits.message_bytes_max = 100;
  Driver d(config);
  d.LoginAlice();
  EXPECT_THAT(d.written, HasSubstr("250-SIZE 100\r\n"));
  const std::string exact = std::string(98, 'm') + "\r\n";  // 100 octets
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(d.Send(exact + ".\r\n"), "250 2.0.0 Ok: queued as Q1\r\n");
  // Dot-stuffing does not count: ".." + 97 + CRLF is 100 octets after unstuffing.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(d.Send(".." + std::string(97, 'm') + "\r\n.\r\n"), "250 2.0.0 Ok: queued as Q2\r\n");
  // One more octet.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(d.Send(exact + "x\r\n.\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  // BDAT: refused at the chunk that crosses the limit; later chunks find no transaction.
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\n");
  EXPECT_EQ(d.Send("BDAT 100\r\n" + exact), "250 2.0.0 100 octets received\r\n");
  EXPECT_EQ(d.Send("BDAT 2 LAST\r\nxx"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  // Chunks pipelined before the client saw the failure get the same reply and are not counted.
  const int errors = d.session.errors();
  EXPECT_EQ(d.Send("BDAT 3\r\nabcBDAT 0 LAST\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(d.session.errors(), errors);
  EXPECT_EQ(d.Send("RSET\r\nBDAT 0 LAST\r\n"), "250 2.0.0 Ok\r\n503 5.5.1 Need MAIL command\r\n");
  EXPECT_EQ(d.Send("MAIL FROM:<alice@example.com> SIZE=101\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n");
  EXPECT_EQ(d.messages.size(), 2u);
}

TEST(ServerSession, RecipientsLimit) {
  ServerConfig config = TestConfig();
  config.limits.recipients_max = 3;
  Driver d(config);
  d.LoginAlice();
  d.Send("MAIL FROM:<alice@example.com>\r\n");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(d.Send("RCPT TO:<r@example.org>\r\n"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Send("RCPT TO:<r@example.org>\r\n"), "452 4.5.3 Too many recipients\r\n");
  d.Send("DATA\r\nx\r\n.\r\n");
  ASSERT_EQ(d.envelopes.size(), 1u);
  EXPECT_EQ(d.envelopes[0].recipients.size(), 3u);
}

TEST(ServerSession, ErrorsLimitCloses) {
  ServerConfig config = TestConfig();
  config.limits.errors_max = 3;
  Driver d(config);
  d.Connect();
  EXPECT_EQ(d.Send("BAD\r\nBAD\r\n"),
            "500 5.5.2 Command unrecognized\r\n500 5.5.2 Command unrecognized\r\n");
  EXPECT_FALSE(d.closed);
  EXPECT_EQ(d.Send("BAD\r\nNOOP\r\n"),
            "500 5.5.2 Command unrecognized\r\n"
            "421 4.7.0 mx.test Too many errors, closing connection\r\n");
  EXPECT_TRUE(d.closed);
  // Authentication failures count.
  Driver a(config);
  a.Connect(/*implicit_tls=*/true);
  a.Send("EHLO c.example\r\n");
  for (int i = 0; i < 2; ++i) a.Send("AUTH PLAIN " + PlainResponse("alice", "bad") + "\r\n");
  EXPECT_FALSE(a.closed);
  EXPECT_THAT(a.Send("AUTH PLAIN " + PlainResponse("alice", "bad") + "\r\n"),
              HasSubstr("421 4.7.0"));
  EXPECT_TRUE(a.closed);
}

TEST(ServerSession, Timeout) {
  Driver d;
  d.Connect();
  d.Drain(d.session.OnTimeout());
  EXPECT_THAT(d.written, HasSubstr("421 4.4.2 mx.test Error: timeout exceeded\r\n"));
  EXPECT_TRUE(d.closed);
}

TEST(ServerSession, BufferedInputWhilePausedIsBounded) {
  ServerConfig config = TestConfig();
  config.limits.input_buffered_bytes_max = 1000;
  Driver d(config);
  d.LoginAlice();
  d.auto_queue = false;
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n");
  EXPECT_TRUE(d.session.paused());
  EXPECT_EQ(d.Send(std::string(900, 'n')), "");
  EXPECT_EQ(d.Send(std::string(200, 'n')), "421 4.7.0 mx.test Too much pipelined input\r\n");
  EXPECT_TRUE(d.closed);
}

TEST(ServerSession, MessageBufferIsReused) {
  Driver d;
  d.LoginAlice();
  const std::string body(50000, 'z');
  std::string lines;
  for (size_t i = 0; i < body.size(); i += 500) lines += body.substr(i, 500) + "\r\n";
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" + lines + ".\r\n");
  const char* first = d.messages.empty() ? nullptr : d.session.message().data();
  d.Send("MAIL FROM:<alice@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nsmall\r\n.\r\n");
  ASSERT_EQ(d.messages.size(), 2u);
  EXPECT_EQ(d.messages[0], lines);
  EXPECT_EQ(d.session.message().data(), first);  // same storage, no new allocation
}

// A sample session exercising most paths; the result must not depend on how the bytes are cut.
std::string SampleSession() {
  return "EHLO client.example\r\n"
         "AUTH LOGIN\r\n" +
         Base64Encode("alice") + "\r\n" + Base64Encode("secret") +
         "\r\n"
         "NOOP\r\n"
         "MAIL FROM:<alice@example.com> SIZE=200\r\n"
         "RCPT TO:<bob@example.org>\r\n"
         "RCPT TO:<x@unknown.example>\r\n"
         "DATA\r\n"
         "Subject: t\r\n\r\n..dot\r\n..\r\nline\r\n.\r\n"
         "MAIL FROM:<alice@example.com>\r\nRCPT TO:<c@example.org>\r\n"
         "BDAT 7\r\nab\r\ncd\r"
         "BDAT 1 LAST\r\n\n"
         "MAIL FROM:<alice@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n"
         "smuggle\n.\r\nMAIL FROM:<x@y.example>\r\n.\r\n"
         "VRFY x\r\n"
         "QUIT\r\n";
}

std::string Transcript(const std::vector<std::string>& chunks) {
  Driver d;
  d.Connect(/*implicit_tls=*/true);
  for (const std::string& chunk : chunks) d.Send(chunk);
  std::string t = d.written;
  for (const std::string& m : d.messages) t += "\n<message>" + m + "</message>";
  return t;
}

TEST(ServerSession, ChunkBordersDoNotMatter) {
  const std::string input = SampleSession();
  const std::string whole = Transcript({input});
  // Sanity: the sample does what it should.
  EXPECT_THAT(whole, HasSubstr("<message>Subject: t\r\n\r\n.dot\r\n.\r\nline\r\n</message>"));
  EXPECT_THAT(whole, HasSubstr("<message>ab\r\ncd\r\n</message>"));
  EXPECT_THAT(whole, HasSubstr("550 5.5.2 Message refused"));
  EXPECT_THAT(whole, HasSubstr("221 2.0.0 Bye"));
  for (size_t cut = 1; cut < input.size(); ++cut) {
    ASSERT_EQ(Transcript({input.substr(0, cut), input.substr(cut)}), whole) << "cut at " << cut;
  }
  for (size_t cut = 1; cut + 3 < input.size(); cut += 7) {
    ASSERT_EQ(Transcript({input.substr(0, cut), input.substr(cut, 3), input.substr(cut + 3)}),
              whole)
        << "cuts at " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  EXPECT_EQ(Transcript(bytes), whole);
}

}  // namespace
}  // namespace relay::smtp
