#include "relay/server/control.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "relay/base/log.h"
#include "relay/base/sv.h"
#include "relay/delivery/queue_selector.h"
#include "relay/delivery/queue_shape.h"
#include "relay/server/shard.h"
#include "relay/smtp/command.h"

namespace relay::server {
namespace {

struct Client {
  int fd;
  int64_t deadline_ms;
  std::string request;
  std::string who;  // "uid U pid P" from SO_PEERCRED: the log names who asked
};

// Who is on the other end of a Unix socket, as the kernel says.
std::string PeerOf(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "an unknown peer";
  return absl::StrCat("uid ", cred.uid, " pid ", cred.pid);
}

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

MainThreadRequests::MainThreadRequests() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

MainThreadRequests::~MainThreadRequests() {
  if (fd_ >= 0) ::close(fd_);
}

std::string MainThreadRequests::Ask(int timeout_ms) {
  auto promise = std::make_shared<std::promise<std::string>>();
  std::future<std::string> answer = promise->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return closed_answer_;
    waiting_.push_back(promise);
  }
  uint64_t one = 1;
  ssize_t n = ::write(fd_, &one, sizeof(one));
  (void)n;
  if (answer.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return absl::StrCat("error: relayd's main thread did not answer within ", timeout_ms, " ms");
  }
  return answer.get();
}

void MainThreadRequests::Answer(const std::string& answer) {
  uint64_t count;
  ssize_t n = ::read(fd_, &count, sizeof(count));
  (void)n;
  std::vector<std::shared_ptr<std::promise<std::string>>> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting.swap(waiting_);
  }
  for (auto& p : waiting) p->set_value(answer);
}

void MainThreadRequests::Close(const std::string& answer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    closed_answer_ = answer;
  }
  Answer(answer);
}

absl::StatusOr<std::unique_ptr<ControlSocket>> ControlSocket::Start(
    const std::string& path, std::vector<Shard*> shards, MainThreadRequests* main_thread,
    delivery::Suspensions* suspensions, tlspolicy::TlsMemory* tls_memory,
    ClusterStatus cluster_status) {
  // Bound as DIR/.ctl-XXXXXX/s, chmod 0600 there (the directory is 0700), then renamed.
  std::string dir = path;
  size_t slash = dir.rfind('/');
  dir = slash == std::string::npos ? "." : dir.substr(0, slash == 0 ? 1 : slash);
  std::string scratch = absl::StrCat(dir, "/.ctl-XXXXXX");
  if (mkdtemp(scratch.data()) == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("control socket ", path, ": mkdtemp in ", dir, ": ", std::strerror(errno)));
  }
  const std::string bound = scratch + "/s";
  sockaddr_un addr{};
  if (bound.size() >= sizeof(addr.sun_path) || path.size() >= sizeof(addr.sun_path)) {
    ::rmdir(scratch.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat("control socket path too long for a Unix socket: ", path));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, bound.c_str(), bound.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ::rmdir(scratch.c_str());
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  const char* step = "bind";
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  if (ok) ok = (step = "chmod", ::chmod(bound.c_str(), 0600) == 0);
  if (ok) ok = (step = "listen", listen(fd, 16) == 0);
  if (ok) ok = (step = "rename", ::rename(bound.c_str(), path.c_str()) == 0);
  int err = errno;
  if (!ok) {
    ::close(fd);
    ::unlink(bound.c_str());
  }
  ::rmdir(scratch.c_str());
  if (!ok) {
    return absl::UnavailableError(
        absl::StrCat("control socket ", path, ": ", step, ": ", std::strerror(err)));
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    err = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(err)));
  }
  std::unique_ptr<ControlSocket> control(
      new ControlSocket(fd, wake, path, std::move(shards), main_thread, suspensions, tls_memory,
                        std::move(cluster_status)));
  control->thread_ = std::thread([c = control.get()] { c->Serve(); });
  return control;
}

ControlSocket::~ControlSocket() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  (void)n;
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
  ::close(fd_);
  ::unlink(path_.c_str());
}

