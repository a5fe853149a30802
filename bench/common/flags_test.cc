#include "bench/common/flags.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace bench {
namespace {

TEST(CommandLineTest, DashesBecomeUnderscoresAndRepeatablesAreCollected) {
  std::vector<std::string> in = {"prog",
                                 "--fail-rate=0.1",
                                 "--listen",
                                 "127.0.0.1:25",
                                 "--listen=[::1]:25",
                                 "--delay-ms",
                                 "5",
                                 "--listen-range",
                                 "127.0.0.10-127.0.0.12:25",
                                 "-v",
                                 "--",
                                 "--not-a-flag"};
  std::vector<char*> argv;
  for (auto& s : in) argv.push_back(s.data());
  CommandLine cl(static_cast<int>(argv.size()), argv.data(), {"listen", "listen-range"});
  std::vector<std::string> out(cl.argv(), cl.argv() + cl.argc());
  EXPECT_EQ(out, (std::vector<std::string>{"prog", "--fail_rate=0.1", "--delay_ms", "5", "-v", "--",
                                           "--not-a-flag"}));
  EXPECT_EQ(cl.Values("listen"), (std::vector<std::string>{"127.0.0.1:25", "[::1]:25"}));
  EXPECT_EQ(cl.Values("listen_range"), (std::vector<std::string>{"127.0.0.10-127.0.0.12:25"}));
}

}  // namespace
}  // namespace bench
