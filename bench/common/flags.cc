#include "bench/common/flags.h"

#include <algorithm>

namespace bench {

namespace {

std::string Underscores(std::string s) {
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

}  // namespace

CommandLine::CommandLine(int argc, char** argv, const std::vector<std::string>& repeatable) {
  std::vector<std::string> wanted;
  for (const auto& r : repeatable) wanted.push_back(Underscores(r));
  bool only_positional = false;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 0 || only_positional || arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      if (arg == "--") only_positional = true;
      args_.push_back(arg);
      continue;
    }
    size_t eq = arg.find('=');
    std::string name =
        Underscores(arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2));
    if (std::find(wanted.begin(), wanted.end(), name) != wanted.end()) {
      if (eq != std::string::npos) {
        collected_.emplace_back(name, arg.substr(eq + 1));
      } else if (i + 1 < argc) {
        collected_.emplace_back(name, argv[++i]);
      } else {
        collected_.emplace_back(name, "");
      }
      continue;
    }
    args_.push_back("--" + name + (eq == std::string::npos ? "" : arg.substr(eq)));
  }
  for (auto& a : args_) pointers_.push_back(a.data());
}

std::vector<std::string> CommandLine::Values(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : collected_) {
    if (n == name) out.push_back(v);
  }
  return out;
}

}  // namespace bench
