// Writes sample DSNs into a directory for dsn_python_test.sh, which parses them with Python's
// email package: failure.eml (two recipients, a long reply), delay.eml and hostile.eml
// (oversized and 8-bit original headers). Each file holds the DSN's data; the envelope goes to
// <name>.env as "MAIL FROM:<...>" and "RCPT TO:<...>" lines.
#include <cstdio>
#include <fstream>
#include <string>

#include "relay/delivery/dsn.h"

namespace {

using relay::delivery::BuildDsn;
using relay::delivery::DsnKind;
using relay::delivery::DsnRecipient;
using relay::delivery::DsnRequest;

bool Write(const std::string& dir, const std::string& name, const DsnRequest& req) {
  auto dsn = BuildDsn(req);
  if (!dsn.ok()) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), std::string(dsn.status().message()).c_str());
    return false;
  }
  std::ofstream(dir + "/" + name + ".eml", std::ios::binary) << dsn->data;
  std::ofstream(dir + "/" + name + ".env", std::ios::binary)
      << "MAIL FROM:<" << dsn->mail_from << ">\nRCPT TO:<" << dsn->rcpt_to << ">\n";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: dsn_example DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::string original =
      "Received: from app (app.example.org [192.0.2.7]) by relay.example.net\r\n"
      "\twith ESMTPSA id Q42; Sat, 22 Nov 2025 18:33:20 +0000\r\n"
      "From: Sender <sender@example.org>\r\nTo: a@gmail.com, b@yahoo.com\r\n"
      "Subject: Your receipt\r\nMessage-ID: <receipt-1@example.org>\r\n\r\nThanks!\r\n";
  DsnRequest req;
  req.kind = DsnKind::kFailure;
  req.reporting_mta = "relay.example.net";
  req.envelope_sender = "bounces+42@example.org";
  req.envelope_id = "ENV42";
  req.queue_id = "Q42";
  req.arrival_unix_s = 1763836400;
  req.now_unix_s = 1763840000;
  req.original_message = original;
  DsnRecipient a;
  a.final_recipient = "a@gmail.com";
  a.original_recipient = "a@gmail.com";
  a.status = "5.1.1";
  a.remote_mta = "gmail-smtp-in.l.google.com";
  a.reply_code = 550;
  a.reply_enhanced = "5.1.1";
  a.reply_text =
      "The email account that you tried to reach does not exist. Please try double-checking the "
      "recipient's email address for typos or unnecessary spaces. For more information, go to "
      "https://support.google.com/mail/?p=NoSuchUser x1si123456.";
  a.last_attempt_unix_s = 1763839990;
  DsnRecipient b;
  b.final_recipient = "b@yahoo.com";
  b.status = "5.7.1";
  b.remote_mta = "mta5.am0.yahoodns.net";
  b.reply_code = 421;
  b.reply_enhanced = "4.7.1";
  b.reply_text =
      "[TSS09] All messages from 192.0.2.1 will be permanently deferred; Retrying "
      "will NOT succeed.";
  b.last_attempt_unix_s = 1763839995;
  req.recipients = {a, b};
  if (!Write(dir, "failure", req)) return 1;

  DsnRequest delay = req;
  delay.kind = DsnKind::kDelay;
  DsnRecipient c = b;
  c.status = "4.7.0";
  c.reply_code = 421;
  c.reply_enhanced = "4.7.0";
  c.reply_text = "[TSS04] Messages from 192.0.2.1 temporarily deferred";
  c.will_retry_until_unix_s = 1763836400 + 5 * 86400;
  delay.recipients = {c};
  if (!Write(dir, "delay", delay)) return 1;

  DsnRequest hostile = req;
  const std::string bad_original =
      "Subject: " + std::string(3000, 'S') + "\nX-Bare-LF: 1\nX-Latin: caf\xc3\xa9\r\n\r\nbody\r\n";
  hostile.original_message = bad_original;
  hostile.recipients[0].reply_text = std::string(2000, 'r') + "\r\nsecond line\x07";
  hostile.recipients[1].reply_code = 0;
  hostile.recipients[1].explanation = "the domain accepts no mail (null MX, RFC 7505)";
  if (!Write(dir, "hostile", hostile)) return 1;

  DsnRequest null_sender = req;
  null_sender.envelope_sender = "";
  if (BuildDsn(null_sender).ok()) {
    std::fprintf(stderr, "a DSN was built for a null sender\n");
    return 1;
  }
  return 0;
}
