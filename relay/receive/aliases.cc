#include "relay/receive/aliases.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "relay/base/check.h"
#include "relay/base/status_macros.h"

namespace relay::receive {
namespace {

constexpr char kCatchAll[] = "*";

// Debian's abseil keeps absl::string_view distinct from std::string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view S(absl::string_view s) { return std::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) {
  std::string out(s);
  absl::AsciiStrToLower(&out);
  return out;
}

bool ValidLocalPart(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c <= ' ' || c == 0x7f || c == '@' || c == ',' || c == ':' || c == '<' || c == '>') {
      return false;
    }
  }
  return true;
}

bool ValidDomain(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
          static_cast<unsigned char>(c) >= 0x80)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool SplitAddress(std::string_view address, std::string_view* local, std::string_view* domain) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return false;
  *local = address.substr(0, at);
  *domain = address.substr(at + 1);
  return true;
}

const Aliases::Entry* Aliases::Domain::catch_all() const {
  auto it = entries.find(kCatchAll);
  return it == entries.end() ? nullptr : &it->second;
}

absl::StatusOr<Aliases> Aliases::Build(const std::vector<AliasesFile>& files,
                                       const AliasesOptions& options) {
  Aliases aliases;
  aliases.options_ = options;
  for (const AliasesFile& file : files) {
    std::string domain = Lower(file.domain);
    if (!ValidDomain(domain)) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source, ": not a domain name: \"", file.domain, "\""));
    }
    auto [it, inserted] = aliases.domains_.try_emplace(domain);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.source, ": domain ", domain, " is given aliases twice"));
    }
    Domain& d = it->second;
    int line_number = 0;
    for (absl::string_view raw : absl::StrSplit(file.text, '\n')) {
      ++line_number;
      std::string where = absl::StrCat(file.source, ":", line_number);
      absl::string_view line = absl::StripSuffix(raw, "\r");
      // A comment starts with '#' at the beginning of a line or after blank space.
      for (size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
          line = line.substr(0, i);
          break;
        }
      }
      line = absl::StripAsciiWhitespace(line);
      if (line.empty()) continue;
      size_t colon = line.find(':');
      if (colon == absl::string_view::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": expected \"user: target, target\""));
      }
      absl::string_view user = absl::StripAsciiWhitespace(line.substr(0, colon));
      absl::string_view rest = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (user.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": no user before ':'"));
      if (user.find('@') != absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": \"", user, "\": a user is a local part only (the file is for ", domain,
            ")"));
      }
      if (user != kCatchAll && !ValidLocalPart(S(user))) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": invalid user \"", user, "\""));
      }
      if (!rest.empty() && rest.front() == '|') {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": pipe aliases are not supported (this relay only forwards)"));
      }
      std::string key = Lower(S(user));
      if (auto prev = d.entries.find(key); prev != d.entries.end()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": user \"", user,
                                                       "\" already has a line at ",
                                                       prev->second.source));
      }
      Entry entry;
      entry.source = where;
      for (absl::string_view t : absl::StrSplit(rest, ',')) {
        t = absl::StripAsciiWhitespace(t);
        if (t.empty()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": empty target"));
        }
        std::string target;
        std::string_view t_local, t_domain;
        if (t.find('@') == absl::string_view::npos) {
          if (!ValidLocalPart(S(t))) {
            return absl::InvalidArgumentError(
                absl::StrCat(where, ": invalid target \"", t, "\""));
          }
          target = absl::StrCat(t, "@", domain);
        } else if (SplitAddress(S(t), &t_local, &t_domain) && ValidLocalPart(t_local) &&
                   ValidDomain(t_domain)) {
          target = absl::StrCat(A(t_local), "@", Lower(t_domain));
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": invalid target address \"", t, "\""));
        }
        entry.targets.push_back(std::move(target));
      }
      d.entries.emplace(std::move(key), std::move(entry));
    }
  }
  // Every line and every catch-all must end at external addresses. Each line is expanded once:
  // walking every path instead cost fan-out^depth_max for lists of lists (four lines naming four
  // on each of ten levels, a 1.3 KB file, took seconds to check, and again at every RCPT).
  for (auto& [domain, d] : aliases.domains_) {
    for (auto& [user, entry] : d.entries) {
      std::vector<std::string> path;
      absl::Status s = aliases.ExpandEntry(
          &entry, absl::StrCat(entry.source, " (", user, "@", domain, ")"), &path);
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(entry.source, ": ", s.message()));
      }
    }
  }
  return aliases;
}

