#include "relay/smtp/client_session.h"

#include <deque>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

constexpr char kEhloFull[] =
    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n";
constexpr char kEhloPlain[] = "250-mx.example\r\n250 8BITMIME\r\n";

ClientConfig Config(TlsPolicy policy = TlsPolicy::kOpportunistic) {
  ClientConfig config;
  config.ehlo_name = "out1.relay.example";
  config.peer_name = "mx.example";
  config.tls_policy = policy;
  return config;
}

OutgoingMessage Message(std::vector<std::string> recipients, uint64_t size_bytes = 100) {
  OutgoingMessage message;
  message.mail_from = "sender@relay.example";
  message.recipients = std::move(recipients);
  message.size_bytes = size_bytes;
  return message;
}

// The driver in miniature: drains actions, sends queued messages when the session is ready (or,
// with `pipeline`, when it takes the next message behind a body), "streams" the body at once when
// asked, and quits when nothing is left. Commands written while a body streams go out after it,
// as the real driver does; `mark_body` shows the body as "<body>" in `written`.
struct Driver {
  explicit Driver(const ClientConfig& config) : session(config) {}

  void Drain(const ClientActions& a) {
    (streaming && pipeline ? after_body : written) += a.write;
    timeout_ms = a.timeout_ms;
    rearmed = a.rearm_timer;
    if (a.message_done) done.push_back(a.outcomes);
    if (a.next_message_done) done.push_back(a.next_outcomes);
    if (a.message_done && a.next_message_done) ++two_done_in_one_event;
    if (a.connection_failed) connection.push_back(a.connection_outcome);
    if (a.start_tls) ++start_tls;
    if (a.close) closed = true;
    const bool send_body = a.send_body;
    const bool ready = a.ready;
    const bool pipeline_ready = a.pipeline_ready;
    // `a` is invalid after the next event.
    if (pipeline_ready) ++pipeline_readies;
    if (send_body) {
      ++bodies;
      streaming = true;
    }
    if (pipeline_ready && pipeline && !queue.empty()) {
      OutgoingMessage m = queue.front();
      queue.pop_front();
      Drain(session.SendMessage(m));
    }
    if (send_body && auto_body) BodySent();
    if (ready) {
      ++readies;
      if (!queue.empty()) {
        OutgoingMessage m = queue.front();
        queue.pop_front();
        Drain(session.SendMessage(m));
      } else if (quit_when_idle) {
        Drain(session.Quit());
      }
    }
  }
  // The body's last byte and whatever was queued behind it are written.
  void BodySent() {
    if (mark_body) written += "<body>";
    written += after_body;
    after_body.clear();
    streaming = false;
    Drain(session.OnBodySent());
  }
  void Connect() { Drain(session.OnConnected()); }
  void Server(std::string_view bytes) { Drain(session.OnBytes(bytes)); }
  std::string Written() {
    std::string out;
    out.swap(written);
    return out;
  }

  ClientSession session;
  std::deque<OutgoingMessage> queue;
  bool quit_when_idle = true;
  bool auto_body = true;
  bool pipeline = false;
  bool mark_body = false;
  bool streaming = false;
  std::string written;
  std::string after_body;
  std::vector<std::vector<Outcome>> done;
  std::vector<Outcome> connection;
  int start_tls = 0;
  int bodies = 0;
  int readies = 0;
  int pipeline_readies = 0;
  int two_done_in_one_event = 0;
  bool closed = false;
  int64_t timeout_ms = -1;
  bool rearmed = false;  // the last event asked to (re)arm the timer
};

void ExpectOutcome(const Outcome& o, OutcomeKind kind, int code, std::string_view enhanced = {}) {
  EXPECT_EQ(static_cast<int>(o.kind), static_cast<int>(kind)) << o.text;
  EXPECT_EQ(o.code, code) << o.text;
  if (!enhanced.empty()) {
    EXPECT_EQ(o.enhanced, enhanced) << o.text;
  }
}

TEST(ClientSessionTest, OneMessageWithoutPipeliningOneCommandAtATime) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x.example", "b@x.example"}));
  d.Connect();
  EXPECT_EQ(d.timeout_ms, 5 * 60 * 1000);
  d.Server("220 mx.example ESMTP\r\n");
  EXPECT_EQ(d.Written(), "EHLO out1.relay.example\r\n");
  d.Server(kEhloPlain);
  EXPECT_EQ(d.Written(), "MAIL FROM:<sender@relay.example>\r\n");
  EXPECT_EQ(d.timeout_ms, 5 * 60 * 1000);
  d.Server("250 2.1.0 Ok\r\n");
  EXPECT_EQ(d.Written(), "RCPT TO:<a@x.example>\r\n");
  d.Server("250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Written(), "RCPT TO:<b@x.example>\r\n");
  d.Server("250 2.1.5 Ok\r\n");
  EXPECT_EQ(d.Written(), "DATA\r\n");
  EXPECT_EQ(d.timeout_ms, 2 * 60 * 1000);
  d.auto_body = false;
  d.Server("354 go\r\n");
  EXPECT_EQ(d.bodies, 1);
  EXPECT_EQ(d.timeout_ms, 3 * 60 * 1000);
  d.Drain(d.session.OnBodySent());
  EXPECT_EQ(d.timeout_ms, 10 * 60 * 1000);
  d.Server("250 2.0.0 Ok: queued as ABC\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ASSERT_EQ(d.done[0].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    ExpectOutcome(d.done[0][i], OutcomeKind::kDelivered, 250, "2.0.0");
    EXPECT_EQ(d.done[0][i].recipient_index, i);
    EXPECT_EQ(d.done[0][i].text, "Ok: queued as ABC");
    EXPECT_TRUE(d.done[0][i].from_peer);
  }
  EXPECT_EQ(d.Written(), "QUIT\r\n");
  EXPECT_FALSE(d.closed);
  d.Server("221 2.0.0 Bye\r\n");
  EXPECT_TRUE(d.closed);
  EXPECT_TRUE(d.connection.empty());
}

