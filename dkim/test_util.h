// Helpers shared by the DKIM tests: reading test data files and taking signature fields apart.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "dkim/key.h"

namespace dkim::testing {

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string TestData(const std::string& name) {
  return ReadFile("dkim/testdata/" + name);
}

// LF line ends to CRLF (test files are kept with LF).
inline std::string ToCrlf(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out.push_back('\r');
    out.push_back(c);
  }
  return out;
}

// The value of `tag` in one "DKIM-Signature: ..." field, whitespace removed; "" if absent.
inline std::string TagValue(std::string_view field, std::string_view tag) {
  std::string_view value = field.substr(field.find(':') + 1);
  auto tags = ParseTagList(value);
  if (!tags.ok()) return "";
  for (auto [name, v] : *tags) {
    if (name != tag) continue;
    std::string out;
    for (char c : v) {
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out.push_back(c);
    }
    return out;
  }
  return "";
}

// Splits the concatenated output of SigningSession::Finish into its fields.
inline std::vector<std::string> SplitFields(std::string_view fields) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < fields.size()) {
    size_t end = pos;
    do {
      end = fields.find("\r\n", end);
      if (end == std::string_view::npos) {
        end = fields.size();
        break;
      }
      end += 2;
    } while (end < fields.size() && (fields[end] == ' ' || fields[end] == '\t'));
    out.emplace_back(fields.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

}  // namespace dkim::testing