void ControlSocket::Serve() {
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  for (;;) {
    const int64_t now = NowMs();
    int timeout_ms = -1;
    for (const Client& c : clients) {
      int left = static_cast<int>(std::max<int64_t>(0, c.deadline_ms - now));
      timeout_ms = timeout_ms < 0 ? left : std::min(timeout_ms, left);
    }
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    // At the client bound the listener is left out: new clients wait in the backlog.
    fds.push_back({clients.size() < kClientsMax ? fd_ : -1, POLLIN, 0});
    for (const Client& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) return;
    if (fds[0].revents != 0) break;
    // Each client with input, a complete line, an error or a passed deadline is finished here.
    std::vector<Client> waiting;
    for (size_t i = 0; i < clients.size(); ++i) {
      Client& c = clients[i];
      if (fds[i + 2].revents != 0) {
        char buf[256];
        ssize_t n = ::read(c.fd, buf, sizeof(buf));
        if (n > 0) c.request.append(buf, static_cast<size_t>(n));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) c.deadline_ms = 0;
      }
      const size_t newline = c.request.find('\n');
      const bool done = newline != std::string::npos;
      if (!done && c.request.size() < kRequestBytesMax && NowMs() < c.deadline_ms) {
        waiting.push_back(std::move(c));
        continue;
      }
      std::string answer =
          done ? Handle(c.request.substr(0, newline), shards_, main_thread_, suspensions_,
                        tls_memory_, cluster_status_)
          : c.request.size() >= kRequestBytesMax
              ? absl::StrCat("error: request longer than ", kRequestBytesMax, " bytes")
              : std::string("error: incomplete request");
      LogInfo() << "control: " << c.who << " asked \""
                << absl::StripAsciiWhitespace(c.request.substr(0, 200)) << "\" -> "
                << (answer.size() > 300 ? absl::StrCat(answer.substr(0, 300), "...") : answer);
      answer += "\n";
      // Non-blocking: an answer the client does not take at once is dropped with the client.
      ssize_t written = ::send(c.fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)written;
      ::close(c.fd);
    }
    clients.swap(waiting);
    if (fds[1].revents != 0) {
      int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (client >= 0) {
        clients.push_back({client, NowMs() + kRequestTimeoutMs, std::string(), PeerOf(client)});
      }
    }
  }
  for (const Client& c : clients) ::close(c.fd);
}

namespace {

// What the operator names: "SITE" or "KIND=VALUE", the value in xtext (RFC 3461 §4: a campaign
// may hold spaces) (relay/delivery/suspensions.h); false when it names nothing.
bool ParseWhat(const std::string& what, std::string* kind, std::string* value) {
  const size_t eq = what.find('=');
  *kind = eq == std::string::npos ? "site" : what.substr(0, eq);
  if (!delivery::IsSelectorKind(*kind) ||
      !smtp::DecodeXtext(eq == std::string::npos ? what : what.substr(eq + 1), value) ||
      value->empty() || value->size() > 253 ||
      value->find_first_of("|\t\r\n") != std::string::npos) {
    return false;
  }
  // Host and domain names are kept in lower case (jobs, ready queues); tenants too.
  if (*kind == "site" || *kind == "domain" || *kind == "tenant") absl::AsciiStrToLower(value);
  return true;
}

// How the listing names an entry.
std::string Describe(const delivery::Suspension& s) {
  std::string_view key = s.key;
  if (absl::StartsWith(Sv(key), Sv(delivery::kRebindPrefix))) {
    key.remove_prefix(delivery::kRebindPrefix.size());
    const size_t colon = key.find(':');
    return absl::StrCat(Sv(key.substr(0, colon)), " ", Sv(key.substr(colon + 1)),
                        " rebound to pool ", s.pool);
  }
  const bool backoff = absl::StartsWith(Sv(key), Sv(delivery::kBackoffPrefix));
  if (backoff) key.remove_prefix(delivery::kBackoffPrefix.size());
  const size_t bar = key.find('|');
  if (bar == std::string_view::npos) {
    const size_t colon = key.find(':');
    return absl::StrCat(Sv(key.substr(0, colon)), " ", Sv(key.substr(colon + 1)));
  }
  const std::string_view source = key.substr(0, bar);
  return absl::StrCat(
      Sv(key.substr(bar + 1)),
      source == delivery::kAnySource ? "" : absl::StrCat(" from source ", Sv(source)),
      backoff ? absl::StrCat(" slowed to ", static_cast<int>(s.backoff * 100 + 0.5), "%") : "");
}

}  // namespace