TEST(ClientSessionTest, PipeliningBatchesMailRcptsAndData) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x.example", "b@x.example", "c@x.example"}, 4242));
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Written();
  d.Server(kEhloFull);
  EXPECT_TRUE(d.session.extensions().pipelining);
  EXPECT_EQ(d.session.extensions().size_bytes_max, 1000000u);
  EXPECT_TRUE(d.session.extensions().chunking);
  EXPECT_TRUE(d.session.extensions().enhanced_status_codes);
  EXPECT_EQ(d.Written(),
            "MAIL FROM:<sender@relay.example> SIZE=4242\r\nRCPT TO:<a@x.example>\r\n"
            "RCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\n");
  // Replies processed in order, all in one chunk, with a partial RCPT failure.
  d.Server(
      "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@x.example>: unknown\r\n"
      "451 4.3.0 try later\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(d.bodies, 1);
  d.Server("250 2.0.0 queued\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  const auto& o = d.done[0];
  ASSERT_EQ(o.size(), 3u);
  ExpectOutcome(o[0], OutcomeKind::kDelivered, 250, "2.0.0");
  ExpectOutcome(o[1], OutcomeKind::kPermanent, 550, "5.1.1");
  EXPECT_EQ(o[1].text, "<b@x.example>: unknown");
  ExpectOutcome(o[2], OutcomeKind::kTransient, 451, "4.3.0");
  EXPECT_EQ(d.Written(), "QUIT\r\n");
}

// RFC 3461 §5.2: the sender's DSN parameters go on to a server that offers DSN, and only to one.
TEST(ClientSessionTest, DsnParametersPassedOnOnlyWhenOffered) {
  for (const bool offered : {true, false}) {
    SCOPED_TRACE(offered);
    Driver d(Config());
    OutgoingMessage m = Message({"a@x.example", "b@x.example"}, 10);
    m.ret = DsnReturn::kHeaders;
    m.envid = "id=1 2";
    m.rcpt_params.resize(2);
    m.rcpt_params[0].notify = kNotifySuccess | kNotifyFailure;
    m.rcpt_params[0].orcpt = "rfc822;A+b@x.example";
    m.rcpt_params[1].notify = kNotifyNever;
    d.queue.push_back(m);
    d.Connect();
    d.Server("220 mx.example ESMTP\r\n");
    d.Written();
    d.Server(offered ? "250-mx.example\r\n250-PIPELINING\r\n250 DSN\r\n"
                     : "250-mx.example\r\n250 PIPELINING\r\n");
    EXPECT_EQ(d.session.extensions().dsn, offered);
    EXPECT_EQ(d.Written(),
              offered
                  ? "MAIL FROM:<sender@relay.example> RET=HDRS ENVID=id+3D1+202\r\n"
                    "RCPT TO:<a@x.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bb@x.example\r\n"
                    "RCPT TO:<b@x.example> NOTIFY=NEVER\r\nDATA\r\n"
                  : "MAIL FROM:<sender@relay.example>\r\nRCPT TO:<a@x.example>\r\n"
                    "RCPT TO:<b@x.example>\r\nDATA\r\n");
  }
}

// RFC 8689 §4.2.1: REQUIRETLS is read from the EHLO reply and sent with a message that asks for it.
TEST(ClientSessionTest, RequireTlsSentWhenOfferedAndAsked) {
  Driver d(Config());
  OutgoingMessage m = Message({"a@x.example"}, 10);
  m.require_tls = true;
  d.queue.push_back(m);
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Written();
  d.Server("250-mx.example\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n");
  EXPECT_TRUE(d.session.extensions().requiretls);
  EXPECT_EQ(d.Written(),
            "MAIL FROM:<sender@relay.example> REQUIRETLS\r\nRCPT TO:<a@x.example>\r\nDATA\r\n");

  Driver plain(Config());  // a message that does not ask: no parameter, whatever is offered
  plain.queue.push_back(Message({"a@x.example"}, 10));
  plain.Connect();
  plain.Server("220 mx.example ESMTP\r\n");
  plain.Written();
  plain.Server("250-mx.example\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n");
  EXPECT_EQ(plain.Written(),
            "MAIL FROM:<sender@relay.example>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n");
}

TEST(ClientSessionTest, PartialRcptFailuresWithoutPipelining) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x", "c@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n");          // MAIL
  d.Server("452 4.2.2 full\r\n");  // a
  d.Server("553 5.1.3 bad\r\n");   // b
  d.Server("250 ok\r\n");          // c
  EXPECT_TRUE(d.Written().find("DATA\r\n") != std::string::npos);
  d.Server("354 go\r\n250 ok\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 452, "4.2.2");
  ExpectOutcome(d.done[0][1], OutcomeKind::kPermanent, 553, "5.1.3");
  ExpectOutcome(d.done[0][2], OutcomeKind::kDelivered, 250);
}

TEST(ClientSessionTest, AllRcptRefusedPipelinedDataAcceptedGetsALoneDotAndNoRset) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.queue.push_back(Message({"c@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Written();
  d.Server("250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n354 go on\r\n");
  // RFC 2920 §3.1: "should send a single dot", never the body.
  EXPECT_EQ(d.bodies, 0);
  EXPECT_EQ(d.Written(), ".\r\n");
  EXPECT_TRUE(d.done.empty());
  d.Server("554 5.5.1 no valid recipients\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 550, "5.1.1");
  ExpectOutcome(d.done[0][1], OutcomeKind::kTransient, 450, "4.2.1");
  // The dot ended the transaction: the next message starts with MAIL, no RSET.
  EXPECT_EQ(d.Written().rfind("MAIL FROM:<sender@relay.example> SIZE=100\r\n", 0), 0u);
}

TEST(ClientSessionTest, AllRcptRefusedPipelinedDataRefusedGetsRset) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.queue.push_back(Message({"c@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Written();
  d.Server("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 550, "5.1.1");
  EXPECT_EQ(d.Written(), "RSET\r\n");
  d.Server("250 2.0.0 ok\r\n");
  EXPECT_EQ(d.Written().rfind("MAIL FROM:", 0), 0u);
}

TEST(ClientSessionTest, AllRcptRefusedWithoutPipeliningSendsNoDataButRset) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n550 no\r\n551 5.1.6 moved\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 550, "");
  EXPECT_EQ(d.done[0][0].enhanced, "");
  ExpectOutcome(d.done[0][1], OutcomeKind::kPermanent, 551, "5.1.6");
  const std::string w = d.Written();
  EXPECT_EQ(w.find("DATA"), std::string::npos);
  EXPECT_NE(w.find("RSET\r\n"), std::string::npos);
  d.Server("250 ok\r\n");
  EXPECT_EQ(d.Written(), "QUIT\r\n");
}

TEST(ClientSessionTest, MailRefused) {
  for (bool pipelining : {false, true}) {
    for (const char* reply : {"451 4.3.0 later\r\n", "553 5.7.1 sender refused\r\n"}) {
      SCOPED_TRACE(std::string(reply) + (pipelining ? " pipelined" : ""));
      Driver d(Config());
      d.queue.push_back(Message({"a@x", "b@x"}));
      d.queue.push_back(Message({"c@x"}));
      d.Connect();
      d.Server("220 hi\r\n");
      d.Server(pipelining ? kEhloFull : kEhloPlain);
      d.Written();
      d.Server(reply);
      if (pipelining) d.Server("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n503 5.5.1 no\r\n");
      ASSERT_EQ(d.done.size(), 1u);
      const OutcomeKind kind = reply[0] == '4' ? OutcomeKind::kTransient : OutcomeKind::kPermanent;
      for (const Outcome& o : d.done[0]) ExpectOutcome(o, kind, reply[0] == '4' ? 451 : 553);
      // MAIL opened no transaction: no RSET, straight to the next MAIL.
      EXPECT_EQ(d.Written().rfind("MAIL FROM:", 0), 0u);
    }
  }
}

TEST(ClientSessionTest, DataRefusedAndFinalRefused) {
  for (bool pipelining : {false, true}) {
    for (const char* reply : {"451 4.3.0 later\r\n", "554 5.6.0 nope\r\n"}) {
      SCOPED_TRACE(std::string(reply) + (pipelining ? " pipelined" : ""));
      const OutcomeKind kind = reply[0] == '4' ? OutcomeKind::kTransient : OutcomeKind::kPermanent;
      {
        // At DATA: RSET follows (MAIL's transaction is still open).
        Driver d(Config());
        d.queue.push_back(Message({"a@x"}));
        d.Connect();
        d.Server("220 hi\r\n");
        d.Server(pipelining ? kEhloFull : kEhloPlain);
        d.Server("250 ok\r\n250 ok\r\n");
        d.Written();
        d.Server(reply);
        ASSERT_EQ(d.done.size(), 1u);
        ExpectOutcome(d.done[0][0], kind, reply[0] == '4' ? 451 : 554);
        EXPECT_EQ(d.Written(), "RSET\r\n");
      }
      {
        // At the end of data: no RSET (the "." ended the transaction).
        Driver d(Config());
        d.queue.push_back(Message({"a@x"}));
        d.queue.push_back(Message({"b@x"}));
        d.Connect();
        d.Server("220 hi\r\n");
        d.Server(pipelining ? kEhloFull : kEhloPlain);
        d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
        d.Written();
        d.Server(reply);
        ASSERT_EQ(d.done.size(), 1u);
        ExpectOutcome(d.done[0][0], kind, reply[0] == '4' ? 451 : 554);
        EXPECT_EQ(d.Written().rfind("MAIL FROM:", 0), 0u);
      }
    }
  }
}

TEST(ClientSessionTest, HeloFallbackOnlyWhenEhloIsNotUnderstood) {
  for (const char* reply : {"500 5.5.1 what?\r\n", "502 unimplemented\r\n"}) {
    Driver d(Config());
    d.queue.push_back(Message({"a@x"}));
    d.Connect();
    d.Server("220 old server\r\n");
    d.Written();
    d.Server(reply);
    EXPECT_EQ(d.Written(), "HELO out1.relay.example\r\n");
    d.Server("250 old server\r\n");
    EXPECT_FALSE(d.session.esmtp());
    EXPECT_EQ(d.Written(), "MAIL FROM:<sender@relay.example>\r\n");
  }
  {
    Driver d(Config());
    d.Connect();
    d.Server("220 hi\r\n");
    d.Written();
    d.Server("550 5.7.1 go away\r\n");
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kPermanent, 550, "5.7.1");
    EXPECT_EQ(d.Written(), "QUIT\r\n");
  }
  {
    Driver d(Config());
    d.Connect();
    d.Server("220 hi\r\n500 no\r\n554 5.7.1 not even HELO\r\n");
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kPermanent, 554, "5.7.1");
  }
}

TEST(ClientSessionTest, GreetingRefusalIsTransientForTheDestination) {
  {
    Driver d(Config());
    d.Connect();
    d.Server("554 5.3.2 no service here\r\n");
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 554, "5.3.2");
    EXPECT_NE(d.connection[0].text.find("no service here"), std::string::npos);
    EXPECT_EQ(d.Written(), "QUIT\r\n");
    d.Server("221 bye\r\n");
    EXPECT_TRUE(d.closed);
  }
  {
    Driver d(Config());
    d.Connect();
    d.Server("421 4.3.2 busy\r\n");
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 421, "4.3.2");
    EXPECT_TRUE(d.closed);
    EXPECT_EQ(d.Written(), "");
  }
}

TEST(ClientSessionTest, StartTlsThenEhloAgainForgettingTheFirstExtensions) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Written();
  d.Server("250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
  EXPECT_EQ(d.Written(), "STARTTLS\r\n");
  // A reply injected after the 220 in plain text must be dropped (the client side of
  // CVE-2011-0411).
  d.Server("220 2.0.0 go ahead\r\n250 injected\r\n");
  EXPECT_EQ(d.start_tls, 1);
  EXPECT_FALSE(d.session.tls_active());
  d.Drain(d.session.OnTlsEstablished());
  EXPECT_TRUE(d.session.tls_active());
  EXPECT_FALSE(d.session.extensions().pipelining);
  EXPECT_EQ(d.Written(), "EHLO out1.relay.example\r\n");
  d.Server("250-mx.example\r\n250 SIZE\r\n");  // no PIPELINING, no STARTTLS this time
  EXPECT_EQ(d.start_tls, 1);
  EXPECT_EQ(d.Written(), "MAIL FROM:<sender@relay.example> SIZE=100\r\n");
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
}

TEST(ClientSessionTest, TlsPolicies) {
  {
    // Required but not offered: transient, with a clear text; no message is sent.
    Driver d(Config(TlsPolicy::kRequired));
    d.queue.push_back(Message({"a@x"}));
    d.Connect();
    d.Server("220 hi\r\n");
    d.Written();
    d.Server(kEhloFull);
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 454, "4.7.0");
    EXPECT_EQ(d.connection[0].text, "TLS required by policy but not offered by mx.example");
    EXPECT_EQ(d.Written(), "QUIT\r\n");
    EXPECT_EQ(d.readies, 0);
  }
  {
    // Required, offered, handshake fails.
    Driver d(Config(TlsPolicy::kRequired));
    d.Connect();
    d.Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n220 go\r\n");
    EXPECT_EQ(d.start_tls, 1);
    d.Drain(d.session.OnTlsFailed("certificate verify failed"));
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 454);
    EXPECT_NE(d.connection[0].text.find("certificate verify failed"), std::string::npos);
    EXPECT_TRUE(d.closed);
  }
  {
    // Required, STARTTLS refused.
    Driver d(Config(TlsPolicy::kRequired));
    d.Connect();
    d.Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n");
    ASSERT_EQ(d.connection.size(), 1u);
    ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 454, "4.7.0");
  }
  {
    // Opportunistic, STARTTLS refused: goes on in plain text.
    Driver d(Config(TlsPolicy::kOpportunistic));
    d.queue.push_back(Message({"a@x"}));
    d.Connect();
    d.Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n");
    EXPECT_TRUE(d.connection.empty());
    EXPECT_NE(d.Written().find("MAIL FROM:"), std::string::npos);
  }
  {
    // Disabled, or a driver without TLS: no STARTTLS even when offered.
    ClientConfig config = Config(TlsPolicy::kDisabled);
    Driver d(config);
    d.queue.push_back(Message({"a@x"}));
    d.Connect();
    d.Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n");
    EXPECT_EQ(d.start_tls, 0);
    EXPECT_NE(d.Written().find("MAIL FROM:"), std::string::npos);
    config = Config(TlsPolicy::kRequired);
    config.tls_supported = false;
    Driver e(config);
    e.Connect();
    e.Server("220 hi\r\n250-x\r\n250 STARTTLS\r\n");
    ASSERT_EQ(e.connection.size(), 1u);
    EXPECT_NE(e.connection[0].text.find("cannot use TLS"), std::string::npos);
  }
}

