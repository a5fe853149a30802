#include "tools/relayctl/control_commands.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "relay/base/sv.h"
#include "relay/delivery/queue_shape.h"
#include "relay/server/config.h"
#include "relay/smtp/command.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {

namespace {

// Where the running relay listens, from the options every control command takes. Returns false
// (after printing why) for an unknown option; `rest` gets the other arguments.
struct Target {
  std::string config_dir = kDefaultConfigDir;
  std::string config_path;
  std::string socket_path;
};

bool ParseTarget(int argc, char** argv, const char* command, Target* target,
                 std::vector<std::string>* rest) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config-dir" && i + 1 < argc) {
      target->config_dir = argv[++i];
    } else if (arg == "--config" && i + 1 < argc) {
      target->config_path = argv[++i];
    } else if (arg == "--socket" && i + 1 < argc) {
      target->socket_path = argv[++i];
    } else if (arg.rfind("--", 0) == 0 && arg != "--all") {
      std::fprintf(stderr, "relayctl %s: unknown option %s\n", command, arg.c_str());
      return false;
    } else {
      rest->push_back(arg);
    }
  }
  return true;
}

// Sends one request line and prints the answer. The exit status of the command.
// Far above any answer relayd gives (a "ready" answer of 200 queues per shard on 64 shards).
constexpr size_t kAnswerBytesMax = 4 << 20;

// Sends `request` to the relay of `target`; its answer in `*answer`. 0, or the exit status of a
// failure already reported on stderr.
int Exchange(Target target, const std::string& request, std::string* answer) {
  if (target.socket_path.empty()) {
    // Where the running relay listens is the config's control_socket, not a fixed name.
    if (target.config_path.empty()) target.config_path = target.config_dir + "/relayd.toml";
    absl::StatusOr<server::Config> config = server::LoadConfig(target.config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "relayctl: %s (name the control socket with --socket PATH)\n",
                   std::string(config.status().message()).c_str());
      return 1;
    }
    target.socket_path = config->control_socket_path;
  }
  const std::string& socket_path = target.socket_path;
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "relayctl: socket path too long: %s\n", socket_path.c_str());
    return 2;
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    std::fprintf(stderr, "relayctl: cannot reach relayd at %s: %s (is it running?)\n",
                 socket_path.c_str(), std::strerror(errno));
    if (fd >= 0) close(fd);
    return 1;
  }
  const std::string line = request + "\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    std::fprintf(stderr, "relayctl: writing to %s: %s\n", socket_path.c_str(),
                 std::strerror(errno));
    close(fd);
    return 1;
  }
  char buf[512];
  for (;;) {
    // Above relayd's own bounds: 10 s for a shard, 30 s for the main thread's reload.
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 40000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    answer->append(buf, static_cast<size_t>(n));
    if (answer->size() > kAnswerBytesMax) {
      close(fd);
      std::fprintf(stderr, "relayctl: relayd's answer is longer than %zu bytes\n", kAnswerBytesMax);
      return 1;
    }
  }
  close(fd);
  if (answer->empty()) {
    std::fprintf(stderr, "relayctl: no answer from relayd\n");
    return 1;
  }
  return 0;
}

int Ask(Target target, const std::string& request) {
  std::string answer;
  if (int failed = Exchange(std::move(target), request, &answer); failed != 0) return failed;
  std::fputs(answer.c_str(), stdout);
  return answer.rfind("ok", 0) == 0 ? 0 : 1;
}

constexpr char kTargetUsage[] = "[--config PATH | --config-dir DIR | --socket PATH]";

}  // namespace

