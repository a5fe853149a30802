#include "relay/server/bulk_mail.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace relay::server {
namespace {

bool NameIs(std::string_view line, std::string_view name) {
  return line.size() > name.size() && line[name.size()] == ':' &&
         absl::EqualsIgnoreCase(absl::string_view(line.data(), name.size()),
                                absl::string_view(name.data(), name.size()));
}

}  // namespace

BulkMarks ReadBulkMarks(std::string_view message, std::string_view marker_field) {
  BulkMarks marks;
  std::vector<std::pair<size_t, size_t>> drop;  // [begin, end) of each marker field
  bool in_marker = false;
  std::string value;  // the last marker field's value, unfolded
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    const size_t next = eol == std::string_view::npos ? message.size() : eol + 1;
    std::string_view line = message.substr(pos, next - pos);
    std::string_view bare = line;
    while (!bare.empty() && (bare.back() == '\n' || bare.back() == '\r')) bare.remove_suffix(1);
    if (bare.empty()) break;  // the end of the header section (RFC 5322 §2.1)
    const bool continuation = line[0] == ' ' || line[0] == '\t';  // RFC 5322 §2.2.3
    if (!continuation) {
      in_marker = NameIs(bare, marker_field);
      if (in_marker) {
        value = std::string(bare.substr(marker_field.size() + 1));
        drop.emplace_back(pos, next);
      } else if (NameIs(bare, "List-Unsubscribe")) {
        marks.has_list_unsubscribe = true;
      }
    } else if (in_marker && value.size() < 1000) {  // RFC 5322 §2.1.1: a value is short
      value.append(bare);
      drop.back().second = next;
    } else if (in_marker) {
      drop.back().second = next;
    }
    pos = next;
  }
  if (drop.empty()) return marks;
  marks.marked = !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(value), "no");
  std::string out;
  out.reserve(message.size());
  size_t from = 0;
  for (const auto& [begin, end] : drop) {
    out.append(message.substr(from, begin - from));
    from = end;
  }
  out.append(message.substr(from));
  marks.without_marker = std::move(out);
  return marks;
}

}  // namespace relay::server
