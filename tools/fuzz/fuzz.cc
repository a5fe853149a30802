#include "tools/fuzz/fuzz.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace relay::fuzz {

void Fail(const char* file, int line, const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz invariant violated at %s:%d: %s\n", file, line, what);
  if (!detail.empty()) {
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size()), detail.data());
  }
  std::fflush(stderr);
  std::abort();
}

uint8_t InputReader::Byte() {
  if (data_.empty()) return 0;
  const uint8_t b = static_cast<uint8_t>(data_.front());
  data_.remove_prefix(1);
  return b;
}

uint32_t InputReader::Below(uint32_t n) {
  if (n == 0) return 0;
  uint32_t v = Byte();
  if (n > 256) v = v << 8 | Byte();
  return v % n;
}

std::string_view InputReader::Take(size_t n) {
  std::string_view out = data_.substr(0, n);
  data_.remove_prefix(out.size());
  return out;
}

std::string_view InputReader::Until(char separator) {
  const size_t at = data_.find(separator);
  if (at == std::string_view::npos) return Rest();
  std::string_view out = data_.substr(0, at);
  data_.remove_prefix(at + 1);
  return out;
}

std::string_view InputReader::Rest() {
  std::string_view out = data_;
  data_ = {};
  return out;
}

const std::string& ScratchDirectory() {
  static const std::string* const dir = [] {
    const char* base = std::getenv("RELAY_FUZZ_SCRATCH");
    if (base == nullptr) base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : nullptr;
    if (base == nullptr) base = std::getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/relay-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Fail(__FILE__, __LINE__, "mkdtemp", pattern);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(ScratchDirectory(), ignored);
    });
    return new std::string(pattern);
  }();
  return *dir;
}

void WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (!out) Fail(__FILE__, __LINE__, "cannot write", path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(__FILE__, __LINE__, "cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Repeat(std::string_view prefix, std::string_view unit, std::string_view suffix,
                   size_t bytes) {
  std::string out(prefix);
  out.reserve(bytes + unit.size() + suffix.size());
  while (out.size() < bytes) out.append(unit);
  out.append(suffix);
  return out;
}

}  // namespace relay::fuzz
