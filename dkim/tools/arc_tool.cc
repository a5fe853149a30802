// arc_tool: seals a message with an ARC set or validates its chain, with keys from files instead
// of DNS. Used by the ARC interoperability test.
//
//   arc_tool seal --key DOMAIN:SELECTOR:KEYFILE --keys RECORDS --ar PAYLOAD --time T MESSAGE
//   arc_tool validate --keys RECORDS --time T MESSAGE
//   arc_tool record KEYFILE
//
// RECORDS holds "selector domain record..." lines: the key records validation may ask for.
// seal validates the chain first (its cv= comes from that) and prints the sealed message;
// validate prints "pass", "none" or "fail: reason". MESSAGE has CRLF line ends.
// Exit status: 0 done (validate: pass or none), 1 refused or failed, 2 usage or file error.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "dkim/arc.h"
#include "dkim/key.h"

namespace {

int Usage() {
  std::cerr << "usage: arc_tool seal --key DOMAIN:SELECTOR:KEYFILE --keys RECORDS --ar PAYLOAD "
               "--time T MESSAGE\n"
               "       arc_tool validate --keys RECORDS --time T MESSAGE\n"
               "       arc_tool record KEYFILE\n";
  return 2;
}

bool ReadAll(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string mode = argv[1];
  if (mode == "record") {
    std::string contents;
    if (!ReadAll(argv[2], &contents)) return Usage();
    auto key = dkim::PrivateKey::FromFileContents(contents);
    if (!key.ok()) {
      std::cerr << key.status() << "\n";
      return 2;
    }
    std::cout << key->PublicKeyRecord() << "\n";
    return 0;
  }
  std::string key_spec, records_path, payload, message_path;
  int64_t now_s = 0;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--key" && i + 1 < argc)
      key_spec = argv[++i];
    else if (a == "--keys" && i + 1 < argc)
      records_path = argv[++i];
    else if (a == "--ar" && i + 1 < argc)
      payload = argv[++i];
    else if (a == "--time" && i + 1 < argc)
      now_s = std::atoll(argv[++i]);
    else if (message_path.empty())
      message_path = a;
    else
      return Usage();
  }
  std::string message;
  if (message_path.empty() || !ReadAll(message_path, &message)) return Usage();
  std::map<std::pair<std::string, std::string>, std::string> records;
  if (!records_path.empty()) {
    std::ifstream in(records_path);
    for (std::string line; std::getline(in, line);) {
      std::istringstream ls(line);
      std::string selector, domain, record;
      ls >> selector >> domain;
      std::getline(ls, record);
      records[{selector, domain}] = record;
    }
  }
  dkim::KeyLookup lookup = [&records](std::string_view s,
                                      std::string_view d) -> absl::StatusOr<std::string> {
    auto it = records.find({std::string(s), std::string(d)});
    if (it == records.end()) return absl::NotFoundError("no such key");
    return it->second;
  };
  dkim::ArcValidation chain = dkim::ValidateArcChain(message, lookup, now_s);
  if (mode == "validate") {
    std::cout << dkim::ArcChainStatusName(chain.status)
              << (chain.reason.empty() ? "" : ": " + chain.reason) << "\n";
    return chain.status == dkim::ArcChainStatus::kFail ? 1 : 0;
  }
  if (mode != "seal") return Usage();
  size_t c1 = key_spec.find(':');
  size_t c2 = c1 == std::string::npos ? c1 : key_spec.find(':', c1 + 1);
  if (c2 == std::string::npos) return Usage();
  dkim::ArcSealerConfig config;
  config.domain = key_spec.substr(0, c1);
  config.selector = key_spec.substr(c1 + 1, c2 - c1 - 1);
  config.key_path = key_spec.substr(c2 + 1);
  auto sealer = dkim::ArcSealer::Create(config);
  if (!sealer.ok()) {
    std::cerr << sealer.status() << "\n";
    return 2;
  }
  absl::StatusOr<std::string> set = (*sealer)->Seal(message, payload, chain, now_s);
  if (!set.ok()) {
    std::cerr << set.status() << "\n";
    return 1;
  }
  std::cout << *set << message;
  return 0;
}
