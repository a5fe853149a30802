// What a hostile 1 MiB header block costs the port-25 checks that run at the end of DATA
// (issue 13 item 4), against an ordinary message with a header block of the same size, measured
// in the same run:
//
//   ordinary     1 MiB of ordinary fields, one valid DKIM-Signature
//   dup_tags     one DKIM-Signature whose tag list is ~1 MiB of distinct tags
//   h_list       ~1,000 fields "X: y" and a DKIM-Signature whose h= names x ~500,000 times
//   arc_chain    50 ARC sets (the most RFC 8617 allows), each with a ~19 KiB
//                ARC-Authentication-Results
//   signatures   990 DKIM-Signature fields with distinct l= and c=, over a 1 MiB body
//
// The checks are those SmtpConnection runs for a received message (relay/receive/dkim_check.cc,
// relay/server/smtp_connection_receive.cc): the key names (DKIM-Signature tags, ArcKeyNames), the
// DKIM verification of every signature, the ARC chain validation, and the ARC seal over the message
// as forwarded. BM_Port25Checks runs them through dkim/'s message-text entry points, one parse
// each, as the relay did before issue 13 (build it at an older commit for the old figures);
// BM_Port25Relay as relayd runs them now, on its worker threads: parsed once, hashed once. Keys
// come from a map (no DNS). Every hostile signature verifies up to its last step: its body hash is
// right and its key is found, as an attacker with a domain of its own arranges.
//
//   bazel run -c opt //bench:hostile_header_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/common/cpu_time_reporter.h"
#include "dkim/arc.h"
#include "dkim/canon.h"
#include "dkim/header.h"
#include "dkim/key.h"
#include "dkim/message.h"
#include "dkim/signer.h"
#include "dkim/verifier.h"

namespace {

constexpr int64_t kNow = 1763800000;
constexpr size_t kHeaderBytes = (1 << 20) - 4096;  // under dkim::kHeaderBlockBytesMax
constexpr size_t kChecksSignaturesMax = 8;         // DkimCheckOptions::signatures_max

struct Keys {
  std::string pem;
  std::string record;
};

// RSA-2048, as most senders use: the hostile domain's key and the forwarder's sealing key.
const Keys& TheKeys() {
  static const Keys* keys = [] {
    dkim::PrivateKey key = dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kRsaSha256, 2048).value();
    return new Keys{key.ToPem().value(), key.PublicKeyRecord()};
  }();
  return *keys;
}

std::string BodyHash(std::string_view body, dkim::Canonicalization c, int64_t l = -1) {
  dkim::BodyHasher h(c, l);
  h.Update(body);
  return dkim::Base64Encode(h.Finish());
}

// Appends tokens to a header field, folded (CRLF SP) before a token that would pass 76 columns:
// a port-25 client must keep its lines under 1,000 bytes.
class Folder {
 public:
  Folder(std::string* out, size_t column) : out_(out), column_(column) {}
  void Add(std::string_view token) {
    if (column_ + token.size() > 76) {
      out_->append("\r\n ");
      column_ = 1;
    }
    out_->append(token);
    column_ += token.size();
  }

 private:
  std::string* out_;
  size_t column_;
};

constexpr char kTop[] =
    "From: Mallory <mallory@hostile.example>\r\nTo: bob@local.example\r\nSubject: hello\r\n"
    "Date: Sun, 22 Nov 2026 20:22:40 +0000\r\nMessage-ID: <1@hostile.example>\r\n";
constexpr char kBody[] = "Hello.\r\n";

std::string Ordinary() {
  std::string header(kTop);
  for (int i = 0; header.size() < kHeaderBytes - 2000; ++i) {
    header += absl::StrCat("X-Filler-", i, ":");
    Folder f(&header, 12);
    for (int w = 0; w < 150; ++w) f.Add(" ordinary");
    header += "\r\n";
  }
  dkim::SignerConfig config;
  config.keys.push_back({"hostile.example", "sel", "", TheKeys().pem, ""});
  auto signer = dkim::Signer::Create(config).value();
  dkim::SigningSession session = signer->Begin();
  std::string message = header + "\r\n" + std::string(kBody);
  session.Update(message);
  return session.Finish(kNow).value() + message;
}

std::string DupTags() {
  std::string field = absl::StrCat(
      "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=hostile.example; s=sel; h=from;"
      " bh=",
      BodyHash(kBody, dkim::Canonicalization::kRelaxed), "; b=AAAA;");
  Folder f(&field, 76);
  for (int i = 0; field.size() + std::string_view(kTop).size() < kHeaderBytes; ++i) {
    f.Add(absl::StrCat(" t", i, "=;"));
  }
  return absl::StrCat(kTop, field, "\r\n\r\n", kBody);
}

