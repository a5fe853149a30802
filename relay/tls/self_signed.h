// A self-signed server certificate for the first start of the default configuration, so that
// STARTTLS and implicit TLS work before the operator installs a real certificate. The caller logs
// the warning that clients which verify will refuse it.
//
// The key is ECDSA P-256; the certificate is X.509 v3 with the host name as subject CN and as a
// dNSName subjectAltName (RFC 6125 §6.4.4: verifiers look at the SAN), valid from now for one
// year. Both files are written to a temporary name, fsync'ed and renamed into place; the key file
// has mode 0600. Any thread; no state.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace relay::tls {

inline constexpr long kSelfSignedValiditySeconds = 365L * 24 * 3600;

absl::Status GenerateSelfSignedCertificate(const std::string& hostname,
                                           const std::string& cert_path,
                                           const std::string& key_path);

}  // namespace relay::tls
