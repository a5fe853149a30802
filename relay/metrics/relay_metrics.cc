#include "relay/metrics/relay_metrics.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "relay/base/check.h"

namespace relay::metrics {
namespace {

constexpr const char* kListenerNames[] = {"submission", "submissions", "receive"};
constexpr const char* kDirectionNames[] = {"inbound", "outbound"};
constexpr const char* kAuthNames[] = {"success", "failure", "error"};
constexpr const char* kFeedbackNames[] = {"bounce",       "complaint", "auto-reply",
                                          "not-a-report", "unmatched", "unsubscribe"};
// RFC 6376 §3.3 and RFC 8463 §3: the a= tag values.
constexpr const char* kDkimNames[] = {"rsa-sha256", "ed25519-sha256"};
constexpr const char* kRecipientFamilies[] = {"relay_recipients_delivered_total",
                                              "relay_recipients_deferred_total",
                                              "relay_recipients_bounced_total"};
constexpr const char* kRecipientHelp[] = {
    "Recipients accepted by the receiving MX (2xx), by shaping rule and egress source.",
    "Recipient attempts that failed transiently and will be retried, by shaping rule and egress "
    "source.",
    "Recipients that failed for good (5xx, expired, null MX), by shaping rule and egress source."};

FamilyOptions Help(std::string help, double scale = 1.0, std::vector<uint64_t> bounds = {}) {
  FamilyOptions o;
  o.help = std::move(help);
  o.scale = scale;
  o.bounds = std::move(bounds);
  return o;
}

constexpr double kMicrosToSeconds = 1e-6;

}  // namespace

const std::vector<uint64_t>& RelayMetrics::LatencyBoundsUs() {
  static const std::vector<uint64_t> bounds = {
      50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000};
  return bounds;
}

const std::vector<uint64_t>& RelayMetrics::BatchBounds() {
  static const std::vector<uint64_t> bounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return bounds;
}

RelayMetrics::RelayMetrics(const RelayMetricsOptions& options)
    : registry_(options.shards), options_(options) {
  Registry& r = registry_;
  for (int k = 0; k < kListenerKinds; ++k) {
    Labels l = {{"listener", kListenerNames[k]}};
    listeners_[k].connections_accepted = r.AddCounter(
        "relay_connections_accepted_total", Help("Inbound connections accepted, by listener."), l);
    listeners_[k].connections_refused = r.AddCounter(
        "relay_connections_refused_total",
        Help("Inbound connections refused with 421 (limits, shutdown, blocked address)."), l);
    listeners_[k].connections_open =
        r.AddGauge("relay_connections_open", Help("Inbound connections open now."), l);
    listeners_[k].sessions = r.AddCounter(
        "relay_smtp_sessions_total",
        Help("SMTP sessions greeted (for implicit TLS: after the handshake), by listener."), l);
  }
  messages_received = r.AddCounter(
      "relay_messages_received_total",
      Help("Messages accepted and durably queued (the 250 reply follows the fdatasync)."));
  message_bytes_received = r.AddCounter(
      "relay_message_received_bytes_total",
      Help("Bytes of the messages durably queued, headers added by the relay included."));
  recipients_suppressed = r.AddCounter(
      "relay_recipients_suppressed_total",
      Help("Recipients taken at RCPT but not queued because they are on the sending domain's "
           "suppression list ([suppression] at_rcpt = \"accept\"; refused ones are RCPT "
           "replies, not counted here)."));
  transactions_refused = r.AddCounter(
      "relay_smtp_transactions_refused_total",
      Help("Message transactions the relay refused at the end of DATA (queue full, unsignable, "
           "sync failure)."));
  for (int d = 0; d < 2; ++d) {
    Labels l = {{"direction", kDirectionNames[d]}};
    tls_handshakes_[d] = r.AddCounter("relay_tls_handshakes_total",
                                      Help("TLS handshakes completed, inbound and outbound."), l);
    tls_failures_[d] = r.AddCounter(
        "relay_tls_handshake_failures_total",
        Help("TLS handshakes that failed (protocol error, certificate refused), inbound and "
             "outbound."),
        l);
  }
  for (int m = 0; m < kTlsModes; ++m) {
    delivered_by_tls_[m] = r.AddCounter(
        "relay_delivered_by_tls_total",
        Help("Recipients delivered, by how TLS was used: none (plain text), opportunistic "
             "(encrypted, certificate not checked or not valid), verified (certificate valid for "
             "the MX name), mta-sts or dane (as the domain's policy demanded)."),
        {{"mode", kTlsModeNames[m]}});
  }
  for (int a = 0; a < 3; ++a) {
    auth_[a] = r.AddCounter(
        "relay_auth_attempts_total",
        Help("SMTP AUTH attempts by result (error: the credential check itself failed)."),
        {{"result", kAuthNames[a]}});
  }
  for (int f = 0; f < kFeedbackResults; ++f) {
    feedback_[f] = r.AddCounter(
        "relay_feedback_reports_total",
        Help("Messages to a bounce domain ([feedback]) by what they were: returned bounces and "
             "complaints matched to their message, or dropped."),
        {{"result", kFeedbackNames[f]}});
  }
  for (int a = 0; a < 2; ++a) {
    dkim_signatures_[a] =
        r.AddCounter("relay_dkim_signatures_total", Help("DKIM signatures made, by algorithm."),
                     {{"algorithm", kDkimNames[a]}});
  }
  dkim_refused = r.AddCounter("relay_dkim_refused_total",
                              Help("Messages refused because they could not be DKIM-signed."));
  dkim_signing_us =
      r.AddHistogram("relay_dkim_signing_seconds",
                     Help("Time to DKIM-sign one message (hashing and every signature).",
                          kMicrosToSeconds, LatencyBoundsUs()));
  queue_messages =
      r.AddGauge("relay_queue_messages", Help("Messages in the queue with recipients pending."));
  queue_bytes = r.AddGauge("relay_queue_bytes",
                           Help("Bytes of the queue's segment files in use (reserve excluded)."));
  queue_capacity_bytes = r.AddGauge(
      "relay_queue_capacity_bytes",
      Help("Bytes of segment files messages may fill ([queue] spool_bytes_max in whole segments): "
           "at relay_queue_bytes equal to it new messages get 452 4.3.1."));
  queue_reserve_segments = r.AddGauge(
      "relay_queue_reserve_segments",
      Help("Pre-written segment files ready for the append path (created in the background)."));
  queue_segments_created_on_append_path = r.AddCounter(
      "relay_queue_segments_created_on_append_path_total",
      Help("Segment files created on the append path because the reserve was empty: each one "
           "stalls its shard (raise [queue] reserve_segments if this grows)."));
  queue_segment_creation_failures = r.AddCounter(
      "relay_queue_segment_creation_failures_total",
      Help("Background creations of reserve segment files that failed (a full disk, usually)."));
  fsync_us = r.AddHistogram("relay_queue_fsync_seconds",
                            Help("Duration of one group commit of the queue (its fdatasync calls).",
                                 kMicrosToSeconds, LatencyBoundsUs()));
  fsync_batch_records = r.AddHistogram(
      "relay_queue_fsync_batch_records",
      Help("Records (messages and delivery outcomes) made durable by one group commit.", 1.0,
           BatchBounds()));
  fsync_errors =
      r.AddCounter("relay_queue_fsync_errors_total", Help("Group commits whose fdatasync failed."));
  dns_queries = r.AddCounter("relay_dns_queries_total",
                             Help("DNS queries sent to the resolver (cache misses)."));
  dns_cache_hits =
      r.AddCounter("relay_dns_cache_hits_total", Help("DNS lookups answered from the cache."));
  dns_failures = r.AddCounter(
      "relay_dns_failures_total",
      Help("DNS queries without a usable answer (timeout, SERVFAIL, malformed reply)."));
  outbound_connections_open =
      r.AddGauge("relay_outbound_connections_open", Help("Outbound SMTP connections open now."));
  outbound_connections_opened = r.AddCounter("relay_outbound_connections_opened_total",
                                             Help("Outbound SMTP connections opened."));
  dsn_queued = r.AddCounter("relay_dsn_queued_total",
                            Help("Delivery status notifications (bounces) queued."));
  possible_duplicates = r.AddCounter(
      "relay_possible_duplicate_outcomes_total",
      Help("Delivery outcomes of recipients whose earlier attempt's outcome is unknown (the relay "
           "died, or the connection was lost, after the body): the remote may hold a copy."));

  // Site and source labels: "none", the configuration's names up to the caps, then "other" for
  // the rest (only when there is a rest).
  std::vector<std::string> sites = {"none"};
  int other_site = -1;
  for (const std::string& s : options.sites) {
    if (site_index_.contains(s)) continue;
    if (static_cast<int>(sites.size()) - 1 < kSitesMax) {
      site_index_[s] = static_cast<int>(sites.size()) - 1;
      sites.push_back(s);
      continue;
    }
    if (other_site < 0) {
      other_site = static_cast<int>(sites.size()) - 1;
      sites.push_back("other");
    }
    site_index_[s] = other_site;
  }
  std::vector<std::string> sources = {"none"};
  for (const std::string& s : options.sources) {
    if (static_cast<int>(sources.size()) - 1 < kSourcesMax) {
      sources.push_back(s);
    } else {
      source_other_ = static_cast<int>(sources.size());
      sources.push_back("other");
      break;
    }
  }
  for (int result = 0; result < 3; ++result) {
    for (const std::string& site : sites) {
      for (const std::string& source : sources) {
        recipients_.push_back(r.AddCounter(kRecipientFamilies[result], Help(kRecipientHelp[result]),
                                           {{"site", site}, {"source", source}}));
      }
    }
  }
  for (int result = 1; result < 3; ++result) {
    for (const std::string& site : sites) {
      for (int c = 0; c < feedback::kBounceCategoryCount; ++c) {
        const std::string_view category =
            feedback::CategoryName(static_cast<feedback::BounceCategory>(c));
        failures_.push_back(r.AddCounter(
            "relay_recipient_failures_total",
            Help("Deferrals and bounces by category (the bounce rules' verdict on the reply: "
                 "bad-mailbox, rate-limited, ...) and shaping rule."),
            {{"result", result == 1 ? "deferred" : "bounced"},
             {"category", std::string(category)},
             {"site", site}}));
      }
    }
  }
  site_count_ = static_cast<int>(sites.size());
  source_count_ = static_cast<int>(sources.size());
  AddTenantSeries(options.tenants);
  for (const std::string& name : sites) {
    Labels l = {{"site", name}};
    Site site;
    site.delivered_tls =
        r.AddCounter("relay_recipients_delivered_tls_total",
                     Help("Recipients delivered over TLS, by shaping rule (the TLS share of "
                          "relay_recipients_delivered_total)."),
                     l);
    site.suspensions = r.AddCounter(
        "relay_site_suspensions_total",
        Help("Suspensions of an (egress source, site) ready queue by a reply rule (e.g. Gmail's "
             "421 4.7.28), by shaping rule."),
        l);
    site.suspended_queues = r.AddGauge(
        "relay_site_suspended_queues",
        Help("(egress source, site) ready queues suspended now, by shaping rule (each shard "
             "suspends its own; refreshed every second)."),
        l);
    site.ready_messages = r.AddGauge(
        "relay_ready_queue_messages",
        Help("Messages (one per recipient domain) waiting in ready queues for a connection or a "
             "rate token, by shaping rule (refreshed every second)."),
        l);
    sites_.push_back(site);
  }
  for (int shard = 0; shard < options.shards; ++shard) {
    loop_turns_.push_back(r.AddCounter(
        "relay_shard_loop_turns_total",
        Help("Event loop turns of each shard; an idle shard turns at least once a second, so a "
             "count that stops moving is a stalled shard."),
        {{"shard", absl::StrCat(shard)}}));
  }
  oldest_ = std::make_unique<Oldest[]>(options.shards);
  const Clock* clock = options.clock != nullptr ? options.clock : RealClock::Get();
  r.AddCallback(
      "relay_queue_oldest_message_age_seconds", MetricType::kGauge,
      Help("Age of the oldest message in the queue with a recipient pending (0 when empty)."), {},
      [this, clock, shards = options.shards] {
        int64_t oldest = -1;
        for (int i = 0; i < shards; ++i) {
          int64_t v = oldest_[i].created_unix_ms.load(std::memory_order_relaxed);
          if (v >= 0 && (oldest < 0 || v < oldest)) oldest = v;
        }
        if (oldest < 0) return 0.0;
        return std::max(0.0, clock->WallSeconds() - oldest / 1000.0);
      });
  if (!options.spool_directory.empty()) {
    // One statvfs per series and scrape, on the scraping thread. NaN when it fails.
    auto fs = [dir = options.spool_directory](bool avail) {
      struct statvfs st;
      if (::statvfs(dir.c_str(), &st) != 0) return std::nan("");
      return static_cast<double>(avail ? st.f_bavail : st.f_blocks) *
             static_cast<double>(st.f_frsize);
    };
    r.AddCallback("relay_spool_filesystem_avail_bytes", MetricType::kGauge,
                  Help("Bytes available to the relay on the spool's file system (statvfs "
                       "f_bavail): new segment files are created there."),
                  {}, [fs] { return fs(true); });
    r.AddCallback("relay_spool_filesystem_size_bytes", MetricType::kGauge,
                  Help("Size of the spool's file system in bytes."), {},
                  [fs] { return fs(false); });
  }

  double start = options.start_time_unix_s;
  r.AddCallback("relay_process_start_time_seconds", MetricType::kGauge,
                Help("Start time of the relay since the Unix epoch, in seconds."), {},
                [start] { return start; });
  r.AddCallback("relay_build_info", MetricType::kGauge,
                Help("Always 1; the labels say which build runs."), {{"version", options.version}},
                [] { return 1.0; });
  r.AddCallback("relay_expectation_failures_total", MetricType::kCounter,
                Help("Internal states that must never happen, counted instead of crashing."), {},
                [] { return static_cast<double>(ExpectationFailures()); });
  if (options.add_series) options.add_series(&r);
  r.Freeze();
}

void RelayMetrics::AddTenantSeries(const std::vector<std::string>& named) {
  std::vector<std::string> tenants = {"none"};
  for (const std::string& t : named) {
    if (tenant_index_.contains(t)) continue;
    if (static_cast<int>(tenants.size()) - 1 >= kTenantsMax) {
      tenants.push_back("other");
      break;
    }
    tenant_index_[t] = static_cast<int>(tenants.size());
    tenants.push_back(t);
  }
  for (const std::string& t : named) {
    if (!tenant_index_.contains(t)) tenant_index_[t] = static_cast<int>(tenants.size()) - 1;
  }
  tenant_count_ = static_cast<int>(tenants.size());
  campaigns_ = std::make_unique<LabelTable>(kCampaignsMax);
  static constexpr const char* kResults[] = {"delivered", "deferred", "bounced"};
  for (const char* result : kResults) {
    for (const std::string& t : tenants) {
      tenant_recipients_.push_back(registry_.AddCounter(
          "relay_tenant_recipients_total",
          Help("Recipients' outcomes by named tenant ([[tenants]]; \"none\": mail of no named "
               "tenant)."),
          {{"result", result}, {"tenant", t}}));
    }
    const FamilyOptions help = Help(
        "Recipients' outcomes by campaign (the first 32 campaigns named since the start "
        "have a label each; later ones share \"other\"; \"none\": no campaign).");
    for (const char* fixed : {"none", "other"}) {
      campaign_recipients_.push_back(registry_.AddCounter(
          "relay_campaign_recipients_total", help, {{"result", result}, {"campaign", fixed}}));
    }
    for (int slot = 0; slot < kCampaignsMax; ++slot) {
      campaign_recipients_.push_back(
          registry_.AddDynamicCounter("relay_campaign_recipients_total", help, {{"result", result}},
                                      "campaign", campaigns_.get(), slot));
    }
  }
}

int RelayMetrics::TenantIndex(std::string_view tenant) const {
  auto it = tenant_index_.find(absl::string_view(tenant.data(), tenant.size()));
  return it == tenant_index_.end() ? 0 : it->second;
}

int RelayMetrics::CampaignIndex(std::string_view campaign) const {
  // A campaign named like a fixed label counts in it: one series per label value.
  if (campaign.empty() || campaign == "none") return 0;
  if (campaign == "other") return 1;
  const int slot = campaigns_->Slot(campaign);
  return slot == LabelTable::kOther ? 1 : 2 + slot;
}

void RelayMetrics::TenantRecipient(int shard, RecipientResult result, int tenant,
                                   int campaign) const {
  const size_t r = static_cast<size_t>(result);
  if (tenant < 0 || tenant >= tenant_count_) tenant = 0;
  if (campaign < 0 || campaign >= 2 + kCampaignsMax) campaign = 0;
  tenant_recipients_[r * tenant_count_ + tenant].Add(shard);
  campaign_recipients_[r * (2 + kCampaignsMax) + campaign].Add(shard);
}

int RelayMetrics::SiteIndex(std::string_view rule_name) const {
  auto it = site_index_.find(absl::string_view(rule_name.data(), rule_name.size()));
  if (it != site_index_.end()) return it->second;
  // A domain rule layered over a provider's rule is named "domain-rule+provider": the provider
  // names the site (the MX hosts), so its name is the label.
  size_t plus = rule_name.rfind('+');
  if (plus == std::string_view::npos) return -1;
  std::string_view provider = rule_name.substr(plus + 1);
  it = site_index_.find(absl::string_view(provider.data(), provider.size()));
  return it == site_index_.end() ? -1 : it->second;
}

void RelayMetrics::Recipient(int shard, RecipientResult result, int site, int source) const {
  if (site < -1 || site + 1 >= site_count_) site = -1;
  int source_label = source + 1;
  if (source_other_ >= 0 && source_label >= source_other_) source_label = source_other_;
  if (source < -1 || source_label >= source_count_) source_label = 0;
  size_t index =
      (static_cast<size_t>(result) * site_count_ + (site + 1)) * source_count_ + source_label;
  recipients_[index].Add(shard);
}

void RelayMetrics::Failure(int shard, RecipientResult result, int site,
                           feedback::BounceCategory category) const {
  if (result == RecipientResult::kDelivered) return;
  if (site < -1 || site + 1 >= site_count_) site = -1;
  int c = static_cast<int>(category);
  if (c < 0 || c >= feedback::kBounceCategoryCount)
    c = static_cast<int>(feedback::BounceCategory::kOther);
  const size_t index =
      (static_cast<size_t>(static_cast<int>(result) - 1) * site_count_ + (site + 1)) *
          feedback::kBounceCategoryCount +
      static_cast<size_t>(c);
  failures_[index].Add(shard);
}

const RelayMetrics::Site& RelayMetrics::site(int site) const {
  if (site < -1 || site + 1 >= site_count_) site = -1;
  return sites_[site + 1];
}

}  // namespace relay::metrics