std::string HList() {
  std::string header(kTop);
  for (int i = 0; i < 990; ++i) header += "X: y\r\n";
  std::string field = absl::StrCat(
      "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=hostile.example; s=sel; bh=",
      BodyHash(kBody, dkim::Canonicalization::kRelaxed), "; b=AAAA; h=from");
  Folder f(&field, 76);
  while (header.size() + field.size() < kHeaderBytes) f.Add(":x");
  return absl::StrCat(header, field, "\r\n\r\n", kBody);
}

std::unique_ptr<dkim::ArcSealer> Sealer() {
  dkim::ArcSealerConfig c;
  c.domain = "hostile.example";
  c.selector = "sel";
  c.key_contents = TheKeys().pem;
  return dkim::ArcSealer::Create(c).value();
}

std::string ArcChain() {
  auto sealer = Sealer();
  std::string payload = "mx.hostile.example; spf=pass smtp.mailfrom=mallory@hostile.example";
  while (payload.size() < 19 * 1024) {
    payload += "\r\n\tx-filler=0123456789abcdef0123456789abcdef0123456789abcdef";
  }
  std::string message = absl::StrCat(kTop, "\r\n", kBody);
  for (int i = 0; i < dkim::kArcInstanceMax; ++i) {
    dkim::ArcValidation chain;
    chain.status = i == 0 ? dkim::ArcChainStatus::kNone : dkim::ArcChainStatus::kPass;
    message = sealer->Seal(message, payload, chain, kNow).value() + message;
  }
  return message;
}

std::string Signatures() {
  std::string body;
  while (body.size() < (1 << 20)) body += "A line of a long body.  With  some   spaces.\r\n";
  std::string header(kTop);
  const std::string relaxed = BodyHash(body, dkim::Canonicalization::kRelaxed);
  for (int i = 0; header.size() < kHeaderBytes - 2048 && i < 990; ++i) {
    // Each with its own l=, so that no two could share a body hash; the first ones (those
    // checked) with right hashes.
    int64_t l = 500000 - i;
    const bool simple = i % 2 == 1;
    const std::string bh =
        i < 16 ? BodyHash(
                     body,
                     simple ? dkim::Canonicalization::kSimple : dkim::Canonicalization::kRelaxed, l)
               : relaxed;
    header +=
        absl::StrCat("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/", simple ? "simple" : "relaxed",
                     "; d=hostile.example; s=sel; h=from;\r\n", " l=", l, "; bh=", bh, ";\r\n b=");
    Folder f(&header, 3);
    for (int p = 0; p < 75; ++p) f.Add("AAAAAAAAAAAA");
    header += "\r\n";
  }
  return absl::StrCat(header, "\r\n", body);
}

const std::map<std::string, std::string>& Messages() {
  static const auto* messages = new std::map<std::string, std::string>{
      {"ordinary", Ordinary()},  {"dup_tags", DupTags()},      {"h_list", HList()},
      {"arc_chain", ArcChain()}, {"signatures", Signatures()},
  };
  return *messages;
}

dkim::KeyLookup Lookup() {
  return [](std::string_view, std::string_view) -> absl::StatusOr<std::string> {
    return TheKeys().record;
  };
}

// The port-25 end-of-DATA checks through dkim/'s message-text entry points, in the order the relay
// runs them.
void Port25Checks(const std::string& message, const dkim::ArcSealer& sealer) {
  // DkimChecker::Check: the names of the keys to fetch.
  size_t sep = message.find("\r\n\r\n");
  auto fields = dkim::ParseHeaderBlock(std::string_view(message).substr(0, sep + 2));
  size_t signatures = 0;
  if (fields.ok()) {
    for (const dkim::HeaderField& f : *fields) {
      if (!dkim::HeaderNameEquals(f.name, "dkim-signature")) continue;
      if (signatures++ == kChecksSignaturesMax) break;
      benchmark::DoNotOptimize(dkim::ParseTagList(f.raw.substr(f.raw.find(':') + 1)));
    }
  }
  benchmark::DoNotOptimize(dkim::ArcKeyNames(message));
  // DkimChecker's Finish, when the keys are in.
  dkim::KeyLookup lookup = Lookup();
  benchmark::DoNotOptimize(dkim::VerifyMessage(message, lookup, kNow));
  dkim::ArcValidation arc = dkim::ValidateArcChain(message, lookup, kNow);
  // QueueReceived: the ARC set over the message as forwarded.
  std::string outgoing = absl::StrCat(
      "Authentication-Results: mx.local.example;\r\n\tspf=pass smtp.mailfrom=m@hostile.example\r\n"
      "Received: from mx.hostile.example by mx.local.example; Sun, 22 Nov 2026 20:22:41 +0000\r\n",
      message);
  benchmark::DoNotOptimize(sealer.Seal(
      outgoing, "mx.local.example; spf=pass smtp.mailfrom=m@hostile.example", arc, kNow));
}