std::string ControlSocket::HandleSuspension(const std::vector<std::string>& words,
                                            delivery::Suspensions& suspensions, int64_t now_unix_ms,
                                            const std::vector<std::string>& pools) {
  const std::string& verb = words[0];
  if (verb == "suspensions") {
    std::vector<std::string> lines;
    for (const delivery::Suspension& s : suspensions.InForce(now_unix_ms)) {
      lines.push_back(absl::StrCat(
          Describe(s),
          delivery::IsUntilResumed(s.until_unix_ms - now_unix_ms)
              ? std::string(" until resumed")
              : absl::StrCat(" for ", (s.until_unix_ms - now_unix_ms + 999) / 1000, " s"),
          s.shard < 0 ? " (operator)" : absl::StrCat(" (shard ", s.shard, ")"), ": ", s.reason));
    }
    std::sort(lines.begin(), lines.end());
    return absl::StrCat("ok: ", lines.size(), " in force", lines.empty() ? "" : "; ",
                        absl::StrJoin(lines, "; "));
  }
  std::string kind, value;
  if (words.size() < 2 || !ParseWhat(words[1], &kind, &value)) {
    return "error: expected SITE or KIND=VALUE (KIND: site, domain, source, tenant or campaign)";
  }
  const std::string what = kind == "site" ? value : absl::StrCat(kind, " ", value);
  if (verb == "resume" || verb == "unbind") {
    if (words.size() != 2) return absl::StrCat("error: expected \"", verb, " SITE|KIND=VALUE\"");
    const size_t n = verb == "unbind" ? suspensions.Remove(delivery::RebindKey(kind, value))
                     : kind == "site" ? suspensions.Resume(value)
                                      : suspensions.Remove(delivery::SelectorKey(kind, value));
    if (n == 0) {
      return absl::StrCat("error: ", what,
                          verb == "unbind" ? " is not rebound" : " is not suspended");
    }
    LogInfo() << "control: " << what << (verb == "unbind" ? " back to its own pool" : " resumed")
              << " by the operator";
    return absl::StrCat(
        "ok: ", what, verb == "unbind" ? " back to its own pool" : " resumed",
        verb == "unbind" ? "" : absl::StrCat(" (", n, n == 1 ? " entry)" : " entries)"));
  }
  // suspend WHAT SECONDS [REASON...] | rebind WHAT POOL SECONDS [REASON...]
  const bool rebind = verb == "rebind";
  const size_t at = rebind ? 3 : 2;
  int64_t seconds = 0;
  if (words.size() < at + 1 || !absl::SimpleAtoi(words[at], &seconds) || seconds < 0 ||
      seconds > int64_t{10} * 365 * 86400) {
    return rebind ? "error: expected \"rebind SITE|KIND=VALUE POOL SECONDS [REASON]\" (0 "
                    "seconds: until unbound)"
                  : "error: expected \"suspend SITE|KIND=VALUE SECONDS [REASON]\" (0 seconds: "
                    "until resumed)";
  }
  delivery::Suspension s;
  if (rebind) {
    if (kind == "source") return "error: a rebind names a site, domain, tenant or campaign";
    if (std::find(pools.begin(), pools.end(), words[2]) == pools.end()) {
      return absl::StrCat("error: no egress pool ", words[2],
                          " (pools: ", absl::StrJoin(pools, ", "), ")");
    }
    s.key = delivery::RebindKey(kind, value);
    s.pool = words[2];
  } else {
    s.key = delivery::SelectorKey(kind, value);
  }
  s.until_unix_ms =
      seconds == 0 ? now_unix_ms + delivery::kUntilResumedMs : now_unix_ms + seconds * 1000;
  std::vector<std::string> reason(words.begin() + static_cast<ptrdiff_t>(at) + 1, words.end());
  s.reason = absl::StrCat(rebind ? "rebound" : "suspended", " by the operator",
                          reason.empty() ? "" : ": ", absl::StrJoin(reason, " "));
  s.shard = -1;
  if (!suspensions.Suspend(s)) return "error: too many suspensions already";
  const std::string done =
      absl::StrCat(rebind ? absl::StrCat(" rebound to pool ", s.pool) : std::string(" suspended"),
                   seconds == 0 ? (rebind ? " until unbound" : " until resumed")
                                : absl::StrCat(" for ", seconds, " s"));
  LogInfo() << "control: " << what << done << " by the operator: " << s.reason;
  return absl::StrCat("ok: ", what, done);
}

std::string ControlSocket::AskEveryShard(const std::vector<Shard*>& shards, const std::string& verb,
                                         const std::string& argument) {
  // One answer that starts with "ok" only when every shard's does: relayctl's exit status.
  std::string answers;
  bool all_ok = true;
  for (Shard* s : shards) {
    std::string answer = s->Control(verb, argument);
    all_ok = all_ok && absl::StartsWith(answer, "ok");
    if (!answers.empty()) answers += "; ";
    answers += absl::StrCat("shard ", s->index(), ": ", answer);
  }
  return absl::StrCat(all_ok ? "ok: " : "error: ", answers);
}

std::string ControlSocket::HandleTls(const std::vector<std::string>& words,
                                     tlspolicy::TlsMemory* tls_memory) {
  if (tls_memory == nullptr) {
    return "error: the TLS downgrade memory is off ([tls_policy] downgrade_memory)";
  }
  if (words.size() == 3 && words[1] == "forget") {
    const std::string domain = absl::AsciiStrToLower(words[2]);
    return tls_memory->Forget(domain)
               ? absl::StrCat("ok: ", domain, " forgotten: plain text is allowed again")
               : absl::StrCat("error: ", domain, " is not remembered");
  }
  if (words.size() == 2 && words[1] == "list") {
    size_t total = 0;
    std::vector<tlspolicy::TlsMemoryEntry> entries = tls_memory->List(kTlsListMax, &total);
    std::string answer = absl::StrCat("ok: ", total, " remembered");
    for (const tlspolicy::TlsMemoryEntry& e : entries) {
      absl::StrAppend(
          &answer, "; ", e.domain, " ",
          absl::FormatTime("%Y-%m-%d", absl::FromUnixSeconds(e.day * 86400), absl::UTCTimeZone()));
    }
    if (entries.size() < total) absl::StrAppend(&answer, "; ...");
    return answer;
  }
  return "error: expected tls forget DOMAIN, or tls list";
}

