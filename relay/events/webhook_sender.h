// A webhook: an event sink (event_sink.h) whose far side is one HTTPS endpoint. Each batch is
//
//   POST <path>   Content-Type: application/json
//   X-Relay-Webhook: <name>
//   X-Relay-Timestamp: <Unix seconds>
//   X-Relay-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//   {"webhook":"<name>","events":[{"id":"<shard>-<seq>-<offset>","ts":...,"event":...}, ...]}
//
// and any 2xx takes it; anything else (a status, no answer, a certificate that does not verify,
// a timeout) is retried. The receiver checks the signature with the shared secret and refuses a
// timestamp far from its clock, so a captured post cannot be replayed later.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "relay/events/event_sink.h"
#include "relay/events/https_post.h"

namespace relay::events {

struct WebhookOptions : SinkOptions {
  std::string url;
  std::string secret;
  std::string ca_file = "/etc/ssl/certs/ca-certificates.crt";
  int timeout_ms = 10000;  // one post, connect to status line
};

// The hex HMAC-SHA256 of "<timestamp>.<body>" under `secret`.
std::string SignBatch(std::string_view secret, int64_t timestamp, std::string_view body);

class WebhookSender : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<WebhookSender>> Create(WebhookOptions options,
                                                               const JournalSet* journals);
  ~WebhookSender() override;

  const WebhookOptions& options() const { return options_; }

 protected:
  absl::Status Deliver(std::string_view events, size_t count) override;

 private:
  WebhookSender(WebhookOptions options, const JournalSet* journals,
                std::unique_ptr<HttpsPoster> poster);

  const WebhookOptions options_;
  const std::unique_ptr<HttpsPoster> poster_;
};

}  // namespace relay::events
