#include "tools/relayctl/dns_records.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "dkim/key.h"
#include "relay/delivery/egress.h"
#include "relay/server/init_config.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Owner names are padded to this width so that the records line up when pasted.
constexpr int kOwnerColumnWidth = 40;

std::string Fqdn(absl::string_view name) {
  if (absl::EndsWith(name, ".")) return std::string(name);
  return absl::StrCat(name, ".");
}

void AddUnique(std::vector<std::string>& list, const std::string& value) {
  if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(value);
}

// A TXT value as <character-string>s of at most 255 bytes each (RFC 1035 §3.3.14), quoted for a
// zone file. The records printed here hold no '"' or '\\', so no escaping is needed.
std::string QuotedTxt(absl::string_view value) {
  std::vector<std::string> parts;
  for (const std::string& s : dkim::SplitTxtStrings(std::string_view(value.data(), value.size())))
    parts.push_back(absl::StrCat("\"", s, "\""));
  return absl::StrJoin(parts, " ");
}

std::string Line(absl::string_view owner, absl::string_view type, absl::string_view data) {
  return absl::StrFormat("%-*s %u IN %-5s %s\n", kOwnerColumnWidth, Fqdn(owner), kRecordTtlS, type,
                         data);
}

}  // namespace

std::vector<std::string> MailDomains(const server::Config& config) {
  std::vector<std::string> out;
  for (const server::DkimKeyConfig& k : config.dkim_keys) {
    AddUnique(out, absl::AsciiStrToLower(k.domain));
  }
  return out;
}

