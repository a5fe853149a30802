#include "relay/cluster/redis_link.h"

#include <hiredis/hiredis.h>

#include <charconv>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "relay/base/clock.h"

namespace relay::cluster {
namespace {

timeval Tv(int64_t ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

RedisReply Copy(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Copy(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

int64_t RedisReply::AsInteger() const {
  if (type == Type::kInteger) return integer;
  int64_t v = 0;
  if (type == Type::kString && absl::SimpleAtoi(str, &v)) return v;
  return 0;
}

absl::StatusOr<RedisAddress> ParseRedisAddress(std::string_view text) {
  RedisAddress a;
  std::string_view host = text, port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis address \"", std::string(text), "\": no ]"));
    }
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return absl::InvalidArgumentError(
            absl::StrCat("redis address \"", std::string(text), "\": text after ]"));
      }
      port = rest.substr(1);
    }
  } else if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis address \"", std::string(text),
                       "\": an IPv6 address goes in brackets, [::1]:6379"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("redis address \"", std::string(text), "\": no host"));
  }
  a.host = std::string(host);
  if (!port.empty()) {
    uint32_t p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis address \"", std::string(text), "\": the port is not 1-65535"));
    }
    a.port = static_cast<uint16_t>(p);
  }
  return a;
}

RedisLink::RedisLink(RedisLinkOptions options) : options_(std::move(options)) {}

RedisLink::~RedisLink() { Close(); }

void RedisLink::Close() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
}

absl::Status RedisLink::Connect() {
  if (context_ != nullptr) return absl::OkStatus();
  const int64_t now = RealClock::Get()->MonotonicMillis();
  if (last_attempt_ms_ >= 0 && now - last_attempt_ms_ < options_.reconnect_ms) {
    return absl::UnavailableError(absl::StrCat("redis ", options_.address.host, ":",
                                               options_.address.port, " unreachable (retrying)"));
  }
  last_attempt_ms_ = now;
  redisContext* c = redisConnectWithTimeout(options_.address.host.c_str(), options_.address.port,
                                            Tv(options_.connect_timeout_ms));
  if (c == nullptr || c->err != 0) {
    absl::Status s = absl::UnavailableError(
        absl::StrCat("redis ", options_.address.host, ":", options_.address.port, ": ",
                     c == nullptr ? "out of memory" : c->errstr));
    if (c != nullptr) redisFree(c);
    return s;
  }
  if (redisSetTimeout(c, Tv(options_.command_timeout_ms)) != REDIS_OK) {
    redisFree(c);
    return absl::UnavailableError("redis: setting the command timeout failed");
  }
  redisEnableKeepAlive(c);
  context_ = c;
  if (!options_.password.empty()) {
    absl::StatusOr<RedisReply> auth = Call({"AUTH", options_.password});
    if (!auth.ok()) return auth.status();
    if (auth->is_error()) {
      Close();
      return absl::PermissionDeniedError(absl::StrCat("redis AUTH: ", auth->str));
    }
  }
  ++connections_;
  return absl::OkStatus();
}

absl::StatusOr<RedisReply> RedisLink::Call(const Command& command) {
  absl::StatusOr<std::vector<RedisReply>> replies = Pipeline({command});
  if (!replies.ok()) return replies.status();
  return std::move(replies->front());
}

absl::StatusOr<std::vector<RedisReply>> RedisLink::Pipeline(const std::vector<Command>& commands) {
  if (const absl::Status s = Connect(); !s.ok()) return s;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const Command& command : commands) {
    argv.clear();
    lens.clear();
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lens.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
        REDIS_OK) {
      std::string why = context_->errstr;
      Close();
      return absl::UnavailableError(absl::StrCat("redis: ", why));
    }
  }
  ++round_trips_;
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      std::string why = context_->err != 0 ? context_->errstr : "no reply";
      Close();
      return absl::UnavailableError(absl::StrCat("redis: ", why));
    }
    replies.push_back(Copy(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  return replies;
}

}  // namespace relay::cluster