TEST(ClientSessionTest, NeedsTheServerCannotMeetFailBeforeSending) {
  struct Case {
    const char* ehlo;
    OutgoingMessage message;
    int code;
    const char* enhanced;
  };
  OutgoingMessage big = Message({"a@x", "b@x"}, 2000);
  OutgoingMessage utf8 = Message({"a@x"});
  utf8.needs_smtputf8 = true;
  OutgoingMessage eight = Message({"a@x"});
  eight.needs_8bitmime = true;
  const Case cases[] = {
      {"250-x\r\n250 SIZE 1000\r\n", big, 552, "5.3.4"},
      {"250-x\r\n250 8BITMIME\r\n", utf8, 553, "5.6.7"},
      {"250-x\r\n250 SMTPUTF8\r\n", eight, 554, "5.6.3"},
  };
  for (const Case& c : cases) {
    Driver d(Config());
    d.queue.push_back(c.message);
    d.Connect();
    d.Server("220 hi\r\n");
    d.Written();
    d.Server(c.ehlo);
    ASSERT_EQ(d.done.size(), 1u) << c.enhanced;
    ASSERT_EQ(d.done[0].size(), c.message.recipients.size());
    for (const Outcome& o : d.done[0]) {
      ExpectOutcome(o, OutcomeKind::kPermanent, c.code, c.enhanced);
      EXPECT_FALSE(o.from_peer);
    }
    EXPECT_EQ(d.Written(), "QUIT\r\n");  // nothing of the message was sent
  }
  // Offered: the parameters go on MAIL.
  OutgoingMessage both = Message({"a@x"}, 999);
  both.needs_8bitmime = true;
  both.needs_smtputf8 = true;
  Driver d(Config());
  d.queue.push_back(both);
  d.Connect();
  d.Server("220 hi\r\n");
  d.Written();
  d.Server(kEhloFull);
  EXPECT_EQ(d.Written().rfind("MAIL FROM:<sender@relay.example> SIZE=999 BODY=8BITMIME SMTPUTF8\r\n"
                              "RCPT TO:<a@x>\r\nDATA\r\n",
                              0),
            0u);
}

