// dkim_sign_tool: signs a message file with the relay's signer and prints the signed message, or
// prints the public key record of a key file. Used by the interoperability tests.
//
//   dkim_sign_tool --key DOMAIN:SELECTOR:KEYFILE [--key ...] [--canon relaxed|simple]
//                  [--time UNIX_SECONDS] [--crlf] MESSAGE_FILE
//   dkim_sign_tool --record KEYFILE
//
// --crlf converts LF line ends of the input to CRLF first (test messages are kept with LF).
// Exit status: 0 signed (or record printed), 1 refused or unsigned, 2 usage or key error.
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "dkim/key.h"
#include "dkim/signer.h"

namespace {

int Usage() {
  std::cerr << "usage: dkim_sign_tool --key DOMAIN:SELECTOR:KEYFILE [--key ...] "
               "[--canon relaxed|simple] [--time UNIX_SECONDS] [--crlf] MESSAGE_FILE\n"
               "       dkim_sign_tool --record KEYFILE\n";
  return 2;
}

bool ReadAll(const std::string& path, std::string* out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  std::fclose(f);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  dkim::SignerConfig config;
  std::string message_path;
  bool crlf = false;
  int64_t now = std::time(nullptr);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--record") {
      absl::StatusOr<dkim::PrivateKey> key = dkim::PrivateKey::FromFile(next());
      if (!key.ok()) {
        std::cerr << key.status() << "\n";
        return 2;
      }
      std::cout << key->PublicKeyRecord() << "\n";
      return 0;
    } else if (arg == "--key") {
      std::string spec = next();
      size_t a = spec.find(':'), b = spec.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) return Usage();
      dkim::SigningKeyConfig key;
      key.domain = spec.substr(0, a);
      key.selector = spec.substr(a + 1, b - a - 1);
      key.key_path = spec.substr(b + 1);
      config.keys.push_back(key);
    } else if (arg == "--canon") {
      std::string c = next();
      if (c != "relaxed" && c != "simple") return Usage();
      config.header_canonicalization = config.body_canonicalization =
          c == "simple" ? dkim::Canonicalization::kSimple : dkim::Canonicalization::kRelaxed;
    } else if (arg == "--time") {
      now = std::atoll(next().c_str());
    } else if (arg == "--crlf") {
      crlf = true;
    } else if (!arg.empty() && arg[0] != '-' && message_path.empty()) {
      message_path = arg;
    } else {
      return Usage();
    }
  }
  if (message_path.empty() || config.keys.empty()) return Usage();
  absl::StatusOr<std::unique_ptr<dkim::Signer>> signer = dkim::Signer::Create(config);
  if (!signer.ok()) {
    std::cerr << signer.status() << "\n";
    return 2;
  }
  std::string raw, message;
  if (!ReadAll(message_path, &raw)) {
    std::cerr << "cannot read " << message_path << "\n";
    return 2;
  }
  if (crlf) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) message.push_back('\r');
      message.push_back(raw[i]);
    }
  } else {
    message = std::move(raw);
  }
  dkim::SigningSession session = (*signer)->Begin();
  session.Update(message);
  absl::StatusOr<std::string> sigs = session.Finish(now);
  if (!sigs.ok()) {
    std::cerr << "refused: " << sigs.status() << "\n";
    return 1;
  }
  if (sigs->empty()) {
    std::cerr << "unsigned: " << session.report().unsigned_reason << "\n";
    return 1;
  }
  std::cout << *sigs << message;
  return 0;
}
