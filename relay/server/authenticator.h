// Credential checks and sender authorization for the SMTP server, as the shards see them.
//
// Check() may be slow (scrypt): implementations run it off the shard thread and deliver the result
// on the calling shard's reactor thread through `done`. MaySendAs() is fast and synchronous.
// Implementations are thread-safe: every shard calls them.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "relay/io/reactor.h"
#include "relay/smtp/server_session.h"

namespace relay::server {

class Authenticator {
 public:
  using Done = std::function<void(smtp::AuthResult result)>;
  virtual ~Authenticator() = default;
  // `done` runs on `reactor`'s thread, exactly once, never before Check returns.
  virtual void Check(const smtp::CredentialCheck& credentials, std::string_view peer_ip,
                     io::Reactor* reactor, Done done) = 0;
  virtual bool MaySendAs(std::string_view user, std::string_view address) = 0;
  // True while `peer_ip` is refused after repeated authentication failures: its new connections
  // are turned away.
  virtual bool IsBlocked(std::string_view peer_ip) = 0;
};

}  // namespace relay::server
