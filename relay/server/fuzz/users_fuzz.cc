// Fuzz target for the users file (relay/server/users.h): an operator's file, edited by hand and
// by relayctl, read by relayd at start and on SIGHUP. The input is the file. Checks: a file that
// loads lists each user once, under its normalized name, findable by it; saved and loaded again
// it holds the same users with the same hashes and senders, and saving that copy writes the
// same bytes (comments and blank lines survive). A file that does not load names itself and a
// line. Passwords are never verified here: scrypt costs what the file's parameters say.
#include <string>
#include <string_view>

#include "relay/server/users.h"
#include "tools/fuzz/fuzz.h"

namespace relay::server {
namespace {

void CheckSame(const UserDb& a, const UserDb& b) {
  FUZZ_CHECK(a.List() == b.List());
  for (const std::string& name : a.List()) {
    const User* x = a.Find(name);
    const User* y = b.Find(name);
    FUZZ_CHECK(x != nullptr && y != nullptr);
    FUZZ_CHECK(x->name == y->name && x->password_hash == y->password_hash &&
               x->may_send_as == y->may_send_as);
  }
}

void FuzzUsers(std::string_view input) {
  const std::string path = relay::fuzz::ScratchDirectory() + "/users";
  relay::fuzz::WriteFile(path, input);
  absl::StatusOr<std::shared_ptr<UserDb>> db = UserDb::Load(path);
  if (!db.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(db.status()));
    FUZZ_CHECK(std::string(db.status().message()).find(path + " line ") != std::string::npos);
    return;
  }
  const std::vector<std::string> names = (*db)->List();
  FUZZ_CHECK(names.size() == (*db)->size());
  for (const std::string& name : names) {
    FUZZ_CHECK(NormalizeUserName(name) == name);
    const User* user = (*db)->Find(name);
    FUZZ_CHECK(user != nullptr && user->name == name);
    FUZZ_CHECK(ValidatePasswordHash(user->password_hash).ok());
    for (const std::string& sender : user->may_send_as) (void)(*db)->MaySendAs(name, sender);
  }
  FUZZ_CHECK((*db)->Save().ok());
  const std::string saved = relay::fuzz::ReadFile(path);
  absl::StatusOr<std::shared_ptr<UserDb>> again = UserDb::Load(path);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  CheckSame(**db, **again);
  FUZZ_CHECK((*again)->Save().ok());
  FUZZ_CHECK(relay::fuzz::ReadFile(path) == saved);
}

constexpr char kHash[] =
    "$scrypt$ln=10,r=8,p=1$Fb8TryE4J4BukYccfvA5zw==$Msw5ymkhU70MShl7IphPIBi/QZZCteqBZQVkdTCmoP8=";

// Many users, each with a sender list.
std::string ManyUsers(size_t bytes) {
  std::string out = "# users\n";
  for (size_t i = 0; out.size() < bytes; ++i) {
    out += "user" + std::to_string(i) + "@example.com " + kHash + " @example.com,a@b.example\n";
  }
  return out;
}

// Many comment and blank lines, kept through a save.
std::string ManyComments(size_t bytes) {
  return relay::fuzz::Repeat(std::string("a@b.example ") + kHash + "\n", "#\n\n", "", bytes);
}

}  // namespace
}  // namespace relay::server

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "users_file",
      .run = relay::server::FuzzUsers,
      // Two databases at once (the loaded one and its reload): a line object of ~70 bytes for as
      // little as one byte ("\n"), twice that while the vector grows, the users' strings.
      .bounds = {.heap_peak_bytes = {64 << 10, 400},
                 .heap_allocated_bytes = {256 << 10, 1000},
                 .allocations = {1024, 8}},
      .init = [] { (void)relay::fuzz::ScratchDirectory(); },
      .scaled = {{.name = "many users", .make = relay::server::ManyUsers},
                 {.name = "many comment lines", .make = relay::server::ManyComments}},
  };
  return target;
}
