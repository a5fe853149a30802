// Fuzz target for the DSN builder (relay/delivery/dsn.h): the bounce it writes quotes what remote
// MX hosts said and the header section of whatever message bounced, and goes to the sender. The
// input is a kind byte, three time bytes, then fields separated by 0x1f: reporting MTA, envelope
// sender, ENVID, queue id, the original message, then for each recipient final recipient, ORCPT,
// status, remote MTA, reply code (decimal), enhanced code, reply text, explanation. Checks on
// what BuildDsn returns:
//   - a null sender gives FailedPrecondition, every other refusal is InvalidArgument;
//   - the envelope: MAIL FROM:<>, RCPT TO the original sender;
//   - every line ends in CRLF and holds at most 998 octets (RFC 5322 §2.1.1), the top header
//     parses, and the MIME boundary delimits exactly three parts and a close (RFC 2046 §5.1.1):
//     no text from the MX or the message may forge a delimiter line;
//   - parts 1 and 2 are 7-bit, and the whole is 7-bit unless needs_8bitmime;
//   - its size is linear in the input.
#include <string>
#include <string_view>
#include <vector>

#include "dkim/header.h"
#include "relay/delivery/dsn.h"
#include "tools/fuzz/fuzz.h"

namespace relay::delivery {
namespace {

constexpr char kSeparator = '\x1f';
constexpr int64_t kNow = 1763840000;

std::vector<std::string_view> Lines(std::string_view data) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t eol = data.find("\r\n", pos);
    FUZZ_CHECK(eol != std::string_view::npos);
    lines.push_back(data.substr(pos, eol - pos));
    pos = eol + 2;
  }
  return lines;
}

void CheckDsn(const DsnRequest& request, const Dsn& dsn, size_t input_bytes) {
  FUZZ_CHECK(dsn.mail_from.empty());
  FUZZ_CHECK(dsn.rcpt_to == request.envelope_sender);
  const std::string& data = dsn.data;
  FUZZ_CHECK(data.size() <= 16384 + 4096 * request.recipients.size() + 8 * input_bytes);
  const std::vector<std::string_view> lines = Lines(data);
  for (std::string_view line : lines) {
    FUZZ_CHECK(line.size() <= 998);
    FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos);
  }
  size_t header_end = data.find("\r\n\r\n");
  FUZZ_CHECK(header_end != std::string::npos);
  FUZZ_CHECK(dkim::ParseHeaderBlock(std::string_view(data).substr(0, header_end + 2)).ok());

  // The boundary parameter of the top Content-Type (the sender, in To:, may hold the text too).
  const std::string marker = "boundary=\"";
  const size_t b = data.find(marker, data.find("\r\nContent-Type: multipart/report;"));
  FUZZ_CHECK(b != std::string::npos && b < header_end);
  const size_t b_end = data.find('"', b + marker.size());
  const std::string delimiter = "--" + data.substr(b + marker.size(), b_end - b - marker.size());
  int delimiters = 0, closes = 0;
  size_t part = 0;  // 0: before the first delimiter; 3: the original headers
  for (std::string_view line : lines) {
    if (line.substr(0, delimiter.size()) == delimiter) {
      if (line == delimiter) {
        FUZZ_CHECK_MSG(closes == 0, std::string(line));
        ++delimiters;
        ++part;
      } else {
        FUZZ_CHECK_MSG(line == delimiter + "--",
                       "a line forges the boundary: " + std::string(line));
        ++closes;
      }
      continue;
    }
    if (part == 1 || part == 2) {
      for (unsigned char c : line) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    }
  }
  FUZZ_CHECK(delimiters == 3 && closes == 1);
  FUZZ_CHECK(data.substr(data.size() - delimiter.size() - 4) == delimiter + "--\r\n");
  if (!dsn.needs_8bitmime) {
    for (unsigned char c : data) FUZZ_CHECK(c < 0x80);
  }
}

