#include "relay/feedback/returned_mail.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace relay::feedback {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(absl::string_view(a.data(), a.size()),
                                absl::string_view(b.data(), b.size()));
}

// The tokens to try: those the report was addressed to, else those it quotes.
std::vector<VerpToken> Tokens(const Verp& verp, const ParsedReport& report,
                              const std::vector<std::string>& to, size_t tokens_max) {
  std::vector<VerpToken> tokens;
  auto add = [&](std::string_view address) {
    if (tokens.size() >= tokens_max) return;
    std::optional<VerpToken> t = verp.ParseAddress(address);
    if (!t) return;
    for (const VerpToken& seen : tokens) {
      if (seen.mac == t->mac && seen.queue_id == t->queue_id) return;
    }
    tokens.push_back(std::move(*t));
  };
  for (const std::string& address : to) add(address);
  if (tokens.empty()) {
    add(report.original_mail_from);
    add(report.original_return_path);
    for (const std::string& address : report.candidate_addresses) add(address);
  }
  return tokens;
}

// The address the report names that `token` was made for; "" when none verifies.
std::string RecipientOf(const Verp& verp, const VerpToken& token, const ParsedReport& report) {
  for (const std::string& address : report.candidate_addresses) {
    if (verp.Verifies(token, address)) return absl::AsciiStrToLower(address);
  }
  return "";
}

// The report's block about `recipient`: the one naming it, else the only failed one when no
// block names it (a forwarded recipient's report names where it was forwarded). Null when the
// block naming it did not fail (a delay notice about it, another recipient's failure beside).
const ReportedRecipient* BlockFor(const ParsedReport& report, std::string_view recipient) {
  const ReportedRecipient* only_failed = nullptr;
  int failed = 0;
  for (const ReportedRecipient& r : report.recipients) {
    if (IEquals(r.final_recipient, recipient) || IEquals(r.original_recipient, recipient)) {
      return r.action == "failed" ? &r : nullptr;
    }
    if (r.action != "failed") continue;
    ++failed;
    only_failed = &r;
  }
  return failed == 1 ? only_failed : nullptr;
}

// RFC 5965 §7.3: "abuse" and "fraud" are the recipient's complaint; "not-spam", "virus",
// "other" and RFC 6591's "auth-failure" are not about the recipient's wishes.
bool IsComplaint(std::string_view feedback_type) {
  return feedback_type == "abuse" || feedback_type == "fraud";
}

int CodeOf(const ReportedRecipient& r) {
  if (r.code != 0) return r.code;
  // A status without a reply code (RFC 3464 §2.3.4): its class stands for one.
  if (!r.status.empty() && (r.status[0] == '4' || r.status[0] == '5')) {
    return (r.status[0] - '0') * 100 + 50;
  }
  return 0;
}

// The address of the message's From: field ("" when none): the angle-bracketed one, else the
// field's value. Looks at the header section only.
std::string FromAddress(std::string_view message) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    if (eol == std::string_view::npos) eol = message.size();
    std::string_view line = message.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (line.size() < 5 || !IEquals(line.substr(0, 5), "from:")) continue;
    std::string_view value = line.substr(5);
    const size_t open = value.find('<');
    const size_t close = open == std::string_view::npos ? open : value.find('>', open);
    if (close != std::string_view::npos) value = value.substr(open + 1, close - open - 1);
    return absl::AsciiStrToLower(
        absl::StripAsciiWhitespace(absl::string_view(value.data(), value.size())));
  }
  return "";
}

// An unsubscribe by mail: the first `to` that is an unsubscribe mailto, verified for the
// address the message comes from.
bool ReadUnsubscribe(const Unsubscribe& unsubscribe, std::string_view message,
                     std::string_view envelope_sender, const std::vector<std::string>& to,
                     ReturnedMail* mail) {
  for (const std::string& address : to) {
    std::optional<UnsubscribeToken> token = unsubscribe.ParseMailto(address);
    if (!token) continue;
    mail->kind = ReportKind::kUnknown;
    for (const std::string& from : {std::string(envelope_sender), FromAddress(message)}) {
      if (!unsubscribe.Verifies(*token, from)) continue;
      ReturnedItem item;
      item.unsubscribe = true;
      item.tenant = token->tenant;
      item.recipient = absl::AsciiStrToLower(from);
      item.report = "mailto";
      item.text = "unsubscribed by mail";
      mail->items.push_back(std::move(item));
      return true;
    }
    mail->why = "an unsubscribe from an address its token was not made for";
    return true;
  }
  return false;
}

}  // namespace

