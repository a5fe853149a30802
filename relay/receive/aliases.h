// Aliases: where mail for the relay's own domains goes. One file per local domain in the format
// chasquid's operators know:
//
//   # comment
//   postmaster: admin
//   admin: someone@gmail.example, other@example.org
//   *: me@gmail.example            # catch-all: any local part without its own line
//
// A target without '@' is a local part of the same domain; a target in a local domain is expanded
// again (recursively), anything else is an external address and ends the expansion. Local parts
// are compared case-insensitively, and a suffix after a separator ('+' by default, chasquid's
// suffix_separators) is dropped when the full local part has no line of its own.
//
// This relay stores no mailboxes, so every local address must end at external targets. Load()
// checks that for every line and for the catch-all of every domain, and refuses the set with
// "file:line: problem" when an expansion loops, goes deeper than depth_max, or ends at a local
// user with no line and no catch-all. After a successful Load(), Expand() cannot fail for a local
// domain: it gives the targets or says the user is unknown (550 5.1.1 at RCPT time).
//
// An Aliases is immutable once built and may be shared read-only by every shard (SIGHUP builds a
// new one and swaps the pointer; see AliasesHolder).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace relay::receive {

struct AliasesOptions {
  // Nesting of aliases pointing at aliases; deeper is a config error (a loop usually).
  uint32_t depth_max = 10;
  // Characters that start a suffix to drop ("user+tag" -> "user"); "" disables it.
  std::string suffix_separators = "+";
  // External targets of one address after expansion and de-duplication.
  uint32_t targets_max = 100;
};

// One local domain and the text of its aliases file. `source` names the file in errors.
struct AliasesFile {
  std::string domain;
  std::string source;
  std::string text;
};

enum class ExpandStatus {
  kNotLocal,     // the domain is not one of ours
  kUnknownUser,  // local domain, no line and no catch-all: 550 5.1.1
  kExpanded,     // `targets` holds the external addresses
};

struct Expansion {
  ExpandStatus status = ExpandStatus::kNotLocal;
  std::vector<std::string> targets;  // external addresses, de-duplicated, in file order
};

class Aliases {
 public:
  // Parses and checks every file (see the contract above). Domains are case-insensitive; a
  // domain given twice is an error.
  static absl::StatusOr<Aliases> Build(const std::vector<AliasesFile>& files,
                                       const AliasesOptions& options);
  // Reads `path` for each (domain, path) pair, then Build().
  static absl::StatusOr<Aliases> Load(
      const std::vector<std::pair<std::string, std::string>>& domain_files,
      const AliasesOptions& options);

  bool IsLocalDomain(std::string_view domain) const;
  Expansion Expand(std::string_view address) const;
  size_t domain_count() const { return domains_.size(); }

 private:
  struct Entry {
    std::vector<std::string> targets;  // as written, each a full address (domain added)
    std::string source;                // "file:line" for errors
    // Filled by Build: the external addresses the line expands to, and how many lines deep its
    // expansion goes. Each line is expanded once and the lines that name it reuse the result.
    std::vector<std::string> expansion;
    uint32_t height = 0;
    enum class State { kNew, kExpanding, kExpanded } state = State::kNew;
  };
  struct Domain {
    absl::flat_hash_map<std::string, Entry> entries;  // lower-case local part -> entry
    const Entry* catch_all() const;
  };

  // Finds the entry for a local address (exact, then without suffix, then catch-all).
  const Entry* Lookup(const Domain& domain, std::string_view local) const;
  // Fills entry->expansion (see Entry), depth first. `path` holds the lines on the way down, for
  // the messages; `via` names this one.
  absl::Status ExpandEntry(Entry* entry, std::string via, std::vector<std::string>* path);

  AliasesOptions options_;
  absl::flat_hash_map<std::string, Domain> domains_;  // lower-case domain -> its aliases
};

// The current Aliases, replaced as a whole on reload. Any thread.
class AliasesHolder {
 public:
  explicit AliasesHolder(std::shared_ptr<const Aliases> aliases) : aliases_(std::move(aliases)) {}
  std::shared_ptr<const Aliases> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return aliases_;
  }
  void Set(std::shared_ptr<const Aliases> aliases) {
    std::lock_guard<std::mutex> lock(mu_);
    aliases_ = std::move(aliases);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Aliases> aliases_;
};

// Splits "local@domain" at the last '@'. False when there is none or either side is empty.
bool SplitAddress(std::string_view address, std::string_view* local, std::string_view* domain);

}  // namespace relay::receive