void FuzzDsn(std::string_view input) {
  relay::fuzz::InputReader in(input);
  DsnRequest request;
  const uint8_t kind = in.Byte();
  request.kind = kind & 1 ? DsnKind::kDelay : DsnKind::kFailure;
  request.now_unix_s = kNow + in.Byte() * 3600;
  request.arrival_unix_s = kind & 2 ? 0 : request.now_unix_s - in.Byte() * 600;
  const int64_t retry = kind & 4 ? 0 : request.now_unix_s + in.Byte() * 86400;
  request.reporting_mta = std::string(in.Until(kSeparator));
  request.envelope_sender = std::string(in.Until(kSeparator));
  request.envelope_id = std::string(in.Until(kSeparator));
  request.queue_id = std::string(in.Until(kSeparator));
  const std::string original(in.Until(kSeparator));
  request.original_message = original;
  while (!in.empty()) {
    DsnRecipient r;
    r.final_recipient = std::string(in.Until(kSeparator));
    r.original_recipient = std::string(in.Until(kSeparator));
    r.status = std::string(in.Until(kSeparator));
    r.remote_mta = std::string(in.Until(kSeparator));
    const std::string code(in.Until(kSeparator));
    r.reply_code = code.empty() || code.size() > 3 ? 0 : std::atoi(code.c_str());
    r.reply_enhanced = std::string(in.Until(kSeparator));
    r.reply_text = std::string(in.Until(kSeparator));
    r.explanation = std::string(in.Until(kSeparator));
    r.last_attempt_unix_s = request.now_unix_s - 5;
    r.will_retry_until_unix_s = retry;
    request.recipients.push_back(std::move(r));
  }
  absl::StatusOr<Dsn> dsn = BuildDsn(request);
  if (!dsn.ok()) {
    FUZZ_CHECK(absl::IsFailedPrecondition(dsn.status()) == request.envelope_sender.empty());
    FUZZ_CHECK(request.envelope_sender.empty() || absl::IsInvalidArgument(dsn.status()));
    return;
  }
  CheckDsn(request, *dsn, input.size());
  FUZZ_CHECK(HeaderSection(original).size() <= original.size());
}

std::string Prefix() {
  return std::string("\0\0\0\0relay.example.net\x1fsender@example.org\x1f\x1fQ42\x1f", 46);
}

// One recipient whose remote reply is `unit` repeated up to `bytes`.
std::string LongReply(std::string_view unit, size_t bytes) {
  return relay::fuzz::Repeat(Prefix() +
                                 "From: a@example.org\r\n\r\n\x1f"
                                 "a@gmail.com\x1f\x1f" +
                                 "5.1.1\x1fmx.example\x1f" + "550\x1f" + "5.1.1\x1f",
                             unit, "\x1f", bytes);
}

// A remote reply of one long word (a hostile MX): folded and broken at 998 octets.
std::string LongReplyWord(size_t bytes) { return LongReply("x", bytes); }

// A reply of many short words: wrapped at 76 columns.
std::string LongReplyWords(size_t bytes) { return LongReply("no such user ", bytes); }

// An original message with a long header section of long lines.
std::string LongHeaders(size_t bytes) {
  return relay::fuzz::Repeat(Prefix(), "X-Long: " + std::string(1200, 'h') + "\r\n",
                             "\r\nbody\x1f"
                             "a@gmail.com\x1f\x1f"
                             "5.1.1\x1f\x1f"
                             "550\x1f\x1fno\x1f",
                             bytes);
}

// Many recipients.
std::string ManyRecipients(size_t bytes) {
  return relay::fuzz::Repeat(Prefix() + "From: a@example.org\r\n\r\n\x1f",
                             "someone@gmail.com\x1f\x1f"
                             "5.1.1\x1fmx.example\x1f"
                             "550\x1f"
                             "5.1.1\x1fNo such user\x1f\x1f",
                             "", bytes);
}

}  // namespace
}  // namespace relay::delivery

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "dsn",
      .run = relay::delivery::FuzzDsn,
      // The request's copies of the input, the normalised headers, and the DSN, which quotes
      // each reply twice (text and Diagnostic-Code). A recipient can be 8 bytes of input (empty
      // fields) and still costs its FailedRecipient and a block of about 250 bytes of DSN text
      // (and the harness's line list): 30 bytes a byte at its peak (corpus 09). A recipient's
      // copies (DsnRecipient, 7 strings) take about 65 bytes allocated per input byte.
      .bounds = {.heap_peak_bytes = {64 << 10, 48},
                 .heap_allocated_bytes = {256 << 10, 72},
                 .allocations = {1024, 2}},
      .scaled = {{.name = "long reply word", .make = relay::delivery::LongReplyWord},
                 {.name = "long reply of words", .make = relay::delivery::LongReplyWords},
                 {.name = "long header lines", .make = relay::delivery::LongHeaders},
                 {.name = "many recipients", .make = relay::delivery::ManyRecipients}},
  };
  return target;
}
