// JSON text for the relay's own writers (the delivery log, the event journal, TLS reports):
// strings escaped as RFC 8259 §7 asks. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

namespace relay {

// Appends `s` to `out` as a JSON string with its quotes: '"', '\\' and control characters
// escaped, UTF-8 kept, and any byte that does not start a valid UTF-8 sequence written as
// U+FFFD (the input is often a remote server's text). Linear in `s`.
void AppendJsonString(std::string& out, std::string_view s);

}  // namespace relay
