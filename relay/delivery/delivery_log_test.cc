#include "relay/delivery/delivery_log.h"

#include <stdio.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace relay::delivery {
namespace {

// ---- A small strict JSON checker (RFC 8259) for the tests' lines. ----
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  // True when the whole input is exactly one JSON object.
  bool IsObject() {
    if (!Object()) return false;
    return pos_ == s_.size();
  }
  // Decoded value of the string member `key` of the top-level object ("" when absent).
  static std::string StringMember(std::string_view line, std::string_view key) {
    JsonChecker c(line);
    std::string found;
    c.want_key_ = std::string(key);
    c.found_ = &found;
    c.Object();
    return found;
  }

 private:
  bool Peek(char c) { return pos_ < s_.size() && s_[pos_] == c; }
  bool Eat(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  bool Value() {
    if (Peek('{')) return Object();
    if (Peek('"')) return String(nullptr);
    return Number();
  }
  bool Object() {
    ++depth_;
    if (!Eat('{')) return false;
    if (Eat('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Eat(':')) return false;
      if (depth_ == 1 && found_ != nullptr && key == want_key_ && Peek('"')) {
        if (!String(found_)) return false;
      } else if (!Value()) {
        return false;
      }
    } while (Eat(','));
    --depth_;
    return Eat('}');
  }
  bool Number() {
    size_t start = pos_;
    Eat('-');
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start && s_[start] != '-' ? true : pos_ > start + 1;
  }
  static void PutUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;  // raw control characters are invalid
      if (c == '\\') {
        if (pos_ >= s_.size()) return false;
        char e = s_[pos_++];
        const std::string_view simple = "\"\\/bfnrt";
        const std::string_view decoded = "\"\\/\b\f\n\r\t";
        if (size_t k = simple.find(e); k != std::string_view::npos) {
          if (out) *out += decoded[k];
        } else if (e == 'u') {
          if (pos_ + 4 > s_.size()) return false;
          uint32_t cp = 0;
          for (int i = 0; i < 4; ++i) {
            char h = s_[pos_++];
            cp <<= 4;
            if (h >= '0' && h <= '9')
              cp |= h - '0';
            else if (h >= 'a' && h <= 'f')
              cp |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F')
              cp |= h - 'A' + 10;
            else
              return false;
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // we never write surrogate escapes
          if (out) PutUtf8(out, cp);
        } else {
          return false;
        }
      } else if (out) {
        *out += static_cast<char>(c);
      }
    }
    return false;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::string want_key_;
  std::string* found_ = nullptr;
};

// True when `s` is entirely valid UTF-8 (checked independently of the code under test).
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

std::string Json(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

TEST(DeliveryLog, JsonEscaping) {
  EXPECT_EQ(Json("plain"), "\"plain\"");
  EXPECT_EQ(Json("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Json("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(Json(std::string_view("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\\u007f\"");
  EXPECT_EQ(Json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\"");
  EXPECT_EQ(Json("\xff"), "\"\\ufffd\"");
  EXPECT_EQ(Json("\xc0\xaf"), "\"\\ufffd\\ufffd\"");                        // overlong '/'
  EXPECT_EQ(Json("\xe0\x80\xaf"), "\"\\ufffd\\ufffd\\ufffd\"");             // overlong
  EXPECT_EQ(Json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");             // surrogate D800
  EXPECT_EQ(Json("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");  // > U+10FFFF
  EXPECT_EQ(Json("\xc3"), "\"\\ufffd\"");                                   // truncated
  EXPECT_EQ(Json("a\xe2\x82z"), "\"a\\ufffd\\ufffdz\"");
}

TEST(DeliveryLog, RandomBytesAlwaysGiveValidJson) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    DeliveryRecord r;
    r.event = DeliveryEvent::kDeferred;
    r.time_unix_ms = 1763840000123;
    r.queue_id = "q";
    r.sender = s;
    r.reply_code = 421;
    r.reply_text = s;
    std::string line;
    FormatDeliveryRecord(r, line);
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    ASSERT_EQ(line.find('\n'), std::string::npos);
    ASSERT_TRUE(JsonChecker(line).IsObject()) << line;
    ASSERT_TRUE(ValidUtf8(line)) << line;
    // Valid input round-trips exactly.
    if (ValidUtf8(s)) {
      ASSERT_EQ(JsonChecker::StringMember(line, "sender"), s);
    }
  }
}

TEST(DeliveryLog, RecordFields) {
  DeliveryRecord r;
  r.event = DeliveryEvent::kDelivered;
  r.time_unix_ms = 1763840000123;
  r.queue_id = "Q1";
  r.sender = "";
  r.recipient = "a@gmail.com";
  r.site = "google";
  r.mx_host = "gmail-smtp-in.l.google.com";
  r.source_address = "2001:db8::5";
  r.tls_version = "TLSv1.3";
  r.tls_cipher = "TLS_AES_128_GCM_SHA256";
  r.reply_code = 250;
  r.reply_enhanced = "2.0.0";
  r.reply_text = "OK 1763840000 x1si";
  r.attempt = 2;
  r.queued_ms = 65000;
  r.attempt_ms = 310;
  std::string line;
  FormatDeliveryRecord(r, line);
  EXPECT_EQ(line,
            "{\"ts\":\"2025-11-22T19:33:20.123Z\",\"event\":\"delivered\",\"queue_id\":\"Q1\","
            "\"sender\":\"\",\"recipient\":\"a@gmail.com\",\"site\":\"google\","
            "\"mx\":\"gmail-smtp-in.l.google.com\",\"source\":\"2001:db8::5\","
            "\"tls\":{\"version\":\"TLSv1.3\",\"cipher\":\"TLS_AES_128_GCM_SHA256\"},"
            "\"reply\":{\"code\":250,\"enhanced\":\"2.0.0\",\"text\":\"OK 1763840000 x1si\"},"
            "\"attempt\":2,\"queued_ms\":65000,\"attempt_ms\":310}\n");
  // A delivery whose earlier attempt's outcome is unknown says so.
  r.possible_duplicate = true;
  line.clear();
  FormatDeliveryRecord(r, line);
  EXPECT_NE(line.find("\"attempt\":2,\"possible_duplicate\":true,\"queued_ms\":65000"),
            std::string::npos)
      << line;
  for (DeliveryEvent e :
       {DeliveryEvent::kReceived, DeliveryEvent::kDeferred, DeliveryEvent::kBounced,
        DeliveryEvent::kExpired, DeliveryEvent::kDsnSent}) {
    EXPECT_NE(DeliveryEventName(e), "unknown");
  }
  EXPECT_EQ(DeliveryLogPath("/var/log/relay", 3), "/var/log/relay/delivery-3.log");

  // No reply (a local reason) and a DSN line.
  DeliveryRecord d;
  d.event = DeliveryEvent::kDeferred;
  d.time_unix_ms = 1763840000000;
  d.queue_id = "Q2";
  d.sender = "s@example.org";
  d.reply_text = "delivery to google suspended: 421 4.7.28 unusual rate";
  line.clear();
  FormatDeliveryRecord(d, line);
  EXPECT_NE(line.find(",\"reason\":\"delivery to google suspended: 421 4.7.28 unusual rate\""),
            std::string::npos) << line;
  EXPECT_EQ(line.find("\"reply\""), std::string::npos) << line;
  DeliveryRecord n;
  n.event = DeliveryEvent::kDsnSent;
  n.queue_id = "Q3";
  n.recipient = "s@example.org";
  n.dsn_queue_id = "Q4";
  n.dsn_action = "delayed";
  line.clear();
  FormatDeliveryRecord(n, line);
  EXPECT_NE(line.find(",\"dsn_id\":\"Q4\",\"dsn\":\"delayed\""), std::string::npos) << line;
}

std::string TmpDir(const std::string& name) {
  std::string d = std::string(getenv("TEST_TMPDIR")) + "/" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t eol = all.find('\n', pos);
    EXPECT_NE(eol, std::string::npos) << path << ": a line without its end";
    if (eol == std::string::npos) break;
    lines.push_back(all.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return lines;
}

void AppendNumbered(DeliveryLog& log, int from, int to) {
  for (int i = from; i < to; ++i) {
    std::string qid = "q" + std::to_string(i);
    std::string text(i % 97, 'x');
    DeliveryRecord r;
    r.event = DeliveryEvent::kDeferred;
    r.time_unix_ms = 1763840000000 + i;
    r.queue_id = qid;
    r.sender = "s@example.org";
    r.reply_code = 451;
    r.reply_text = text;
    log.Append(r);
  }
}

TEST(DeliveryLog, RotationBySizeKeepsEveryLineWhole) {
  const std::string dir = TmpDir("rotate");
  DeliveryLogOptions o;
  o.path = DeliveryLogPath(dir, 0);
  o.rotate_bytes = 8000;
  o.rotate_keep = 1000;
  o.buffer_bytes_max = 700;
  auto log = DeliveryLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  AppendNumbered(**log, 0, 3000);
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_GT((*log)->rotations(), 20u);
  std::set<std::string> seen;
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    ++files;
    EXPECT_LE(entry.file_size(), o.rotate_bytes) << entry.path();
    for (const std::string& line : ReadLines(entry.path())) {
      ASSERT_TRUE(JsonChecker(line).IsObject()) << entry.path() << ": " << line;
      EXPECT_TRUE(seen.insert(JsonChecker::StringMember(line, "queue_id")).second) << line;
    }
  }
  EXPECT_EQ(files, (*log)->rotations() + 1);
  EXPECT_EQ(seen.size(), 3000u);
}

TEST(DeliveryLog, RotationDropsFilesBeyondKeep) {
  const std::string dir = TmpDir("keep");
  DeliveryLogOptions o;
  o.path = dir + "/d.log";
  o.rotate_bytes = 500;
  o.rotate_keep = 2;
  auto log = DeliveryLog::Open(o);
  ASSERT_TRUE(log.ok());
  AppendNumbered(**log, 0, 200);
  ASSERT_TRUE((*log)->Flush().ok());
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"d.log", "d.log.1", "d.log.2"}));
  // The newest lines are in d.log (possibly empty right after a rotation) and d.log.1.
  std::vector<std::string> last = ReadLines(dir + "/d.log.1");
  ASSERT_FALSE(last.empty());
}

TEST(DeliveryLog, ReopenAfterExternalRename) {
  const std::string dir = TmpDir("reopen");
  DeliveryLogOptions o;
  o.path = dir + "/delivery-0.log";
  auto log = DeliveryLog::Open(o);
  ASSERT_TRUE(log.ok());
  AppendNumbered(**log, 0, 10);
  ASSERT_TRUE((*log)->Flush().ok());
  // logrotate: move the file away, then signal.
  ASSERT_EQ(rename(o.path.c_str(), (o.path + ".old").c_str()), 0);
  AppendNumbered(**log, 10, 15);  // buffered before the signal: goes to the new file
  (*log)->RequestReopen();
  AppendNumbered(**log, 15, 20);
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ(ReadLines(o.path + ".old").size(), 10u);
  std::vector<std::string> fresh = ReadLines(o.path);
  ASSERT_EQ(fresh.size(), 10u);
  EXPECT_EQ(JsonChecker::StringMember(fresh[0], "queue_id"), "q10");
}

TEST(DeliveryLog, WriteErrorsKeepLinesThenDropBeyondTheBound) {
  if (access("/dev/full", W_OK) != 0) {
    GTEST_SKIP() << "SKIP: /dev/full not writable";
  }
  DeliveryLogOptions o;
  o.path = "/dev/full";
  o.buffer_bytes_max = 1000;
  o.pending_bytes_max = 5000;
  auto log = DeliveryLog::Open(o);
  ASSERT_TRUE(log.ok());
  AppendNumbered(**log, 0, 500);
  EXPECT_GT((*log)->write_errors(), 0u);
  EXPECT_GT((*log)->lines_dropped(), 0u);
  EXPECT_LT((*log)->buffered_bytes(), 5000u + 300);
  EXPECT_FALSE((*log)->Flush().ok());
}

TEST(DeliveryLog, DestructorFlushes) {
  const std::string dir = TmpDir("dtor");
  DeliveryLogOptions o;
  o.path = dir + "/d.log";
  {
    auto log = DeliveryLog::Open(o);
    ASSERT_TRUE(log.ok());
    AppendNumbered(**log, 0, 3);
    EXPECT_EQ(ReadLines(o.path).size(), 0u);  // still buffered
  }
  EXPECT_EQ(ReadLines(o.path).size(), 3u);
}

}  // namespace
}  // namespace relay::delivery
