#include "tools/relayctl/queue_commands.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "queue/spool_reader.h"
#include "relay/base/clock.h"
#include "relay/delivery/queue_selector.h"
#include "relay/delivery/queue_shape.h"

namespace relay::relayctl {
namespace {

using queue::MessageInfo;
using queue::RecipientStatus;
using queue::SpoolReader;

struct Args {
  std::string command;
  std::string spool = kDefaultSpoolDir;
  std::string domain;
  std::string sender;
  std::string tenant;    // list: only this tenant's messages (queue::TenantOf)
  std::string campaign;  // list: only this campaign's
  std::string id;
  // summary: "domain" (destination), "sender" (sending domain), "tenant", "campaign", "priority"
  std::string by = "domain";
  size_t top = 20;            // summary: rows before "(other)"
};

int Usage() {
  std::fprintf(
      stderr,
      "usage: relayctl queue list [--spool DIR] [--domain DOMAIN] [--sender ADDR|@DOMAIN]\n"
      "                           [--tenant NAME] [--campaign NAME]\n"
      "       relayctl queue show ID [--spool DIR]\n"
      "       relayctl queue stats [--spool DIR]\n"
      "       relayctl queue summary [--spool DIR] [--by domain|sender|tenant|campaign|priority]\n"
      "                              [--top N]\n"
      "       relayctl queue summary --by site|source [--top N] [--config PATH|--config-dir DIR|"
      "--socket PATH]\n");
  return 2;
}

bool HasSegments(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (struct dirent* e = ::readdir(d)) {
    absl::string_view name = e->d_name;
    if (absl::StartsWith(name, "segment-") && absl::EndsWith(name, ".q")) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

// The shard spool directories under `root` (root itself if it holds segments).
std::vector<std::string> SpoolDirs(const std::string& root) {
  if (HasSegments(root)) return {root};
  std::vector<std::string> dirs;
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) return dirs;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string path = root + "/" + e->d_name;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && HasSegments(path)) {
      dirs.push_back(path);
    }
  }
  ::closedir(d);
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::string Domain(std::string_view address) {
  size_t at = address.rfind('@');
  return absl::AsciiStrToLower(
      absl::string_view(at == std::string_view::npos ? "" : address.data() + at + 1,
                        at == std::string_view::npos ? 0 : address.size() - at - 1));
}

std::string Age(int64_t ms) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  if (s < 120) return absl::StrFormat("%ds", s);
  if (s < 7200) return absl::StrFormat("%dm", s / 60);
  if (s < 2 * 86400) return absl::StrFormat("%dh", s / 3600);
  return absl::StrFormat("%dd", s / 86400);
}

std::string When(int64_t unix_ms, int64_t now_ms) {
  if (unix_ms <= now_ms) return "now";
  return "in " + Age(unix_ms - now_ms);
}

std::string OneLine(std::string_view text, size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) break;
    out.push_back(c == '\r' || c == '\n' || c == '\t' ? ' ' : c);
  }
  return out;
}

std::string_view Sender(const MessageInfo& m) { return m.sender.empty() ? "<>" : m.sender; }

// The list's filters are the control socket's selector (relay/delivery/queue_selector.h): a
// message matches when its own conditions hold and, with --domain, one of its pending recipients
// is at that domain.
bool Matches(const MessageInfo& m, const Args& args) {
  delivery::QueueSelector selector;
  selector.tenant = absl::AsciiStrToLower(args.tenant);
  selector.campaign = args.campaign;
  selector.sender = args.sender;
  selector.domain = absl::AsciiStrToLower(args.domain);
  if (!selector.MatchesMessage(m)) return false;
  for (uint32_t i = 0; i < m.recipients.size(); ++i) {
    if (selector.MatchesRecipient(m, i)) return true;
  }
  return selector.domain.empty();
}

std::string LastReply(const MessageInfo& m) {
  for (const queue::RecipientState& r : m.recipients) {
    if (r.status == RecipientStatus::kPending && !r.last_reply.empty()) return r.last_reply;
  }
  return "";
}

int List(const std::vector<std::unique_ptr<SpoolReader>>& readers, const Args& args) {
  const int64_t now_ms = static_cast<int64_t>(RealClock::Get()->WallSeconds() * 1000);
  std::vector<const MessageInfo*> messages;
  for (const auto& reader : readers) {
    reader->index().ForEach([&](const MessageInfo& m) {
      if (Matches(m, args)) messages.push_back(&m);
    });
  }
  std::sort(messages.begin(), messages.end(), [](const MessageInfo* a, const MessageInfo* b) {
    return a->created_unix_ms != b->created_unix_ms ? a->created_unix_ms < b->created_unix_ms
                                                    : a->id < b->id;
  });
  std::printf("%-24s %5s %-32s %7s %4s %-10s %s\n", "ID", "AGE", "SENDER", "RCPTS", "TRY", "NEXT",
              "LAST REPLY");
  for (const MessageInfo* m : messages) {
    size_t pending = 0;
    for (const queue::RecipientState& r : m->recipients) {
      pending += r.status == RecipientStatus::kPending;
    }
    const int64_t next = m->NextDueUnixMs();
    std::printf("%-24s %5s %-32s %3zu/%-3zu %4u %-10s %s\n", m->id.ToString().c_str(),
                Age(now_ms - m->created_unix_ms).c_str(), OneLine(Sender(*m), 32).c_str(), pending,
                m->recipients.size(), m->MaxAttempts(), next < 0 ? "-" : When(next, now_ms).c_str(),
                OneLine(LastReply(*m), 60).c_str());
  }
  return 0;
}

