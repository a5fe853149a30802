// Line-oriented logging to stderr: `LogInfo() << "x=" << x;` writes one line with a UTC timestamp,
// the level and the calling thread's tag (set per shard). A line is written with one write(2), so
// lines from different threads never interleave. Any thread. Not for the per-message hot path at
// info level: the delivery log (JSON lines) is separate.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace relay {

// kOff drops every line: for fuzz targets, which feed millions of damaged inputs to code that
// rightly logs each one.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

// Lines below this level are dropped. Default kInfo; RELAY_LOG_LEVEL=debug|info|warning|error|off.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// A short tag for this thread ("shard0", "main"), shown on each line it logs.
void SetThreadLogTag(std::string_view tag);

class LogLine {
 public:
  explicit LogLine(LogLevel level);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  template <typename T>
  LogLine& operator<<(const T& value) {
    if (enabled_) stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  bool enabled_;
  std::ostringstream stream_;
};

// Appends `text` to `out` with control characters escaped ("\\r", "\\n", "\\x1b"; a tab stays):
// what a peer sent (an AUTH identity, an SPF explanation, a reply) cannot start a forged log line
// or move a terminal's cursor. Every LogLine goes through it.
void AppendLogText(std::string* out, std::string_view text);

inline LogLine LogDebug() { return LogLine(LogLevel::kDebug); }
inline LogLine LogInfo() { return LogLine(LogLevel::kInfo); }
inline LogLine LogWarning() { return LogLine(LogLevel::kWarning); }
inline LogLine LogError() { return LogLine(LogLevel::kError); }

}  // namespace relay
