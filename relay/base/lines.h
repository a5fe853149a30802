// The lines of a text: state files and policies are read line by line, each parser in one pass.
#pragma once

#include <string_view>

namespace relay {

// Calls `f(line)` for every '\n'-terminated line of `text` (the last one may lack its '\n'),
// without the '\n', in order, until `f` returns false. Linear in `text`.
template <typename F>
void ForEachLine(std::string_view text, F f) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    if (!f(text.substr(pos, eol - pos))) return;
    pos = eol + 1;
  }
}

}  // namespace relay
