// Test driver for the DKIM commands: "dkim_commands_testmain dkim-keygen ..." or
// "... dkim-verify ...", as relayctl dispatches them.
#include <cstdio>
#include <cstring>

#include "tools/relayctl/dkim_commands.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "dkim-keygen") == 0) {
    return relay::relayctl::DkimKeygenCommand(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "dkim-verify") == 0) {
    return relay::relayctl::DkimVerifyCommand(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "dkim-record") == 0) {
    return relay::relayctl::DkimRecordCommand(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "usage: dkim_commands_testmain dkim-keygen|dkim-verify|dkim-record ...\n");
  return 2;
}
