// relayctl send-test: submits a test message through the running relay, as an application would,
// and says what became of it and what to look for where it arrives.
//
//   relayctl send-test --to ADDRESS --user USER [--from ADDRESS] [--config PATH]
//                      [--server HOST:PORT] [--wait SECONDS]
//
// It connects to the config's first submission listener (STARTTLS; a wildcard address is reached
// on loopback) or --server, requires TLS, authenticates as USER (password from a prompt with echo
// off, or one line of stdin, as for user-add), and sends a short message From and MAIL FROM the
// --from address (default USER when it is an address). Then it follows the delivery logs of the
// config's [log] dir for that queue id for up to --wait seconds (default 30; 0: do not wait) and
// prints each event: the MX, the source address, TLS, the remote reply. Last, what the
// recipient's copy should show: the Received line with the relay's source address and TLS, and
// the Authentication-Results with spf=pass, one dkim=pass per key of the sender's domain, and
// dmarc=pass.
//
// Exit status: 0 when the relay accepted the message and no bounce was logged within the wait,
// 1 when it refused it, bounced it or could not be reached, 2 for usage errors.
#pragma once

namespace relay::relayctl {

int SendTestCommand(int argc, char** argv);

}  // namespace relay::relayctl