int QueueControlCommand(int argc, char** argv) {
  std::string verb = argc > 0 ? argv[0] : "";
  const std::string command = "queue " + verb;
  // The selector's options are this command's own (values xtext-encoded on the socket, so a
  // campaign name may hold spaces); the rest are the target's.
  std::vector<char*> args = {argv[0]};
  std::string selector;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--tenant" || a == "--campaign" || a == "--sender" || a == "--domain" ||
         a == "--site") &&
        i + 1 < argc) {
      absl::StrAppend(&selector, " ", a, " ", smtp::EncodeXtext(argv[++i]));
    } else {
      args.push_back(argv[i]);
    }
  }
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(static_cast<int>(args.size()), args.data(), command.c_str(), &target, &rest)) {
    return 2;
  }
  if (selector.empty() ? rest.size() != 1 : !rest.empty()) {
    std::fprintf(stderr,
                 "usage: relayctl queue %s ID%s %s\n"
                 "       relayctl queue %s [--tenant T] [--campaign C] [--sender ADDR|@DOMAIN] "
                 "[--domain D] [--site S] %s\n",
                 verb.c_str(), verb == "retry" ? "|--all" : "", kTargetUsage, verb.c_str(),
                 kTargetUsage);
    return 2;
  }
  return Ask(target, selector.empty() ? verb + " " + rest[0] : verb + selector);
}

namespace {

// "90", "90s", "15m", "2h", "7d" in seconds; -1 when it is none of these.
int64_t DurationSeconds(const std::string& text) {
  if (text.empty()) return -1;
  int64_t unit = 1;
  std::string digits = text;
  switch (text.back()) {
    case 's':
      unit = 1;
      digits.pop_back();
      break;
    case 'm':
      unit = 60;
      digits.pop_back();
      break;
    case 'h':
      unit = 3600;
      digits.pop_back();
      break;
    case 'd':
      unit = 86400;
      digits.pop_back();
      break;
    default:
      break;
  }
  int64_t n = 0;
  if (digits.empty() || digits.size() > 7 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  n = std::stoll(digits);
  return n * unit;
}

}  // namespace

int QueueSuspendCommand(int argc, char** argv) {
  const std::string verb = argc > 0 ? argv[0] : "";
  const bool timed = verb == "suspend" || verb == "rebind";
  // --for, --reason, --pool and the selectors are this command's own; the rest are the target's.
  std::vector<char*> args = {argv[0]};
  std::string duration, reason, pool, what;
  int selectors = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string kind = a.size() > 2 && a.rfind("--", 0) == 0 ? a.substr(2) : "";
    if (a == "--for" && i + 1 < argc && timed) {
      duration = argv[++i];
    } else if (a == "--reason" && i + 1 < argc && timed) {
      reason = argv[++i];
    } else if (a == "--pool" && i + 1 < argc && verb == "rebind") {
      pool = argv[++i];
    } else if (i + 1 < argc && (kind == "site" || kind == "domain" || kind == "source" ||
                                kind == "tenant" || kind == "campaign")) {
      what = kind + "=" + smtp::EncodeXtext(argv[++i]);
      ++selectors;
    } else {
      args.push_back(argv[i]);
    }
  }
  Target target;
  std::vector<std::string> rest;
  const std::string command = "queue " + verb;
  if (!ParseTarget(static_cast<int>(args.size()), args.data(), command.c_str(), &target, &rest)) {
    return 2;
  }
  // A bare SITE is the site selector.
  if (selectors == 0 && rest.size() == 1 && verb != "suspensions") {
    what = rest[0];
    rest.clear();
    selectors = 1;
  }
  const int64_t seconds = duration.empty() ? 0 : DurationSeconds(duration);
  const bool bad_what = verb == "suspensions" ? selectors != 0 : selectors != 1;
  if (!rest.empty() || bad_what || seconds < 0 || (verb == "rebind") == pool.empty() ||
      what.find_first_of(" \r\n") != std::string::npos ||
      pool.find_first_of(" \r\n") != std::string::npos ||
      reason.find_first_of("\r\n") != std::string::npos) {
    std::fprintf(
        stderr,
        "usage: relayctl queue suspend WHAT [--for 90s|15m|2h|7d] [--reason TEXT] %s\n"
        "       relayctl queue resume WHAT %s\n"
        "       relayctl queue rebind WHAT --pool POOL [--for DURATION] [--reason TEXT] "
        "%s\n"
        "       relayctl queue unbind WHAT %s\n"
        "       relayctl queue suspensions %s\n"
        "  WHAT: SITE (an MX set or a shaping rule's name), or one of --site S, --domain D,"
        "\n        --source NAME|ADDRESS, --tenant T, --campaign C\n",
        kTargetUsage, kTargetUsage, kTargetUsage, kTargetUsage, kTargetUsage);
    return 2;
  }
  if (verb == "suspensions") return Ask(target, "suspensions");
  if (verb == "resume" || verb == "unbind") return Ask(target, verb + " " + what);
  return Ask(target, verb + " " + what + (pool.empty() ? "" : " " + pool) + " " +
                         std::to_string(seconds) + (reason.empty() ? "" : " " + reason));
}