int Show(const std::vector<std::unique_ptr<SpoolReader>>& readers, const Args& args) {
  auto id = queue::MessageId::Parse(args.id);
  if (!id.ok()) {
    std::fprintf(stderr, "relayctl queue show: %s\n", std::string(id.status().message()).c_str());
    return 2;
  }
  for (const auto& reader : readers) {
    const MessageInfo* m = reader->index().Find(*id);
    if (m == nullptr) continue;
    const int64_t now_ms = static_cast<int64_t>(RealClock::Get()->WallSeconds() * 1000);
    std::printf("id: %s\nage: %s\nsize: %zu bytes\nsender: %s\n", m->id.ToString().c_str(),
                Age(now_ms - m->created_unix_ms).c_str(), m->message.size(),
                std::string(Sender(*m)).c_str());
    std::printf("tenant: %s\n", OneLine(queue::TenantOf(m->attributes, m->sender), 80).c_str());
    if (!m->attributes.campaign.empty()) {
      std::printf("campaign: %s\n", OneLine(m->attributes.campaign, 80).c_str());
    }
    std::printf("priority: %s\n", queue::PriorityName(m->attributes.priority));
    if (m->delay_notified) std::printf("delay notice: sent to the sender\n");
    for (size_t i = 0; i < m->recipients.size(); ++i) {
      const queue::RecipientState& r = m->recipients[i];
      std::printf("recipient %zu: %s %s attempts=%u", i, r.address.c_str(),
                  queue::RecipientStatusName(r.status), r.attempts);
      if (r.status == RecipientStatus::kPending && r.next_attempt_unix_ms > 0) {
        std::printf(" next=%s", When(r.next_attempt_unix_ms, now_ms).c_str());
      }
      if (!r.last_reply.empty()) std::printf(" reply=\"%s\"", OneLine(r.last_reply, 200).c_str());
      std::printf("\n");
    }
    // The header section: up to the first empty line (RFC 5322 §2.1).
    std::string_view message = m->message;
    size_t end = message.find("\r\n\r\n");
    std::string_view headers = end == std::string_view::npos ? message : message.substr(0, end + 2);
    std::printf("\n%.*s", static_cast<int>(headers.size()), headers.data());
    if (!headers.empty() && headers.back() != '\n') std::printf("\n");
    return 0;
  }
  std::fprintf(stderr, "relayctl queue show: no live message %s\n", args.id.c_str());
  return 1;
}

int Stats(const std::vector<std::unique_ptr<SpoolReader>>& readers) {
  uint64_t messages = 0, message_bytes = 0, deferred_messages = 0;
  uint64_t pending = 0, delivered = 0, bounced = 0;
  uint64_t segments = 0, segment_bytes = 0, free_segments = 0, corruptions = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_domain;  // pending rcpts, bytes
  for (const auto& reader : readers) {
    for (const SpoolReader::SegmentInfo& s : reader->segments()) {
      ++segments;
      segment_bytes += s.bytes;
    }
    free_segments += reader->free_segments();
    corruptions += reader->corruptions().size();
    reader->index().ForEach([&](const MessageInfo& m) {
      ++messages;
      message_bytes += m.message.size();
      if (m.MaxAttempts() > 0) ++deferred_messages;
      for (const queue::RecipientState& r : m.recipients) {
        switch (r.status) {
          case RecipientStatus::kPending: {
            ++pending;
            auto& d = by_domain[Domain(r.address)];
            ++d.first;
            d.second += m.message.size();
            break;
          }
          case RecipientStatus::kDelivered:
            ++delivered;
            break;
          case RecipientStatus::kBounced:
            ++bounced;
            break;
        }
      }
    });
  }
  std::printf("shards: %zu\nsegments: %llu in use (%llu bytes), %llu free\n", readers.size(),
              static_cast<unsigned long long>(segments),
              static_cast<unsigned long long>(segment_bytes),
              static_cast<unsigned long long>(free_segments));
  std::printf("messages: %llu (%llu bytes), %llu deferred at least once\n",
              static_cast<unsigned long long>(messages),
              static_cast<unsigned long long>(message_bytes),
              static_cast<unsigned long long>(deferred_messages));
  std::printf("recipients of live messages: %llu pending, %llu delivered, %llu bounced\n",
              static_cast<unsigned long long>(pending), static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(bounced));
  if (corruptions > 0) {
    std::printf("damaged records seen: %llu\n", static_cast<unsigned long long>(corruptions));
  }
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> domains(by_domain.begin(),
                                                                             by_domain.end());
  std::sort(domains.begin(), domains.end(), [](const auto& a, const auto& b) {
    return a.second.first != b.second.first ? a.second.first > b.second.first : a.first < b.first;
  });
  std::printf("\n%-40s %10s %14s\n", "DESTINATION DOMAIN", "PENDING", "BYTES");
  for (const auto& [domain, counts] : domains) {
    std::printf("%-40s %10llu %14llu\n", domain.empty() ? "(none)" : domain.c_str(),
                static_cast<unsigned long long>(counts.first),
                static_cast<unsigned long long>(counts.second));
  }
  return 0;
}

