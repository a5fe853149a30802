#include "tools/relayctl/top_command.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "relay/server/config.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

using metrics::ExpositionSample;

// How long one scrape may take, connection included.
constexpr int kScrapeTimeoutMs = 5000;
// The response head (status line and headers) at most; the body at most the parser's limit.
constexpr size_t kResponseHeadBytesMax = 16 << 10;

double MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

std::string Str(std::string_view s) { return std::string(s); }

TopSite& SiteOf(std::map<std::string, TopSite>& sites, std::string_view name) {
  TopSite& s = sites[Str(name)];
  s.name = Str(name);
  return s;
}

// --- formatting -------------------------------------------------------------------------------

std::string Count(double v) { return absl::StrFormat("%.0f", v); }

std::string Rate(double v) {
  if (std::isnan(v)) return "-";
  if (v >= 100) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2f", v);
}

std::string Bytes(double v) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f B", v) : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string Duration(double seconds) {
  int64_t s = static_cast<int64_t>(std::max(0.0, seconds));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, s % 86400 / 3600);
}

std::string Percent(double part, double whole) {
  if (!(whole > 0)) return "-";
  return absl::StrFormat("%.0f%%", 100 * part / whole);
}

std::string Fit(std::string line, int width) {
  if (width > 0 && line.size() > static_cast<size_t>(width)) line.resize(width);
  return line;
}

// --- the endpoint -----------------------------------------------------------------------------

struct Target {
  std::string host;
  std::string port;
  std::string path = "/metrics";
  std::string Text() const {
    bool v6 = host.find(':') != std::string::npos;
    return absl::StrCat("http://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port, path);
  }
};

// "http://HOST:PORT/PATH", "HOST:PORT" or "[V6]:PORT".
absl::StatusOr<Target> ParseTarget(std::string_view text) {
  Target t;
  std::string_view rest = text;
  if (rest.substr(0, 7) == "http://") rest.remove_prefix(7);
  if (rest.substr(0, 8) == "https://") {
    return absl::InvalidArgumentError("https is not supported: relayd serves plain HTTP");
  }
  size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    t.path = Str(rest.substr(slash));
    rest = rest.substr(0, slash);
  }
  size_t colon;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("not HOST:PORT: ", Str(text)));
    }
    t.host = Str(rest.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("not HOST:PORT: ", Str(text)));
    }
    t.host = Str(rest.substr(0, colon));
  }
  t.port = Str(rest.substr(colon + 1));
  if (t.host.empty() || t.port.empty() || t.port.size() > 5 ||
      t.port.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("not HOST:PORT: ", Str(text)));
  }
  return t;
}

int RemainingMs(double deadline) {
  return std::max(0, static_cast<int>((deadline - MonotonicSeconds()) * 1000));
}

// Decodes a chunked body (RFC 9112 §7.1) in one pass; false when it does not parse.
bool Dechunk(std::string_view in, std::string* out) {
  size_t pos = 0;
  for (;;) {
    size_t eol = in.find("\r\n", pos);
    if (eol == std::string_view::npos) return false;
    size_t size = 0;
    size_t i = pos;
    // At most 8 hex digits (4 GiB): the size cannot overflow; chunk extensions are ignored.
    for (; i < eol && i - pos < 8 && std::isxdigit(static_cast<unsigned char>(in[i])); ++i) {
      size = size * 16 + static_cast<size_t>(std::isdigit(static_cast<unsigned char>(in[i]))
                                                 ? in[i] - '0'
                                                 : (in[i] | 0x20) - 'a' + 10);
    }
    if (i == pos) return false;
    pos = eol + 2;
    if (size == 0) return true;
    if (in.size() - pos < size + 2) return false;
    out->append(in.substr(pos, size));
    pos += size + 2;
  }
}