std::string FormatReadyTable(std::string_view entries) {
  struct Row {
    std::string rule;
    uint64_t waiting = 0, connections = 0, connections_max = 0, rate = 0;
    std::string state;
  };
  // Every shard lists its share of a (site, source) queue: one row for the relay.
  std::map<std::pair<std::string, std::string>, Row> rows;
  for (absl::string_view entry : absl::StrSplit(Sv(entries), '|', absl::SkipEmpty())) {
    const std::vector<std::string> f = absl::StrSplit(entry, '\t');
    uint64_t n[4] = {};
    if (f.size() != 8 || !absl::SimpleAtoi(f[3], &n[0]) || !absl::SimpleAtoi(f[4], &n[1]) ||
        !absl::SimpleAtoi(f[5], &n[2]) || !absl::SimpleAtoi(f[6], &n[3])) {
      continue;
    }
    Row& row = rows[{f[0], f[2]}];
    row.rule = f[1];
    row.waiting += n[0];
    row.connections += n[1];
    row.connections_max += n[2];
    row.rate += n[3];
    if (row.state.empty()) row.state = f[7];
  }
  if (rows.empty()) return "no ready queue has work, connections, a suspension or a backoff\n";
  std::vector<std::pair<std::pair<std::string, std::string>, Row>> sorted(rows.begin(), rows.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.waiting > b.second.waiting;
  });
  std::string out = absl::StrFormat("%-40s %-12s %-24s %8s %6s %6s %7s  %s\n", "SITE", "RULE",
                                    "SOURCE", "WAITING", "CONNS", "MAX", "RATE/S", "STATE");
  uint64_t waiting = 0, connections = 0;
  for (const auto& [key, row] : sorted) {
    absl::StrAppendFormat(&out, "%-40s %-12s %-24s %8d %6d %6d %7s  %s\n", key.first, row.rule,
                          key.second, row.waiting, row.connections, row.connections_max,
                          row.rate == 0 ? std::string("-") : absl::StrCat(row.rate), row.state);
    waiting += row.waiting;
    connections += row.connections;
  }
  absl::StrAppendFormat(&out, "%-40s %-12s %-24s %8d %6d\n", "TOTAL", "", "", waiting, connections);
  return out;
}

int QueueReadyCommand(int argc, char** argv) {
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(argc, argv, "queue ready", &target, &rest)) return 2;
  if (!rest.empty()) {
    std::fprintf(stderr, "usage: relayctl queue ready %s\n", kTargetUsage);
    return 2;
  }
  std::string answer;
  if (int failed = Exchange(std::move(target), "ready", &answer); failed != 0) return failed;
  if (answer.rfind("ok: ", 0) != 0) {
    std::fputs(answer.c_str(), stdout);
    return 1;
  }
  std::printf("%s", FormatReadyTable(answer.substr(4)).c_str());
  return 0;
}

