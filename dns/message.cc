#include "dns/message.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dns {
namespace {

constexpr size_t kHeaderBytes = 12;
// A chain of compression pointers longer than this cannot be a real name: 255 bytes allow at
// most 127 labels.
constexpr int kPointerHopsMax = 128;
constexpr int kCnameHopsMax = 8;

class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> wire) : wire_(wire) {}

  size_t offset() const { return offset_; }
  bool Has(size_t n) const { return offset_ <= wire_.size() && wire_.size() - offset_ >= n; }

  absl::Status U8(uint8_t* v) {
    if (!Has(1)) return Short();
    *v = wire_[offset_++];
    return absl::OkStatus();
  }
  absl::Status U16(uint16_t* v) {
    if (!Has(2)) return Short();
    *v = static_cast<uint16_t>(wire_[offset_] << 8 | wire_[offset_ + 1]);
    offset_ += 2;
    return absl::OkStatus();
  }
  absl::Status U32(uint32_t* v) {
    if (!Has(4)) return Short();
    *v = static_cast<uint32_t>(wire_[offset_]) << 24 |
         static_cast<uint32_t>(wire_[offset_ + 1]) << 16 |
         static_cast<uint32_t>(wire_[offset_ + 2]) << 8 | wire_[offset_ + 3];
    offset_ += 4;
    return absl::OkStatus();
  }
  absl::Status Bytes(size_t n, std::string* out) {
    if (!Has(n)) return Short();
    out->assign(reinterpret_cast<const char*>(wire_.data() + offset_), n);
    offset_ += n;
    return absl::OkStatus();
  }
  absl::Status Skip(size_t n) {
    if (!Has(n)) return Short();
    offset_ += n;
    return absl::OkStatus();
  }

  // Reads a possibly compressed name at the current offset (RFC 1035 §4.1.4). Pointers must go
  // strictly backwards from the label that holds them, which rules out loops.
  absl::Status Name(std::string* out) {
    out->clear();
    size_t pos = offset_;
    size_t end_of_name = 0;  // where reading continues after the name; set at the first pointer
    size_t wire_bytes = 1;   // the final root label
    int hops = 0;
    for (;;) {
      if (pos >= wire_.size()) return Short();
      uint8_t len = wire_[pos];
      if ((len & 0xC0) == 0xC0) {
        if (pos + 1 >= wire_.size()) return Short();
        size_t target = static_cast<size_t>(len & 0x3F) << 8 | wire_[pos + 1];
        if (target >= pos)
          return absl::InvalidArgumentError("DNS name pointer does not point back");
        if (++hops > kPointerHopsMax) return absl::InvalidArgumentError("DNS name pointer loop");
        if (end_of_name == 0) end_of_name = pos + 2;
        pos = target;
        continue;
      }
      if ((len & 0xC0) != 0) return absl::InvalidArgumentError("DNS label type not supported");
      if (len == 0) {
        ++pos;
        break;
      }
      if (pos + 1 + len > wire_.size()) return Short();
      wire_bytes += 1 + len;
      if (wire_bytes > kNameBytesMax) return absl::InvalidArgumentError("DNS name too long");
      if (!out->empty()) out->push_back('.');
      for (size_t i = 0; i < len; ++i) {
        uint8_t c = wire_[pos + 1 + i];
        // RFC 1035 §5.1: presentation escapes for dots, backslashes and unprintable bytes.
        if (c == '.' || c == '\\') {
          out->push_back('\\');
          out->push_back(static_cast<char>(c));
        } else if (c <= 0x20 || c >= 0x7F) {
          char buf[5];
          snprintf(buf, sizeof(buf), "\\%03u", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
      }
      pos += 1 + len;
    }
    if (out->empty()) *out = ".";
    offset_ = end_of_name != 0 ? end_of_name : pos;
    return absl::OkStatus();
  }

  // A reader over the same message, positioned at `offset`, that must not read past `limit`
  // except to follow name pointers.
  size_t size() const { return wire_.size(); }
  void Seek(size_t offset) { offset_ = offset; }
  const uint8_t* data() const { return wire_.data(); }

 private:
  static absl::Status Short() { return absl::InvalidArgumentError("DNS message truncated"); }
  absl::Span<const uint8_t> wire_;
  size_t offset_ = 0;
};

absl::Status ParseRdata(Reader& r, size_t rdata_end, ResourceRecord* rr) {
  auto check_end = [&]() -> absl::Status {
    if (r.offset() != rdata_end) {
      return absl::InvalidArgumentError(
          absl::StrCat("DNS RDATA length mismatch for type ", rr->type));
    }
    return absl::OkStatus();
  };
  switch (rr->type) {
    case kTypeA:
      if (rdata_end - r.offset() != 4) return absl::InvalidArgumentError("A RDATA not 4 bytes");
      std::memcpy(rr->address.data(), r.data() + r.offset(), 4);
      return r.Skip(4);
    case kTypeAaaa:
      if (rdata_end - r.offset() != 16) {
        return absl::InvalidArgumentError("AAAA RDATA not 16 bytes");
      }
      std::memcpy(rr->address.data(), r.data() + r.offset(), 16);
      return r.Skip(16);
    case kTypeMx: {
      absl::Status s = r.U16(&rr->preference);
      if (!s.ok()) return s;
      s = r.Name(&rr->target);
      if (!s.ok()) return s;
      return check_end();
    }
    case kTypeCname:
    case kTypePtr:
    case kTypeNs: {
      absl::Status s = r.Name(&rr->target);
      if (!s.ok()) return s;
      return check_end();
    }
    case kTypeTxt:
      // RFC 1035 §3.3.14: one or more <character-string>s filling the RDATA.
      if (r.offset() == rdata_end) return absl::InvalidArgumentError("empty TXT RDATA");
      while (r.offset() < rdata_end) {
        uint8_t len = 0;
        absl::Status s = r.U8(&len);
        if (!s.ok()) return s;
        if (r.offset() + len > rdata_end) {
          return absl::InvalidArgumentError("TXT string overruns RDATA");
        }
        rr->texts.emplace_back();
        s = r.Bytes(len, &rr->texts.back());
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    case kTypeSoa: {
      absl::Status s = r.Name(&rr->soa.mname);
      if (s.ok()) s = r.Name(&rr->soa.rname);
      if (s.ok()) s = r.U32(&rr->soa.serial);
      if (s.ok()) s = r.U32(&rr->soa.refresh_s);
      if (s.ok()) s = r.U32(&rr->soa.retry_s);
      if (s.ok()) s = r.U32(&rr->soa.expire_s);
      if (s.ok()) s = r.U32(&rr->soa.minimum_s);
      if (!s.ok()) return s;
      return check_end();
    }
    default:
      return r.Skip(rdata_end - r.offset());
  }
}

absl::Status ParseRecord(Reader& r, ResourceRecord* rr) {
  absl::Status s = r.Name(&rr->name);
  if (s.ok()) s = r.U16(&rr->type);
  if (s.ok()) s = r.U16(&rr->rr_class);
  if (s.ok()) s = r.U32(&rr->ttl_s);
  uint16_t rdlength = 0;
  if (s.ok()) s = r.U16(&rdlength);
  if (!s.ok()) return s;
  // RFC 2181 §8: a TTL with the top bit set is treated as zero.
  if (rr->ttl_s & 0x80000000u) rr->ttl_s = 0;
  if (!r.Has(rdlength)) return absl::InvalidArgumentError("DNS RDATA overruns the message");
  size_t start = r.offset();
  size_t end = start + rdlength;
  rr->rdata.assign(reinterpret_cast<const char*>(r.data() + start), rdlength);
  s = ParseRdata(r, end, rr);
  if (!s.ok()) return s;
  // Names in RDATA may not run past RDLENGTH either.
  if (r.offset() > end) return absl::InvalidArgumentError("DNS RDATA overrun");
  r.Seek(end);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Message> ParseMessage(absl::Span<const uint8_t> wire) {
  if (wire.size() < kHeaderBytes) return absl::InvalidArgumentError("DNS message too short");
  if (wire.size() > kMessageBytesMax) return absl::InvalidArgumentError("DNS message too long");
  Reader r(wire);
  Message m;
  uint16_t flags = 0, qd = 0, an = 0, ns = 0, ar = 0;
  (void)r.U16(&m.id);
  (void)r.U16(&flags);
  (void)r.U16(&qd);
  (void)r.U16(&an);
  (void)r.U16(&ns);
  (void)r.U16(&ar);
  m.response = flags & 0x8000;
  m.opcode = (flags >> 11) & 0xF;
  m.authoritative = flags & 0x0400;
  m.truncated = flags & 0x0200;
  m.recursion_desired = flags & 0x0100;
  m.recursion_available = flags & 0x0080;
  m.authenticated_data = flags & 0x0020;
  m.rcode = flags & 0xF;
  // Every question takes at least 5 bytes and every record at least 11: a count that cannot
  // fit is rejected before anything is reserved.
  size_t rest = wire.size() - kHeaderBytes;
  if (size_t{qd} * 5 > rest || (size_t{an} + ns + ar) * 11 > rest ||
      size_t{qd} + an + ns + ar > kRecordsMax) {
    return absl::InvalidArgumentError("DNS section counts exceed the message");
  }
  m.questions.resize(qd);
  for (Question& q : m.questions) {
    absl::Status s = r.Name(&q.name);
    if (s.ok()) s = r.U16(&q.type);
    if (s.ok()) s = r.U16(&q.qclass);
    if (!s.ok()) return s;
  }
  struct {
    uint16_t count;
    std::vector<ResourceRecord>* out;
  } sections[] = {{an, &m.answers}, {ns, &m.authorities}, {ar, &m.additionals}};
  for (auto& section : sections) {
    section.out->resize(section.count);
    for (ResourceRecord& rr : *section.out) {
      absl::Status s = ParseRecord(r, &rr);
      if (!s.ok()) return s;
    }
  }
  return m;
}

bool NameEquals(std::string_view a, std::string_view b) {
  if (a.size() > 1 && a.back() == '.') a.remove_suffix(1);
  if (b.size() > 1 && b.back() == '.') b.remove_suffix(1);
  return absl::EqualsIgnoreCase(ToAbsl(a), ToAbsl(b));
}

std::string CanonicalName(std::string_view name) {
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(ToAbsl(name));
}

std::vector<const ResourceRecord*> AnswersFor(const Message& message, std::string_view qname,
                                              uint16_t type, std::string* final_name) {
  std::vector<const ResourceRecord*> out;
  std::string name(qname);
  for (int hop = 0; hop <= kCnameHopsMax; ++hop) {
    const ResourceRecord* cname = nullptr;
    for (const ResourceRecord& rr : message.answers) {
      if (!NameEquals(rr.name, name)) continue;
      if (rr.type == type) {
        out.push_back(&rr);
      } else if (rr.type == kTypeCname && cname == nullptr) {
        cname = &rr;
      }
    }
    if (!out.empty() || cname == nullptr || type == kTypeCname) break;
    name = cname->target;
  }
  if (final_name != nullptr) *final_name = name;
  return out;
}

absl::StatusOr<std::string> ReverseName(std::string_view ip) {
  std::string text(ip);
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    const auto* b = reinterpret_cast<const uint8_t*>(&v4);
    return absl::StrCat(b[3], ".", b[2], ".", b[1], ".", b[0], ".in-addr.arpa");
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(72);
    for (int i = 15; i >= 0; --i) {
      out.push_back(kHex[v6.s6_addr[i] & 0xF]);
      out.push_back('.');
      out.push_back(kHex[v6.s6_addr[i] >> 4]);
      out.push_back('.');
    }
    out.append("ip6.arpa");
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", ToAbsl(ip)));
}

MessageBuilder::MessageBuilder(uint16_t id, uint16_t flags) {
  wire_.reserve(512);
  Put16(id);
  Put16(flags);
  for (int i = 0; i < 4; ++i) Put16(0);
}

void MessageBuilder::SetRcode(uint8_t rcode) {
  uint16_t flags =
      static_cast<uint16_t>(static_cast<uint8_t>(wire_[2]) << 8 | static_cast<uint8_t>(wire_[3]));
  Set16(2, static_cast<uint16_t>((flags & ~0xF) | (rcode & 0xF)));
}

void MessageBuilder::Put16(uint16_t v) {
  wire_.push_back(static_cast<char>(v >> 8));
  wire_.push_back(static_cast<char>(v & 0xFF));
}

void MessageBuilder::Put32(uint32_t v) {
  Put16(static_cast<uint16_t>(v >> 16));
  Put16(static_cast<uint16_t>(v & 0xFFFF));
}

void MessageBuilder::Set16(size_t offset, uint16_t v) {
  wire_[offset] = static_cast<char>(v >> 8);
  wire_[offset + 1] = static_cast<char>(v & 0xFF);
}

void MessageBuilder::PutName(std::string_view name) {
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  if (name == "." || name.empty()) {
    wire_.push_back(0);
    return;
  }
  std::string_view rest = name;
  while (!rest.empty()) {
    std::string lower = CanonicalName(rest);
    for (const auto& [known, offset] : names_) {
      if (known == lower) {
        Put16(static_cast<uint16_t>(0xC000 | offset));
        return;
      }
    }
    if (wire_.size() < 0x3FFF) names_.emplace_back(lower, static_cast<uint16_t>(wire_.size()));
    size_t dot = rest.find('.');
    std::string_view label = rest.substr(0, dot);
    wire_.push_back(static_cast<char>(std::min(label.size(), kLabelBytesMax)));
    wire_.append(label.substr(0, kLabelBytesMax));
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  wire_.push_back(0);
}

MessageBuilder& MessageBuilder::AddQuestion(std::string_view name, uint16_t type) {
  PutName(name);
  Put16(type);
  Put16(kClassIn);
  Set16(4, static_cast<uint16_t>(
               (static_cast<uint8_t>(wire_[4]) << 8 | static_cast<uint8_t>(wire_[5])) + 1));
  return *this;
}

void MessageBuilder::BeginRecord(Section s, std::string_view name, uint16_t type, uint32_t ttl_s) {
  int index = static_cast<int>(s);
  size_t count_offset = 4 + 2 * index;
  Set16(count_offset, static_cast<uint16_t>((static_cast<uint8_t>(wire_[count_offset]) << 8 |
                                             static_cast<uint8_t>(wire_[count_offset + 1])) +
                                            1));
  PutName(name);
  Put16(type);
  Put16(kClassIn);
  Put32(ttl_s);
  rdlength_offset_ = wire_.size();
  Put16(0);
}

void MessageBuilder::EndRecord() {
  Set16(rdlength_offset_, static_cast<uint16_t>(wire_.size() - rdlength_offset_ - 2));
}

MessageBuilder& MessageBuilder::AddA(Section s, std::string_view name, uint32_t ttl_s,
                                     std::string_view ipv4) {
  in_addr a{};
  inet_pton(AF_INET, std::string(ipv4).c_str(), &a);
  BeginRecord(s, name, kTypeA, ttl_s);
  wire_.append(reinterpret_cast<const char*>(&a), 4);
  EndRecord();
  return *this;
}

MessageBuilder& MessageBuilder::AddAaaa(Section s, std::string_view name, uint32_t ttl_s,
                                        std::string_view ipv6) {
  in6_addr a{};
  inet_pton(AF_INET6, std::string(ipv6).c_str(), &a);
  BeginRecord(s, name, kTypeAaaa, ttl_s);
  wire_.append(reinterpret_cast<const char*>(&a), 16);
  EndRecord();
  return *this;
}

MessageBuilder& MessageBuilder::AddMx(Section s, std::string_view name, uint32_t ttl_s,
                                      uint16_t preference, std::string_view exchange) {
  BeginRecord(s, name, kTypeMx, ttl_s);
  Put16(preference);
  PutName(exchange);
  EndRecord();
  return *this;
}

MessageBuilder& MessageBuilder::AddName(Section s, std::string_view name, uint16_t type,
                                        uint32_t ttl_s, std::string_view target) {
  BeginRecord(s, name, type, ttl_s);
  PutName(target);
  EndRecord();
  return *this;
}

MessageBuilder& MessageBuilder::AddTxt(Section s, std::string_view name, uint32_t ttl_s,
                                       const std::vector<std::string>& strings) {
  BeginRecord(s, name, kTypeTxt, ttl_s);
  for (const std::string& str : strings) {
    size_t len = std::min<size_t>(str.size(), 255);
    wire_.push_back(static_cast<char>(len));
    wire_.append(str, 0, len);
  }
  EndRecord();
  return *this;
}

MessageBuilder& MessageBuilder::AddSoa(Section s, std::string_view name, uint32_t ttl_s,
                                       const SoaData& soa) {
  BeginRecord(s, name, kTypeSoa, ttl_s);
  PutName(soa.mname);
  PutName(soa.rname);
  Put32(soa.serial);
  Put32(soa.refresh_s);
  Put32(soa.retry_s);
  Put32(soa.expire_s);
  Put32(soa.minimum_s);
  EndRecord();
  return *this;
}

}  // namespace dns