TEST(ClientSessionTest, ThreeMessagesOnOneConnectionRsetOnlyAfterAnOpenFailure) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.queue.push_back(Message({"b@x"}));
  d.queue.push_back(Message({"c@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Written();
  d.Server(kEhloPlain);
  // 1: delivered; 2: DATA refused (RSET); 3: delivered.
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n250 ok 1\r\n");
  d.Server("250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n");
  d.Server("250 reset\r\n");
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n250 ok 3\r\n");
  EXPECT_EQ(d.Written(),
            "MAIL FROM:<sender@relay.example>\r\nRCPT TO:<a@x>\r\nDATA\r\n"
            "MAIL FROM:<sender@relay.example>\r\nRCPT TO:<b@x>\r\nDATA\r\nRSET\r\n"
            "MAIL FROM:<sender@relay.example>\r\nRCPT TO:<c@x>\r\nDATA\r\nQUIT\r\n");
  ASSERT_EQ(d.done.size(), 3u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
  ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 451, "4.3.0");
  ExpectOutcome(d.done[2][0], OutcomeKind::kDelivered, 250);
  EXPECT_EQ(d.session.messages_done(), 3u);
}

TEST(ClientSessionTest, TimeoutsFollowTheWaitAndAbortTheMessage) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n");
  EXPECT_EQ(d.timeout_ms, 5 * 60 * 1000);  // RCPT
  d.Server("550 5.1.1 no\r\n250 ok\r\n");
  EXPECT_EQ(d.timeout_ms, 2 * 60 * 1000);  // DATA initiation
  d.Drain(d.session.OnTimeout());
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 550);  // the RCPT verdict stands
  ExpectOutcome(d.done[0][1], OutcomeKind::kTransient, 421, "4.4.2");
  EXPECT_FALSE(d.done[0][1].from_peer);
  EXPECT_NE(d.done[0][1].text.find("Timeout waiting for the reply to DATA from mx.example"),
            std::string::npos);
  EXPECT_TRUE(d.closed);
  EXPECT_EQ(d.timeout_ms, 0);
}

TEST(ClientSessionTest, TimeoutBeforeTheGreetingIsAConnectionOutcome) {
  Driver d(Config());
  d.Connect();
  d.Drain(d.session.OnTimeout());
  ASSERT_EQ(d.connection.size(), 1u);
  ExpectOutcome(d.connection[0], OutcomeKind::kTransient, 421, "4.4.2");
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionTest, PeerClosedMidData) {
  for (bool body_sent : {false, true}) {
    Driver d(Config());
    d.auto_body = false;
    d.queue.push_back(Message({"a@x", "b@x"}));
    d.Connect();
    d.Server("220 hi\r\n");
    d.Server(kEhloFull);
    d.Server("250 ok\r\n250 ok\r\n551 5.1.6 moved\r\n354 go\r\n");
    ASSERT_EQ(d.bodies, 1);
    if (body_sent) d.Drain(d.session.OnBodySent());
    d.Drain(d.session.OnPeerClosed());
    ASSERT_EQ(d.done.size(), 1u);
    ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.4.2");
    ExpectOutcome(d.done[0][1], OutcomeKind::kPermanent, 551, "5.1.6");
    EXPECT_TRUE(d.closed);
  }
}

TEST(ClientSessionTest, ReplyArrivingWhileTheBodyStreamsIsHandledAfterIt) {
  Driver d(Config());
  d.auto_body = false;
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  d.Server("552 5.3.4 too big\r\n");
  EXPECT_TRUE(d.done.empty());
  d.Drain(d.session.OnBodySent());
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 552, "5.3.4");
}

