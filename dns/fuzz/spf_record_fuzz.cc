// Fuzz target for SPF records and macros (dns/spf_record.h): records come from the DNS of any
// domain a client names in MAIL FROM or HELO, macro values from what the client says. Input: a
// flag byte (IPv6 client, explanation mode), then lines: record, macro string, sender, HELO name,
// client address. Checks:
//   - a parsed record's terms are terms of the text, prefix lengths in range, and only ip4/ip6
//     and all need no DNS;
//   - a macro expansion is no longer than its limit nor than the string with each macro replaced
//     by the longest value, URL-escaped (3 bytes a byte), and a longer limit gives the same
//     start; a domain-spec expands to a valid name of at most 253 bytes;
//   - the expansion depends on the validated name (%{p}) only when UsesPtrMacro says so;
//   - ParseIp agrees with inet_ntop: the text it makes parses to the same address.
#include <arpa/inet.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "dns/spf_record.h"
#include "tools/fuzz/fuzz.h"

namespace dns::spf {
namespace {

void CheckRecord(std::string_view text) {
  absl::StatusOr<Record> record = ParseRecord(text);
  FUZZ_CHECK(record.ok() <= IsSpfRecord(text));
  if (!record.ok()) return;
  size_t terms = 0;
  for (size_t i = 0; i < text.size(); ++i)
    terms += text[i] != ' ' && (i == 0 || text[i - 1] == ' ');
  FUZZ_CHECK(record->mechanisms.size() < std::max<size_t>(terms, 1));
  for (const Mechanism& m : record->mechanisms) {
    FUZZ_CHECK(!m.text.empty() && text.find(m.text) != std::string_view::npos);
    FUZZ_CHECK(m.cidr4_bits >= 0 && m.cidr4_bits <= 32);
    FUZZ_CHECK(m.cidr6_bits >= 0 && m.cidr6_bits <= 128);
    const bool local = m.kind == MechanismKind::kAll || m.kind == MechanismKind::kIp4 ||
                       m.kind == MechanismKind::kIp6;
    FUZZ_CHECK(m.QueriesDns() != local);
    if (m.kind == MechanismKind::kAll) FUZZ_CHECK(record->has_all);
  }
}

void CheckExpansion(std::string_view macro, MacroContext& context, bool explanation) {
  const size_t value_max =
      std::max({context.sender.size(), context.local_part.size(), context.sender_domain.size(),
                context.domain.size(), context.helo.size(), context.validated_name.size(),
                context.receiver.size(), size_t{63}});
  constexpr size_t kBytesMax = 512;  // SpfLimits::explanation_bytes_max
  absl::StatusOr<std::string> out = ExpandMacros(macro, context, explanation, kBytesMax);
  if (out.ok()) {
    size_t macros = std::count(macro.begin(), macro.end(), '%');
    FUZZ_CHECK(out->size() <= std::min(kBytesMax, macro.size() + macros * 3 * value_max));
    // A longer limit gives the same start.
    absl::StatusOr<std::string> wider = ExpandMacros(macro, context, explanation, 4 * kBytesMax);
    FUZZ_CHECK(wider.ok() && wider->substr(0, out->size()) == *out &&
               (out->size() == kBytesMax || wider->size() == out->size()));
    if (!UsesPtrMacro(macro)) {
      const std::string saved = context.validated_name;
      context.validated_name = "other.example";
      absl::StatusOr<std::string> again = ExpandMacros(macro, context, explanation, kBytesMax);
      context.validated_name = saved;
      FUZZ_CHECK(again.ok() && *again == *out);
    }
  }
  absl::StatusOr<std::string> name = ExpandDomainSpec(macro, context, 253);
  if (name.ok()) {
    FUZZ_CHECK(!name->empty() && name->size() <= 253);
    size_t label = 0;
    for (char c : *name) {
      if (c == '.') {
        FUZZ_CHECK(label > 0);
        label = 0;
      } else {
        FUZZ_CHECK(++label <= 63);
      }
    }
    FUZZ_CHECK(label > 0);
  }
}

void FuzzSpfRecord(std::string_view data) {
  relay::fuzz::InputReader in(data);
  const uint8_t flags = in.Byte();
  const std::string_view record = in.Until('\n');
  const std::string_view macro = in.Until('\n');
  const std::string_view sender = in.Until('\n');
  const std::string_view helo = in.Until('\n');
  const std::string_view ip = in.Rest();

  CheckRecord(record);
  (void)IsValidDomain(helo);

  MacroContext context;
  context.sender = std::string(sender);
  const size_t at = sender.rfind('@');
  context.local_part =
      at == std::string_view::npos ? "postmaster" : std::string(sender.substr(0, at));
  context.sender_domain =
      std::string(at == std::string_view::npos ? sender : sender.substr(at + 1));
  context.domain = context.sender_domain;
  context.helo = std::string(helo);
  context.ipv6 = flags & 1;
  if (!ParseIp(ip, &context.address, &context.ipv6)) {
    context.address = {192, 0, 2, 1};
    context.ipv6 = false;
  } else {
    char text[INET6_ADDRSTRLEN] = {};
    FUZZ_CHECK(inet_ntop(context.ipv6 ? AF_INET6 : AF_INET, context.address.data(), text,
                         sizeof(text)) != nullptr);
    std::array<uint8_t, 16> again;
    bool again_v6 = false;
    FUZZ_CHECK(ParseIp(text, &again, &again_v6) && again == context.address &&
               again_v6 == context.ipv6);
    FUZZ_CHECK(PrefixMatches(again, context.address, context.ipv6 ? 128 : 32));
    context.ip = text;
  }
  const std::string dotted = DottedIp(context.address, context.ipv6);
  FUZZ_CHECK(dotted.size() == (context.ipv6 ? 63u : dotted.size()) && dotted.size() <= 63);
  context.timestamp_s = 1700000000;
  CheckExpansion(macro, context, flags & 2);
}

// A record of many terms.
std::string ManyTerms(size_t bytes) {
  return relay::fuzz::Repeat(
      std::string("\0v=spf1", 7),
      " ip4:192.0.2.0/24 a:mail.example.com/24//64 -include:_spf.example.net",
      " ~all\n%{s}\na@b.example\nhelo.example\n192.0.2.1", bytes);
}

// A domain-spec of many short labels, cut down to 253 bytes from the left.
std::string ManyLabels(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\0v=spf1\n", 8), "a.", "example.com\na@b.example\nh\n::1",
                             bytes);
}

// A macro string of many macros, each expanding the sender.
std::string ManyMacros(size_t bytes) {
  return relay::fuzz::Repeat(std::string("\0v=spf1\n", 8), "%{s}.%{l1r-}.%{D}.",
                             "example.com\nuser+tag@sender.example\nhelo.example\n2001:db8::25",
                             bytes);
}

// Many macros and a sender as long: half the input each, so that work proportional to their
// product (a copy of the sender per macro) grows 64 times for 8 times the input.
std::string MacrosOfALongSender(size_t bytes) {
  std::string macros;
  while (macros.size() < bytes / 2) macros += "%{s}.%{s1}.%{sr}.";
  std::string sender(bytes / 2, 'a');
  for (size_t i = 3; i < sender.size(); i += 4) sender[i] = '.';
  return std::string("\0v=spf1\n", 8) + macros + "example.com\n" + sender + "@s.example\nh\n::1";
}

}  // namespace
}  // namespace dns::spf

const relay::fuzz::Target& relay::fuzz::GetTarget() {
  static const Target target{
      .name = "spf_record",
      .run = dns::spf::FuzzSpfRecord,
      // A 4-byte macro becomes a token of ~100 bytes and its expansion (the sender, up to the
      // input, URL-escaped 3x); each term a Mechanism of ~120 bytes for 2 bytes ("a ").
      .bounds = {.heap_peak_bytes = {64 << 10, 160},
                 .heap_allocated_bytes = {256 << 10, 512},
                 .allocations = {512, 4}},
      .scaled = {{.name = "many terms", .make = dns::spf::ManyTerms},
                 {.name = "many labels", .make = dns::spf::ManyLabels},
                 {.name = "many macros", .make = dns::spf::ManyMacros},
                 {.name = "many macros of a long sender", .make = dns::spf::MacrosOfALongSender}},
  };
  return target;
}
