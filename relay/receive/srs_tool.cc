// srs_tool forward|reverse SECRETS_FILE DOMAIN ADDRESS: prints the rewritten address, or the
// error and exit status 1. The secrets file holds one secret per line, the first one signing,
// as postsrsd's does. The time is the current time.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>

#include "relay/receive/srs.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: srs_tool forward|reverse SECRETS_FILE DOMAIN ADDRESS\n");
    return 2;
  }
  relay::receive::SrsConfig config;
  config.domain = argv[3];
  std::ifstream in(argv[2]);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) config.secrets.push_back(line);
  }
  auto srs = relay::receive::Srs::Create(config);
  if (!srs.ok()) {
    fprintf(stderr, "%s\n", srs.status().ToString().c_str());
    return 2;
  }
  const std::string mode = argv[1];
  const int64_t now_s = time(nullptr);
  absl::StatusOr<std::string> out =
      mode == "forward" ? (*srs)->Forward(argv[4], now_s) : (*srs)->Reverse(argv[4], now_s);
  if (!out.ok()) {
    printf("error %s\n", out.status().ToString().c_str());
    return 1;
  }
  printf("%s\n", out->c_str());
  return 0;
}
