#include "relay/base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace relay {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("RELAY_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warning") == 0) return LogLevel::kWarning;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  if (std::strcmp(env, "off") == 0) return LogLevel::kOff;
  return LogLevel::kInfo;
}

std::atomic<int> log_level{static_cast<int>(InitialLevel())};
thread_local char thread_tag[16] = "main";

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kError: return "ERROR";
    case LogLevel::kOff:
      break;  // nothing is logged at kOff
  }
  return "?";
}

}  // namespace

void SetLogLevel(LogLevel level) { log_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(log_level.load()); }

void SetThreadLogTag(std::string_view tag) {
  size_t n = std::min(tag.size(), sizeof(thread_tag) - 1);
  std::memcpy(thread_tag, tag.data(), n);
  thread_tag[n] = '\0';
}

LogLine::LogLine(LogLevel level)
    : level_(level), enabled_(static_cast<int>(level) >= log_level.load(std::memory_order_relaxed)) {}

void AppendLogText(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->reserve(out->size() + text.size());
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out->push_back(ch);
    } else if (c == '\t') {
      out->push_back('\t');
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->append("\\x");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    }
  }
}

LogLine::~LogLine() {
  if (!enabled_) return;
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char prefix[96];
  int n = std::snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, static_cast<long>(tv.tv_usec / 1000), LevelName(level_),
                        thread_tag);
  std::string line(prefix, n > 0 ? static_cast<size_t>(n) : 0);
  AppendLogText(&line, stream_.str());
  line += '\n';
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
}

}  // namespace relay
