#include "relay/server/control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "relay/base/log.h"
#include "relay/server/shard.h"

namespace relay::server {
namespace {

constexpr size_t kRequestBytesMax = 512;
constexpr int kRequestTimeoutMs = 2000;

}  // namespace

absl::StatusOr<ControlSocket> ControlSocket::Listen(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("control socket path too long: ", path));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  ::unlink(path.c_str());
  mode_t old = umask(0077);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (rc < 0 || listen(fd, 16) < 0) {
    int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("control socket ", path, ": ", std::strerror(err)));
  }
  return ControlSocket(fd, path);
}

ControlSocket::~ControlSocket() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
}

std::string ControlSocket::Handle(const std::string& request,
                                  const std::vector<Shard*>& shards) {
  std::vector<std::string> words =
      absl::StrSplit(absl::StripAsciiWhitespace(request), ' ', absl::SkipEmpty());
  if (words.size() != 2) return "error: expected \"retry|bounce|delete ID\" or \"retry --all\"";
  const std::string& verb = words[0];
  const std::string& id = words[1];
  if (verb != "retry" && verb != "bounce" && verb != "delete") {
    return absl::StrCat("error: unknown request ", verb);
  }
  if (id == "--all") {
    if (verb != "retry") return "error: only retry takes --all";
    // One answer that starts with "ok" only when every shard's does: relayctl's exit status.
    std::string answers;
    bool all_ok = true;
    for (Shard* s : shards) {
      std::string answer = s->Control("retry-all", "");
      all_ok = all_ok && absl::StartsWith(answer, "ok");
      if (!answers.empty()) answers += "; ";
      answers += absl::StrCat("shard ", s->index(), ": ", answer);
    }
    return absl::StrCat(all_ok ? "ok: " : "error: ", answers);
  }
  // "EPOCH-SHARD-SEQ": the shard that owns the message.
  std::vector<std::string> parts = absl::StrSplit(id, '-');
  unsigned long shard = 0;
  if (parts.size() != 3 || !absl::SimpleHexAtoi(parts[1], &shard)) {
    return absl::StrCat("error: not a queue id: ", id);
  }
  if (shard >= shards.size()) {
    return absl::StrCat("error: ", id, " belongs to shard ", shard, ", which is not running");
  }
  return shards[shard]->Control(verb, id);
}

void ControlSocket::ServeOne(const std::vector<Shard*>& shards) {
  int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (client < 0) return;
  std::string request;
  char buf[256];
  while (request.find('\n') == std::string::npos && request.size() < kRequestBytesMax) {
    pollfd p{client, POLLIN, 0};
    if (poll(&p, 1, kRequestTimeoutMs) <= 0) break;
    ssize_t n = ::read(client, buf, sizeof(buf));
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  std::string answer = request.find('\n') == std::string::npos
                           ? "error: incomplete request"
                           : Handle(request.substr(0, request.find('\n')), shards);
  LogInfo() << "control: " << absl::StripAsciiWhitespace(request.substr(0, 80)) << " -> "
            << answer;
  answer += "\n";
  ssize_t written = ::write(client, answer.data(), answer.size());
  (void)written;
  ::close(client);
}

}  // namespace relay::server
