#include "tools/relayctl/suppress_commands.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "relay/cluster/fleet.h"
#include "relay/feedback/suppression_list.h"
#include "relay/server/config.h"
#include "tools/relayctl/user_commands.h"

namespace relay::relayctl {
namespace {

using feedback::SuppressionEntry;
using feedback::SuppressionList;

constexpr char kCsvHeader[] = "tenant,address,reason,category,time,queue_id,detail";
constexpr size_t kImportBatch = 10000;
constexpr size_t kImportLineBytesMax = 4096;

struct Options {
  std::string verb;
  std::vector<std::string> args;
  std::string config_dir = kDefaultConfigDir;
  std::string config_path;
  std::string file;
  std::string tenant;
  std::string reason = "manual";
  std::string note;
  std::string out;
};

int Usage() {
  std::fprintf(stderr,
               "usage: relayctl suppress add ADDRESS --tenant DOMAIN [--reason R] [--note TEXT]\n"
               "       relayctl suppress remove ADDRESS --tenant DOMAIN\n"
               "       relayctl suppress list [--tenant DOMAIN]\n"
               "       relayctl suppress export [--tenant DOMAIN] [--out FILE]\n"
               "       relayctl suppress import FILE [--tenant DOMAIN]\n"
               "  each with [--config PATH | --config-dir DIR | --file PATH]\n");
  return 2;
}

bool ParseOptions(int argc, char** argv, Options* o) {
  if (argc < 2) return false;
  o->verb = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string* value = arg == "--config-dir" ? &o->config_dir
                         : arg == "--config"   ? &o->config_path
                         : arg == "--file"     ? &o->file
                         : arg == "--tenant"   ? &o->tenant
                         : arg == "--reason"   ? &o->reason
                         : arg == "--note"     ? &o->note
                         : arg == "--out"      ? &o->out
                                               : nullptr;
    if (value != nullptr) {
      if (i + 1 >= argc) return false;
      *value = argv[++i];
    } else if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "relayctl suppress: unknown option %s\n", arg.c_str());
      return false;
    } else {
      o->args.push_back(arg);
    }
  }
  return true;
}

// `fleet`: set when the config has a [cluster]: changes go to the fleet's Redis too.
std::unique_ptr<SuppressionList> OpenList(const Options& o,
                                          std::optional<cluster::FleetOptions>* fleet) {
  feedback::SuppressionListOptions options;
  options.path = o.file;
  if (options.path.empty()) {
    const std::string path = o.config_path.empty() ? o.config_dir + "/relayd.toml" : o.config_path;
    absl::StatusOr<server::Config> config = server::LoadConfig(path);
    if (!config.ok()) {
      std::fprintf(stderr, "relayctl suppress: %s (name the list with --file PATH)\n",
                   std::string(config.status().message()).c_str());
      return nullptr;
    }
    options.path = config->suppression.path;
    options.map_bytes_max = config->suppression.map_bytes_max;
    if (config->cluster.enabled) *fleet = config->cluster.fleet;
  }
  // Before relayd's first start the spool directory may not exist yet; relayd makes it too.
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(options.path).parent_path(), ec);
  absl::StatusOr<std::unique_ptr<SuppressionList>> list = SuppressionList::Open(options);
  if (!list.ok()) {
    std::fprintf(stderr, "relayctl suppress: %s\n", std::string(list.status().message()).c_str());
    return nullptr;
  }
  return std::move(*list);
}

std::string TimeText(int64_t unix_ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms), absl::UTCTimeZone());
}

std::string CsvRecord(const SuppressionEntry& e) {
  return absl::StrCat(CsvField(e.tenant), ",", CsvField(e.address), ",",
                      std::string(feedback::ReasonName(e.reason)), ",", CsvField(e.category), ",",
                      TimeText(e.time_unix_ms), ",", CsvField(e.queue_id), ",",
                      CsvField(e.detail));
}

