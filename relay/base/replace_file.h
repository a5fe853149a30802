// Replaces a small file's contents so that a crash leaves the old text or the new one, never a
// mixture: the text goes to "<path>.tmp", which is then renamed over `path`. With `durable`, the
// temporary file is synced before the rename and the directory after it, so that the new text
// survives a crash of the machine too.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace relay {

// An error names the file and the system's reason.
absl::Status ReplaceFile(const std::string& path, std::string_view text, int mode, bool durable);

// The text of a small state file that ReplaceFile wrote: "" when there is none yet. An error names
// the file and the system's reason.
absl::StatusOr<std::string> ReadStateFile(const std::string& path);

}  // namespace relay
