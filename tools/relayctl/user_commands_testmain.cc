// A stand-in for the relayctl main in tests: `user_commands_testmain SUBCOMMAND ARGS...`.
#include <cstring>
#include <iostream>

#include "tools/relayctl/user_commands.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const char* command = argv[1];
  if (strcmp(command, "user-add") == 0) return relay::relayctl::UserAddCommand(argc - 1, argv + 1);
  if (strcmp(command, "user-del") == 0) return relay::relayctl::UserDelCommand(argc - 1, argv + 1);
  if (strcmp(command, "user-list") == 0)
    return relay::relayctl::UserListCommand(argc - 1, argv + 1);
  if (strcmp(command, "authenticate") == 0) {
    return relay::relayctl::AuthenticateCommand(argc - 1, argv + 1);
  }
  std::cerr << "unknown command " << command << "\n";
  return 2;
}
