#include "dkim/canon.h"

#include <dirent.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dkim/header.h"
#include "dkim/test_util.h"
#include "gtest/gtest.h"

namespace dkim {
namespace {

using ::dkim::testing::ReadFile;
using ::dkim::testing::ToCrlf;

class StringSink : public BodySink {
 public:
  void Write(std::string_view bytes) override { out.append(bytes); }
  std::string out;
};

std::string CanonBody(Canonicalization c, std::string_view body) {
  StringSink sink;
  BodyCanonicalizer canon(c, &sink);
  canon.Update(body);
  canon.Finish();
  return sink.out;
}

// `NN-name.expected`: sections "--- simple header", "--- simple body", "--- relaxed header",
// "--- relaxed body"; each line of a section stands for that line plus CRLF.
std::map<std::string, std::string> ParseExpected(const std::string& text) {
  std::map<std::string, std::string> sections;
  std::string* current = nullptr;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.rfind("--- ", 0) == 0) {
      current = &sections[line.substr(4)];
      continue;
    }
    if (current != nullptr) *current += line + "\r\n";
  }
  return sections;
}

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  DIR* dir = opendir("dkim/testdata");
  if (dir == nullptr) return names;
  while (dirent* e = readdir(dir)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.substr(n.size() - 4) == ".msg") names.push_back(n.substr(0, n.size() - 4));
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CanonTest, FileDrivenCases) {
  std::vector<std::string> names = CaseNames();
  ASSERT_GE(names.size(), 8u) << "test data missing";
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    std::string message = ToCrlf(ReadFile("dkim/testdata/" + name + ".msg"));
    std::map<std::string, std::string> expected =
        ParseExpected(ReadFile("dkim/testdata/" + name + ".expected"));
    ASSERT_EQ(expected.size(), 4u);
    size_t sep = message.find("\r\n\r\n");
    ASSERT_NE(sep, std::string::npos);
    std::string_view header_block = std::string_view(message).substr(0, sep + 2);
    std::string_view body = std::string_view(message).substr(sep + 4);
    absl::StatusOr<std::vector<HeaderField>> fields = ParseHeaderBlock(header_block);
    ASSERT_TRUE(fields.ok()) << fields.status();
    for (Canonicalization c : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
      std::string prefix(CanonicalizationName(c));
      std::string headers;
      for (const HeaderField& f : *fields) AppendCanonicalHeader(c, f.raw, true, &headers);
      EXPECT_EQ(headers, expected[prefix + " header"]) << prefix;
      EXPECT_EQ(CanonBody(c, body), expected[prefix + " body"]) << prefix;
    }
  }
}

// A direct, non-streaming reading of RFC 6376 §3.4.3 / §3.4.4 used as the model.
std::string ModelBody(Canonicalization c, std::string body) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) {
      lines.push_back(body.substr(pos));
      break;
    }
    lines.push_back(body.substr(pos, eol - pos));
    pos = eol + 2;
  }
  if (c == Canonicalization::kRelaxed) {
    for (std::string& line : lines) {
      std::string out;
      bool wsp = false;
      for (char ch : line) {
        if (ch == ' ' || ch == '\t') {
          wsp = true;
          continue;
        }
        if (wsp) out.push_back(' ');
        wsp = false;
        out.push_back(ch);
      }
      line = out;
    }
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const std::string& line : lines) out += line + "\r\n";
  if (c == Canonicalization::kSimple && out.empty()) out = "\r\n";
  return out;
}

std::string Hash(Canonicalization c, const std::vector<std::string_view>& chunks) {
  BodyHasher h(c);
  for (std::string_view chunk : chunks) h.Update(chunk);
  return h.Finish();
}

std::string Sha256(std::string_view s) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const uint8_t*>(s.data()), s.size(),
         reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

// Property: for every split point (and every pair of split points in a short body) the body hash
// equals the hash of the model's canonical form.
TEST(CanonTest, EverySplitPointGivesTheSameBodyHash) {
  const std::string body =
      " lead\t \r\n\r\nmid  dle \t\r\n \r\n\t\r\nx\ty  \r\n\r\n \r\n\r\n";
  for (Canonicalization c : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
    const std::string want = Sha256(ModelBody(c, body));
    ASSERT_EQ(Hash(c, {body}), want);
    for (size_t i = 0; i <= body.size(); ++i) {
      std::string_view b = body;
      ASSERT_EQ(Hash(c, {b.substr(0, i), b.substr(i)}), want) << "split at " << i;
      for (size_t j = i; j <= body.size(); ++j) {
        ASSERT_EQ(Hash(c, {b.substr(0, i), b.substr(i, j - i), b.substr(j)}), want)
            << "splits at " << i << ", " << j;
      }
    }
  }
}

