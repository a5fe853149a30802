#include "tools/relayctl/control_commands.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "relay/server/config.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {

int QueueControlCommand(int argc, char** argv) {
  std::string verb = argc > 0 ? argv[0] : "";
  std::string id;
  std::string config_dir = kDefaultConfigDir;
  std::string config_path;
  std::string socket_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config-dir" && i + 1 < argc) {
      config_dir = argv[++i];
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--socket" && i + 1 < argc) {
      socket_path = argv[++i];
    } else if (id.empty()) {
      id = arg;
    } else {
      std::fprintf(stderr, "relayctl queue %s: unexpected argument %s\n", verb.c_str(),
                   arg.c_str());
      return 2;
    }
  }
  if (id.empty()) {
    std::fprintf(stderr,
                 "usage: relayctl queue %s ID%s [--config PATH | --config-dir DIR | --socket "
                 "PATH]\n",
                 verb.c_str(), verb == "retry" ? "|--all" : "");
    return 2;
  }
  if (socket_path.empty()) {
    // Where the running relay listens is the config's control_socket, not a fixed name.
    if (config_path.empty()) config_path = config_dir + "/relayd.toml";
    absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "relayctl: %s (name the control socket with --socket PATH)\n",
                   std::string(config.status().message()).c_str());
      return 1;
    }
    socket_path = config->control_socket_path;
  }
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
  std::string request = verb + " " + id + "\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    std::fprintf(stderr, "relayctl: writing to %s: %s\n", socket_path.c_str(),
                 std::strerror(errno));
    close(fd);
    return 1;
  }
  std::string answer;
  char buf[512];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 15000) <= 0) break;
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

}  // namespace relay::relayctl
