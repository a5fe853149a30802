#include "relay/delivery/outcome.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "relay/smtp/text.h"

namespace relay::delivery {

std::string RecipientOutcome::ToString() const {
  if (code == 0) return text;
  if (enhanced.empty()) return absl::StrCat(code, " ", text);
  return absl::StrCat(code, " ", enhanced, " ", text);
}

RecipientOutcome RecipientOutcome::FittedTo(size_t bytes_max) const {
  const std::string line = ToString();
  if (line.size() <= bytes_max) return *this;
  const size_t prefix_bytes = line.size() - text.size();  // "550 5.1.1 ", or 0
  RecipientOutcome fitted{kind, code, enhanced, "", category};
  if (prefix_bytes + smtp::kTruncatedMark.size() > bytes_max) {
    // Only for a bytes_max too small for any reply: what fits of the whole line, as a local text.
    fitted.code = 0;
    fitted.enhanced.clear();
    fitted.text = smtp::TruncateText(line, bytes_max);
    return fitted;
  }
  fitted.text = smtp::TruncateText(text, bytes_max - prefix_bytes);
  return fitted;
}

RecipientOutcome RecipientOutcome::Categorized(feedback::BounceCategory c) && {
  category = c;
  return std::move(*this);
}

RecipientOutcome RecipientOutcome::Transient(std::string text, int code, std::string enhanced) {
  return RecipientOutcome{OutcomeKind::kTransient, code, std::move(enhanced), std::move(text)};
}

RecipientOutcome RecipientOutcome::Permanent(std::string text, int code, std::string enhanced) {
  return RecipientOutcome{OutcomeKind::kPermanent, code, std::move(enhanced), std::move(text)};
}

std::string_view TlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::kNone:
      return "none";
    case TlsMode::kOpportunistic:
      return "opportunistic";
    case TlsMode::kVerified:
      return "verified";
    case TlsMode::kMtaSts:
      return "mta-sts";
    case TlsMode::kDane:
      return "dane";
  }
  return "?";
}

}  // namespace relay::delivery
