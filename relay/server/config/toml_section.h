// The one reader of relayd.toml's tables. Every setting is read through a Section, so every
// error has one form,
//
//   FILE:LINE:COLUMN: SECTION.KEY: PROBLEM      e.g. relayd.toml:14:1: limits.recipients_max:
//                                                    must be between 1 and 100000 (got 0)
//
// and toml++ stays inside //relay/server/config: the modules get plain structs.
//
// A Section is a view of one table of a parsed document (it does not own it); "" names the root.
// Reading a key that is absent leaves the output as it was (the struct's default). Not
// thread-safe; used only while a configuration is loaded.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace relay::server::config {

class Section {
 public:
  // `file` names the document in errors; `name` is the dotted path of `table` ("" for the root,
  // "limits", "shaping[2]").
  Section(std::string file, std::string name, const toml::table& table);

  const std::string& file() const { return file_; }
  const std::string& name() const { return name_; }
  bool Has(std::string_view key) const { return Get(key) != nullptr; }

  // Refuses any key not in `known` ("unknown key"); the first in key order is named.
  absl::Status Known(std::initializer_list<std::string_view> known) const;

  // An integer within [min, max].
  template <typename T>
  absl::Status Int(std::string_view key, T* out, int64_t min, int64_t max) const {
    std::optional<int64_t> v;
    if (absl::Status s = ReadInt(key, min, max, &v); !s.ok() || !v) return s;
    *out = static_cast<T>(*v);
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Int(std::string_view key, std::optional<T>* out, int64_t min, int64_t max) const {
    std::optional<int64_t> v;
    if (absl::Status s = ReadInt(key, min, max, &v); !s.ok() || !v) return s;
    *out = static_cast<T>(*v);
    return absl::OkStatus();
  }
  // A non-empty list of integers within [min, max], each at least the one before when
  // `non_decreasing`.
  absl::Status IntList(std::string_view key, std::vector<int64_t>* out, int64_t min, int64_t max,
                       bool non_decreasing) const;
  // A number (an integer is taken too) in [min, max_exclusive).
  absl::Status Fraction(std::string_view key, double* out, double min, double max_exclusive) const;
  absl::Status String(std::string_view key, std::string* out) const;
  absl::Status NonEmptyString(std::string_view key, std::string* out) const;
  absl::Status Bool(std::string_view key, bool* out) const;
  absl::Status Bool(std::string_view key, std::optional<bool>* out) const;
  absl::Status StringList(std::string_view key, std::vector<std::string>* out) const;
  // One of `names`, stored as its value.
  template <typename E>
  absl::Status Enum(std::string_view key, E* out,
                    std::initializer_list<std::pair<std::string_view, E>> names) const {
    if (!Has(key)) return absl::OkStatus();
    std::string got;
    if (absl::Status s = String(key, &got); !s.ok()) return s;
    std::string choices;
    for (const auto& [name, value] : names) {
      if (got == name) {
        *out = value;
        return absl::OkStatus();
      }
      absl::StrAppend(&choices, choices.empty() ? "" : ", ", "\"", std::string(name), "\"");
    }
    return Error(key, absl::StrCat("must be one of ", choices, " (got \"", got, "\")"));
  }

  // [NAME.key]: the sub-table, or nullopt when absent; an error when `key` is not a table.
  absl::StatusOr<std::optional<Section>> Table(std::string_view key) const;
  // [[NAME.key]]: the entries, named "NAME.key[i]"; empty when absent.
  absl::StatusOr<std::vector<Section>> Tables(std::string_view key) const;
  // The keys of this table, in toml++'s order (sorted).
  std::vector<std::string> Keys() const;

  // An error at `key` (at the table when the key is absent): "FILE:L:C: NAME.key: problem".
  absl::Status Error(std::string_view key, std::string_view problem) const;
  // An error at item `index` of the list `key`.
  absl::Status ItemError(std::string_view key, size_t index, std::string_view problem) const;
  // An error about the table itself: "FILE:L:C: NAME: problem".
  absl::Status TableError(std::string_view problem) const;

 private:
  const toml::node* Get(std::string_view key) const;
  std::string Where(const toml::node& node) const;
  std::string Dotted(std::string_view key) const;
  absl::Status ReadInt(std::string_view key, int64_t min, int64_t max,
                       std::optional<int64_t>* out) const;

  std::string file_;
  std::string name_;
  const toml::table* table_;
};

// Parses `text` as TOML; a syntax error reads "FILE:L:C: problem".
absl::StatusOr<toml::table> ParseDocument(std::string_view text, const std::string& file);
// Reads and parses the file at `path`.
absl::StatusOr<toml::table> ParseFile(const std::string& path);

}  // namespace relay::server::config