// One import line as an entry; `full` when the file has the export header.
absl::StatusOr<SuppressionEntry> ImportEntry(std::string_view line, bool full,
                                             const std::string& tenant, int64_t now_ms) {
  absl::StatusOr<std::vector<std::string>> fields = ParseCsvLine(line);
  if (!fields.ok()) return fields.status();
  SuppressionEntry e;
  e.reason = feedback::SuppressionReason::kManual;
  e.time_unix_ms = now_ms;
  if (full) {
    if (fields->size() != 7) {
      return absl::InvalidArgumentError(absl::StrCat("7 fields expected, found ", fields->size()));
    }
    e.tenant = (*fields)[0];
    e.address = (*fields)[1];
    std::optional<feedback::SuppressionReason> reason = feedback::ReasonNamed((*fields)[2]);
    if (!reason) return absl::InvalidArgumentError("unknown reason \"" + (*fields)[2] + "\"");
    e.reason = *reason;
    e.category = (*fields)[3];
    absl::Time t;
    std::string error;
    if (!(*fields)[4].empty()) {
      if (!absl::ParseTime(absl::RFC3339_full, (*fields)[4], &t, &error)) {
        return absl::InvalidArgumentError("time \"" + (*fields)[4] + "\": " + error);
      }
      e.time_unix_ms = absl::ToUnixMillis(t);
    }
    e.queue_id = (*fields)[5];
    e.detail = (*fields)[6];
  } else if (fields->size() == 1 && !tenant.empty()) {
    e.tenant = tenant;
    e.address = (*fields)[0];
  } else if (fields->size() == 2) {
    e.tenant = (*fields)[0];
    e.address = (*fields)[1];
  } else {
    return absl::InvalidArgumentError(
        tenant.empty() ? "expected tenant,address (or give --tenant)" : "expected an address");
  }
  absl::StatusOr<std::string> key = feedback::EntryKey(e.tenant, e.address);
  if (!key.ok()) return key.status();
  if (e.address.find('@') == std::string::npos) {
    return absl::InvalidArgumentError("\"" + e.address + "\" is not an address");
  }
  return e;
}

// The next line of `in` without its LF (and CR), read into a buffer of kImportLineBytesMax + 2:
// a longer line is never held whole. False at the end of the input; `too_long` when the line
// did not fit (the rest of it is skipped).
bool ReadImportLine(std::istream& in, std::string* line, bool* too_long) {
  char buf[kImportLineBytesMax + 2];
  *too_long = false;
  in.getline(buf, sizeof(buf));
  if (in.bad() || (in.eof() && in.gcount() == 0)) return false;
  if (in.fail() && !in.eof()) {  // the buffer filled before the LF
    *too_long = true;
    in.clear();
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  line->assign(buf);
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return true;
}

int Import(SuppressionList& list, const Options& o) {
  if (o.args.size() != 1) return Usage();
  std::ifstream in(o.args[0]);
  if (!in) {
    std::fprintf(stderr, "relayctl suppress import: cannot read %s\n", o.args[0].c_str());
    return 1;
  }
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::vector<SuppressionEntry> batch;
  std::string line;
  size_t number = 0, added = 0;
  bool full = false;
  auto flush = [&]() -> bool {
    absl::Status s = list.AddMany(batch);
    if (!s.ok()) {
      std::fprintf(stderr, "relayctl suppress import: %s\n", std::string(s.message()).c_str());
      return false;
    }
    added += batch.size();
    batch.clear();
    return true;
  };
  bool too_long = false;
  while (ReadImportLine(in, &line, &too_long)) {
    ++number;
    if (number == 1 && line == kCsvHeader) {
      full = true;
      continue;
    }
    if (line.empty() && !too_long) continue;
    absl::StatusOr<SuppressionEntry> e = too_long || line.size() > kImportLineBytesMax
                                             ? absl::InvalidArgumentError(absl::StrCat(
                                                   "longer than ", kImportLineBytesMax, " bytes"))
                                             : ImportEntry(line, full, o.tenant, now_ms);
    if (!e.ok()) {
      if (flush()) std::printf("imported %zu entries before the error\n", added);
      std::fprintf(stderr, "relayctl suppress import: %s:%zu: %s\n", o.args[0].c_str(), number,
                   std::string(e.status().message()).c_str());
      return 1;
    }
    batch.push_back(std::move(*e));
    if (batch.size() == kImportBatch && !flush()) return 1;
  }
  if (!flush()) return 1;
  std::printf("imported %zu entries\n", added);
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseCsvLine(std::string_view line) {
  std::vector<std::string> fields(1);
  size_t i = 0;
  while (i <= line.size()) {
    std::string& field = fields.back();
    if (i < line.size() && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= line.size()) return absl::InvalidArgumentError("a quoted field is not closed");
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field.push_back(line[i++]);
      }
      if (i < line.size() && line[i] != ',') {
        return absl::InvalidArgumentError("text after a closing quote");
      }
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"') return absl::InvalidArgumentError("a quote inside an unquoted field");
        field.push_back(line[i++]);
      }
    }
    if (i >= line.size()) break;
    ++i;  // the comma
    fields.emplace_back();
  }
  return fields;
}

