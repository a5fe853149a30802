// relayctl's user commands, as library code the relayctl main dispatches to. They edit the users
// file DIR/users (see relay/server/users.h for its format) the way chasquid-util does:
//
//   relayctl user-add USER [--allow ADDR|@DOMAIN ...] [--scrypt-log2-n N] [--config-dir DIR]
//   relayctl user-del USER [--config-dir DIR]
//   relayctl user-list [--config-dir DIR]
//   relayctl authenticate USER [--config-dir DIR]
//
// --scrypt-log2-n sets the scrypt cost N = 2^n of the new hash (default 15, see users.h); the
// parameters are stored with the hash, so raising it later affects only new passwords.
// A password is never taken from the command line (it would show in ps and shell history): it is
// read from a prompt with echo off when stdin is a terminal (user-add asks twice), otherwise as
// one line from stdin. Changes are saved atomically under an flock on DIR/users.lock, so two
// concurrent edits do not lose one another; the running relay picks them up on SIGHUP or when it
// sees the file change.
//
// Each function takes the subcommand's argv (argv[0] is the subcommand name) and returns the
// process exit code: 0 success, 1 failure (wrong password, no such user, I/O error), 2 usage.
// Messages go to stderr, listings to stdout. Main thread only (they may change terminal modes).
#pragma once

#include <optional>
#include <string>

namespace relay::relayctl {

// The configuration directory when --config-dir is not given.
inline constexpr char kDefaultConfigDir[] = "/etc/relay";

int UserAddCommand(int argc, char** argv);
int UserDelCommand(int argc, char** argv);
int UserListCommand(int argc, char** argv);
int AuthenticateCommand(int argc, char** argv);

// A password as described above: from a prompt with echo off (asked twice when `confirm`) when
// stdin is a terminal, else one line of stdin. nullopt (after saying why on stderr) when none.
std::optional<std::string> ReadPassword(bool confirm);

}  // namespace relay::relayctl