// The row a pending recipient `r` of `m` counts in for `--by`.
std::string SummaryKey(const MessageInfo& m, const queue::RecipientState& r,
                       const std::string& by) {
  if (by == "sender") return Domain(m.sender);
  if (by == "tenant") return queue::TenantOf(m.attributes, m.sender);
  if (by == "campaign") return m.attributes.campaign;
  if (by == "priority") return queue::PriorityName(m.attributes.priority);
  return Domain(r.address);
}

const char* SummaryTitle(const std::string& by) {
  if (by == "sender") return "SENDING DOMAIN";
  if (by == "tenant") return "TENANT";
  if (by == "campaign") return "CAMPAIGN";
  if (by == "priority") return "PRIORITY";
  return "DESTINATION DOMAIN";
}

// Pending recipients by destination domain (or sending domain, tenant, ...) and by age: what
// Postfix's qshape shows, for the relay's spool.
int Summary(const std::vector<std::unique_ptr<SpoolReader>>& readers, const Args& args) {
  const int64_t now_ms = static_cast<int64_t>(RealClock::Get()->WallSeconds() * 1000);
  delivery::QueueShape shape;
  for (const auto& reader : readers) {
    reader->index().ForEach([&](const MessageInfo& m) {
      for (const queue::RecipientState& r : m.recipients) {
        if (r.status != RecipientStatus::kPending) continue;
        shape.Add(SummaryKey(m, r, args.by), 1, m.message.size(), now_ms - m.created_unix_ms);
      }
    });
  }
  std::fputs(shape.Format(SummaryTitle(args.by), args.top).c_str(), stdout);
  return 0;
}

}  // namespace

int QueueCommand(int argc, char** argv) {
  if (argc < 2) return Usage();
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    if (a == "--spool") {
      if (!value(&args.spool)) return Usage();
    } else if (a == "--domain" && args.command == "list") {
      if (!value(&args.domain)) return Usage();
    } else if (a == "--sender" && args.command == "list") {
      if (!value(&args.sender)) return Usage();
    } else if (a == "--tenant" && args.command == "list") {
      if (!value(&args.tenant)) return Usage();
    } else if (a == "--campaign" && args.command == "list") {
      if (!value(&args.campaign)) return Usage();
    } else if (a == "--by" && args.command == "summary") {
      static constexpr std::string_view kBy[] = {"domain", "sender", "tenant", "campaign",
                                                 "priority"};
      if (!value(&args.by) || std::find(std::begin(kBy), std::end(kBy), args.by) == std::end(kBy)) {
        return Usage();
      }
    } else if (a == "--top" && args.command == "summary") {
      std::string n;
      if (!value(&n) || n.empty() || n.size() > 6 ||
          n.find_first_not_of("0123456789") != std::string::npos) {
        return Usage();
      }
      args.top = std::stoul(n);
    } else if (args.command == "show" && args.id.empty() && !a.empty() && a[0] != '-') {
      args.id = std::string(a);
    } else {
      return Usage();
    }
  }
  if (args.command != "list" && args.command != "show" && args.command != "stats" &&
      args.command != "summary") {
    return Usage();
  }
  if (args.command == "show" && args.id.empty()) return Usage();

  std::vector<std::string> dirs = SpoolDirs(args.spool);
  if (dirs.empty()) {
    std::fprintf(stderr, "relayctl queue: no spool segments under %s\n", args.spool.c_str());
    return 1;
  }
  std::vector<std::unique_ptr<SpoolReader>> readers;
  for (const std::string& dir : dirs) {
    auto reader = SpoolReader::Open(dir);
    if (!reader.ok()) {
      std::fprintf(stderr, "relayctl queue: %s\n", std::string(reader.status().message()).c_str());
      return 1;
    }
    for (const queue::CorruptRecord& c : (*reader)->corruptions()) {
      std::fprintf(stderr, "relayctl queue: warning: %s\n",
                   std::string(c.ToStatus().message()).c_str());
    }
    readers.push_back(std::move(*reader));
  }
  if (args.command == "list") return List(readers, args);
  if (args.command == "show") return Show(readers, args);
  if (args.command == "summary") return Summary(readers, args);
  return Stats(readers);
}

}  // namespace relay::relayctl
