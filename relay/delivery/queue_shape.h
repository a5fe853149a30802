// The shape of a queue, as Postfix's qshape shows it: pending recipients, and the bytes still to
// send for them, by a key (destination domain, site, source, tenant, ...) and by how long their
// message has been queued, in buckets of minutes each twice the one before. relayctl builds one
// from the spool (by domain, sending domain, tenant, campaign, priority) or from the running
// relay's shards (by site or source, which only the relay knows: a site is an MX lookup's
// answer, a source the egress pool's choice); the shards' shares travel in Encode's text and are
// added up with Merge.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace relay::delivery {

// qshape's buckets, in minutes: a recipient counts in the last bucket whose bound its message's
// age has reached ("more" past the last), in the first below 5 minutes.
inline constexpr int64_t kShapeBucketsMin[] = {5, 10, 20, 40, 80, 160, 320, 640, 1280};
inline constexpr size_t kShapeBuckets = std::size(kShapeBucketsMin) + 1;

struct ShapeRow {
  uint64_t recipients = 0;
  uint64_t bytes = 0;  // of the messages, once per pending recipient (what is left to send)
  std::array<uint64_t, kShapeBuckets> buckets = {};

  void Add(uint64_t recipient_count, uint64_t message_bytes, int64_t age_ms);
  void Merge(const ShapeRow& other);
};

class QueueShape {
 public:
  // `recipient_count` recipients of a message of `message_bytes`, queued `age_ms` ago.
  void Add(std::string_view key, uint64_t recipient_count, uint64_t message_bytes, int64_t age_ms);

  // Rows as "KEY\tRECIPIENTS\tBYTES\tB0,B1,...|..."; past the `rows_max` largest, the rest go
  // into one "(other)" row (bounded answers). Tabs, '|' and control characters in a key become
  // spaces.
  std::string Encode(size_t rows_max) const;
  // Adds the rows of Encode's text (a shard's share). An entry that does not parse is an error
  // naming it; the rows before it stay added.
  absl::Status Merge(std::string_view encoded);

  // The table: a header (`title`, T, BYTES, the buckets), TOTAL, the `top` largest rows, then
  // "(other)" for the rest. Keys are shown on one line, at most 48 characters.
  std::string Format(std::string_view title, size_t top) const;

  const std::map<std::string, ShapeRow, std::less<>>& rows() const { return rows_; }
  const ShapeRow& total() const { return total_; }

 private:
  std::map<std::string, ShapeRow, std::less<>> rows_;
  ShapeRow total_;
};

}  // namespace relay::delivery