// The same checks as relayd now runs them on its worker threads (relay/receive/dkim_check.cc,
// relay/server/smtp_connection_receive.cc): the message parsed once, its body hashed once per
// canonicalization for every signature and the seal, only the signatures the relay checks.
void Port25ChecksParsedOnce(const std::string& message, const dkim::ArcSealer& sealer) {
  absl::StatusOr<dkim::ParsedMessage> m = dkim::ParsedMessage::Parse(message);
  if (!m.ok()) return;
  size_t signatures = 0;
  for (const dkim::HeaderField& f : m->fields()) {
    if (!dkim::HeaderNameEquals(f.name, "dkim-signature")) continue;
    if (signatures++ == kChecksSignaturesMax) break;
    benchmark::DoNotOptimize(dkim::ParseTagList(f.raw.substr(f.raw.find(':') + 1)));
  }
  benchmark::DoNotOptimize(dkim::ArcKeyNames(*m));
  dkim::KeyLookup lookup = Lookup();
  benchmark::DoNotOptimize(dkim::VerifyMessage(*m, lookup, kNow, kChecksSignaturesMax));
  dkim::ArcValidation arc = dkim::ValidateArcChain(*m, lookup, kNow);
  auto outgoing = dkim::ParsedMessage::WithFields(
      "Authentication-Results: mx.local.example;\r\n\tspf=pass smtp.mailfrom=m@hostile.example\r\n",
      *m);
  if (!outgoing.ok()) return;
  benchmark::DoNotOptimize(sealer.Seal(
      *outgoing, "mx.local.example; spf=pass smtp.mailfrom=m@hostile.example", arc, kNow));
}

void BM_Port25Checks(benchmark::State& state, const char* name) {
  const std::string& message = Messages().at(name);
  auto sealer = Sealer();
  for (auto _ : state) Port25Checks(message, *sealer);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
  state.counters["header_KiB"] = static_cast<double>(message.find("\r\n\r\n")) / 1024;
}

void BM_Port25Relay(benchmark::State& state, const char* name) {
  const std::string& message = Messages().at(name);
  auto sealer = Sealer();
  for (auto _ : state) Port25ChecksParsedOnce(message, *sealer);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(message.size()));
}

// Port25Checks: through the message-text entry points, as the relay ran the checks before (each
// parses the message again). Port25Relay: as relayd runs them now, off the shard thread.
#define HOSTILE_CASES(bm)                                                       \
  BENCHMARK_CAPTURE(bm, ordinary, "ordinary")->Unit(benchmark::kMillisecond);   \
  BENCHMARK_CAPTURE(bm, dup_tags, "dup_tags")->Unit(benchmark::kMillisecond);   \
  BENCHMARK_CAPTURE(bm, h_list, "h_list")->Unit(benchmark::kMillisecond);       \
  BENCHMARK_CAPTURE(bm, arc_chain, "arc_chain")->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(bm, signatures, "signatures")->Unit(benchmark::kMillisecond)
HOSTILE_CASES(BM_Port25Checks);
HOSTILE_CASES(BM_Port25Relay);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Messages();  // built before any timing
  // No colour: the ratio lines are read by scripts.
  relay::bench::CpuTimeReporter reporter(benchmark::ConsoleReporter::OO_None);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto& cpu = reporter.cpu_time();
  for (const char* bm : {"BM_Port25Checks", "BM_Port25Relay"}) {
    const auto base = cpu.find(std::string(bm) + "/ordinary");
    if (base == cpu.end() || base->second <= 0) continue;
    for (const auto& [name, ms] : cpu) {
      if (name == base->first || name.rfind(std::string(bm) + "/", 0) != 0) continue;
      std::printf("ratio %s / ordinary: %.2f (%.1f ms against %.1f ms, CPU)\n", name.c_str(),
                  ms / base->second, ms, base->second);
    }
  }
  return 0;
}
