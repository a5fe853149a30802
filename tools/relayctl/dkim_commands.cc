#include "tools/relayctl/dkim_commands.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dkim/key.h"
#include "dkim/verifier.h"
#include "relay/server/config.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

// A message file larger than this is not checked (the relay's own size limit is far below).
constexpr size_t kMessageBytesMax = 64 << 20;
// Big enough for any DKIM key record answer (a 4096-bit key is ~750 bytes of TXT).
constexpr int kDnsAnswerBytesMax = 16 * 1024;

int KeygenUsage() {
  std::fprintf(stderr,
               "usage: relayctl dkim-keygen --domain D --selector S "
               "--algo rsa2048|rsa4096|ed25519 [--out FILE]\n");
  return 2;
}

int VerifyUsage() {
  std::fprintf(stderr, "usage: relayctl dkim-verify FILE [--dns-server IP[:PORT]]\n");
  return 2;
}

bool ValidDnsLabelText(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return s.front() != '.' && s.back() != '.';
}

// TXT lookup through libresolv. NotFound for NXDOMAIN / no TXT, Unavailable otherwise.
absl::StatusOr<std::string> LookupTxt(const std::string& name) {
  unsigned char answer[kDnsAnswerBytesMax];
  int len = res_query(name.c_str(), ns_c_in, ns_t_txt, answer, sizeof(answer));
  if (len < 0) {
    if (h_errno == HOST_NOT_FOUND || h_errno == NO_DATA) {
      return absl::NotFoundError("no TXT record at " + name);
    }
    return absl::UnavailableError("DNS lookup of " + name + " failed");
  }
  ns_msg msg;
  if (ns_initparse(answer, len, &msg) < 0) return absl::UnavailableError("bad DNS answer");
  int count = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0) return absl::UnavailableError("bad DNS answer");
    if (ns_rr_type(rr) != ns_t_txt) continue;
    // RFC 6376 §3.6.2.2: the strings of one TXT record are concatenated.
    std::string text;
    const unsigned char* p = ns_rr_rdata(rr);
    const unsigned char* end = p + ns_rr_rdlen(rr);
    while (p < end) {
      size_t n = *p++;
      if (static_cast<size_t>(end - p) < n) return absl::UnavailableError("bad TXT data");
      text.append(reinterpret_cast<const char*>(p), n);
      p += n;
    }
    return text;
  }
  return absl::NotFoundError("no TXT record at " + name);
}

// Points libresolv at one IPv4 server.
bool UseDnsServer(const std::string& spec) {
  std::string host = spec;
  int port = 53;
  if (size_t colon = spec.rfind(':'); colon != std::string::npos) {
    host = spec.substr(0, colon);
    port = std::atoi(spec.c_str() + colon + 1);
    if (port <= 0 || port > 65535) return false;
  }
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) != 1) return false;
  if (res_init() != 0) return false;
  _res.nscount = 1;
  _res.nsaddr_list[0].sin_family = AF_INET;
  _res.nsaddr_list[0].sin_addr = addr;
  _res.nsaddr_list[0].sin_port = htons(static_cast<uint16_t>(port));
  return true;
}

}  // namespace

namespace {

// The TXT record of `key` at S._domainkey.D: the value as one string (what DNS providers' web
// forms take; they split it themselves), then as a zone-file line in strings of at most 255 bytes
// (RFC 1035 §3.3.14), then those strings one per line.
void PrintRecord(const std::string& domain, const std::string& selector,
                 const dkim::PrivateKey& key) {
  std::string record = key.PublicKeyRecord();
  std::string name = selector + "._domainkey." + domain + ".";
  std::string quoted;
  for (const std::string& s : dkim::SplitTxtStrings(record)) {
    if (!quoted.empty()) quoted += " ";
    quoted += "\"" + s + "\"";
  }
  std::printf("%s IN TXT ( %s )\n", name.c_str(), quoted.c_str());
  std::printf("name: %s\n", name.c_str());
  std::printf("record: %s\n", record.c_str());
  for (const std::string& s : dkim::SplitTxtStrings(record)) {
    std::printf("value: %s\n", s.c_str());
  }
}

absl::StatusOr<dkim::PrivateKey> LoadKey(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read: ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return dkim::PrivateKey::FromFileContents(text.str());
}

int RecordUsage() {
  std::fprintf(stderr,
               "usage: relayctl dkim-record [--config PATH] [--domain D] [--selector S]\n"
               "       relayctl dkim-record KEYFILE --domain D --selector S\n");
  return 2;
}

}  // namespace

