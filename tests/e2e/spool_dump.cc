// Test tool: writes every live message of a spool directory (all shard-N subdirectories) as
// OUT/<id>.eml (exactly the stored bytes: prepended headers and message) and OUT/<id>.env
// ("from <sender>" then one "to <recipient>" line each), using the queue's lock-free reader.
//   spool_dump SPOOL_DIR OUT_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "queue/spool_reader.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: spool_dump SPOOL_DIR OUT_DIR\n");
    return 2;
  }
  namespace fs = std::filesystem;
  fs::create_directories(argv[2]);
  int count = 0;
  for (const auto& entry : fs::directory_iterator(argv[1])) {
    if (!entry.is_directory()) continue;
    auto reader = queue::SpoolReader::Open(entry.path().string());
    if (!reader.ok()) {
      std::fprintf(stderr, "spool_dump: %s: %s\n", entry.path().c_str(),
                   std::string(reader.status().message()).c_str());
      return 1;
    }
    (*reader)->index().ForEach([&](const queue::MessageInfo& info) {
      std::string id = info.id.ToString();
      std::ofstream eml(fs::path(argv[2]) / (id + ".eml"), std::ios::binary);
      eml.write(info.message.data(), static_cast<std::streamsize>(info.message.size()));
      std::ofstream env(fs::path(argv[2]) / (id + ".env"));
      env << "from " << info.sender << "\n";
      for (const auto& r : info.recipients) env << "to " << r.address << "\n";
      ++count;
    });
  }
  std::printf("%d\n", count);
  return 0;
}