std::string CsvField(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

namespace {

int AddOne(SuppressionList& list, const Options& o) {
  std::optional<feedback::SuppressionReason> reason = feedback::ReasonNamed(o.reason);
  if (!reason) {
    std::fprintf(stderr,
                 "relayctl suppress: --reason is manual, bounce, complaint or "
                 "unsubscribe\n");
    return 2;
  }
  SuppressionEntry e;
  e.tenant = o.tenant;
  e.address = o.args[0];
  e.reason = *reason;
  e.time_unix_ms = absl::ToUnixMillis(absl::Now());
  e.detail = o.note;
  absl::Status s = list.Add(e);
  if (!s.ok()) {
    std::fprintf(stderr, "relayctl suppress add: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("suppressed %s for %s\n", o.args[0].c_str(), o.tenant.c_str());
  return 0;
}

int RemoveOne(SuppressionList& list, const Options& o) {
  absl::StatusOr<bool> removed = list.Remove(o.tenant, o.args[0]);
  if (!removed.ok()) {
    std::fprintf(stderr, "relayctl suppress remove: %s\n",
                 std::string(removed.status().message()).c_str());
    return 1;
  }
  if (!*removed) {
    std::fprintf(stderr, "relayctl suppress remove: %s is not on the list of %s\n",
                 o.args[0].c_str(), o.tenant.c_str());
    return 1;
  }
  std::printf("removed %s from the list of %s\n", o.args[0].c_str(), o.tenant.c_str());
  return 0;
}

// list (for people) and export (CSV).
int Print(const SuppressionList& list, const Options& o) {
  if (!o.args.empty()) return Usage();
  std::ofstream file;
  std::ostream* out = &std::cout;
  if (!o.out.empty()) {
    file.open(o.out, std::ios::trunc);
    if (!file) {
      std::fprintf(stderr, "relayctl suppress export: cannot write %s\n", o.out.c_str());
      return 1;
    }
    out = &file;
  }
  const bool csv = o.verb == "export";
  if (csv) *out << kCsvHeader << "\n";
  uint64_t count = 0;
  absl::Status s = list.ForEach(o.tenant, [&](const SuppressionEntry& e) {
    ++count;
    if (csv) {
      *out << CsvRecord(e) << "\n";
    } else {
      *out << e.tenant << "  " << e.address << "  " << feedback::ReasonName(e.reason)
           << (e.category.empty() ? "" : " " + e.category) << "  " << TimeText(e.time_unix_ms)
           << (e.queue_id.empty() ? "" : "  " + e.queue_id)
           << (e.detail.empty() ? "" : "  " + e.detail) << "\n";
    }
    return static_cast<bool>(*out);
  });
  if (!s.ok() || !*out) {
    std::fprintf(stderr, "relayctl suppress %s: %s\n", o.verb.c_str(),
                 s.ok() ? "write failed" : std::string(s.message()).c_str());
    return 1;
  }
  if (!csv) {
    std::printf("%llu %s\n", static_cast<unsigned long long>(count),
                count == 1 ? "entry" : "entries");
  }
  return 0;
}

}  // namespace

int SuppressCommand(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, &o)) return Usage();
  const bool known = o.verb == "add" || o.verb == "remove" || o.verb == "list" ||
                     o.verb == "export" || o.verb == "import";
  if (!known) return Usage();
  if ((o.verb == "add" || o.verb == "remove") && (o.args.size() != 1 || o.tenant.empty())) {
    return Usage();
  }
  std::optional<cluster::FleetOptions> fleet;
  std::unique_ptr<SuppressionList> list = OpenList(o, &fleet);
  if (list == nullptr) return 1;
  // In a fleet, what this command changes here goes to every node through Redis (the running
  // relayd of this node reads the file directly, as the others read Redis).
  std::unique_ptr<cluster::SuppressionPublisher> publisher;
  if (fleet) {
    publisher = std::make_unique<cluster::SuppressionPublisher>(*fleet);
    list->SetListener([p = publisher.get()](const SuppressionEntry& e, bool removed) {
      p->Add(e, removed);
    });
  }
  const int rc = o.verb == "add"      ? AddOne(*list, o)
                 : o.verb == "remove" ? RemoveOne(*list, o)
                 : o.verb == "import" ? Import(*list, o)
                                      : Print(*list, o);
  if (publisher == nullptr) return rc;
  const absl::Status shared = publisher->Finish();
  if (!shared.ok()) {
    std::fprintf(stderr,
                 "relayctl suppress: done on this node only: the fleet's Redis %s:%u did not take "
                 "it (%s); run the command again when it answers\n",
                 fleet->redis.address.host.c_str(), fleet->redis.address.port,
                 std::string(shared.message()).c_str());
    return rc != 0 ? rc : 1;
  }
  if (publisher->sent() > 0) {
    std::printf("shared with the fleet through Redis %s:%u\n", fleet->redis.address.host.c_str(),
                fleet->redis.address.port);
  }
  return rc;
}

}  // namespace relay::relayctl
