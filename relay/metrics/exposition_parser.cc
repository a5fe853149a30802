#include "relay/metrics/exposition_parser.h"

#include <charconv>
#include <limits>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace relay::metrics {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view lower) {
  if (a.size() != lower.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    if (c != lower[i]) return false;
  }
  return true;
}

// A cursor over one line; every step moves forward.
class LineParser {
 public:
  LineParser(std::string_view line, size_t labels_max) : s_(line), labels_max_(labels_max) {}

  // The sample on the line, or why it is not one.
  absl::Status Parse(ExpositionSample* out) {
    if (!Name(/*metric=*/true, &out->name)) return Error("a metric name");
    size_t before_blanks = i_;
    SkipBlanks();
    if (Peek() == '{') {
      ++i_;
      for (;;) {
        SkipBlanks();
        if (Peek() == '}') {
          ++i_;
          break;
        }
        if (out->labels.size() >= labels_max_) {
          return absl::InvalidArgumentError(absl::StrCat("more than ", labels_max_, " labels"));
        }
        std::pair<std::string, std::string> label;
        if (!Name(/*metric=*/false, &label.first)) return Error("a label name");
        SkipBlanks();
        if (Peek() != '=') return Error("'=' after the label name");
        ++i_;
        SkipBlanks();
        if (Peek() != '"') return Error("a quoted label value");
        ++i_;
        absl::Status s = QuotedValue(&label.second);
        if (!s.ok()) return s;
        out->labels.push_back(std::move(label));
        SkipBlanks();
        if (Peek() == ',') {
          ++i_;
          continue;
        }
        if (Peek() == '}') {
          ++i_;
          break;
        }
        return Error("',' or '}' after a label");
      }
      before_blanks = i_;
      SkipBlanks();
    }
    if (i_ == before_blanks || i_ == s_.size()) return Error("a blank and a value");
    std::string_view value = Token();
    if (!Number(value, &out->value)) return Error("a number as the value");
    SkipBlanks();
    if (i_ < s_.size()) {
      std::string_view timestamp = Token();
      for (char c : timestamp.substr(timestamp[0] == '-' ? 1 : 0)) {
        if (c < '0' || c > '9' || timestamp.size() > 20) return Error("an integer timestamp");
      }
      SkipBlanks();
      if (i_ < s_.size()) return Error("the end of the line after the timestamp");
    }
    return absl::OkStatus();
  }

 private:
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void SkipBlanks() {
    while (i_ < s_.size() && IsBlank(s_[i_])) ++i_;
  }
  std::string_view Token() {
    size_t start = i_;
    while (i_ < s_.size() && !IsBlank(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }
  bool Name(bool metric, std::string* out) {
    if (i_ >= s_.size() || !IsNameStart(s_[i_]) || (!metric && s_[i_] == ':')) return false;
    size_t start = i_;
    while (i_ < s_.size() && IsNameChar(s_[i_]) && (metric || s_[i_] != ':')) ++i_;
    out->assign(s_.substr(start, i_ - start));
    return true;
  }
  // After the opening quote: up to the closing one, unescaping.
  absl::Status QuotedValue(std::string* out) {
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return absl::OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      if (e == '\\' || e == '"') {
        out->push_back(e);
      } else if (e == 'n') {
        out->push_back('\n');
      } else {
        return Error("\\\\, \\\" or \\n in a label value");
      }
    }
    return Error("the closing quote of a label value");
  }
  static bool Number(std::string_view text, double* out) {
    if (text.empty() || text.size() > 64) return false;
    // The format's values are what Go's ParseFloat reads: Inf, Infinity and NaN in any case.
    const bool negative = text[0] == '-';
    std::string_view unsigned_text = text.substr(text[0] == '+' || negative ? 1 : 0);
    if (EqualsIgnoreCase(unsigned_text, "inf") || EqualsIgnoreCase(unsigned_text, "infinity")) {
      *out = negative ? -std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::infinity();
      return true;
    }
    if (EqualsIgnoreCase(unsigned_text, "nan")) {
      *out = std::numeric_limits<double>::quiet_NaN();
      return true;
    }
    if (text[0] == '+') text.remove_prefix(1);
    // Plain decimal or exponent notation only: from_chars' "inf"/"nan" spellings are not the
    // format's, and neither are hexadecimal floats (general format has none).
    for (char c : text) {
      if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')) {
        return false;
      }
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
    return ec == std::errc() && end == text.data() + text.size();
  }
  absl::Status Error(std::string_view expected) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected ", absl::string_view(expected.data(), expected.size()), " at column ", i_ + 1));
  }

  std::string_view s_;
  size_t i_ = 0;
  size_t labels_max_;
};

}  // namespace

std::string_view ExpositionSample::Label(std::string_view name) const {
  for (const auto& [k, v] : labels) {
    if (k == name) return v;
  }
  return "";
}

absl::StatusOr<std::vector<ExpositionSample>> ParseExposition(std::string_view text,
                                                              const ExpositionLimits& limits) {
  if (text.size() > limits.bytes_max) {
    return absl::ResourceExhaustedError(
        absl::StrCat("exposition of ", text.size(), " bytes, more than ", limits.bytes_max));
  }
  std::vector<ExpositionSample> samples;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_number;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() > limits.line_bytes_max) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "line ", line_number, ": ", line.size(), " bytes, more than ", limits.line_bytes_max));
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = 0;
    while (first < line.size() && IsBlank(line[first])) ++first;
    if (first == line.size() || line[first] == '#') continue;
    if (samples.size() >= limits.samples_max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("more than ", limits.samples_max, " samples"));
    }
    ExpositionSample sample;
    absl::Status s = LineParser(line.substr(first), limits.labels_max).Parse(&sample);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_number, ": ", s.message()));
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

}  // namespace relay::metrics