std::string ControlSocket::Handle(const std::string& request, const std::vector<Shard*>& shards,
                                  MainThreadRequests* main_thread,
                                  delivery::Suspensions* suspensions,
                                  tlspolicy::TlsMemory* tls_memory,
                                  const ClusterStatus& cluster_status) {
  std::vector<std::string> words =
      absl::StrSplit(absl::StripAsciiWhitespace(request), ' ', absl::SkipEmpty());
  if (!words.empty() && words[0] == "tls") return HandleTls(words, tls_memory);
  if (words.size() == 2 && words[0] == "cluster" && words[1] == "status") {
    if (!cluster_status) return "error: this relay is not in a fleet ([cluster] redis is not set)";
    return cluster_status();
  }
  if (!words.empty() &&
      (words[0] == "suspend" || words[0] == "resume" || words[0] == "suspensions" ||
       words[0] == "rebind" || words[0] == "unbind")) {
    if (suspensions == nullptr) return "error: suspensions are not available here";
    const std::vector<std::string> pools =
        shards.empty() ? std::vector<std::string>{"default"} : shards[0]->pool_names();
    std::string answer =
        HandleSuspension(words, *suspensions, absl::ToUnixMillis(absl::Now()), pools);
    // Every shard takes the change now (a lifted hold's mail goes at once), not at its next
    // dispatch.
    if (words[0] != "suspensions" && absl::StartsWith(answer, "ok")) {
      for (Shard* s : shards) s->Control("sync", "");
    }
    return answer;
  }
  if (words.size() == 1 && words[0] == "ready") {
    // Every shard's ready queues, one list: relayctl sums the shards' shares of a queue.
    std::vector<std::string> entries;
    for (Shard* s : shards) {
      std::string answer = s->Control("ready", "");
      if (!absl::StartsWith(answer, "ok: ")) {
        return absl::StrCat("error: shard ", s->index(), ": ", answer);
      }
      if (answer.size() > 4) entries.push_back(answer.substr(4));
    }
    return absl::StrCat("ok: ", absl::StrJoin(entries, "|"));
  }
  if (words.size() == 2 && words[0] == "shape" && (words[1] == "site" || words[1] == "source")) {
    // The shards' shares of each row, added up here: one table for the relay.
    delivery::QueueShape shape;
    for (Shard* s : shards) {
      std::string answer = s->Control("shape-" + words[1], "");
      if (!absl::StartsWith(answer, "ok: ")) {
        return absl::StrCat("error: shard ", s->index(), ": ", answer);
      }
      if (absl::Status merged = shape.Merge(std::string_view(answer).substr(4)); !merged.ok()) {
        return absl::StrCat("error: shard ", s->index(), ": ", merged.message());
      }
    }
    return absl::StrCat("ok: ", shape.Encode(Shard::kReadyQueuesMax));
  }
  if (words.size() == 1 && words[0] == "reload") {
    if (main_thread == nullptr) return "error: reload is not available here";
    return main_thread->Ask(kReloadTimeoutMs);
  }
  if (words.size() < 2) {
    return "error: expected retry|bounce|delete ID|--all|--tenant T|--campaign C|--sender S"
           "|--domain D, or reload";
  }
  const std::string& verb = words[0];
  const std::string& id = words[1];
  if (verb != "retry" && verb != "bounce" && verb != "delete") {
    return absl::StrCat("error: unknown request ", verb);
  }
  if (id == "--all") {
    if (verb != "retry" || words.size() != 2) return "error: only retry takes --all, alone";
    return AskEveryShard(shards, "retry-all", "");
  }
  if (absl::StartsWith(id, "--")) {
    // A selector: checked here, carried out by every shard on its own messages.
    const std::vector<std::string> rest(words.begin() + 1, words.end());
    absl::StatusOr<delivery::QueueSelector> selector = delivery::ParseQueueSelector(rest);
    if (!selector.ok()) return absl::StrCat("error: ", selector.status().message());
    return AskEveryShard(shards, verb + "-selected", absl::StrJoin(rest, " "));
  }
  if (words.size() != 2) return absl::StrCat("error: ", verb, " takes one queue id");
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

}  // namespace relay::server
