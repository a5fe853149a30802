#include "relay/server/client_fields.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace relay::server {
namespace {

bool NameIs(std::string_view line, std::string_view name) {
  return !name.empty() && line.size() > name.size() && line[name.size()] == ':' &&
         absl::EqualsIgnoreCase(absl::string_view(line.data(), name.size()),
                                absl::string_view(name.data(), name.size()));
}

std::string Trimmed(const std::string& value) {
  absl::string_view v = absl::StripAsciiWhitespace(value);
  return std::string(v.data(), v.size());
}

}  // namespace

ClientFields ReadClientFields(std::string_view message,
                              const std::vector<std::string_view>& names) {
  ClientFields fields;
  fields.values.resize(names.size());
  std::vector<std::pair<size_t, size_t>> drop;  // [begin, end) of each field removed
  int current = -1;   // the index in `names` of the field being read, -1: another field
  std::string value;  // its value so far, unfolded
  auto finish = [&] {
    if (current >= 0) fields.values[current] = Trimmed(value);
  };
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
      finish();
      current = -1;
      for (size_t i = 0; i < names.size() && current < 0; ++i) {
        if (NameIs(bare, names[i])) current = static_cast<int>(i);
      }
      if (current >= 0) {
        value.assign(bare.substr(names[current].size() + 1), 0, kClientFieldValueBytesMax);
        drop.emplace_back(pos, next);
      } else if (NameIs(bare, "List-Unsubscribe")) {
        fields.has_list_unsubscribe = true;
      } else if (NameIs(bare, "TLS-Required")) {
        const absl::string_view v = absl::StripAsciiWhitespace(
            absl::string_view(bare.data(), bare.size()).substr(sizeof("TLS-Required")));
        fields.tls_required_no = absl::EqualsIgnoreCase(v, "No");
      }
    } else if (current >= 0) {
      if (value.size() < kClientFieldValueBytesMax) {
        value.append(bare.substr(0, kClientFieldValueBytesMax - value.size()));
      }
      drop.back().second = next;
    }
    pos = next;
  }
  finish();
  if (drop.empty()) return fields;
  std::string out;
  out.reserve(message.size());
  size_t from = 0;
  for (const auto& [begin, end] : drop) {
    out.append(message.substr(from, begin - from));
    from = end;
  }
  out.append(message.substr(from));
  fields.without_fields = std::move(out);
  return fields;
}

bool SaysBulk(std::string_view value) {
  return !absl::EqualsIgnoreCase(
      absl::StripAsciiWhitespace(absl::string_view(value.data(), value.size())), "no");
}

}  // namespace relay::server