// Random bodies over the bytes that matter, random chunking, against the model.
TEST(CanonTest, RandomBodiesMatchTheModel) {
  std::mt19937 rng(6376);
  const char alphabet[] = {'a', 'b', ' ', '\t', '\r', '\n'};
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::string body;
    size_t len = rng() % 200;
    for (size_t i = 0; i < len; ++i) {
      // Mostly CRLF pairs; the model and the reference verifiers define bare CR/LF as bytes.
      if (rng() % 4 == 0) {
        body += "\r\n";
      } else {
        body.push_back(alphabet[rng() % 4]);
      }
    }
    if (iteration % 3 == 0) body.push_back(alphabet[4 + rng() % 2]);
    for (Canonicalization c : {Canonicalization::kSimple, Canonicalization::kRelaxed}) {
      std::vector<std::string_view> chunks;
      size_t pos = 0;
      while (pos < body.size()) {
        size_t n = 1 + rng() % 16;
        chunks.push_back(std::string_view(body).substr(pos, n));
        pos += n;
      }
      ASSERT_EQ(CanonBody(c, body), ModelBody(c, body)) << "body: " << body;
      ASSERT_EQ(Hash(c, chunks), Sha256(ModelBody(c, body)));
    }
  }
}

TEST(CanonTest, BareLineBreaksAreReported) {
  for (std::string body : {"a\nb\r\n", "a\rb\r\n", "a\r", "\n"}) {
    BodyHasher h(Canonicalization::kRelaxed);
    for (char ch : body) h.Update(std::string_view(&ch, 1));
    h.Finish();
    EXPECT_TRUE(h.saw_bare_line_break()) << body;
  }
  BodyHasher ok(Canonicalization::kSimple);
  ok.Update("a\r");
  ok.Update("\nb\r\n");
  ok.Finish();
  EXPECT_FALSE(ok.saw_bare_line_break());
}

TEST(CanonTest, LengthLimit) {
  BodyHasher h(Canonicalization::kSimple, 3);
  h.Update("abcdef\r\n");
  EXPECT_EQ(h.Finish(), Sha256("abc"));
  EXPECT_EQ(h.canonical_bytes(), 8u);
}

TEST(CanonTest, EmptyBodyHashes) {
  // RFC 6376 §3.4.3 / §3.4.4: well-known hashes of the empty body.
  EXPECT_EQ(Base64Encode(Hash(Canonicalization::kSimple, {})),
            "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(Base64Encode(Hash(Canonicalization::kRelaxed, {})),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(HeaderTest, SelectBottomUp) {
  std::string block = "Received: top\r\nFrom: x@y.z\r\nReceived: bottom\r\n";
  absl::StatusOr<std::vector<HeaderField>> fields = ParseHeaderBlock(block);
  ASSERT_TRUE(fields.ok());
  std::vector<const HeaderField*> picked =
      SelectHeaders(*fields, {"received", "RECEIVED", "received", "from"});
  ASSERT_EQ(picked.size(), 4u);
  EXPECT_EQ(picked[0]->raw, "Received: bottom\r\n");
  EXPECT_EQ(picked[1]->raw, "Received: top\r\n");
  EXPECT_EQ(picked[2], nullptr);
  EXPECT_EQ(picked[3]->raw, "From: x@y.z\r\n");
}

// The address the relay checks against the user is the one whose domain picks the key: a '<'
// inside a comment must not make them differ.
TEST(HeaderTest, FromAddress) {
  EXPECT_EQ(*FromAddress("From: Joe <joe@Example.COM>\r\n"), "joe@Example.COM");
  EXPECT_EQ(*FromAddress("From: ceo@bank.example (Joe <x@evil.example>)\r\n"),
            "ceo@bank.example");
  EXPECT_EQ(*FromAddress("From: \"a <b@c>\" <d@e.example>\r\n"), "d@e.example");
  EXPECT_FALSE(FromAddress("From: a@b.example, c@d.example\r\n").ok());
}

TEST(HeaderTest, FromDomain) {
  EXPECT_EQ(*FromDomain("From: Joe <joe@Example.COM>\r\n"), "example.com");
  EXPECT_EQ(*FromDomain("From: joe@example.com (Joe, <x@evil.com>)\r\n"), "example.com");
  EXPECT_EQ(*FromDomain("From: \"a@b, c\" <joe@example.org>\r\n"), "example.org");
  EXPECT_EQ(*FromDomain("From:\r\n joe@sub.example.net\r\n"), "sub.example.net");
  EXPECT_FALSE(FromDomain("From: undisclosed\r\n").ok());
  EXPECT_FALSE(FromDomain("From: a@x.com, b@y.com\r\n").ok());
}

}  // namespace
}  // namespace dkim
