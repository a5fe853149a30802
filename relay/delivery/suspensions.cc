#include "relay/delivery/suspensions.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/log.h"

namespace relay::delivery {
namespace {

constexpr size_t kLineBytesMax = 1024;

// Tabs and line ends would break the file's lines: a reason never holds them.
std::string CleanReason(std::string_view reason) {
  std::string out(reason.substr(0, Suspensions::kReasonBytesMax));
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

std::string AnySourceKey(std::string_view site) {
  return absl::StrCat(kAnySource, "|", std::string(site));
}

std::string_view SiteOfKey(std::string_view key) {
  const size_t bar = key.find('|');
  return bar == std::string_view::npos ? key : key.substr(bar + 1);
}

std::string FormatSuspensionsFile(const std::vector<Suspension>& entries) {
  std::string out =
      "# relayd's suspensions: key, until (unix ms), shard (-1: the operator), reason\n";
  for (const Suspension& s : entries) {
    absl::StrAppend(&out, s.key, "\t", s.until_unix_ms, "\t", s.shard, "\t", CleanReason(s.reason),
                    "\n");
  }
  return out;
}

std::vector<Suspension> ParseSuspensionsFile(std::string_view text) {
  std::vector<Suspension> out;
  size_t pos = 0;
  while (pos < text.size() && out.size() < Suspensions::kEntriesMax) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#' || line.size() > kLineBytesMax) continue;
    std::string_view fields[4];
    size_t from = 0;
    int n = 0;
    for (; n < 3; ++n) {
      const size_t tab = line.find('\t', from);
      if (tab == std::string_view::npos) break;
      fields[n] = line.substr(from, tab - from);
      from = tab + 1;
    }
    if (n != 3) continue;
    fields[3] = line.substr(from);
    Suspension s;
    if (fields[0].find('|') == std::string_view::npos || fields[0].size() > 300 ||
        !absl::SimpleAtoi(absl::string_view(fields[1].data(), fields[1].size()),
                          &s.until_unix_ms) ||
        !absl::SimpleAtoi(absl::string_view(fields[2].data(), fields[2].size()), &s.shard)) {
      continue;
    }
    s.key = std::string(fields[0]);
    s.reason = CleanReason(fields[3]);
    out.push_back(std::move(s));
  }
  return out;
}

bool Suspensions::Suspend(Suspension s) {
  std::lock_guard<std::mutex> lock(mu_);
  s.reason = CleanReason(s.reason);
  auto it = entries_.find(s.key);
  if (it == entries_.end()) {
    if (entries_.size() >= kEntriesMax) return false;
    entries_.emplace(s.key, std::move(s));
  } else if (s.shard < 0 || it->second.until_unix_ms < s.until_unix_ms) {
    it->second = std::move(s);
  } else {
    return true;  // an earlier end from a reply rule changes nothing
  }
  Changed();
  return true;
}

size_t Suspensions::Resume(std::string_view site) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t erased = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (SiteOfKey(it->first) == site) {
      entries_.erase(it++);
      ++erased;
    } else {
      ++it;
    }
  }
  if (erased > 0) Changed();
  return erased;
}

std::vector<Suspension> Suspensions::InForce(int64_t now_unix_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Suspension> out;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.until_unix_ms <= now_unix_ms) {
      entries_.erase(it++);
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  return out;
}

void Suspensions::SetFile(std::string path) {
  std::lock_guard<std::mutex> lock(mu_);
  path_ = std::move(path);
}

absl::Status Suspensions::Load(const std::string& path, int64_t now_unix_ms) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  std::lock_guard<std::mutex> lock(mu_);
  for (Suspension& s : ParseSuspensionsFile(text.str())) {
    if (s.until_unix_ms <= now_unix_ms || entries_.size() >= kEntriesMax) continue;
    std::string key = s.key;
    entries_.insert_or_assign(std::move(key), std::move(s));
  }
  generation_.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void Suspensions::Changed() {
  generation_.fetch_add(1, std::memory_order_release);
  if (path_.empty()) return;
  std::vector<Suspension> all;
  all.reserve(entries_.size());
  for (const auto& [key, s] : entries_) all.push_back(s);
  const std::string text = FormatSuspensionsFile(all);
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  if (fd >= 0) ::close(fd);
  ok = ok && ::rename(tmp.c_str(), path_.c_str()) == 0;
  if (!ok) {
    LogWarning() << "suspensions: cannot write " << path_ << ": " << std::strerror(errno)
                 << " (they hold until a restart)";
  }
}

}  // namespace relay::delivery
