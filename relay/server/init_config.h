// A new configuration directory for relayd: the one `relayd --init` and `relayctl init` both
// write. It holds relayd.toml, made from one commented template that names every limit with its
// default; a self-signed certificate in tls/ so that TLS works from the first start; one DKIM key
// per algorithm asked for in keys/ (by default RSA-2048 and Ed25519: dual signing, RFC 8463);
// and, when asked, a first user whose password is returned to be shown once.
//
// Nothing is overwritten. A directory that already holds relayd.toml is refused, and with
// `refuse_earlier_init` so is one holding anything an init writes (keys/, tls/, users,
// srs.secret: an earlier init, finished or not), while other files (the Debian package's
// relayd.toml.example, an operator's .git) are left as they are; every file is created with
// O_EXCL, so a key or certificate an operator left there stays. relayd.toml is written last and
// then loaded the way relayd loads it: a directory with a relayd.toml is a finished init whose
// config loads.
// Private keys and the users file have mode 0600.
//
// Blocking file I/O on the calling thread; no state kept between calls.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dkim/key.h"
#include "relay/delivery/egress.h"

namespace relay::server {

// RFC 8301 §3.2: at least 1024 bits, 2048 recommended; 2048 also fits one DNS TXT record
// comfortably (two 255-byte strings).
inline constexpr unsigned kInitRsaBits = 2048;

// The local part of the address the DMARC record init prints sends reports to
// (rua=mailto:dmarc-reports@<domain>); init's aliases file names it.
inline constexpr char kDmarcReportsLocalPart[] = "dmarc-reports";

struct InitOptions {
  std::string domain = "example.com";  // the mail domain: DKIM d=, the first user's addresses
  std::string hostname = "localhost";  // greeting, Received, EHLO, the certificate's name
  std::vector<std::string> submission_listen = {"127.0.0.1:2587"};   // STARTTLS, then AUTH
  std::vector<std::string> submissions_listen = {"127.0.0.1:2465"};  // implicit TLS
  std::string metrics_listen = "127.0.0.1:9587";                     // "" turns the endpoint off
  std::vector<delivery::EgressSourceConfig> sources;                 // empty: the kernel chooses
  // Relative paths are relative to the directory.
  std::string spool_dir = "spool";
  std::string log_dir = "log";
  std::string control_socket = "control.sock";
  // One key per entry, selector "rsa<year>" or "ed<year>"; empty: no key, mail leaves unsigned.
  std::vector<dkim::KeyAlgorithm> dkim_algorithms = {dkim::KeyAlgorithm::kRsaSha256,
                                                     dkim::KeyAlgorithm::kEd25519Sha256};
  int year = 0;               // of the selectors; 0: the current year (UTC)
  std::string first_user;     // "": none; else a user who may send as any address @domain
  bool refuse_earlier_init = false;  // refuse a directory with keys/, tls/, users or srs.secret
  mode_t dir_mode = 0700;     // of the directory and of keys/ and tls/
};

// A DKIM key written by InitDirectory, with the record that publishes its public half.
struct InitKey {
  dkim::KeyAlgorithm algorithm = dkim::KeyAlgorithm::kRsaSha256;
  std::string selector;  // "rsa2025"
  std::string path;      // relative to the directory: "keys/<domain>.<selector>.pem"
  std::string owner;     // "<selector>._domainkey.<domain>", where the TXT record goes
  std::string record;    // "v=DKIM1; k=rsa; p=...", the TXT record's text (RFC 6376 §3.6.1)
};

struct InitResult {
  std::string config_path;  // <dir>/relayd.toml
  std::vector<InitKey> keys;
  std::string password;  // the first user's; "" without one
};

// The relayd.toml that InitDirectory writes for `options`, with a [[dkim.key]] entry for each of
// `keys` (without keys, a commented example). Pure computation.
std::string InitConfigText(const InitOptions& options, const std::vector<InitKey>& keys);

// Writes the directory `dir` (its missing parents are created). A refusal to touch an existing
// directory is kAlreadyExists; other errors name the file.
absl::StatusOr<InitResult> InitDirectory(const std::string& dir, const InitOptions& options);

}  // namespace relay::server