std::string ReverseOwner(absl::string_view ip) {
  std::string text(ip);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&v4.s_addr);
    return absl::StrFormat("%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (int i = 15; i >= 0; --i) {
      out += kHex[v6.s6_addr[i] & 0xf];
      out += '.';
      out += kHex[v6.s6_addr[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return "";
}

bool SameName(absl::string_view a, absl::string_view b) {
  if (absl::EndsWith(a, ".")) a.remove_suffix(1);
  if (absl::EndsWith(b, ".")) b.remove_suffix(1);
  return absl::EqualsIgnoreCase(a, b);
}

absl::StatusOr<ExpectedDns> ExpectedRecords(const server::Config& config,
                                            const std::string& domain) {
  ExpectedDns e;
  e.domain = absl::AsciiStrToLower(domain);
  e.hostname = absl::AsciiStrToLower(config.hostname);
  for (const delivery::EgressSourceConfig& c : config.delivery.sources) {
    // One entry at a time, so that each derived address is known to come from its prefix.
    absl::StatusOr<delivery::Egress> pool =
        delivery::Egress::Create({c}, {}, delivery::EgressStrategy::kRoundRobin, config.hostname);
    if (!pool.ok()) return pool.status();
    if (!c.prefix.empty()) {
      e.prefixes.push_back(PrefixRecord{c.prefix, c.count, c.ehlo_name});
      AddUnique(e.spf_terms, absl::StrCat("ip6:", c.prefix));
    }
    for (size_t i = 0; i < pool->size(); ++i) {
      const delivery::EgressSource& s = pool->source(static_cast<int>(i));
      if (s.any_address) continue;  // the kernel's choice: nothing to publish for it
      SourceRecord r;
      r.ip = s.address.IpString();
      r.ipv6 = s.address.family() == AF_INET6;
      r.ehlo_name = absl::AsciiStrToLower(s.ehlo_name);
      r.ptr_owner = ReverseOwner(r.ip);
      r.prefix = c.prefix;
      if (c.prefix.empty()) {
        AddUnique(e.spf_terms, absl::StrCat(r.ipv6 ? "ip6:" : "ip4:", r.ip));
        AddUnique(e.hostname_ips, r.ip);
      }
      e.sources.push_back(std::move(r));
    }
  }
  // Without configured sources the kernel picks the address: the MX host is this server, so
  // "mx" authorises it (RFC 7208 §5.4) without naming an address the tool cannot know.
  if (e.spf_terms.empty()) e.spf_terms.push_back("mx");
  // ~all (softfail) rather than -all: a forgotten sender is marked, not refused, while DMARC is
  // still at p=none and its reports show what else sends as the domain.
  e.spf = absl::StrCat("v=spf1 ", absl::StrJoin(e.spf_terms, " "), " ~all");
  for (const server::DkimKeyConfig& k : config.dkim_keys) {
    if (!SameName(k.domain, e.domain)) continue;
    absl::StatusOr<dkim::PrivateKey> key = dkim::PrivateKey::FromFile(k.key_path);
    if (!key.ok()) {
      return absl::Status(key.status().code(),
                          absl::StrCat("DKIM key ", k.key_path, ": ", key.status().message()));
    }
    DkimRecord d;
    d.selector = k.selector;
    d.owner = absl::StrCat(k.selector, "._domainkey.", e.domain);
    d.record = key->PublicKeyRecord();
    d.public_key_base64 = key->PublicKeyBase64();
    d.key_path = k.key_path;
    e.dkim.push_back(std::move(d));
  }
  e.dmarc = absl::StrCat("v=DMARC1; p=none; rua=mailto:", server::kDmarcReportsLocalPart, "@",
                         e.domain);
  for (const feedback::VerpDomain& v : config.feedback.verp) {
    if (SameName(v.domain, e.domain)) e.bounce_domain = v.bounce_domain;
  }
  return e;
}

std::string FormatZone(const ExpectedDns& e) {
  std::string out = absl::StrCat("; DNS records for mail from ", e.domain, " through ", e.hostname,
                                 ".\n; Zone-file syntax: paste into the zone of ", e.domain,
                                 " (names are fully qualified).\n\n");
  absl::StrAppend(&out, "; MX (RFC 5321 §5.1): where mail for ", e.domain,
                  " is delivered, and the host receivers expect\n; as the sender.\n",
                  Line(e.domain, "MX", absl::StrCat(kMxPreference, " ", Fqdn(e.hostname))));
  absl::StrAppend(&out,
                  "\n; Addresses of the relay's names: every EHLO name must resolve to the "
                  "address it is used from.\n");
  std::vector<std::string> printed;
  auto address = [&](const std::string& name, const std::string& ip) {
    std::string key = absl::StrCat(name, " ", ip);
    if (std::find(printed.begin(), printed.end(), key) != printed.end()) return;
    printed.push_back(key);
    bool v6 = ip.find(':') != std::string::npos;
    absl::StrAppend(&out, Line(name, v6 ? "AAAA" : "A", ip));
  };
  for (const std::string& ip : e.hostname_ips) address(e.hostname, ip);
  if (e.hostname_ips.empty()) {
    absl::StrAppend(&out, "; ", e.hostname,
                    " needs an A (and AAAA) record with this server's address(es): the config "
                    "names no\n; fixed source address to take it from.\n");
  }
  for (const SourceRecord& s : e.sources) address(s.ehlo_name, s.ip);
  absl::StrAppend(&out, "\n; SPF (RFC 7208): the addresses allowed to send mail from @", e.domain,
                  ". At most 10 DNS-querying\n; terms in total (§4.6.4); ip4:/ip6: terms cost "
                  "none.\n",
                  Line(e.domain, "TXT", QuotedTxt(e.spf)));
  absl::StrAppend(&out,
                  "\n; DKIM (RFC 6376 §3.6.2.2, RFC 8463): one key record per selector; the "
                  "relay signs with each.\n");
  if (e.dkim.empty()) {
    absl::StrAppend(&out, "; none: the config has no [[dkim.key]] for ", e.domain,
                    " (create one with relayctl dkim-keygen).\n");
  }
  for (const DkimRecord& d : e.dkim)
    absl::StrAppend(&out, Line(d.owner, "TXT", QuotedTxt(d.record)));
  absl::StrAppend(&out,
                  "\n; DMARC (RFC 7489 §6.1): start with p=none and read the aggregate "
                  "reports; move to\n; p=quarantine, then p=reject, once every sender "
                  "passes.\n",
                  Line(absl::StrCat("_dmarc.", e.domain), "TXT", QuotedTxt(e.dmarc)));
  if (!e.bounce_domain.empty()) {
    absl::StrAppend(
        &out, "\n; Bounce domain ([[feedback.verp]]): mail from ", e.domain,
        " leaves with return paths at ", e.bounce_domain,
        ";\n; bounces and complaints come back there, to this relay's port 25. Receivers check "
        "SPF on the\n; return path, and DMARC aligns it with ",
        e.domain, " (relaxed): it needs the same SPF.\n",
        Line(e.bounce_domain, "MX", absl::StrCat(kMxPreference, " ", Fqdn(e.hostname))),
        Line(e.bounce_domain, "TXT", QuotedTxt(e.spf)));
  }
  absl::StrAppend(&out,
                  "\n; Reverse DNS (PTR): published in the reverse zone of each address, "
                  "usually through the\n; hosting provider's panel. Each PTR name must "
                  "resolve back to the address (the A/AAAA\n; records above) and equal "
                  "the EHLO name used from it.\n");
  if (e.sources.empty()) {
    absl::StrAppend(&out,
                    "; The config has no [[delivery.source]]: give every public address of "
                    "this server a PTR\n; naming ",
                    e.hostname, ".\n");
  }
  for (const SourceRecord& s : e.sources) {
    if (!s.prefix.empty()) continue;
    absl::StrAppend(&out, Line(s.ptr_owner, "PTR", Fqdn(s.ehlo_name)));
  }
  for (const PrefixRecord& p : e.prefixes) {
    absl::StrAppend(
        &out, "\n; IPv6 prefix ", p.prefix,
        ": every address the relay sends from needs a PTR and an AAAA that\n; match "
        "(Gmail refuses IPv6 mail without them). Either generate them for the whole prefix\n; "
        "(a generated reverse zone, or a DNS server that synthesises PTR and AAAA from the "
        "address),\n; or publish those of the ",
        p.count, " addresses this config derives from it:\n");
    for (const SourceRecord& s : e.sources) {
      if (s.prefix != p.prefix) continue;
      absl::StrAppend(&out, Line(s.ptr_owner, "PTR", Fqdn(s.ehlo_name)));
    }
  }
  return out;
}

int DnsRecordsCommand(int argc, char** argv, FILE* out) {
  std::string config_path = absl::StrCat(kDefaultConfigDir, "/relayd.toml");
  std::vector<std::string> domains;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--domain" && i + 1 < argc) {
      domains.push_back(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: relayctl dns-records [--config PATH] [--domain D ...]\n");
      return kExitUsage;
    }
  }
  absl::StatusOr<server::Config> config = server::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "relayctl dns-records: %s\n",
                 std::string(config.status().message()).c_str());
    return kExitFailure;
  }
  if (domains.empty()) domains = MailDomains(*config);
  if (domains.empty()) {
    std::fprintf(stderr,
                 "relayctl dns-records: %s has no [[dkim.key]] to take the mail domain from: "
                 "give --domain\n",
                 config_path.c_str());
    return kExitUsage;
  }
  for (size_t i = 0; i < domains.size(); ++i) {
    absl::StatusOr<ExpectedDns> e = ExpectedRecords(*config, domains[i]);
    if (!e.ok()) {
      std::fprintf(stderr, "relayctl dns-records: %s\n", std::string(e.status().message()).c_str());
      return kExitFailure;
    }
    std::fprintf(out, "%s%s", i == 0 ? "" : "\n", FormatZone(*e).c_str());
  }
  return kExitOk;
}

}  // namespace relay::relayctl