TEST(ClientSessionTest, ServerClosing421MidTransaction) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n250 ok\r\n421 4.7.0 too many errors, bye\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.7.0");
  ExpectOutcome(d.done[0][1], OutcomeKind::kTransient, 421, "4.7.0");
  EXPECT_TRUE(d.done[0][0].from_peer);
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionTest, GarbageFromTheServerIsAProtocolError) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\nHTTP/1.1 400 Bad Request\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.5.0");
  EXPECT_NE(d.done[0][0].text.find("Protocol error"), std::string::npos);
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionTest, RsetRefusedEndsTheConnection) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.queue.push_back(Message({"b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n250 ok\r\n554 5.5.1 no\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  d.Written();
  const int readies = d.readies;
  d.Server("500 5.5.1 what RSET\r\n");
  EXPECT_EQ(d.readies, readies);  // not idle: the second message is not started here
  EXPECT_EQ(d.Written(), "QUIT\r\n");
  d.Drain(d.session.OnPeerClosed());
  EXPECT_TRUE(d.closed);
  EXPECT_EQ(d.done.size(), 1u);
  EXPECT_EQ(d.queue.size(), 1u);
}

TEST(ClientSessionTest, QuitDuringATransactionSettlesItsRecipients) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n250 ok\r\n");
  d.Drain(d.session.Quit());
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 451, "4.3.0");
  ExpectOutcome(d.done[0][1], OutcomeKind::kTransient, 451, "4.3.0");
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionTest, UnexpectedPositiveRepliesAreProtocolErrors) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n250 ok\r\n250 DATA is not 354\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.5.0");
  EXPECT_NE(d.done[0][0].text.find("Unexpected reply"), std::string::npos);
  EXPECT_TRUE(d.closed);
}

// The whole server side of a conversation with multi-line replies, cut at every byte and also
// fed one byte at a time, gives the same writes and outcomes as in one piece.
TEST(ClientSessionTest, ServerBytesSplitAtEveryByte) {
  const std::string server =
      "220-mx.example ESMTP\r\n220 welcome\r\n"
      "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
      "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550-5.1.1 no such\r\n550 5.1.1 user\r\n354 go\r\n"
      "250-2.0.0 queued\r\n250 2.0.0 as X\r\n"
      "250 2.1.0 ok\r\n451 4.2.1 later\r\n503 5.5.1 no rcpt\r\n"
      "250 reset\r\n221 bye\r\n";
  auto run = [&](const std::vector<std::string_view>& chunks) {
    Driver d(Config());
    d.queue.push_back(Message({"a@x", "b@x"}));
    d.queue.push_back(Message({"c@x"}));
    d.Connect();
    for (std::string_view chunk : chunks) d.Server(chunk);
    std::string summary = d.written;
    for (const auto& message : d.done) {
      for (const Outcome& o : message) {
        summary += std::to_string(static_cast<int>(o.kind)) + " " + std::to_string(o.code) + " " +
                   o.enhanced + " " + o.text + "\n";
      }
    }
    summary += d.closed ? "closed" : "open";
    return summary;
  };
  const std::string whole = run({server});
  EXPECT_NE(whole.find("0 250 2.0.0 queued as X\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("2 550 5.1.1 no such user\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("1 451 4.2.1 later\n"), std::string::npos) << whole;
  EXPECT_NE(whole.find("RSET\r\nQUIT\r\n"), std::string::npos) << whole;
  EXPECT_EQ(whole.substr(whole.size() - 6), "closed");
  for (size_t cut = 1; cut < server.size(); ++cut) {
    std::string_view s(server);
    ASSERT_EQ(run({s.substr(0, cut), s.substr(cut)}), whole) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < server.size(); ++i) bytes.push_back(std::string_view(server).substr(i, 1));
  EXPECT_EQ(run(bytes), whole);
}

TEST(ClientSessionTest, SendMessageWhenNotIdleIsRefusedWithATransientOutcome) {
  ClientSession session(Config());
  session.OnConnected();
  // A driver bug: counted (fatal in debug builds), so only check it in release builds.
#ifdef NDEBUG
  const ClientActions& a = session.SendMessage(Message({"a@x"}));
  ASSERT_TRUE(a.message_done);
  ASSERT_EQ(a.outcomes.size(), 1u);
  EXPECT_EQ(a.outcomes[0].kind, OutcomeKind::kTransient);
#else
  GTEST_SKIP() << "debug build: EXPECT_OR_COUNT is fatal";
#endif
}


// ---- pipelining across transactions (RFC 2920 §3.1) ----

// A driver that pipelines, with `messages` queued, past the greeting and EHLO (PIPELINING).
void StartPipelined(Driver& d, std::vector<OutgoingMessage> messages) {
  d.pipeline = true;
  d.mark_body = true;
  for (OutgoingMessage& m : messages) d.queue.push_back(std::move(m));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloFull);
}

constexpr char kMailA[] = "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<a@x>\r\nDATA\r\n";
constexpr char kMailBC[] =
    "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n";
constexpr char kMailD[] = "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<d@x>\r\nDATA\r\n";

