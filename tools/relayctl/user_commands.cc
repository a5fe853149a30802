#include "tools/relayctl/user_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "relay/server/users.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Longest password line read from stdin or the terminal.
constexpr size_t kPasswordBytesMax = 1024;

struct Args {
  std::string config_dir = kDefaultConfigDir;
  std::vector<std::string> allow;
  server::ScryptParams scrypt;
  std::vector<std::string> positional;
};

// Parses --config-dir and (when allow_ok) --allow, both as "--flag VALUE" or "--flag=VALUE".
std::optional<Args> ParseArgs(int argc, char** argv, bool allow_ok, size_t positional_count) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    auto value_of = [&](absl::string_view flag, std::string* out) {
      if (arg == flag) {
        if (i + 1 >= argc) return false;
        *out = argv[++i];
        return true;
      }
      if (absl::StartsWith(arg, std::string(flag) + "=")) {
        *out = std::string(arg.substr(flag.size() + 1));
        return true;
      }
      return false;
    };
    std::string value;
    if (value_of("--config-dir", &value)) {
      args.config_dir = value;
    } else if (allow_ok && value_of("--allow", &value)) {
      args.allow.push_back(value);
    } else if (allow_ok && value_of("--scrypt-log2-n", &value)) {
      if (!absl::SimpleAtoi(value, &args.scrypt.log2_n)) {
        std::cerr << argv[0] << ": --scrypt-log2-n wants a number\n";
        return std::nullopt;
      }
    } else if (absl::StartsWith(arg, "-")) {
      std::cerr << argv[0] << ": unknown or incomplete option " << arg
                << (absl::StartsWith(arg, "--pass")
                        ? " (passwords are read from the terminal or stdin, never from arguments)"
                        : "")
                << "\n";
      return std::nullopt;
    } else {
      args.positional.emplace_back(arg);
    }
  }
  if (args.positional.size() != positional_count) return std::nullopt;
  return args;
}

std::string UsersPath(const Args& args) { return args.config_dir + "/users"; }

// Reads one line from fd (without the line ending). False on EOF before any byte or on error.
bool ReadLine(int fd, std::string* line) {
  line->clear();
  char c;
  bool any = false;
  while (true) {
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return any;
    any = true;
    if (c == '\n') break;
    if (line->size() < kPasswordBytesMax) line->push_back(c);
  }
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return true;
}

std::optional<std::string> PromptNoEcho(const char* prompt) {
  // Echo goes off before the prompt appears: whatever is typed after seeing it is never echoed.
  termios old_mode;
  bool restore = tcgetattr(STDIN_FILENO, &old_mode) == 0;
  if (restore) {
    termios quiet = old_mode;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  std::cerr << prompt << std::flush;
  std::string line;
  bool ok = ReadLine(STDIN_FILENO, &line);
  if (restore) tcsetattr(STDIN_FILENO, TCSANOW, &old_mode);
  if (!ok) return std::nullopt;
  return line;
}

}  // namespace

std::optional<std::string> ReadPassword(bool confirm) {
  std::string password;
  if (isatty(STDIN_FILENO)) {
    auto first = PromptNoEcho("Password: ");
    if (!first) return std::nullopt;
    if (confirm) {
      auto again = PromptNoEcho("Password (again): ");
      if (!again || *again != *first) {
        std::cerr << "passwords do not match\n";
        return std::nullopt;
      }
    }
    password = *first;
  } else if (!ReadLine(STDIN_FILENO, &password)) {
    std::cerr << "no password on stdin\n";
    return std::nullopt;
  }
  if (password.empty()) {
    std::cerr << "empty password\n";
    return std::nullopt;
  }
  return password;
}

namespace {

// Holds an exclusive flock on DIR/users.lock while a command reads, changes and saves the file.
class EditLock {
 public:
  explicit EditLock(const Args& args) {
    std::string path = args.config_dir + "/users.lock";
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0 || flock(fd_, LOCK_EX) != 0) {
      error_ = path + ": " + strerror(errno);
    }
  }
  ~EditLock() {
    if (fd_ >= 0) close(fd_);
  }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  std::string error_;
};

