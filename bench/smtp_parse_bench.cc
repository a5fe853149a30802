// SMTP server parsing and session benchmarks (relay/smtp):
//   BM_ParseCommands        command lines parsed per second (verb split + MAIL/RCPT arguments);
//   BM_SessionTransaction   a whole pipelined transaction (EHLO, MAIL, RCPT, DATA with a 4 KiB
//                           body, end of data, queue answer) through ServerSession;
//   BM_SessionDataPath      the DATA hot loop alone: a 1 MiB body fed in 16 KiB reads;
//   BM_MemchrBaseline*      a plain memchr('\n') line scan of the same bytes: the baseline.
// After the runs it prints each session figure as a ratio of its baseline from the same run
// (the machine is shared, so only ratios within one run mean anything).
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "relay/smtp/command.h"
#include "relay/smtp/server_session.h"

namespace relay::smtp {
namespace {

class AcceptAll : public ServerPolicy {
 public:
  bool MaySendAs(std::string_view, std::string_view) override { return true; }
  RcptDecision CheckRecipient(std::string_view) override { return RcptDecision::kAccept; }
};

ServerConfig BenchConfig() {
  ServerConfig config;
  config.hostname = "bench.test";
  config.auth_required = false;  // the port-25 path: no AUTH step in the loop
  config.limits.message_bytes_max = 64 * 1024 * 1024;
  return config;
}

// 78-character lines, some starting with '.', as a mail body has them.
std::string Body(size_t bytes) {
  std::string body = "Subject: benchmark\r\nFrom: <a@example.com>\r\n\r\n";
  int n = 0;
  while (body.size() < bytes) {
    std::string line = (n++ % 16 == 0) ? ".." : "";
    while (line.size() < 76) line += "lorem ipsum dolor sit amet ";
    line.resize(76);
    body += line + "\r\n";
  }
  return body;
}

const std::vector<std::string>& CommandLines() {
  static const auto* lines = new std::vector<std::string>{
      "EHLO client.example.com",
      "MAIL FROM:<sender@example.com> SIZE=4096 BODY=8BITMIME",
      "RCPT TO:<recipient.one@example.org>",
      "RCPT TO:<\"quoted local\"@example.net>",
      "RCPT TO:<r2@[IPv6:2001:db8::1]>",
      "DATA",
      "RSET",
      "NOOP",
      "MAIL FROM:<> SMTPUTF8",
      "QUIT",
  };
  return *lines;
}

void BM_ParseCommands(benchmark::State& state) {
  const std::vector<std::string>& lines = CommandLines();
  MailCommand mail;
  RcptCommand rcpt;
  for (auto _ : state) {
    for (const std::string& line : lines) {
      const CommandLine cmd = ParseCommandLine(line);
      if (cmd.verb == Verb::kMail) {
        benchmark::DoNotOptimize(ParseMailArgument(cmd.argument, &mail));
      } else if (cmd.verb == Verb::kRcpt) {
        benchmark::DoNotOptimize(ParseRcptArgument(cmd.argument, &rcpt));
      } else if (cmd.verb == Verb::kEhlo) {
        benchmark::DoNotOptimize(IsValidHeloArgument(cmd.argument));
      }
      benchmark::DoNotOptimize(cmd);
    }
  }
  state.SetItemsProcessed(state.iterations() * lines.size());
}
BENCHMARK(BM_ParseCommands);

std::string Transaction() {
  return "EHLO client.example.com\r\n"
         "MAIL FROM:<sender@example.com> SIZE=4200 BODY=8BITMIME\r\n"
         "RCPT TO:<recipient@example.org>\r\n"
         "DATA\r\n" +
         Body(4096) + ".\r\n";
}

void BM_SessionTransaction(benchmark::State& state) {
  AcceptAll policy;
  ServerSession session(BenchConfig(), &policy);
  session.OnConnected("192.0.2.1", false);
  const std::string input = Transaction();
  size_t messages = 0;
  for (auto _ : state) {
    const ServerActions& a = session.OnBytes(input);
    if (!a.message_ready) {
      state.SkipWithError("no message");
      break;
    }
    messages += session.message().size() > 0;
    benchmark::DoNotOptimize(session.OnMessageQueued("Q"));
  }
  state.SetItemsProcessed(messages);  // transactions per second
  state.SetBytesProcessed(state.iterations() * input.size());
}
BENCHMARK(BM_SessionTransaction);

void BM_MemchrBaselineTransaction(benchmark::State& state) {
  const std::string input = Transaction();
  for (auto _ : state) {
    size_t lines = 0;
    const char* p = input.data();
    const char* const end = p + input.size();
    while (const void* lf = std::memchr(p, '\n', end - p)) {
      p = static_cast<const char*>(lf) + 1;
      ++lines;
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * input.size());
}
BENCHMARK(BM_MemchrBaselineTransaction);

constexpr size_t kDataBytes = 1 << 20;
constexpr size_t kReadBytes = 16 * 1024;

void BM_SessionDataPath(benchmark::State& state) {
  AcceptAll policy;
  ServerSession session(BenchConfig(), &policy);
  session.OnConnected("192.0.2.1", false);
  session.OnBytes("EHLO c.example\r\n");
  const std::string body = Body(kDataBytes);
  const std::string_view envelope =
      "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";
  for (auto _ : state) {
    session.OnBytes(envelope);
    for (size_t off = 0; off < body.size(); off += kReadBytes) {
      session.OnBytes(std::string_view(body).substr(off, kReadBytes));
    }
    const ServerActions& a = session.OnBytes(".\r\n");
    if (!a.message_ready) {
      state.SkipWithError("no message");
      break;
    }
    benchmark::DoNotOptimize(session.OnMessageQueued("Q"));
  }
  state.SetBytesProcessed(state.iterations() * body.size());
}
BENCHMARK(BM_SessionDataPath);

void BM_MemchrBaselineData(benchmark::State& state) {
  const std::string body = Body(kDataBytes);
  for (auto _ : state) {
    size_t lines = 0;
    for (size_t off = 0; off < body.size(); off += kReadBytes) {
      const char* p = body.data() + off;
      const char* const end = body.data() + std::min(body.size(), off + kReadBytes);
      while (const void* lf = std::memchr(p, '\n', end - p)) {
        p = static_cast<const char*>(lf) + 1;
        ++lines;
      }
    }
    benchmark::DoNotOptimize(lines);
  }
  state.SetBytesProcessed(state.iterations() * body.size());
}
BENCHMARK(BM_MemchrBaselineData);

// Prints the usual table and keeps each run's rates for the ratio lines.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_Tabular) {}  // no colour codes: the output is parsed
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const auto bytes = run.counters.find("bytes_per_second");
      if (bytes != run.counters.end()) bytes_per_second[run.benchmark_name()] = bytes->second;
      const auto items = run.counters.find("items_per_second");
      if (items != run.counters.end()) items_per_second[run.benchmark_name()] = items->second;
    }
  }
  std::map<std::string, double> bytes_per_second;
  std::map<std::string, double> items_per_second;
};

