#include "relay/server/config/toml_section.h"

#include <fstream>
#include <sstream>

namespace relay::server::config {

Section::Section(std::string file, std::string name, const toml::table& table)
    : file_(std::move(file)), name_(std::move(name)), table_(&table) {}

const toml::node* Section::Get(std::string_view key) const { return table_->get(key); }

std::string Section::Where(const toml::node& node) const {
  const toml::source_position& at = node.source().begin;
  return absl::StrCat(file_, ":", at.line, ":", at.column);
}

std::string Section::Dotted(std::string_view key) const {
  return name_.empty() ? std::string(key) : absl::StrCat(name_, ".", std::string(key));
}

absl::Status Section::Error(std::string_view key, std::string_view problem) const {
  const toml::node* node = Get(key);
  return absl::InvalidArgumentError(
      absl::StrCat(Where(node != nullptr ? *node : *table_), ": ", Dotted(key), ": ", std::string(problem)));
}

absl::Status Section::ItemError(std::string_view key, size_t index,
                                std::string_view problem) const {
  const toml::node* node = Get(key);
  const toml::array* list = node != nullptr ? node->as_array() : nullptr;
  const toml::node* item = list != nullptr ? list->get(index) : nullptr;
  return absl::InvalidArgumentError(
      absl::StrCat(Where(item != nullptr ? *item : node != nullptr ? *node : *table_), ": ",
                   Dotted(key), "[", index, "]: ", std::string(problem)));
}

absl::Status Section::TableError(std::string_view problem) const {
  return absl::InvalidArgumentError(
      absl::StrCat(Where(*table_), ": ", name_.empty() ? "relayd.toml" : name_, ": ", std::string(problem)));
}

absl::Status Section::Known(std::initializer_list<std::string_view> known) const {
  for (const auto& [k, v] : *table_) {
    bool found = false;
    for (std::string_view name : known) found = found || k.str() == name;
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(v), ": ", Dotted(k.str()), ": unknown key"));
    }
  }
  return absl::OkStatus();
}

absl::Status Section::ReadInt(std::string_view key, int64_t min, int64_t max,
                              std::optional<int64_t>* out) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  // value_exact: toml++ 3.3 converts a float to an integer by a cast that is undefined out of
  // range (1e77); an integer setting is written as one.
  std::optional<int64_t> v = node->value_exact<int64_t>();
  if (!v) return Error(key, "must be an integer");
  if (*v < min || *v > max) {
    return Error(key, absl::StrCat("must be between ", min, " and ", max, " (got ", *v, ")"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status Section::IntList(std::string_view key, std::vector<int64_t>* out, int64_t min,
                              int64_t max, bool non_decreasing) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  const toml::array* list = node->as_array();
  if (list == nullptr || list->empty()) return Error(key, "must be a non-empty list of integers");
  std::vector<int64_t> values;
  for (size_t i = 0; i < list->size(); ++i) {
    std::optional<int64_t> v = list->get(i)->value_exact<int64_t>();
    if (!v || *v < min || *v > max) {
      return ItemError(key, i, absl::StrCat("must be an integer between ", min, " and ", max));
    }
    if (non_decreasing && !values.empty() && *v < values.back()) {
      return ItemError(key, i, "must not be less than the one before");
    }
    values.push_back(*v);
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status Section::Fraction(std::string_view key, double* out, double min,
                               double max_exclusive) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<double> v = node->value<double>();  // an integer 0 is taken too
  if (!v || !(*v >= min && *v < max_exclusive)) {
    return Error(key, absl::StrCat("must be a number in [", min, ", ", max_exclusive, ")"));
  }
  *out = *v;
  return absl::OkStatus();
}

absl::Status Section::String(std::string_view key, std::string* out) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<std::string> v = node->value_exact<std::string>();
  if (!v) return Error(key, "must be a string");
  *out = std::move(*v);
  return absl::OkStatus();
}

absl::Status Section::NonEmptyString(std::string_view key, std::string* out) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<std::string> v = node->value_exact<std::string>();
  if (!v || v->empty()) return Error(key, "must be a non-empty string");
  *out = std::move(*v);
  return absl::OkStatus();
}

absl::Status Section::Bool(std::string_view key, bool* out) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  std::optional<bool> v = node->value_exact<bool>();
  if (!v) return Error(key, "must be true or false");
  *out = *v;
  return absl::OkStatus();
}

absl::Status Section::Bool(std::string_view key, std::optional<bool>* out) const {
  bool v = false;
  if (!Has(key)) return absl::OkStatus();
  if (absl::Status s = Bool(key, &v); !s.ok()) return s;
  *out = v;
  return absl::OkStatus();
}

absl::Status Section::StringList(std::string_view key, std::vector<std::string>* out) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return absl::OkStatus();
  const toml::array* list = node->as_array();
  if (list == nullptr) return Error(key, "must be a list of strings");
  std::vector<std::string> values;
  for (size_t i = 0; i < list->size(); ++i) {
    std::optional<std::string> v = list->get(i)->value_exact<std::string>();
    if (!v) return ItemError(key, i, "must be a string");
    values.push_back(std::move(*v));
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Section>> Section::Table(std::string_view key) const {
  const toml::node* node = Get(key);
  if (node == nullptr) return std::optional<Section>();
  const toml::table* t = node->as_table();
  if (t == nullptr) return Error(key, "must be a table");
  return std::optional<Section>(Section(file_, Dotted(key), *t));
}

absl::StatusOr<std::vector<Section>> Section::Tables(std::string_view key) const {
  std::vector<Section> out;
  const toml::node* node = Get(key);
  if (node == nullptr) return out;
  const toml::array* list = node->as_array();
  const std::string dotted = Dotted(key);
  if (list == nullptr) {
    return Error(key, absl::StrCat("must be an array of tables ([[", dotted, "]])"));
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const toml::table* t = list->get(i)->as_table();
    if (t == nullptr) return ItemError(key, i, absl::StrCat("must be a table ([[", dotted, "]])"));
    out.emplace_back(file_, absl::StrCat(dotted, "[", i, "]"), *t);
  }
  return out;
}

std::vector<std::string> Section::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, v] : *table_) keys.emplace_back(k.str());
  return keys;
}

absl::StatusOr<toml::table> ParseDocument(std::string_view text, const std::string& file) {
  try {
    return toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return absl::InvalidArgumentError(
        absl::StrCat(file, ":", at.line, ":", at.column, ": ", std::string(e.description())));
  }
}

absl::StatusOr<toml::table> ParseFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseDocument(text.str(), path);
}

}  // namespace relay::server::config
