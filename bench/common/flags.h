// Command-line handling shared by the bench tools: the tools document their flags with dashes
// (--fail-rate, --listen-range) as operators type them, while absl flags are named with
// underscores; and some flags may be given many times (--listen), which absl does not collect.
// Main thread, before absl::ParseCommandLine.
#pragma once

#include <string>
#include <vector>

namespace bench {

class CommandLine {
 public:
  // `repeatable`: flag names (with dashes or underscores) whose every occurrence is collected
  // instead of passed on.
  CommandLine(int argc, char** argv, const std::vector<std::string>& repeatable);

  // What absl::ParseCommandLine should see: flag names with '-' turned into '_', the repeatable
  // flags removed.
  int argc() const { return static_cast<int>(pointers_.size()); }
  char** argv() { return pointers_.data(); }
  // Every value given for `name` (underscore form), in order.
  std::vector<std::string> Values(const std::string& name) const;

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
  std::vector<std::pair<std::string, std::string>> collected_;
};

}  // namespace bench
