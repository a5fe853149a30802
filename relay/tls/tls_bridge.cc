// Test peer for the interop test: bridges one TCP socket on 127.0.0.1 to a TlsStream with plain
// blocking I/O, so that Debian's `openssl s_client` / `s_server` can talk to our TLS code.
//
//   tls_bridge server CERT KEY PORT_FILE
//       Listens on 127.0.0.1 (port 0), writes the port to PORT_FILE, serves one connection:
//       echoes every received line; on the line "QUIT" answers "BYE", sends close_notify, exits.
//   tls_bridge client PORT HOST CONNECTIONS [CA_FILE]
//       Connects CONNECTIONS times in a row (sharing one ClientTlsContext, so later connections
//       can resume), sends stdin's contents each time, prints what comes back until the server
//       closes, and prints one "tls: ..." line per connection to stderr. With CA_FILE the
//       certificate must verify against it and name HOST.
//   tls_bridge gencert HOST CERT KEY
//       Runs GenerateSelfSignedCertificate.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "relay/tls/self_signed.h"
#include "relay/tls/tls_context.h"
#include "relay/tls/tls_stream.h"

namespace relay::tls {
namespace {

constexpr size_t kReadBytes = 16384;

bool SendAll(int fd, TlsStream& stream) {
  while (!stream.PendingCiphertext().empty()) {
    absl::string_view out = stream.PendingCiphertext();
    ssize_t n = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    stream.ConsumeCiphertext(static_cast<size_t>(n));
  }
  return true;
}

// Reads once from the socket into the stream; false on EOF or error.
bool ReadSome(int fd, TlsStream& stream, std::string* plaintext, bool* failed) {
  char buf[kReadBytes];
  ssize_t n;
  do {
    n = recv(fd, buf, sizeof(buf), 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  absl::Status status =
      stream.OnCiphertext(absl::string_view(buf, static_cast<size_t>(n)), plaintext);
  SendAll(fd, stream);  // Even after an error: the alert goes out.
  if (!status.ok()) {
    std::cerr << "tls error: " << status.message() << "\n";
    *failed = true;
    return false;
  }
  return true;
}

bool WriteAll(int fd, TlsStream& stream, absl::string_view data) {
  while (!data.empty()) {
    auto n = stream.Write(data);
    if (!n.ok()) {
      std::cerr << "write: " << n.status().message() << "\n";
      return false;
    }
    data.remove_prefix(*n);
    if (!SendAll(fd, stream)) return false;
  }
  return true;
}

void Describe(const TlsStream& stream) {
  std::cerr << "tls: version=" << stream.protocol_version() << " cipher=" << stream.cipher_name()
            << " reused=" << (stream.session_reused() ? "yes" : "no");
  if (!stream.is_server()) {
    std::cerr << " verified=" << (stream.peer_verified() ? "yes" : "no");
  }
  std::cerr << "\n";
}

int Server(const std::string& cert, const std::string& key, const std::string& port_file) {
  auto context = ServerTlsContext::Load(cert, key);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("listen");
    return 1;
  }
  {
    std::ofstream out(port_file + ".tmp");
    out << ntohs(addr.sin_port) << "\n";
  }
  rename((port_file + ".tmp").c_str(), port_file.c_str());
  int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    perror("accept");
    return 1;
  }
  auto stream = TlsStream::NewServer(**context);
  if (!stream.ok()) return 1;
  std::string pending;
  bool failed = false, described = false;
  while (ReadSome(fd, **stream, &pending, &failed)) {
    if ((*stream)->established() && !described) {
      Describe(**stream);
      described = true;
    }
    size_t eol;
    while ((eol = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, eol + 1);
      pending.erase(0, eol + 1);
      if (line == "QUIT\n" || line == "QUIT\r\n") {
        WriteAll(fd, **stream, "BYE\n");
        (void)(*stream)->Shutdown();
        SendAll(fd, **stream);
        close(fd);
        return 0;
      }
      if (!WriteAll(fd, **stream, line)) return 1;
    }
    if ((*stream)->peer_closed()) break;
  }
  close(fd);
  return failed ? 1 : 0;
}

int Client(int port, const std::string& host, int connections, const std::string& ca_file) {
  ClientTlsContext::Options options;
  options.ca_file = ca_file;
  options.verify_required = !ca_file.empty();
  auto context = ClientTlsContext::Create(options);
  if (!context.ok()) {
    std::cerr << context.status() << "\n";
    return 1;
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  for (int i = 0; i < connections; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    // s_server may need a moment to accept the next connection.
    int tries = 0;
    while (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (++tries > 100) {
        perror("connect");
        return 1;
      }
      close(fd);
      usleep(50000);
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    auto stream = TlsStream::NewClient(**context, host);
    if (!stream.ok() || !(*stream)->Start().ok() || !SendAll(fd, **stream)) return 1;
    std::string plaintext;
    bool failed = false, sent = false;
    while (ReadSome(fd, **stream, &plaintext, &failed)) {
      if ((*stream)->established() && !sent) {
        Describe(**stream);
        if (!WriteAll(fd, **stream, input)) return 1;
        sent = true;
      }
      std::cout << plaintext << std::flush;
      plaintext.clear();
      if ((*stream)->peer_closed()) break;
    }
    std::cout << plaintext << std::flush;
    if (failed) return 1;
    if ((*stream)->peer_closed()) {
      (void)(*stream)->Shutdown();
      SendAll(fd, **stream);
    }
    close(fd);
  }
  return 0;
}

}  // namespace
}  // namespace relay::tls

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "server" && argc == 5) return relay::tls::Server(argv[2], argv[3], argv[4]);
  if (mode == "client" && (argc == 5 || argc == 6)) {
    return relay::tls::Client(atoi(argv[2]), argv[3], atoi(argv[4]), argc == 6 ? argv[5] : "");
  }
  if (mode == "gencert" && argc == 5) {
    absl::Status status = relay::tls::GenerateSelfSignedCertificate(argv[2], argv[3], argv[4]);
    if (!status.ok()) std::cerr << status << "\n";
    return status.ok() ? 0 : 1;
  }
  std::cerr << "usage: tls_bridge server CERT KEY PORT_FILE | client PORT HOST CONNECTIONS "
               "[CA_FILE] | gencert HOST CERT KEY\n";
  return 2;
}
