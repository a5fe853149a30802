// Debian's abseil has a string_view of its own, not std::string_view: absl's functions and
// containers keyed by std::string take an absl::string_view, which a std::string_view does not
// convert to by itself.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace relay {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace relay
