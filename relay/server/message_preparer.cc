#include "relay/server/message_preparer.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "relay/smtp/received.h"

namespace relay::server {

MessagePreparer::MessagePreparer(std::shared_ptr<const dkim::Signer> signer, SigningPool* pool,
                                 io::Reactor* reactor, std::string hostname)
    : signer_(std::move(signer)), pool_(pool), reactor_(reactor), hostname_(std::move(hostname)) {}

void MessagePreparer::Prepare(std::string_view message, const std::string& forced_domain,
                              const std::string& next_queue_id, absl::Time now,
                              std::string added_fields, Done done) {
  std::string id_left = next_queue_id;
  if (signer_ != nullptr && pool_ != nullptr) absl::StrAppend(&id_left, ".", ++sequence_);
  PreparedMessage prepared;
  prepared.missing = std::move(added_fields);
  prepared.missing += smtp::MissingHeaderFields(message, id_left, hostname_, now);
  if (signer_ == nullptr) {
    done(std::move(prepared));
    return;
  }
  const int64_t started_ns = reactor_->clock()->MonotonicNanos();
  dkim::SigningSession session =
      forced_domain.empty() ? signer_->Begin() : signer_->BeginFor(forced_domain);
  if (pool_ == nullptr) {
    if (!prepared.missing.empty()) session.Update(prepared.missing);
    session.Update(message);
    absl::StatusOr<std::string> signatures = session.Finish(absl::ToUnixSeconds(now));
    Finish(std::move(prepared), std::move(signatures), session.report(), started_ns, done);
    return;
  }
  // The private-key operation runs on a worker (RFC 6376 §5.5-5.6), which reads `missing` from
  // here until the result comes back: the result is on the heap for that time.
  auto pending = std::make_shared<PreparedMessage>(std::move(prepared));
  std::vector<std::string_view> parts;
  if (!pending->missing.empty()) parts.push_back(pending->missing);
  parts.push_back(message);
  // The session points into the signer: it lives until the result is back, whatever a reload
  // does meanwhile.
  pool_->Sign(std::move(session), std::move(parts), absl::ToUnixSeconds(now), reactor_,
              [this, pending, started_ns, signer = signer_, done = std::move(done)](
                  absl::StatusOr<std::string> signatures, dkim::SignReport report) {
                Finish(std::move(*pending), std::move(signatures), report, started_ns, done);
              });
}

void MessagePreparer::Finish(PreparedMessage prepared, absl::StatusOr<std::string> signatures,
                             const dkim::SignReport& report, int64_t started_ns,
                             const Done& done) const {
  if (!signatures.ok()) {
    done(signatures.status());
    return;
  }
  prepared.signatures = std::move(*signatures);
  prepared.algorithms = report.algorithms;
  prepared.signing_ns = reactor_->clock()->MonotonicNanos() - started_ns;
  done(std::move(prepared));
}

}  // namespace relay::server
