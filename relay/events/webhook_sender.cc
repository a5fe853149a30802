#include "relay/events/webhook_sender.h"

#include <openssl/hmac.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace relay::events {

std::string SignBatch(std::string_view secret, int64_t timestamp, std::string_view body) {
  HMAC_CTX ctx;
  HMAC_CTX_init(&ctx);
  HMAC_Init_ex(&ctx, secret.data(), secret.size(), EVP_sha256(), nullptr);
  std::string prefix = absl::StrCat(timestamp, ".");
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size());
  HMAC_Update(&ctx, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC_Final(&ctx, mac, &len);
  HMAC_CTX_cleanup(&ctx);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), len));
}

absl::StatusOr<std::unique_ptr<WebhookSender>> WebhookSender::Create(WebhookOptions options,
                                                                     const JournalSet* journals) {
  absl::StatusOr<Url> url = ParseUrl(options.url);
  if (!url.ok()) return url.status();
  absl::StatusOr<std::unique_ptr<HttpsPoster>> poster =
      HttpsPoster::Create(std::move(*url), options.ca_file);
  if (!poster.ok()) return poster.status();
  std::unique_ptr<WebhookSender> sender(
      new WebhookSender(std::move(options), journals, std::move(*poster)));
  if (absl::Status s = sender->LoadCursor(); !s.ok()) return s;
  return sender;
}

WebhookSender::WebhookSender(WebhookOptions options, const JournalSet* journals,
                             std::unique_ptr<HttpsPoster> poster)
    : EventSink(options, journals), options_(std::move(options)), poster_(std::move(poster)) {}

WebhookSender::~WebhookSender() { Stop(); }

absl::Status WebhookSender::Deliver(std::string_view events, size_t) {
  const std::string body = absl::StrCat("{\"webhook\":\"", options_.name, "\",\"events\":[",
                                        absl::string_view(events.data(), events.size()), "]}");
  const int64_t timestamp = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  const std::vector<std::string> headers = {
      "User-Agent: relayd",
      absl::StrCat("X-Relay-Webhook: ", options_.name),
      absl::StrCat("X-Relay-Timestamp: ", timestamp),
      absl::StrCat("X-Relay-Signature: sha256=", SignBatch(options_.secret, timestamp, body)),
  };
  absl::StatusOr<int> code = poster_->Post(body, headers, options_.timeout_ms, &stopping());
  if (!code.ok()) return code.status();
  if (*code == 413) return absl::ResourceExhaustedError("HTTP status 413");
  if (*code < 200 || *code > 299) {
    return absl::UnavailableError(absl::StrCat("HTTP status ", *code));
  }
  return absl::OkStatus();
}

}  // namespace relay::events