// GET the target: the body of a 200 response, or why not.
absl::StatusOr<std::string> Fetch(const Target& t) {
  const double deadline = MonotonicSeconds() + kScrapeTimeoutMs / 1000.0;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int gai = getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::UnavailableError(absl::StrCat(t.host, ": ", gai_strerror(gai)));
  }
  int fd = -1;
  std::string connect_error = "no address";
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int r = connect(fd, a->ai_addr, a->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      pollfd p = {fd, POLLOUT, 0};
      r = poll(&p, 1, RemainingMs(deadline));
      int err = 0;
      socklen_t len = sizeof(err);
      if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        r = 0;
      } else {
        errno = r == 0 ? ETIMEDOUT : (err != 0 ? err : errno);
        r = -1;
      }
    }
    if (r < 0) {
      connect_error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", t.Text(), ": ", connect_error, " (is relayd running?)"));
  }
  const std::string request = absl::StrCat("GET ", t.path, " HTTP/1.1\r\nHost: ", t.host,
                                           "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    pollfd p = {fd, POLLOUT, 0};
    if ((n < 0 && errno != EAGAIN) || poll(&p, 1, RemainingMs(deadline)) <= 0) {
      close(fd);
      return absl::UnavailableError(absl::StrCat("sending the request to ", t.Text(), " failed"));
    }
  }
  // Read to the end (the server closes), within the bounds.
  const size_t response_max = kResponseHeadBytesMax + metrics::ExpositionLimits().bytes_max;
  std::string response;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      if (response.size() + static_cast<size_t>(n) > response_max) {
        close(fd);
        return absl::ResourceExhaustedError(
            absl::StrCat(t.Text(), ": response larger than ", response_max, " bytes"));
      }
      response.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    pollfd p = {fd, POLLIN, 0};
    int remaining = RemainingMs(deadline);
    if (errno != EAGAIN || remaining == 0 || poll(&p, 1, remaining) <= 0) {
      close(fd);
      return absl::DeadlineExceededError(
          absl::StrCat(t.Text(), ": no complete response within ", kScrapeTimeoutMs / 1000, " s"));
    }
  }
  close(fd);
  size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos || head_end > kResponseHeadBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(t.Text(), ": not an HTTP response"));
  }
  std::string_view head(response.data(), head_end);
  if (head.substr(0, 5) != "HTTP/" || head.size() < 12 || head.substr(8, 4) != " 200" ||
      (head.size() > 12 && head[12] != ' ' && head[12] != '\r')) {
    size_t eol = head.find("\r\n");
    return absl::UnavailableError(
        absl::StrCat(t.Text(), " answered: ", Str(head.substr(0, std::min<size_t>(eol, 120)))));
  }
  std::string body = response.substr(head_end + 4);
  std::string lower_head;
  for (char c : head) lower_head.push_back(static_cast<char>(std::tolower(c)));
  if (lower_head.find("\r\ntransfer-encoding: chunked") != std::string::npos) {
    std::string decoded;
    if (!Dechunk(body, &decoded)) {
      return absl::InvalidArgumentError(absl::StrCat(t.Text(), ": bad chunked encoding"));
    }
    return decoded;
  }
  return body;
}

absl::StatusOr<TopSnapshot> Scrape(const Target& t) {
  absl::StatusOr<std::string> body = Fetch(t);
  if (!body.ok()) return body.status();
  const double taken = MonotonicSeconds();
  absl::StatusOr<std::vector<ExpositionSample>> samples = metrics::ParseExposition(*body);
  if (!samples.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(t.Text(), " is not a Prometheus exposition: ", samples.status().message()));
  }
  bool relay = false;
  for (const ExpositionSample& s : *samples) relay = relay || s.name == "relay_build_info";
  if (!relay) {
    return absl::InvalidArgumentError(
        absl::StrCat(t.Text(), " serves no relay_build_info: not a relayd endpoint"));
  }
  return Summarize(*samples, taken);
}

// --- the terminal -----------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_resized = 0;

void OnStopSignal(int) { g_stop = 1; }
void OnResize(int) { g_resized = 1; }

