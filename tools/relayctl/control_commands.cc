#include "tools/relayctl/control_commands.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "relay/server/config.h"
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
int Ask(Target target, const std::string& request) {
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
  std::string answer;
  char buf[512];
  for (;;) {
    // Above relayd's own bounds: 10 s for a shard, 30 s for the main thread's reload.
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 40000) <= 0) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (answer.empty()) {
    std::fprintf(stderr, "relayctl: no answer from relayd\n");
    return 1;
  }
  std::fputs(answer.c_str(), stdout);
  return answer.rfind("ok", 0) == 0 ? 0 : 1;
}

constexpr char kTargetUsage[] = "[--config PATH | --config-dir DIR | --socket PATH]";

}  // namespace

int QueueControlCommand(int argc, char** argv) {
  std::string verb = argc > 0 ? argv[0] : "";
  const std::string command = "queue " + verb;
  Target target;
  std::vector<std::string> rest;
  if (!ParseTarget(argc, argv, command.c_str(), &target, &rest)) return 2;
  if (rest.size() != 1) {
    std::fprintf(stderr, "usage: relayctl queue %s ID%s %s\n", verb.c_str(),
                 verb == "retry" ? "|--all" : "", kTargetUsage);
    return 2;
  }
  return Ask(target, verb + " " + rest[0]);
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
