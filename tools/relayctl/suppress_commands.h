// relayctl's suppression list commands (relay/feedback/suppression_list.h):
//
//   relayctl suppress add ADDRESS --tenant DOMAIN [--reason R] [--note TEXT]
//   relayctl suppress remove ADDRESS --tenant DOMAIN
//   relayctl suppress list [--tenant DOMAIN]
//   relayctl suppress export [--tenant DOMAIN] [--out FILE]
//   relayctl suppress import FILE [--tenant DOMAIN]
//   each with [--config PATH | --config-dir DIR | --file PATH]
//
// They open the list file the config names ([suppression] path; --file names one directly), the
// same file the running relayd reads: an address added here is refused at its next RCPT, with no
// reload. The tenant is the sending domain (the domain of MAIL FROM). R is manual (the default),
// bounce, complaint or unsubscribe.
//
// export writes CSV (RFC 4180) with a header line:
//   tenant,address,reason,category,time,queue_id,detail
// time in RFC 3339 (UTC). import reads that format back, or, without that header, one address a
// line ("address" or "tenant,address", --tenant giving the tenant of the first form); entries are
// added in batches of 10,000, each batch one transaction; a line that cannot be read stops the
// import with its number, after the batches before it.
//
// Exit status: 0 done, 1 failure (no such entry for remove, I/O, a bad import line), 2 usage.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace relay::relayctl {

int SuppressCommand(int argc, char** argv);

// One CSV record (RFC 4180: fields with commas, quotes or line ends quoted, quotes doubled) from
// `line`, which holds no line end; an error for a quote left open or text after a closing quote.
// Linear in the line.
absl::StatusOr<std::vector<std::string>> ParseCsvLine(std::string_view line);
// `field`, quoted when it needs to be.
std::string CsvField(std::string_view field);

}  // namespace relay::relayctl