// The alternate screen, no cursor, keys without Enter or echo; everything restored when it goes
// out of scope (Ctrl-C included: SIGINT only sets a flag).
class Terminal {
 public:
  Terminal() {
    have_termios_ = tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (have_termios_) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
    }
    struct sigaction sa {};
    sa.sa_handler = OnStopSignal;  // no SA_RESTART: poll returns EINTR
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaction(sig, &sa, nullptr);
    sa.sa_handler = OnResize;
    sigaction(SIGWINCH, &sa, nullptr);
    Write("\x1b[?1049h\x1b[?25l");
  }
  ~Terminal() {
    Write("\x1b[?25h\x1b[?1049l");
    if (have_termios_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }
  static void Size(int* width, int* height) {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      *width = ws.ws_col;
      *height = ws.ws_row;
    } else {
      *width = 80;
      *height = 24;
    }
  }
  static void Draw(const std::vector<std::string>& lines, int height) {
    std::string out = "\x1b[H";
    for (size_t i = 0; i < lines.size() && static_cast<int>(i) < height; ++i) {
      if (i > 0) out += "\r\n";
      out += lines[i];
      out += "\x1b[K";
    }
    out += "\x1b[J";
    Write(out);
  }
  static void Write(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = write(STDOUT_FILENO, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      s.remove_prefix(static_cast<size_t>(n));
    }
  }

 private:
  termios saved_{};
  bool have_termios_ = false;
};

int Usage() {
  std::fprintf(stderr,
               "usage: relayctl top [--config PATH | --config-dir DIR | --url URL] "
               "[--interval SECONDS] [--once]\n");
  return 2;
}

}  // namespace

TopSnapshot Summarize(const std::vector<ExpositionSample>& samples, double time_s) {
  // Families summed into the snapshot and, when they carry a site label, into the site's row
  // (a null site member: not shown per site).
  struct Summed {
    const char* family;
    double TopSnapshot::*total;
    double TopSite::*site;
  };
  static const Summed kSummed[] = {
      {"relay_messages_received_total", &TopSnapshot::received, nullptr},
      {"relay_recipients_delivered_total", &TopSnapshot::delivered, &TopSite::delivered},
      {"relay_recipients_deferred_total", &TopSnapshot::deferred, &TopSite::deferred},
      {"relay_recipients_bounced_total", &TopSnapshot::bounced, &TopSite::bounced},
      {"relay_recipients_delivered_tls_total", &TopSnapshot::delivered_tls,
       &TopSite::delivered_tls},
      {"relay_site_suspensions_total", nullptr, &TopSite::suspensions},
      {"relay_site_suspended_queues", &TopSnapshot::suspended_queues, &TopSite::suspended_queues},
      {"relay_ready_queue_messages", &TopSnapshot::ready_messages, &TopSite::ready_messages},
      {"relay_queue_messages", &TopSnapshot::queue_messages, nullptr},
      {"relay_queue_bytes", &TopSnapshot::queue_bytes, nullptr},
      {"relay_queue_capacity_bytes", &TopSnapshot::queue_capacity_bytes, nullptr},
      {"relay_connections_open", &TopSnapshot::inbound_connections, nullptr},
      {"relay_outbound_connections_open", &TopSnapshot::outbound_connections, nullptr},
      {"relay_dns_queries_total", &TopSnapshot::dns_queries, nullptr},
      {"relay_dns_failures_total", &TopSnapshot::dns_failures, nullptr},
  };
  TopSnapshot t;
  t.time_s = time_s;
  std::map<std::string, TopSite> sites;
  for (const ExpositionSample& s : samples) {
    const std::string& n = s.name;
    const double v = s.value;
    const Summed* summed = nullptr;
    for (const Summed& f : kSummed) {
      if (n == f.family) summed = &f;
    }
    if (summed != nullptr) {
      if (summed->total != nullptr) t.*(summed->total) += v;
      if (summed->site != nullptr) SiteOf(sites, s.Label("site")).*(summed->site) += v;
    } else if (n == "relay_queue_oldest_message_age_seconds") {
      t.oldest_message_age_s = std::max(t.oldest_message_age_s, v);
    } else if (n == "relay_tls_handshakes_total") {
      (s.Label("direction") == "outbound" ? t.tls_outbound : t.tls_inbound) += v;
    } else if (n == "relay_tls_handshake_failures_total") {
      (s.Label("direction") == "outbound" ? t.tls_outbound_failures : t.tls_inbound_failures) += v;
    } else if (n == "relay_shard_loop_turns_total") {
      // The shard index is the label; a bounded one (the registry caps shards at 1024).
      std::string_view shard = s.Label("shard");
      int index = shard.empty() || shard.size() > 4 ? -1 : 0;
      for (char c : shard) {
        if (c < '0' || c > '9') index = -1;
        if (index >= 0) index = index * 10 + (c - '0');
      }
      if (index >= 0 && index < 1024) {
        if (t.loop_turns.size() <= static_cast<size_t>(index)) t.loop_turns.resize(index + 1);
        t.loop_turns[index] = v;
      }
    } else if (n == "relay_build_info") {
      t.version = Str(s.Label("version"));
    } else if (n == "relay_process_start_time_seconds") {
      t.start_time_unix_s = v;
    }
  }
  for (auto& [name, site] : sites) t.sites.push_back(site);
  return t;
}