int DkimKeygenCommand(int argc, char** argv) {
  std::string domain, selector, algo, out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return KeygenUsage();
    std::string value = argv[++i];
    if (arg == "--domain") domain = value;
    else if (arg == "--selector") selector = value;
    else if (arg == "--algo") algo = value;
    else if (arg == "--out") out = value;
    else return KeygenUsage();
  }
  if (domain.empty() || selector.empty() || algo.empty()) return KeygenUsage();
  if (!ValidDnsLabelText(domain) || !ValidDnsLabelText(selector)) {
    std::fprintf(stderr, "relayctl: domain and selector must be DNS names\n");
    return 2;
  }
  absl::StatusOr<dkim::PrivateKey> key = absl::InvalidArgumentError("");
  if (algo == "rsa2048") {
    key = dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kRsaSha256, 2048);
  } else if (algo == "rsa4096") {
    key = dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kRsaSha256, 4096);
  } else if (algo == "ed25519") {
    key = dkim::PrivateKey::Generate(dkim::KeyAlgorithm::kEd25519Sha256, 0);
  } else {
    return KeygenUsage();
  }
  if (!key.ok()) {
    std::fprintf(stderr, "relayctl: %s\n", std::string(key.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::string> pem = key->ToPem();
  if (!pem.ok()) {
    std::fprintf(stderr, "relayctl: %s\n", std::string(pem.status().message()).c_str());
    return 1;
  }
  if (out.empty()) out = domain + "." + selector + ".pem";
  // O_EXCL: never replace a key that may already be published.
  int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "relayctl: cannot create %s: %s\n", out.c_str(), std::strerror(errno));
    return 1;
  }
  fchmod(fd, 0600);  // whatever the umask
  bool ok = write(fd, pem->data(), pem->size()) == static_cast<ssize_t>(pem->size());
  ok = (fsync(fd) == 0) && ok;
  ok = (close(fd) == 0) && ok;
  if (!ok) {
    std::fprintf(stderr, "relayctl: writing %s failed\n", out.c_str());
    unlink(out.c_str());
    return 1;
  }
  std::printf("private key: %s (mode 0600)\n", out.c_str());
  std::printf("publish this TXT record:\n");
  PrintRecord(domain, selector, *key);
  return 0;
}

int DkimRecordCommand(int argc, char** argv) {
  std::string config_path = std::string(kDefaultConfigDir) + "/relayd.toml";
  std::string key_path, domain, selector;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--domain" && i + 1 < argc) {
      domain = argv[++i];
    } else if (arg == "--selector" && i + 1 < argc) {
      selector = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && key_path.empty()) {
      key_path = arg;
    } else {
      return RecordUsage();
    }
  }
  std::vector<server::DkimKeyConfig> keys;
  if (!key_path.empty()) {
    if (domain.empty() || selector.empty()) return RecordUsage();
    keys.push_back({domain, selector, key_path});
  } else {
    absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
    if (!config.ok()) {
      std::fprintf(stderr, "relayctl: %s\n", std::string(config.status().message()).c_str());
      return 1;
    }
    for (const server::DkimKeyConfig& k : config->dkim_keys) {
      if ((domain.empty() || absl::EqualsIgnoreCase(k.domain, domain)) &&
          (selector.empty() || k.selector == selector)) {
        keys.push_back(k);
      }
    }
    if (keys.empty()) {
      std::fprintf(stderr, "relayctl: %s has no [[dkim.key]]%s%s%s%s\n", config_path.c_str(),
                   domain.empty() ? "" : " for ", domain.c_str(),
                   selector.empty() ? "" : " with selector ", selector.c_str());
      return 1;
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const server::DkimKeyConfig& k = keys[i];
    absl::StatusOr<dkim::PrivateKey> key = LoadKey(k.key_path);
    if (!key.ok()) {
      std::fprintf(stderr, "relayctl: %s: %s\n", k.key_path.c_str(),
                   std::string(key.status().message()).c_str());
      return 1;
    }
    if (i > 0) std::printf("\n");
    PrintRecord(k.domain, k.selector, *key);
  }
  return 0;
}

int DkimVerifyCommand(int argc, char** argv) {
  std::string path, dns_server;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--dns-server") {
      if (i + 1 >= argc) return VerifyUsage();
      dns_server = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && path.empty()) {
      path = arg;
    } else {
      return VerifyUsage();
    }
  }
  if (path.empty()) return VerifyUsage();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "relayctl: cannot open %s\n", path.c_str());
    return 1;
  }
  std::string raw;
  raw.resize(kMessageBytesMax + 1);
  in.read(raw.data(), raw.size());
  raw.resize(in.gcount());
  if (raw.size() > kMessageBytesMax) {
    std::fprintf(stderr, "relayctl: %s is larger than %zu bytes\n", path.c_str(),
                 kMessageBytesMax);
    return 1;
  }
  std::string message;
  if (raw.find('\r') == std::string::npos) {
    // A file saved with Unix line ends: the message travelled with CRLF.
    message.reserve(raw.size() + raw.size() / 32);
    for (char c : raw) {
      if (c == '\n') message.push_back('\r');
      message.push_back(c);
    }
  } else {
    message = std::move(raw);
  }
  if (!dns_server.empty() && !UseDnsServer(dns_server)) {
    std::fprintf(stderr, "relayctl: bad --dns-server %s (IPv4 address, optional :PORT)\n",
                 dns_server.c_str());
    return 2;
  }
  dkim::KeyLookup lookup = [](std::string_view selector,
                              std::string_view domain) -> absl::StatusOr<std::string> {
    std::string name = std::string(selector) + "._domainkey." + std::string(domain);
    if (!ValidDnsLabelText(name)) return absl::NotFoundError("invalid key name " + name);
    return LookupTxt(name);
  };
  std::vector<dkim::VerifyResult> results =
      dkim::VerifyMessage(message, lookup, static_cast<int64_t>(std::time(nullptr)));
  if (results.empty()) {
    std::printf("no DKIM-Signature\n");
    return 1;
  }
  bool all_pass = true;
  for (size_t i = 0; i < results.size(); ++i) {
    const dkim::VerifyResult& r = results[i];
    std::string status(dkim::VerifyStatusName(r.status));
    std::printf("signature %zu: d=%s s=%s a=%s: %s%s%s%s\n", i + 1, r.domain.c_str(),
                r.selector.c_str(), r.algorithm.c_str(), status.c_str(),
                r.reason.empty() ? "" : " (", r.reason.c_str(), r.reason.empty() ? "" : ")");
    all_pass &= r.status == dkim::VerifyStatus::kPass;
  }
  return all_pass ? 0 : 1;
}

}  // namespace relay::relayctl