void PrintRatio(const RatioReporter& r, const char* label, const std::string& what,
                const std::string& baseline) {
  const auto a = r.bytes_per_second.find(what);
  const auto b = r.bytes_per_second.find(baseline);
  if (a == r.bytes_per_second.end() || b == r.bytes_per_second.end() || b->second <= 0) return;
  std::printf("ratio %s: %.1f MB/s vs memchr %.1f MB/s = %.3f of the baseline\n", label,
              a->second / 1e6, b->second / 1e6, a->second / b->second);
}

}  // namespace
}  // namespace relay::smtp

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  relay::smtp::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto commands = reporter.items_per_second.find("BM_ParseCommands");
  if (commands != reporter.items_per_second.end()) {
    std::printf("commands parsed per second: %.0f\n", commands->second);
  }
  const auto tx = reporter.items_per_second.find("BM_SessionTransaction");
  if (tx != reporter.items_per_second.end()) {
    std::printf("pipelined transactions (EHLO, MAIL, RCPT, DATA 4 KiB) per second: %.0f\n",
                tx->second);
  }
  relay::smtp::PrintRatio(reporter, "session transaction / memchr scan", "BM_SessionTransaction",
                          "BM_MemchrBaselineTransaction");
  relay::smtp::PrintRatio(reporter, "session DATA path / memchr scan", "BM_SessionDataPath",
                          "BM_MemchrBaselineData");
  benchmark::Shutdown();
  return 0;
}