int QueueShapeCommand(int argc, char** argv) {
  // --by and --top are this command's; the rest name the relay.
  std::string by;
  size_t top = 20;
  bool usage = false;
  std::vector<char*> target_args = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--by" && i + 1 < argc) {
      by = argv[++i];
    } else if (arg == "--top" && i + 1 < argc) {
      usage = usage || !absl::SimpleAtoi(argv[++i], &top) || top > 100000;
    } else {
      target_args.push_back(argv[i]);
    }
  }
  Target target;
  std::vector<std::string> rest;
  usage = usage ||
          !ParseTarget(static_cast<int>(target_args.size()), target_args.data(), "queue summary",
                       &target, &rest) ||
          !rest.empty();
  if (usage || (by != "site" && by != "source")) {
    std::fprintf(stderr, "usage: relayctl queue summary --by site|source [--top N] %s\n",
                 kTargetUsage);
    return 2;
  }
  std::string answer;
  if (int failed = Exchange(std::move(target), "shape " + by, &answer); failed != 0) return failed;
  delivery::QueueShape shape;
  absl::Status merged =
      answer.rfind("ok:", 0) == 0
          ? shape.Merge(std::string(absl::StripAsciiWhitespace(Sv(answer).substr(3))))
          : absl::UnknownError(absl::StripTrailingAsciiWhitespace(Sv(answer)));
  if (!merged.ok()) {
    std::fprintf(stderr, "relayctl queue summary: %s\n", std::string(merged.message()).c_str());
    return 1;
  }
  std::fputs(shape.Format(by == "site" ? "SITE (READY)" : "SOURCE (READY)", top).c_str(), stdout);
  return 0;
}

std::string FormatTlsList(std::string_view answer) {
  std::vector<std::string> parts = absl::StrSplit(Sv(answer), "; ");
  std::string out = absl::StrFormat("%-48s %s\n", "DOMAIN (TLS REQUIRED)", "LAST TLS DELIVERY");
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t space = parts[i].rfind(' ');
    if (space == std::string::npos) {
      absl::StrAppend(&out, parts[i], "\n");  // "..."
      continue;
    }
    absl::StrAppendFormat(&out, "%-48s %s\n", parts[i].substr(0, space),
                          parts[i].substr(space + 1));
  }
  absl::StrAppend(&out, parts.empty() ? "" : parts[0], "\n");
  return out;
}

int TlsCommand(int argc, char** argv) {
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(argc, argv, "tls", &target, &rest) ||
      !((rest.size() == 2 && rest[0] == "forget" &&
         rest[1].find_first_of(" \r\n") == std::string::npos) ||
        (rest.size() == 1 && rest[0] == "list"))) {
    std::fprintf(stderr, "usage: relayctl tls forget DOMAIN %s\n       relayctl tls list %s\n",
                 kTargetUsage, kTargetUsage);
    return 2;
  }
  if (rest[0] == "forget") return Ask(target, "tls forget " + rest[1]);
  std::string answer;
  if (int failed = Exchange(std::move(target), "tls list", &answer); failed != 0) return failed;
  absl::StripTrailingAsciiWhitespace(&answer);
  if (answer.rfind("ok: ", 0) != 0) {
    std::printf("%s\n", answer.c_str());
    return 1;
  }
  std::fputs(FormatTlsList(std::string_view(answer).substr(4)).c_str(), stdout);
  return 0;
}

int ClusterCommand(int argc, char** argv) {
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(argc, argv, "cluster", &target, &rest) ||
      !(rest.size() == 1 && rest[0] == "status")) {
    std::fprintf(stderr, "usage: relayctl cluster status %s\n", kTargetUsage);
    return 2;
  }
  std::string answer;
  if (int failed = Exchange(std::move(target), "cluster status", &answer); failed != 0) {
    return failed;
  }
  std::fputs(answer.c_str(), stdout);
  if (!answer.empty() && answer.back() != '\n') std::fputs("\n", stdout);
  return answer.rfind("error", 0) == 0 ? 1 : 0;
}

int ReloadCommand(int argc, char** argv) {
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(argc, argv, "reload", &target, &rest)) return 2;
  if (!rest.empty()) {
    std::fprintf(stderr, "usage: relayctl reload %s\n", kTargetUsage);
    return 2;
  }
  return Ask(target, "reload");
}

}  // namespace relay::relayctl