std::vector<std::string> RenderTop(const TopSnapshot* previous, const TopSnapshot& cur,
                                   const TopFrameOptions& o) {
  const double dt = previous != nullptr ? cur.time_s - previous->time_s : 0;
  // A counter's rate between the two scrapes; one that went back started again from zero.
  auto rate = [&](double now, double before) {
    if (previous == nullptr || !(dt > 0)) return std::nan("");
    return (now >= before ? now - before : now) / dt;
  };
  std::vector<std::string> lines;
  auto add = [&](std::string line) { lines.push_back(Fit(std::move(line), o.width)); };

  time_t now = static_cast<time_t>(o.now_unix_s);
  tm local{};
  localtime_r(&now, &local);
  char clock[16];
  std::strftime(clock, sizeof(clock), "%H:%M:%S", &local);
  std::string title = absl::StrCat(
      "relayd ", o.target, "   version ", cur.version.empty() ? "?" : cur.version, "   up ",
      cur.start_time_unix_s > 0 ? Duration(o.now_unix_s - cur.start_time_unix_s) : "?", "   ",
      cur.loop_turns.size(), " shards   every ", absl::StrFormat("%g", o.interval_s), "s");
  int pad = o.width - static_cast<int>(title.size()) - static_cast<int>(std::strlen(clock));
  add(absl::StrCat(title, std::string(std::max(pad, 3), ' '), clock));
  add("");
  add(absl::StrFormat("%-12s %12s %10s", "", "TOTAL", "PER SEC"));
  const TopSnapshot* p = previous;
  auto flow = [&](const char* what, double now_v, double before_v) {
    add(absl::StrFormat("%-12s %12s %10s", what, Count(now_v), Rate(rate(now_v, before_v))));
  };
  flow("received", cur.received, p ? p->received : 0);
  flow("delivered", cur.delivered, p ? p->delivered : 0);
  flow("deferred", cur.deferred, p ? p->deferred : 0);
  flow("bounced", cur.bounced, p ? p->bounced : 0);
  add("");
  add(absl::StrCat("queue      ", Count(cur.queue_messages), " messages   ", Bytes(cur.queue_bytes),
                   " of ", Bytes(cur.queue_capacity_bytes), " (",
                   Percent(cur.queue_bytes, cur.queue_capacity_bytes), ")   oldest ",
                   cur.queue_messages > 0 ? Duration(cur.oldest_message_age_s) : "-",
                   "   ready for a connection ", Count(cur.ready_messages)));
  add(absl::StrCat("outbound   ", Count(cur.outbound_connections), " connections   TLS ",
                   Percent(cur.delivered_tls, cur.delivered), " of deliveries   TLS failures ",
                   Rate(rate(cur.tls_outbound_failures, p ? p->tls_outbound_failures : 0)), "/s"));
  add(absl::StrCat("inbound    ", Count(cur.inbound_connections), " connections   TLS failures ",
                   Rate(rate(cur.tls_inbound_failures, p ? p->tls_inbound_failures : 0)),
                   "/s   DNS failures ", Rate(rate(cur.dns_failures, p ? p->dns_failures : 0)),
                   "/s of ", Rate(rate(cur.dns_queries, p ? p->dns_queries : 0)), "/s queries"));
  std::string suspended;
  for (const TopSite& s : cur.sites) {
    if (s.suspended_queues > 0) {
      absl::StrAppend(&suspended, suspended.empty() ? "" : ", ", s.name, " (",
                      Count(s.suspended_queues), s.suspended_queues == 1 ? " queue)" : " queues)");
    }
  }
  add(absl::StrCat("suspended  ", suspended.empty() ? "none" : suspended));
  std::string turns;
  for (size_t i = 0; i < cur.loop_turns.size(); ++i) {
    double before = p != nullptr && i < p->loop_turns.size() ? p->loop_turns[i] : 0;
    absl::StrAppend(&turns, i == 0 ? "" : "   ", i, ": ", Rate(rate(cur.loop_turns[i], before)));
  }
  add(absl::StrCat("loop turns/s by shard   ", turns.empty() ? "-" : turns));
  add("");

  // The sites, busiest first: attempts per second, then attempts ever, then name.
  struct Row {
    const TopSite* site;
    double delivered, deferred, bounced, attempts_rate, attempts;
  };
  std::vector<Row> rows;
  for (const TopSite& s : cur.sites) {
    const TopSite* before = nullptr;
    if (p != nullptr) {
      for (const TopSite& q : p->sites) {
        if (q.name == s.name) before = &q;
      }
    }
    Row r{&s,
          rate(s.delivered, before ? before->delivered : 0),
          rate(s.deferred, before ? before->deferred : 0),
          rate(s.bounced, before ? before->bounced : 0),
          0,
          s.delivered + s.deferred + s.bounced};
    r.attempts_rate = (std::isnan(r.delivered) ? 0 : r.delivered + r.deferred + r.bounced);
    if (r.attempts == 0 && s.ready_messages == 0 && s.suspended_queues == 0 && s.suspensions == 0) {
      continue;  // a configured rule nothing went to
    }
    rows.push_back(r);
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.attempts_rate != b.attempts_rate) return a.attempts_rate > b.attempts_rate;
    if (a.attempts != b.attempts) return a.attempts > b.attempts;
    return a.site->name < b.site->name;
  });
  add(absl::StrFormat("%-16s %9s %7s %9s %7s %9s %7s %6s %5s %5s", "SITE", "DELIVERED", "/s",
                      "DEFERRED", "/s", "BOUNCED", "/s", "READY", "SUSP", "TLS"));
  // Room for the rows: what the terminal has left after the footer lines.
  const int footer = (o.error.empty() ? 0 : 1) + (o.interactive ? 1 : 0);
  int room = o.height > 0 ? o.height - static_cast<int>(lines.size()) - footer : 1 << 30;
  if (rows.empty()) add("(no delivery yet)");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (static_cast<int>(i) >= room - 1 && i + 1 < rows.size()) {
      add(absl::StrCat("... ", rows.size() - i, " more sites"));
      break;
    }
    const Row& r = rows[i];
    add(absl::StrFormat("%-16s %9s %7s %9s %7s %9s %7s %6s %5s %5s", r.site->name.substr(0, 16),
                        Count(r.site->delivered), Rate(r.delivered), Count(r.site->deferred),
                        Rate(r.deferred), Count(r.site->bounced), Rate(r.bounced),
                        Count(r.site->ready_messages), Count(r.site->suspended_queues),
                        Percent(r.site->delivered_tls, r.site->delivered)));
  }
  if (!o.error.empty()) add(absl::StrCat("scrape failed: ", o.error));
  if (o.interactive) add("q quits");
  return lines;
}

