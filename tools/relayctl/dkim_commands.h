// relayctl's DKIM commands, as library code the relayctl main dispatches to:
//
//   relayctl dkim-keygen --domain D --selector S --algo rsa2048|rsa4096|ed25519 [--out FILE]
//   relayctl dkim-verify FILE [--dns-server IP[:PORT]]
//   relayctl dkim-record [--config PATH] [--domain D] [--selector S]
//   relayctl dkim-record KEYFILE --domain D --selector S
//
// dkim-keygen writes a new private key (PKCS#8 PEM) to FILE, default "D.S.pem" in the current
// directory, created with mode 0600 and never over an existing file, then prints the TXT record
// to publish: its exact name and its value split into strings of at most 255 bytes (RFC 1035
// §3.3.14), both as a zone-file line and one string per line for DNS web forms.
//
// dkim-record prints the TXT record of keys that exist (every [[dkim.key]] of the config, or
// those of a domain or selector, or one key file) the same way, with the value also as one
// string ("record: v=DKIM1; k=rsa; p=..."), ready to paste into a DNS provider's form.
//
// dkim-verify reads a message (LF line ends are taken as CRLF when the file has no CR at all),
// looks up each signature's key in DNS with res_query (the system resolver, or --dns-server, an
// IPv4 address with an optional port), and prints one line per signature:
//   "signature 1: d=example.com s=sel a=rsa-sha256: pass" or "...: fail (body hash mismatch)".
//
// Each function takes the subcommand's argv (argv[0] is the subcommand name) and returns the
// process exit code: 0 success (dkim-verify: every signature passed), 1 failure (a signature did
// not pass, no signature, I/O error), 2 usage. Main thread only (res_query uses _res).
#pragma once

namespace relay::relayctl {

int DkimKeygenCommand(int argc, char** argv);
int DkimVerifyCommand(int argc, char** argv);
int DkimRecordCommand(int argc, char** argv);

}  // namespace relay::relayctl