ReturnedMail ReadReturnedMail(const Verp& verp, const BounceClassifier& classifier,
                              const Unsubscribe* unsubscribe, std::string_view message,
                              std::string_view envelope_sender, const std::vector<std::string>& to,
                              const ReturnedMailLimits& limits) {
  ReturnedMail mail;
  if (unsubscribe != nullptr &&
      ReadUnsubscribe(*unsubscribe, message, envelope_sender, to, &mail)) {
    return mail;
  }
  ParsedReport report = ParseReport(message, envelope_sender, limits.report);
  mail.kind = report.kind;
  if (report.kind == ReportKind::kAutoReply || report.kind == ReportKind::kUnknown) {
    mail.why = report.why.empty() ? std::string(ReportKindName(report.kind)) : report.why;
    return mail;
  }
  const bool complaint = report.kind == ReportKind::kComplaint;
  if (complaint && !IsComplaint(report.feedback_type)) {
    mail.why = absl::StrCat("feedback type \"", report.feedback_type, "\" is no complaint");
    return mail;
  }
  if (!complaint && std::none_of(report.recipients.begin(), report.recipients.end(),
                                 [](const ReportedRecipient& r) { return r.action == "failed"; })) {
    mail.why = "no failed recipient in the report (a delay or success notice)";
    return mail;
  }
  std::vector<VerpToken> tokens = Tokens(verp, report, to, limits.tokens_max);
  if (tokens.empty()) {
    mail.why = "no return path of ours in the report";
    return mail;
  }
  for (const VerpToken& token : tokens) {
    std::string recipient = RecipientOf(verp, token, report);
    if (recipient.empty()) continue;
    ReturnedItem item;
    item.complaint = complaint;
    item.tenant = token.tenant;
    item.queue_id = token.queue_id;
    item.recipient_index = token.recipient_index;
    item.recipient = recipient;
    item.message_id = report.original_message_id;
    item.report = std::string(ReportKindName(report.kind));
    if (complaint) {
      item.feedback_type = report.feedback_type;
      item.text = absl::StrCat("complaint (", item.feedback_type, ")",
                               report.user_agent.empty() ? "" : " from ", report.user_agent);
    } else {
      const ReportedRecipient* block = BlockFor(report, recipient);
      if (block == nullptr) continue;
      item.code = CodeOf(*block);
      item.enhanced = block->enhanced.empty() ? block->status : block->enhanced;
      item.text = block->diagnostic;
      item.remote_mta = block->remote_mta;
      item.category = classifier.Classify({item.code, item.enhanced, item.text});
    }
    mail.items.push_back(std::move(item));
  }
  if (mail.items.empty()) mail.why = "no token in the report verifies for a recipient it names";
  return mail;
}

std::vector<SuppressionEntry> SuppressionsFor(const ReturnedMail& mail,
                                              const std::vector<BounceCategory>& categories,
                                              bool complaints, int64_t now_unix_ms) {
  std::vector<SuppressionEntry> entries;
  for (const ReturnedItem& item : mail.items) {
    const bool suppress =
        item.unsubscribe || (item.complaint ? complaints
                                            : std::find(categories.begin(), categories.end(),
                                                        item.category) != categories.end());
    if (!suppress) continue;
    SuppressionEntry e;
    e.tenant = item.tenant;
    e.address = item.recipient;
    e.reason = item.unsubscribe ? SuppressionReason::kUnsubscribe
               : item.complaint ? SuppressionReason::kComplaint
                                : SuppressionReason::kBounce;
    if (!item.complaint && !item.unsubscribe) {
      e.category = std::string(CategoryName(item.category));
    }
    e.time_unix_ms = now_unix_ms;
    e.queue_id = item.queue_id;
    e.detail =
        item.code != 0 ? absl::StrCat(item.code, " ", item.enhanced, " ", item.text) : item.text;
    if (e.detail.size() > kDetailBytesMax) e.detail.resize(kDetailBytesMax);
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace relay::feedback
