// libFuzzer entry point for the DMARC record parser. Not built by Bazel (its toolchain is GCC);
// build and run with clang (packages clang-14, libclang-rt-14-dev):
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I. \
//     relay/receive/dmarc_record_fuzzer.cc relay/receive/dmarc_record.cc \
//     -labsl_status -labsl_statusor -labsl_strings -labsl_strings_internal -labsl_int128
//     -labsl_throw_delegate \
//     -labsl_raw_logging_internal -labsl_cord -labsl_cord_internal -labsl_cordz_info \
//     -labsl_cordz_handle -labsl_cordz_functions -labsl_synchronization -labsl_base \
//     -labsl_spinlock_wait -labsl_time -labsl_time_zone -labsl_stacktrace -labsl_symbolize \
//     -labsl_debugging_internal -labsl_demangle_internal -labsl_malloc_internal \
//     -labsl_exponential_biased -labsl_graphcycles_internal -labsl_str_format_internal \
//     -o /tmp/dmarc_record_fuzzer
//   /tmp/dmarc_record_fuzzer -max_total_time=60 -max_len=4096
#include "relay/receive/dmarc_record_fuzzer.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  relay::receive::FuzzOneDmarcRecord(data, size);
  return 0;
}