TEST(ClientSessionPipelineTest, NextTransactionFollowsTheBodyInTheSameWrite) {
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x", "c@x"}), Message({"d@x"})});
  EXPECT_EQ(d.Written(), std::string("EHLO out1.relay.example\r\n") + kMailA);
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  // Body 1, then message 2's commands without waiting for body 1's final reply.
  EXPECT_EQ(d.Written(), std::string("<body>") + kMailBC);
  EXPECT_TRUE(d.done.empty());
  EXPECT_EQ(d.session.messages_open(), 2);
  EXPECT_FALSE(d.session.can_pipeline());
  EXPECT_EQ(d.timeout_ms, 10 * 60 * 1000);  // the final reply of message 1
  // Final reply of 1 and the group of 2 in one read.
  d.Server("250 2.0.0 queued as 1\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ASSERT_EQ(d.done[0].size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250, "2.0.0");
  EXPECT_EQ(d.done[0][0].text, "queued as 1");
  EXPECT_EQ(d.Written(), std::string("<body>") + kMailD);
  d.Server("250 2.0.0 queued as 2\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  ASSERT_EQ(d.done[1].size(), 2u);
  ExpectOutcome(d.done[1][0], OutcomeKind::kDelivered, 250);
  ExpectOutcome(d.done[1][1], OutcomeKind::kDelivered, 250);
  EXPECT_EQ(d.done[1][1].recipient_index, 1u);
  EXPECT_EQ(d.done[1][1].text, "queued as 2");
  EXPECT_EQ(d.Written(), "<body>");  // nothing left to pipeline
  EXPECT_EQ(d.session.messages_open(), 1);
  d.Server("250 2.0.0 queued as 3\r\n");
  ASSERT_EQ(d.done.size(), 3u);
  ExpectOutcome(d.done[2][0], OutcomeKind::kDelivered, 250);
  EXPECT_EQ(d.done[2][0].text, "queued as 3");
  EXPECT_EQ(d.Written(), "QUIT\r\n");
  d.Server("221 bye\r\n");
  EXPECT_TRUE(d.closed);
  EXPECT_EQ(d.session.messages_done(), 3u);
  EXPECT_EQ(d.bodies, 3);
}

TEST(ClientSessionPipelineTest, BothMessagesCanFinishInOneRead) {
  // Message 2's MAIL is refused: with PIPELINING its RCPT and DATA replies still come; message 1's
  // final reply and all of message 2's arrive together.
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x", "c@x"})});
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  d.Server("250 ok 1\r\n451 4.3.0 later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  EXPECT_EQ(d.two_done_in_one_event, 1);
  ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
  ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 451, "4.3.0");
  ExpectOutcome(d.done[1][1], OutcomeKind::kTransient, 451, "4.3.0");
  // MAIL was refused: no transaction is open, no RSET.
  EXPECT_EQ(d.Written(), std::string("<body>") + kMailBC + "QUIT\r\n");
}

TEST(ClientSessionPipelineTest, FiveHundredToTheDotDoesNotStopTheNextMail) {
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x", "c@x"})});
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  d.Server("554 5.7.1 content rejected\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 554, "5.7.1");
  EXPECT_TRUE(d.done[0][0].from_peer);
  EXPECT_EQ(d.timeout_ms, 5 * 60 * 1000);  // now MAIL's
  d.Server("250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n354 go\r\n");
  d.Server("250 2.0.0 queued\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  ExpectOutcome(d.done[1][0], OutcomeKind::kPermanent, 550, "5.1.1");
  ExpectOutcome(d.done[1][1], OutcomeKind::kDelivered, 250, "2.0.0");
  EXPECT_EQ(d.Written(), std::string("<body>") + kMailBC + "<body>QUIT\r\n");
}

TEST(ClientSessionPipelineTest, ServerClosing421AfterTheGroup) {
  // 421 as the final reply of message 1, and 421 after message 1's final reply.
  for (bool first_delivered : {false, true}) {
    Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x", "c@x"}), Message({"d@x"})});
    d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
    d.Server(first_delivered ? "250 ok 1\r\n250 ok\r\n421 4.3.2 shutting down\r\n"
                             : "421 4.3.2 shutting down\r\n");
    ASSERT_EQ(d.done.size(), 2u) << first_delivered;
    if (first_delivered) {
      ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
    } else {
      ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.3.2");
    }
    ASSERT_EQ(d.done[1].size(), 2u);
    ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 421, "4.3.2");
    ExpectOutcome(d.done[1][1], OutcomeKind::kTransient, 421, "4.3.2");
    EXPECT_TRUE(d.done[1][0].from_peer);
    EXPECT_TRUE(d.closed);
    EXPECT_EQ(d.queue.size(), 1u);  // message 3 was never taken
    EXPECT_EQ(d.session.messages_open(), 0);
  }
}

TEST(ClientSessionPipelineTest, ConnectionLostWithTwoMessagesOpen) {
  for (bool body_sent : {false, true}) {
    Driver d(Config());
    StartPipelined(d, {Message({"a@x", "e@x"}), Message({"b@x", "c@x"})});
    d.auto_body = false;
    d.Server("250 ok\r\n250 ok\r\n551 5.1.6 moved\r\n354 go\r\n");
    ASSERT_EQ(d.bodies, 1);
    ASSERT_EQ(d.session.messages_open(), 2);  // message 2 taken while body 1 streams
    if (body_sent) {
      d.BodySent();
      EXPECT_EQ(d.timeout_ms, 10 * 60 * 1000);
    } else {
      EXPECT_EQ(d.timeout_ms, 3 * 60 * 1000);  // a body write
      // Replies cannot come before the body is out; any that do wait for it.
      d.Server("250 early\r\n");
      EXPECT_TRUE(d.done.empty());
    }
    d.Drain(d.session.OnPeerClosed());
    ASSERT_EQ(d.done.size(), 2u) << body_sent;
    EXPECT_EQ(d.two_done_in_one_event, 1);
    ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.4.2");
    ExpectOutcome(d.done[0][1], OutcomeKind::kPermanent, 551, "5.1.6");  // the RCPT verdict stands
    ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 421, "4.4.2");
    ExpectOutcome(d.done[1][1], OutcomeKind::kTransient, 421, "4.4.2");
    EXPECT_FALSE(d.done[1][0].from_peer);
    EXPECT_TRUE(d.closed);
    EXPECT_EQ(d.session.messages_open(), 0);
  }
}

TEST(ClientSessionPipelineTest, AllRcptRefusedInThePipelinedTransaction) {
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x", "c@x"}), Message({"d@x"})});
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(d.Written(), std::string("<body>") + kMailBC);
  // RFC 2920 §3.1: DATA accepted although no RCPT was: a lone ".", no RSET.
  d.Server("250 ok 1\r\n250 ok\r\n550 5.1.1 no b\r\n550 5.1.1 no c\r\n354 go\r\n");
  EXPECT_EQ(d.Written(), ".\r\n");
  EXPECT_EQ(d.bodies, 1);
  ASSERT_EQ(d.done.size(), 1u);
  d.Server("554 5.5.1 no valid recipients\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  ExpectOutcome(d.done[1][0], OutcomeKind::kPermanent, 550, "5.1.1");
  ExpectOutcome(d.done[1][1], OutcomeKind::kPermanent, 550, "5.1.1");
  // Idle again: message 3 goes as a group of its own.
  EXPECT_EQ(d.Written(), kMailD);
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n250 ok 3\r\n");
  ASSERT_EQ(d.done.size(), 3u);
  ExpectOutcome(d.done[2][0], OutcomeKind::kDelivered, 250);
}

TEST(ClientSessionPipelineTest, TimersAndATimeoutWaitingForThePreviousFinalReply) {
  ClientConfig config = Config();
  config.timeouts.mail_ms = 11;
  config.timeouts.rcpt_ms = 12;
  config.timeouts.data_initiation_ms = 13;
  config.timeouts.data_block_ms = 14;
  config.timeouts.data_termination_ms = 15;
  for (bool final_arrives : {false, true}) {
    Driver d(config);
    StartPipelined(d, {Message({"a@x"}), Message({"b@x"})});
    d.auto_body = false;
    d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
    EXPECT_EQ(d.timeout_ms, 14);  // message 2 queued behind a body that is still being written
    d.BodySent();
    EXPECT_EQ(d.timeout_ms, 15);  // then the final reply of message 1
    if (final_arrives) {
      d.Server("250 ok 1\r\n");
      EXPECT_EQ(d.timeout_ms, 11);
      d.Server("250 ok\r\n");
      EXPECT_EQ(d.timeout_ms, 12);
      d.Server("250 ok\r\n");
      EXPECT_EQ(d.timeout_ms, 13);
    }
    d.Drain(d.session.OnTimeout());
    ASSERT_EQ(d.done.size(), 2u);
    if (final_arrives) {
      ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
      EXPECT_NE(d.done[1][0].text.find("Timeout waiting for the reply to DATA"),
                std::string::npos);
    } else {
      ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.4.2");
      EXPECT_NE(d.done[0][0].text.find("Timeout waiting for the reply to the end of data"),
                std::string::npos)
          << d.done[0][0].text;
    }
    ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 421, "4.4.2");
    EXPECT_TRUE(d.closed);
    EXPECT_EQ(d.timeout_ms, 0);
  }
}

TEST(ClientSessionPipelineTest, TimeoutWhileTheBodyAheadIsBeingWritten) {
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x"})});
  d.auto_body = false;
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  ASSERT_EQ(d.session.messages_open(), 2);
  d.Drain(d.session.OnTimeout());
  ASSERT_EQ(d.done.size(), 2u);
  EXPECT_NE(d.done[0][0].text.find("Timeout sending the message body"), std::string::npos);
  ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 421, "4.4.2");
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionPipelineTest, TakenAfterTheBodyWhileTheFinalReplyIsAwaited) {
  // The driver had no work when the body started; a message arrives while the final reply of the
  // first is awaited: it is pipelined then.
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"})});
  d.auto_body = false;
  d.quit_when_idle = false;
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(d.pipeline_readies, 1);
  d.BodySent();
  EXPECT_EQ(d.pipeline_readies, 2);  // offered again after the body
  EXPECT_TRUE(d.session.can_pipeline());
  EXPECT_EQ(d.Written(), "<body>");
  d.Drain(d.session.SendMessage(Message({"d@x"})));
  EXPECT_EQ(d.Written(), kMailD);
  EXPECT_EQ(d.timeout_ms, 10 * 60 * 1000);
  d.Server("250 ok 1\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  d.BodySent();
  d.Server("250 ok 2\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  ExpectOutcome(d.done[1][0], OutcomeKind::kDelivered, 250);
  EXPECT_EQ(d.done[1][0].text, "ok 2");
}

TEST(ClientSessionPipelineTest, RefusedBeforeSendingBehindAMessageFinishesAfterIt) {
  // Message 2 is larger than the server's SIZE: nothing is sent for it, and its outcome comes
  // right after message 1's final reply, keeping the order.
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x"}, 2000000), Message({"d@x"})});
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(d.Written(), "<body>");
  EXPECT_TRUE(d.done.empty());
  EXPECT_EQ(d.session.messages_open(), 2);
  d.Server("250 ok 1\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  EXPECT_EQ(d.two_done_in_one_event, 1);
  ExpectOutcome(d.done[0][0], OutcomeKind::kDelivered, 250);
  ExpectOutcome(d.done[1][0], OutcomeKind::kPermanent, 552, "5.3.4");
  EXPECT_EQ(d.Written(), kMailD);  // message 3 on the idle session
}

TEST(ClientSessionPipelineTest, DataRefusedInThePipelinedTransactionGetsRset) {
  Driver d(Config());
    StartPipelined(d, {Message({"a@x"}), Message({"b@x"}), Message({"d@x"})});
  d.Written();
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  d.Written();
  d.Server("250 ok 1\r\n250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  ExpectOutcome(d.done[1][0], OutcomeKind::kTransient, 451, "4.3.0");
  EXPECT_EQ(d.Written(), "RSET\r\n");
  d.Server("250 reset\r\n");
  EXPECT_EQ(d.Written(), kMailD);
}

TEST(ClientSessionPipelineTest, WithoutPipeliningNothingChanges) {
  Driver d(Config());
  d.pipeline = true;
  d.mark_body = true;
  d.queue.push_back(Message({"a@x"}));
  d.queue.push_back(Message({"b@x"}));
  d.Connect();
  d.Server("220 hi\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_FALSE(d.session.can_pipeline());
  EXPECT_EQ(d.session.messages_open(), 1);
  d.Server("250 ok 1\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok 2\r\n");
  EXPECT_EQ(d.pipeline_readies, 0);
  EXPECT_EQ(d.Written(),
            "EHLO out1.relay.example\r\nMAIL FROM:<sender@relay.example>\r\nRCPT TO:<a@x>\r\n"
            "DATA\r\n<body>MAIL FROM:<sender@relay.example>\r\nRCPT TO:<b@x>\r\nDATA\r\n<body>"
            "QUIT\r\n");
  ASSERT_EQ(d.done.size(), 2u);
  EXPECT_EQ(d.two_done_in_one_event, 0);
}

// The pipelined conversation cut at every byte gives the same writes and outcomes.
TEST(ClientSessionPipelineTest, ServerBytesSplitAtEveryByte) {
  const std::string server =
      "220 hi\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n"
      "250 ok\r\n250 ok\r\n354 go\r\n"
      "250-2.0.0 queued\r\n250 2.0.0 as 1\r\n250 ok\r\n550 5.1.1 no b\r\n250 ok\r\n354 go\r\n"
      "554 5.7.1 no 2\r\n250 ok\r\n451 4.2.1 later\r\n354 go\r\n"
      "250 lone dot\r\n221 bye\r\n";
  auto run = [&](const std::vector<std::string_view>& chunks) {
    Driver d(Config());
    d.pipeline = true;
    d.mark_body = true;
    d.queue.push_back(Message({"a@x"}));
    d.queue.push_back(Message({"b@x", "c@x"}));
    d.queue.push_back(Message({"d@x"}));
    d.Connect();
    for (std::string_view chunk : chunks) d.Server(chunk);
    std::string summary = d.written;
    for (const auto& message : d.done) {
      for (const Outcome& o : message) {
        summary += std::to_string(static_cast<int>(o.kind)) + " " + std::to_string(o.code) + " " +
                   o.text + "\n";
      }
    }
    summary += d.closed ? "closed" : "open";
    return summary;
  };
  const std::string whole = run({server});
  EXPECT_EQ(whole,
            "EHLO out1.relay.example\r\n"
            "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<a@x>\r\nDATA\r\n<body>"
            "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\n"
            "DATA\r\n<body>"
            "MAIL FROM:<sender@relay.example> SIZE=100\r\nRCPT TO:<d@x>\r\nDATA\r\n.\r\nQUIT\r\n"
            "0 250 queued as 1\n2 550 no b\n2 554 no 2\n1 451 later\nclosed");
  for (size_t cut = 1; cut < server.size(); ++cut) {
    std::string_view s(server);
    ASSERT_EQ(run({s.substr(0, cut), s.substr(cut)}), whole) << "cut at " << cut;
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < server.size(); ++i) bytes.push_back(std::string_view(server).substr(i, 1));
  EXPECT_EQ(run(bytes), whole);
}

// ---- bounds and deadlines against a hostile server ----

// One message to one recipient up to its body, without PIPELINING; the driver holds the body
// until BodySent().
void StartBody(Driver& d) {
  d.auto_body = false;
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n");  // MAIL
  d.Server("250 ok\r\n");  // RCPT
  d.Server("354 go\r\n");
  ASSERT_TRUE(d.streaming);
}

TEST(ClientSessionBoundsTest, BytesArrivingDoNotExtendTheReplyDeadline) {
  Driver d(Config());
  d.queue.push_back(Message({"a@x"}));
  d.Connect();
  EXPECT_TRUE(d.rearmed);
  // A greeting dripped byte by byte: each byte is an event, none moves the deadline.
  for (char c : std::string_view("220 mx.example")) {
    d.Server(std::string_view(&c, 1));
    EXPECT_FALSE(d.rearmed);
    EXPECT_EQ(d.timeout_ms, 5 * 60 * 1000);
  }
  d.Server(" ESMTP\r\n");  // complete: EHLO goes out with a deadline of its own
  EXPECT_TRUE(d.rearmed);
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n250 ok\r\n");  // MAIL, RCPT
  d.auto_body = false;
  d.Server("354 go\r\n");
  d.BodySent();
  EXPECT_TRUE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 10 * 60 * 1000);
  d.Server("25");
  EXPECT_FALSE(d.rearmed);
  d.Server("0 o");
  EXPECT_FALSE(d.rearmed);
  // The driver's timer fires at the deadline armed by OnBodySent: the reply is cut there.
  d.Drain(d.session.OnTimeout());
  ASSERT_EQ(d.done.size(), 1u);
  ExpectOutcome(d.done[0][0], OutcomeKind::kTransient, 421, "4.4.2");
  EXPECT_NE(d.done[0][0].text.find("Timeout waiting for the reply to the end of data"),
            std::string::npos)
      << d.done[0][0].text;
  EXPECT_TRUE(d.closed);
}

TEST(ClientSessionBoundsTest, EachRepliedCommandOfAPipelinedGroupArmsTheNext) {
  ClientConfig config = Config();
  config.timeouts.mail_ms = 11;
  config.timeouts.rcpt_ms = 12;
  Driver d(config);
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Server(kEhloFull);
  EXPECT_TRUE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 11);
  d.Server("250 o");
  EXPECT_FALSE(d.rearmed);
  d.Server("k\r\n");  // MAIL answered: the first RCPT's reply is awaited now
  EXPECT_TRUE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 12);
}

TEST(ClientSessionBoundsTest, BodyWritesEachGetADeadline) {
  ClientConfig config = Config();
  config.timeouts.data_block_ms = 14;
  config.timeouts.data_termination_ms = 15;
  Driver d(config);
  StartBody(d);
  EXPECT_EQ(d.timeout_ms, 14);
  d.Server("2");  // bytes from the server while the body goes out: no new deadline
  EXPECT_FALSE(d.rearmed);
  d.Drain(d.session.OnBodyProgress());  // a write completed: the next one has 14 ms again
  EXPECT_TRUE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 14);
  d.BodySent();
  EXPECT_EQ(d.timeout_ms, 15);
  d.Drain(d.session.OnBodyProgress());  // after the body: nothing to do
  EXPECT_FALSE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 15);
}

TEST(ClientSessionBoundsTest, AServerPushingBytesDuringTheBodyEndsTheSession) {
  ClientConfig config = Config();
  config.limits.reply_bytes_max = 4096;
  Driver d(config);
  d.auto_body = false;
  d.queue.push_back(Message({"a@x", "b@x"}));
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Server(kEhloPlain);
  d.Server("250 ok\r\n");                  // MAIL
  d.Server("550 5.1.1 no such user\r\n");  // a@x
  d.Server("250 ok\r\n");                  // b@x
  d.Server("354 go\r\n");
  ASSERT_TRUE(d.streaming);
  // Replies are not read while the body streams: the parser holds these bytes, up to its bound.
  const std::string junk(1000, 'x');
  int sent = 0;
  while (!d.closed && sent < 100) {
    d.Server(junk);
    ++sent;
  }
  EXPECT_TRUE(d.closed);
  EXPECT_EQ(sent, 5);  // the fifth kilobyte would make 5,000 bytes held: over 4,096
  ASSERT_EQ(d.done.size(), 1u);
  // The refused recipient keeps its 550; the other is transient, a protocol error.
  ExpectOutcome(d.done[0][0], OutcomeKind::kPermanent, 550, "5.1.1");
  ExpectOutcome(d.done[0][1], OutcomeKind::kTransient, 421, "4.5.0");
  EXPECT_NE(d.done[0][1].text.find("Protocol error from mx.example while waiting for the "
                                   "message body to be sent"),
            std::string::npos)
      << d.done[0][1].text;
  EXPECT_NE(d.done[0][1].text.find("reply_bytes_max (4096 bytes)"), std::string::npos);
  // A late OnBodySent (the write in flight completing) changes nothing.
  d.Drain(d.session.OnBodySent());
  EXPECT_EQ(d.done.size(), 1u);
}

TEST(ClientSessionBoundsTest, ReplyTextInOutcomesIsCutOncePerReply) {
  ClientConfig config = Config();
  config.outcome_text_bytes_max = 300;
  Driver d(config);
  d.queue.push_back(Message({"a@x", "b@x", "c@x"}));
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Server(kEhloFull);
  d.Server("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  // The final reply: three lines of 2,000 bytes (6 KB), in the default limits.
  const std::string line(1990, 'y');
  d.Server("250-2.0.0 " + line + "\r\n250-2.0.0 " + line + "\r\n250 2.0.0 " + line + "\r\n");
  ASSERT_EQ(d.done.size(), 1u);
  ASSERT_EQ(d.done[0].size(), 3u);
  for (const Outcome& o : d.done[0]) {
    ExpectOutcome(o, OutcomeKind::kDelivered, 250, "2.0.0");
    EXPECT_LE(o.text.size(), 300u);
    EXPECT_EQ(o.text.substr(0, 10), "yyyyyyyyyy");
    EXPECT_EQ(o.text.substr(o.text.size() - 12), " [truncated]");
  }
}

TEST(ClientSessionBoundsTest, TheTlsHandshakeHasItsOwnDeadline) {
  ClientConfig config = Config();
  config.timeouts.tls_handshake_ms = 1234;
  Driver d(config);
  d.Connect();
  d.Server("220 mx.example ESMTP\r\n");
  d.Server("250-mx.example\r\n250 STARTTLS\r\n");
  EXPECT_EQ(d.Written(), "EHLO out1.relay.example\r\nSTARTTLS\r\n");
  d.Server("220 go ahead\r\n");
  EXPECT_EQ(d.start_tls, 1);
  EXPECT_TRUE(d.rearmed);
  EXPECT_EQ(d.timeout_ms, 1234);
  d.Drain(d.session.OnTimeout());
  ASSERT_EQ(d.connection.size(), 1u);
  EXPECT_NE(d.connection[0].text.find("Timeout waiting for the TLS handshake"), std::string::npos);
}

}  // namespace
}  // namespace relay::smtp
