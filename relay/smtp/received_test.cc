#include "relay/smtp/received.h"

#include <string>

#include "absl/time/civil_time.h"
#include "gtest/gtest.h"

namespace relay::smtp {
namespace {

absl::Time SampleTime() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 22, 20, 5, 9), absl::UTCTimeZone());
}

TEST(Received, ProtocolNames) {
  EXPECT_EQ(ProtocolName(false, false, false, false), "SMTP");
  EXPECT_EQ(ProtocolName(true, false, false, false), "ESMTP");
  EXPECT_EQ(ProtocolName(true, true, false, false), "ESMTPS");
  EXPECT_EQ(ProtocolName(true, false, true, false), "ESMTPA");
  EXPECT_EQ(ProtocolName(true, true, true, false), "ESMTPSA");
  EXPECT_EQ(ProtocolName(true, true, true, true), "UTF8SMTPSA");
}

TEST(Received, Date) {
  EXPECT_EQ(FormatRfc5322Date(SampleTime()), "Sun, 22 Nov 2026 20:05:09 +0000");
  EXPECT_EQ(FormatRfc5322Date(
                absl::FromCivil(absl::CivilSecond(2024, 2, 29, 0, 0, 0), absl::UTCTimeZone())),
            "Thu, 29 Feb 2024 00:00:00 +0000");
}

TEST(Received, FullHeaderOneRecipient) {
  ReceivedInfo info;
  info.ehlo_name = "laptop.example";
  info.reverse_dns = "host.isp.example";
  info.peer_ip = "192.0.2.10";
  info.hostname = "relay.example.com";
  info.tls = true;
  info.authenticated = true;
  info.tls_version = "TLSv1.3";
  info.tls_cipher = "TLS_AES_128_GCM_SHA256";
  info.queue_id = "0A1B2C3D";
  info.recipients = {"rcpt@example.org"};
  info.time = SampleTime();
  EXPECT_EQ(BuildReceivedHeader(info),
            "Received: from laptop.example (host.isp.example [192.0.2.10])\r\n"
            "\tby relay.example.com with ESMTPSA (TLSv1.3 cipher TLS_AES_128_GCM_SHA256)\r\n"
            "\tid 0A1B2C3D for <rcpt@example.org>; Sun, 22 Nov 2026 20:05:09 +0000\r\n");
}

TEST(Received, Ipv6NoTlsSeveralRecipients) {
  ReceivedInfo info;
  info.ehlo_name = "client";
  info.peer_ip = "2001:db8::5";
  info.hostname = "relay.example.com";
  info.queue_id = "Q1";
  info.recipients = {"a@x.example", "b@x.example"};
  info.time = SampleTime();
  const std::string header = BuildReceivedHeader(info);
  EXPECT_EQ(header,
            "Received: from client ([IPv6:2001:db8::5]) by relay.example.com with ESMTP\r\n"
            "\tid Q1; Sun, 22 Nov 2026 20:05:09 +0000\r\n");
  EXPECT_EQ(header.find("a@x.example"), std::string::npos);  // no Bcc disclosure
}

TEST(Received, LinesStayUnder78Columns) {
  ReceivedInfo info;
  info.ehlo_name = "a-rather-long-client-name.subdomain.example.com";
  info.reverse_dns = "another-long-reverse-name.isp.example.net";
  info.peer_ip = "2001:db8:1234:5678:9abc:def0:1234:5678";
  info.hostname = "relay.example.com";
  info.tls = true;
  info.tls_version = "TLSv1.2";
  info.tls_cipher = "ECDHE-RSA-AES256-GCM-SHA384";
  info.queue_id = "0123456789ABCDEF";
  info.recipients = {"someone@example.org"};
  info.time = SampleTime();
  const std::string header = BuildReceivedHeader(info);
  size_t start = 0;
  for (size_t pos = header.find("\r\n"); pos != std::string::npos;
       start = pos + 2, pos = header.find("\r\n", start)) {
    EXPECT_LE(pos - start, 78u) << header;
  }
}

TEST(Received, HostileEhloNameCannotBreakTheHeader) {
  ReceivedInfo info;
  info.ehlo_name = "evil\r\nX-Injected: yes (";
  info.peer_ip = "192.0.2.1";
  info.hostname = "relay";
  info.time = SampleTime();
  const std::string header = BuildReceivedHeader(info);
  EXPECT_EQ(header.find("\r\nX-Injected"), std::string::npos);
  // Every line break is a fold (CRLF followed by WSP) or the final CRLF.
  for (size_t pos = header.find("\r\n"); pos + 2 < header.size();
       pos = header.find("\r\n", pos + 2)) {
    EXPECT_EQ(header[pos + 2], '\t');
  }
}

TEST(MissingHeaders, DetectsAndBuilds) {
  EXPECT_EQ(MissingHeaderFields("Subject: x\r\n\r\nbody\r\n", "Q7", "relay.example", SampleTime()),
            "Message-ID: <Q7@relay.example>\r\nDate: Sun, 22 Nov 2026 20:05:09 +0000\r\n");
  EXPECT_EQ(MissingHeaderFields("message-id: <a@b>\r\nDATE : Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                "\r\nbody\r\n",
                                "Q7", "relay.example", SampleTime()),
            "");
  // A Date: line in the body does not count.
  EXPECT_EQ(
      MissingHeaderFields("Message-ID: <a@b>\r\n\r\nDate: in body\r\n", "Q7", "r", SampleTime()),
      "Date: Sun, 22 Nov 2026 20:05:09 +0000\r\n");
  // Folded continuation lines are skipped.
  HeaderPresence found = FindHeaders("Subject: a\r\n Date: folded\r\nMessage-Id: <x@y>\r\n\r\n");
  EXPECT_FALSE(found.date);
  EXPECT_TRUE(found.message_id);
  found = FindHeaders("");
  EXPECT_FALSE(found.date);
  EXPECT_FALSE(found.message_id);
}

}  // namespace
}  // namespace relay::smtp
