// The messages and envelopes the load generator sends: a size or size mix, a recipient-domain
// mix, and per message a unique Message-ID, an X-Bench-Sent header with the wall-clock
// nanoseconds at which it was made (for end-to-end latency at the sink), and a body of printable
// lines that includes one line starting with "." so that every receiver's dot-stuffing is
// exercised (RFC 5321 §4.5.2).
//
// Threads: a MessageFactory is immutable after Create() and shared by all threads; each thread
// passes its own random engine. The wire form is built into a caller-owned string that keeps its
// capacity, so steady state allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace bench {

// "4096" or "4096:80,102400:20" (size in bytes, optional K/M suffix, weight).
struct WeightedChoice {
  std::vector<std::string> values;
  std::vector<double> cumulative;  // ascending, last == total weight
  const std::string& Pick(std::mt19937_64& rng) const;
};
absl::StatusOr<WeightedChoice> ParseWeighted(const std::string& text);
absl::StatusOr<size_t> ParseSize(const std::string& text);

struct MessageOptions {
  std::string sizes = "4096";
  std::string domains = "bench.test";
  std::string from = "load@sender.bench.test";
  // Distinct local parts per domain (user0..userN-1).
  int users_per_domain = 1000;
};

struct BuiltMessage {
  std::string rcpt;
  // The message as it goes after DATA: dot-stuffed, ending with CRLF "." CRLF.
  std::string wire;
  // The size of the message itself (what a receiver stores after unstuffing).
  size_t content_bytes = 0;
};

class MessageFactory {
 public:
  static absl::StatusOr<MessageFactory> Create(const MessageOptions& options);

  // Builds message number `seq` of thread `thread` into *out (reusing its capacity).
  void Build(uint64_t seq, int thread, std::mt19937_64& rng, BuiltMessage* out) const;
  const std::string& from() const { return options_.from; }

 private:
  MessageOptions options_;
  WeightedChoice sizes_;
  WeightedChoice domains_;
  std::vector<size_t> size_values_;  // parsed sizes_.values
  std::string filler_;               // printable text the bodies are cut from
  std::string run_id_;               // distinguishes runs in Message-IDs
};

}  // namespace bench