absl::StatusOr<Aliases> Aliases::Load(
    const std::vector<std::pair<std::string, std::string>>& domain_files,
    const AliasesOptions& options) {
  std::vector<AliasesFile> files;
  for (const auto& [domain, path] : domain_files) {
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat(path, ": cannot read the aliases file of domain ", domain));
    }
    std::stringstream text;
    text << in.rdbuf();
    files.push_back(AliasesFile{domain, path, text.str()});
  }
  return Build(files, options);
}

bool Aliases::IsLocalDomain(std::string_view domain) const {
  return domains_.contains(Lower(domain));
}

const Aliases::Entry* Aliases::Lookup(const Domain& domain, std::string_view local) const {
  std::string key = Lower(local);
  if (auto it = domain.entries.find(key); it != domain.entries.end()) return &it->second;
  if (!options_.suffix_separators.empty()) {
    size_t cut = key.find_first_of(options_.suffix_separators);
    if (cut != std::string::npos && cut > 0) {
      key.resize(cut);
      if (auto it = domain.entries.find(key); it != domain.entries.end()) return &it->second;
    }
  }
  return domain.catch_all();
}

absl::Status Aliases::ExpandEntry(Entry* entry, std::string via, std::vector<std::string>* path) {
  if (entry->state == Entry::State::kExpanded) return absl::OkStatus();
  // A loop is a line reached again on the way down.
  if (entry->state == Entry::State::kExpanding) {
    return absl::InvalidArgumentError(
        absl::StrCat("alias loop: ", absl::StrJoin(*path, " -> "), " -> ", via));
  }
  entry->state = Entry::State::kExpanding;
  path->push_back(std::move(via));
  absl::flat_hash_set<std::string> seen;
  auto add = [&](const std::string& address) -> absl::Status {
    if (!seen.insert(address).second) return absl::OkStatus();
    if (entry->expansion.size() >= options_.targets_max) {
      return absl::InvalidArgumentError(
          absl::StrCat(path->front(), " expands to more than ", options_.targets_max, " targets"));
    }
    entry->expansion.push_back(address);
    return absl::OkStatus();
  };
  for (const std::string& target : entry->targets) {
    std::string_view local, domain_name;
    if (!SplitAddress(target, &local, &domain_name)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid address ", target));
    }
    auto d = domains_.find(Lower(domain_name));
    if (d == domains_.end()) {
      RETURN_IF_ERROR(add(target));
      continue;
    }
    // Lookup is const; the entry is this object's own, being filled.
    Entry* next = const_cast<Entry*>(Lookup(d->second, local));
    if (next == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("target ", target,
                       " is a local address with no alias and no catch-all (this relay "
                       "stores no mailboxes)"));
    }
    RETURN_IF_ERROR(ExpandEntry(next, absl::StrCat(next->source, " (", target, ")"), path));
    entry->height = std::max(entry->height, next->height + 1);
    if (entry->height > options_.depth_max) {
      return absl::InvalidArgumentError(absl::StrCat("aliases nested deeper than depth_max ",
                                                     options_.depth_max, ": ",
                                                     absl::StrJoin(*path, " -> ")));
    }
    for (const std::string& address : next->expansion) RETURN_IF_ERROR(add(address));
  }
  path->pop_back();
  entry->state = Entry::State::kExpanded;
  return absl::OkStatus();
}

Expansion Aliases::Expand(std::string_view address) const {
  Expansion result;
  std::string_view local, domain_name;
  if (!SplitAddress(address, &local, &domain_name)) return result;
  auto d = domains_.find(Lower(domain_name));
  if (d == domains_.end()) return result;
  const Entry* entry = Lookup(d->second, local);
  if (entry == nullptr) {
    result.status = ExpandStatus::kUnknownUser;
    return result;
  }
  // Build() expanded every line; one that is not means that check is broken.
  EXPECT_OR_COUNT(entry->state == Entry::State::kExpanded);
  if (entry->state != Entry::State::kExpanded) {
    result.status = ExpandStatus::kUnknownUser;
    return result;
  }
  result.targets = entry->expansion;
  result.status = ExpandStatus::kExpanded;
  return result;
}

}  // namespace relay::receive
