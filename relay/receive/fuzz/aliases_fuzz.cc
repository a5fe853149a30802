// Fuzz target for the aliases files (relay/receive/aliases.h): the operator's files, read at start
// and on SIGHUP, and the expansion asked at every RCPT on port 25. The input is an options byte,
// then files separated by 0x1e, each "domain\ntext". Checks on a set that builds:
//   - every user of every line (and a suffixed form, and an unknown user) expands or is unknown
//     as the contract says: unknown only without a line and a catch-all;
//   - an expansion is not empty, at most targets_max addresses, each once, all outside the local
//     domains;
//   - the files in the other order, and each file's lines in the other order, build the same way
//     and give the same targets (only the order within an expansion may differ);
// and a set that does not build says which file and line.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "relay/receive/aliases.h"
#include "tools/fuzz/fuzz.h"

namespace relay::receive {
namespace {

std::vector<AliasesFile> ParseFiles(std::string_view data) {
  std::vector<AliasesFile> files;
  while (!data.empty()) {
    const size_t end = data.find('\x1e');
    std::string_view file = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 1);
    const size_t newline = file.find('\n');
    AliasesFile f;
    f.domain = std::string(file.substr(0, newline));
    f.source = "aliases/" + f.domain;
    f.text = newline == std::string_view::npos ? "" : std::string(file.substr(newline + 1));
    files.push_back(std::move(f));
  }
  return files;
}

// The user of each line: what comes before its ':' (comments and blank lines give nothing).
std::vector<std::string> Users(const std::string& text) {
  std::vector<std::string> users;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = std::string_view(text).substr(pos, end - pos);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos && line.find('#') > colon) {
      std::string_view user = line.substr(0, colon);
      // As the parser does: ASCII white space around the user goes.
      constexpr std::string_view kSpace = " \t\r\n\v\f";
      while (!user.empty() && kSpace.find(user.front()) != kSpace.npos) user.remove_prefix(1);
      while (!user.empty() && kSpace.find(user.back()) != kSpace.npos) user.remove_suffix(1);
      if (!user.empty() && user != "*") users.emplace_back(user);
    }
    pos = end + 1;
  }
  return users;
}

std::string Reversed(const std::string& text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(std::string_view(text).substr(pos, end - pos));
    pos = end + 1;
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    out.append(*it);
    out += '\n';
  }
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

void CheckExpansion(const Aliases& aliases, const AliasesOptions& options,
                    const std::string& address, const Aliases& other) {
  const Expansion e = aliases.Expand(address);
  const Expansion o = other.Expand(address);
  FUZZ_CHECK(e.status == o.status);
  FUZZ_CHECK_MSG(Sorted(e.targets) == Sorted(o.targets), address);
  if (e.status != ExpandStatus::kExpanded) {
    FUZZ_CHECK(e.targets.empty());
    return;
  }
  FUZZ_CHECK(!e.targets.empty() && e.targets.size() <= options.targets_max);
  const std::vector<std::string> sorted = Sorted(e.targets);
  FUZZ_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  for (const std::string& target : e.targets) {
    std::string_view local, domain;
    FUZZ_CHECK(SplitAddress(target, &local, &domain));
    FUZZ_CHECK(!aliases.IsLocalDomain(domain));
  }
}

void FuzzAliases(std::string_view data) {
  relay::fuzz::InputReader in(data);
  const uint8_t flags = in.Byte();
  AliasesOptions options;
  options.depth_max = 1 + flags % 12;
  options.targets_max = flags & 0x10 ? 3 : 100;
  options.suffix_separators = flags & 0x20 ? "+-" : flags & 0x40 ? "" : "+";
  std::vector<AliasesFile> files = ParseFiles(in.Rest());
  absl::StatusOr<Aliases> aliases = Aliases::Build(files, options);

  std::vector<AliasesFile> other_files(files.rbegin(), files.rend());
  for (AliasesFile& f : other_files) f.text = Reversed(f.text);
  absl::StatusOr<Aliases> other = Aliases::Build(other_files, options);
  FUZZ_CHECK(aliases.ok() == other.ok());
  if (!aliases.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(aliases.status()));
    FUZZ_CHECK(std::string(aliases.status().message()).substr(0, 8) == "aliases/");
    return;
  }
  FUZZ_CHECK(aliases->domain_count() == files.size());
  for (const AliasesFile& f : files) {
    FUZZ_CHECK(aliases->IsLocalDomain(f.domain));
    for (const std::string& user : Users(f.text)) {
      const std::string address = user + "@" + f.domain;
      FUZZ_CHECK_MSG(aliases->Expand(address).status == ExpandStatus::kExpanded, address);
      CheckExpansion(*aliases, options, address, *other);
      CheckExpansion(*aliases, options, user + "+tag@" + f.domain, *other);
    }
    CheckExpansion(*aliases, options, "nobody-in-particular@" + f.domain, *other);
  }
  FUZZ_CHECK(aliases->Expand("someone@elsewhere.example").status == ExpandStatus::kNotLocal);
}

// Many one-target lines.
std::string ManyLines(size_t bytes) {
  std::string out = std::string(1, '\x0a') + "example.com\n";
  for (size_t i = 0; out.size() < bytes; ++i) {
    out += "u" + std::to_string(i) + ": u" + std::to_string(i) + "@ext.example\n";
  }
  return out;
}

// Lists of lists: depth_max levels of aliases, each naming all those of the next level.
std::string NestedLists(size_t bytes) {
  constexpr int kLevels = 10;
  size_t fanout = 2;
  while ((fanout + 1) * (fanout + 1) * kLevels * 7 < bytes) ++fanout;
  std::string out = std::string(1, '\x0a') + "example.com\n";
  for (int level = 0; level < kLevels; ++level) {
    for (size_t i = 0; i < fanout; ++i) {
      out += "l" + std::to_string(level) + "x" + std::to_string(i) + ":";
      for (size_t j = 0; j < fanout; ++j) {
        out += j == 0 ? " " : ", ";
        out += level + 1 < kLevels ? "l" + std::to_string(level + 1) + "x" + std::to_string(j)
                                   : "m" + std::to_string(j) + "@ext.example";
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace
}  // namespace relay::receive

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "aliases",
      .run = relay::receive::FuzzAliases,
      // Two sets of the input's lines (as built, and the other way round), each entry a map node
      // with its targets as strings (the domain added) for as little as 4 bytes ("a:b\n").
      .bounds = {.heap_peak_bytes = {64 << 10, 256},
                 .heap_allocated_bytes = {256 << 10, 2048},
                 .allocations = {1024, 16}},
      .scaled = {{.name = "many lines", .make = relay::receive::ManyLines},
                 {.name = "lists of lists", .make = relay::receive::NestedLists}},
  };
  return target;
}