int TopCommand(int argc, char** argv) {
  std::string config_dir = kDefaultConfigDir;
  std::string config_path;
  std::string url;
  double interval_s = 2;
  bool once = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--config-dir" && i + 1 < argc) {
      config_dir = argv[++i];
    } else if (arg == "--url" && i + 1 < argc) {
      url = argv[++i];
    } else if (arg == "--interval" && i + 1 < argc) {
      char* end = nullptr;
      interval_s = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(interval_s >= 0.2 && interval_s <= 3600)) {
        std::fprintf(stderr, "relayctl top: --interval takes seconds from 0.2 to 3600\n");
        return 2;
      }
    } else if (arg == "--once") {
      once = true;
    } else if (arg == "--help" || arg == "-h") {
      Usage();
      return 0;
    } else {
      std::fprintf(stderr, "relayctl top: unexpected argument %s\n", arg.c_str());
      return Usage();
    }
  }
  if (url.empty()) {
    // The endpoint is the config's [metrics] listen, as the running relay read it.
    if (config_path.empty()) config_path = config_dir + "/relayd.toml";
    absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "relayctl top: %s (name the endpoint with --url HOST:PORT)\n",
                   std::string(config.status().message()).c_str());
      return 1;
    }
    if (config->metrics.listen.empty()) {
      std::fprintf(stderr,
                   "relayctl top: %s has no [metrics] listen: the relay serves no metrics "
                   "(add the section and restart relayd)\n",
                   config_path.c_str());
      return 1;
    }
    url = config->metrics.listen;
    if (url.size() >= 2 && url.compare(url.size() - 2, 2, ":0") == 0) {
      std::fprintf(stderr,
                   "relayctl top: %s listens for metrics on port 0 (chosen at start; relayd "
                   "logs it): name it with --url HOST:PORT\n",
                   config_path.c_str());
      return 1;
    }
  }
  absl::StatusOr<Target> target = ParseTarget(url);
  if (!target.ok()) {
    std::fprintf(stderr, "relayctl top: %s\n", std::string(target.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<TopSnapshot> first = Scrape(*target);
  if (!first.ok()) {
    std::fprintf(stderr, "relayctl top: %s\n", std::string(first.status().message()).c_str());
    return 1;
  }
  TopFrameOptions options;
  options.target = target->Text();
  options.interval_s = interval_s;

  if (once) {
    usleep(static_cast<useconds_t>(interval_s * 1e6));
    absl::StatusOr<TopSnapshot> second = Scrape(*target);
    if (!second.ok()) {
      std::fprintf(stderr, "relayctl top: %s\n", std::string(second.status().message()).c_str());
      return 1;
    }
    int height = 0;
    options.width = 100;
    if (isatty(STDOUT_FILENO)) Terminal::Size(&options.width, &height);
    options.now_unix_s = WallSeconds();
    for (const std::string& line : RenderTop(&*first, *second, options)) {
      std::printf("%s\n", line.c_str());
    }
    return 0;
  }
  if (!isatty(STDOUT_FILENO)) {
    std::fprintf(stderr, "relayctl top: standard output is not a terminal; use --once\n");
    return 2;
  }

  options.interactive = true;
  Terminal terminal;
  TopSnapshot current = std::move(*first);
  std::optional<TopSnapshot> previous;
  int stdin_fd = STDIN_FILENO;
  while (!g_stop) {
    int height = 0;
    Terminal::Size(&options.width, &height);
    options.height = height;
    options.now_unix_s = WallSeconds();
    Terminal::Draw(RenderTop(previous ? &*previous : nullptr, current, options), height);
    const double next = MonotonicSeconds() + interval_s;
    bool redraw = false;
    while (!g_stop && !redraw) {
      int remaining = RemainingMs(next);
      if (remaining == 0) break;
      pollfd p = {stdin_fd, POLLIN, 0};
      int r = poll(&p, stdin_fd >= 0 ? 1 : 0, remaining);
      if (r < 0 && errno == EINTR) {
        if (g_resized) {
          g_resized = 0;
          redraw = true;
        }
        continue;
      }
      if (r > 0) {
        char keys[64];
        ssize_t n = read(stdin_fd, keys, sizeof(keys));
        if (n <= 0) {
          stdin_fd = -1;  // end of input: only the timer and signals from now on
          continue;
        }
        for (ssize_t k = 0; k < n; ++k) {
          if (keys[k] == 'q' || keys[k] == 'Q' || keys[k] == 3 /* Ctrl-C without ISIG */) {
            g_stop = 1;
          }
        }
      }
    }
    if (g_stop || redraw) continue;
    absl::StatusOr<TopSnapshot> next_snapshot = Scrape(*target);
    if (next_snapshot.ok()) {
      previous = std::move(current);
      current = std::move(*next_snapshot);
      options.error.clear();
    } else {
      options.error = std::string(next_snapshot.status().message());
    }
  }
  return 0;
}

}  // namespace relay::relayctl