int Usage(const char* text) {
  std::cerr << "usage: relayctl " << text << "\n";
  return kExitUsage;
}

}  // namespace

int UserAddCommand(int argc, char** argv) {
  auto args = ParseArgs(argc, argv, /*allow_ok=*/true, 1);
  if (!args)
    return Usage("user-add USER [--allow ADDR|@DOMAIN ...] [--scrypt-log2-n N] [--config-dir DIR]");
  EditLock lock(*args);
  if (!lock.error().empty()) {
    std::cerr << "cannot lock the users file: " << lock.error() << "\n";
    return kExitFailure;
  }
  auto db = server::UserDb::LoadOrEmpty(UsersPath(*args));
  if (!db.ok()) {
    std::cerr << db.status().message() << "\n";
    return kExitFailure;
  }
  const std::string& user = args->positional[0];
  if ((*db)->Find(user) != nullptr) {
    std::cerr << "user " << server::NormalizeUserName(user) << " already exists\n";
    return kExitFailure;
  }
  auto password = ReadPassword(/*confirm=*/true);
  if (!password) return kExitFailure;
  if (absl::Status s = (*db)->Add(user, *password, args->allow, args->scrypt); !s.ok()) {
    std::cerr << s.message() << "\n";
    return kExitFailure;
  }
  if (absl::Status s = (*db)->Save(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return kExitFailure;
  }
  std::cerr << "added user " << server::NormalizeUserName(user) << " to " << UsersPath(*args)
            << "\n";
  return kExitOk;
}

int UserDelCommand(int argc, char** argv) {
  auto args = ParseArgs(argc, argv, /*allow_ok=*/false, 1);
  if (!args) return Usage("user-del USER [--config-dir DIR]");
  EditLock lock(*args);
  if (!lock.error().empty()) {
    std::cerr << "cannot lock the users file: " << lock.error() << "\n";
    return kExitFailure;
  }
  auto db = server::UserDb::Load(UsersPath(*args));
  if (!db.ok()) {
    std::cerr << db.status().message() << "\n";
    return kExitFailure;
  }
  if (absl::Status s = (*db)->Remove(args->positional[0]); !s.ok()) {
    std::cerr << s.message() << "\n";
    return kExitFailure;
  }
  if (absl::Status s = (*db)->Save(); !s.ok()) {
    std::cerr << s.message() << "\n";
    return kExitFailure;
  }
  std::cerr << "removed user " << server::NormalizeUserName(args->positional[0]) << "\n";
  return kExitOk;
}

int UserListCommand(int argc, char** argv) {
  auto args = ParseArgs(argc, argv, /*allow_ok=*/false, 0);
  if (!args) return Usage("user-list [--config-dir DIR]");
  auto db = server::UserDb::Load(UsersPath(*args));
  if (!db.ok()) {
    std::cerr << db.status().message() << "\n";
    return kExitFailure;
  }
  for (const std::string& name : (*db)->List()) {
    const server::User* user = (*db)->Find(name);
    std::string senders = !user->may_send_as.empty() ? absl::StrJoin(user->may_send_as, ",")
                          : name.find('@') != std::string::npos ? name
                                                                : "-";
    std::cout << name << "\t" << senders << "\n";
  }
  return kExitOk;
}

int AuthenticateCommand(int argc, char** argv) {
  auto args = ParseArgs(argc, argv, /*allow_ok=*/false, 1);
  if (!args) return Usage("authenticate USER [--config-dir DIR]");
  auto db = server::UserDb::Load(UsersPath(*args));
  if (!db.ok()) {
    std::cerr << db.status().message() << "\n";
    return kExitFailure;
  }
  auto password = ReadPassword(/*confirm=*/false);
  if (!password) return kExitFailure;
  if (!(*db)->Verify(args->positional[0], *password)) {
    std::cerr << "authentication failed\n";
    return kExitFailure;
  }
  std::cerr << "authentication succeeded\n";
  return kExitOk;
}

}  // namespace relay::relayctl
