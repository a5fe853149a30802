// relayctl: the operator's tool. Each subcommand lives in its own library; this only dispatches.
#include <cstdio>
#include <cstring>

#include "tools/relayctl/check_dns.h"
#include "tools/relayctl/control_commands.h"
#include "tools/relayctl/dkim_commands.h"
#include "tools/relayctl/dns_commands.h"
#include "tools/relayctl/dns_records.h"
#include "tools/relayctl/init_command.h"
#include "tools/relayctl/queue_commands.h"
#include "tools/relayctl/send_test_command.h"
#include "tools/relayctl/suppress_commands.h"
#include "tools/relayctl/top_command.h"
#include "tools/relayctl/user_commands.h"

namespace {

int DnsMx(int argc, char** argv) { return relay::relayctl::DnsMxCommand(argc, argv); }
int DnsTxt(int argc, char** argv) { return relay::relayctl::DnsTxtCommand(argc, argv); }
int DnsPtr(int argc, char** argv) { return relay::relayctl::DnsPtrCommand(argc, argv); }
int Init(int argc, char** argv) { return relay::relayctl::InitCommand(argc, argv); }
int DnsRecords(int argc, char** argv) { return relay::relayctl::DnsRecordsCommand(argc, argv); }
int CheckDns(int argc, char** argv) { return relay::relayctl::CheckDnsCommand(argc, argv); }

// "queue retry|bounce|delete" talk to the running relay; the rest read the spool.
int Queue(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "retry") == 0 || std::strcmp(argv[1], "bounce") == 0 ||
                    std::strcmp(argv[1], "delete") == 0)) {
    return relay::relayctl::QueueControlCommand(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "summary") == 0) {
    // By site or source: only the running relay knows (an MX answer, the pool's choice).
    for (int i = 2; i + 1 < argc; ++i) {
      if (std::strcmp(argv[i], "--by") == 0 &&
          (std::strcmp(argv[i + 1], "site") == 0 || std::strcmp(argv[i + 1], "source") == 0)) {
        return relay::relayctl::QueueShapeCommand(argc - 1, argv + 1);
      }
    }
  }
  if (argc >= 2 && std::strcmp(argv[1], "ready") == 0) {
    return relay::relayctl::QueueReadyCommand(argc - 1, argv + 1);
  }
  if (argc >= 2 && (std::strcmp(argv[1], "suspend") == 0 || std::strcmp(argv[1], "resume") == 0 ||
                    std::strcmp(argv[1], "suspensions") == 0 ||
                    std::strcmp(argv[1], "rebind") == 0 || std::strcmp(argv[1], "unbind") == 0)) {
    return relay::relayctl::QueueSuspendCommand(argc - 1, argv + 1);
  }
  return relay::relayctl::QueueCommand(argc, argv);
}

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* help;
};

constexpr Command kCommands[] = {
    {"user-add", relay::relayctl::UserAddCommand,
     "user-add USER [--allow ADDR|@DOMAIN ...] [--config-dir DIR]   add a user (password from "
     "a prompt or stdin)"},
    {"user-del", relay::relayctl::UserDelCommand, "user-del USER [--config-dir DIR]"},
    {"user-list", relay::relayctl::UserListCommand, "user-list [--config-dir DIR]"},
    {"authenticate", relay::relayctl::AuthenticateCommand,
     "authenticate USER [--config-dir DIR]   check a password (exit 0 when right)"},
    {"queue", Queue,
     "queue list|show ID|stats|summary [--spool DIR] [--domain D] [--sender S] [--by domain|"
     "sender|tenant|campaign|priority|site|source]\n       inspect the spool (summary: pending "
     "recipients by domain and age, like qshape; by site or source: the running relay's)\n"
     "  queue retry ID|--all, queue bounce ID, queue delete ID [--config-dir DIR]   act on "
     "the running relay\n"
     "  queue suspend WHAT [--for DURATION] [--reason TEXT], queue resume WHAT, queue "
     "suspensions\n       stop or restart delivery in every shard; WHAT: a SITE (MX set or "
     "shaping rule name)\n       or --site S, --domain D, --source NAME, --tenant T, --campaign C"
     "\n  queue rebind WHAT --pool POOL [--for DURATION], queue unbind WHAT   send WHAT's mail "
     "out of\n       another egress pool (WHAT: not a source)\n"
     "  queue ready   the running relay's ready queues by site and source: waiting, "
     "connections,\n       limits, suspensions and backoffs"},
    {"tls", relay::relayctl::TlsCommand,
     "tls forget DOMAIN | tls list [--config PATH | --config-dir DIR]   the TLS downgrade "
     "memory:\n       allow plain text to DOMAIN again; list the domains that must get TLS"},
    {"cluster", relay::relayctl::ClusterCommand,
     "cluster status [--config PATH | --config-dir DIR]   the nodes of the running relay's fleet "
     "([cluster]):\n       up or gone, load and queue, as Redis knows them"},
    {"reload", relay::relayctl::ReloadCommand,
     "reload [--config PATH | --config-dir DIR]   the running relay reloads its certificate, "
     "users,\n       aliases, DKIM keys, shaping rules, tenants, limits and pools and reopens its "
     "logs;\n       says what changed that needs a restart"},
    {"send-test", relay::relayctl::SendTestCommand,
     "send-test --to ADDRESS --user USER [--from A] [--config PATH] [--wait S]   submit a test\n"
     "       message through the running relay; say how it left and what to check on arrival"},
    {"dkim-keygen", relay::relayctl::DkimKeygenCommand,
     "dkim-keygen --domain D --selector S --algo rsa2048|rsa4096|ed25519 [--out FILE]"},
    {"dkim-record", relay::relayctl::DkimRecordCommand,
     "dkim-record [--config PATH] [--domain D] [--selector S] | KEYFILE --domain D --selector S"
     "\n       the TXT record of existing keys, also as one string to paste"},
    {"dkim-verify", relay::relayctl::DkimVerifyCommand,
     "dkim-verify FILE [--dns-server IP[:PORT]]   verify each DKIM signature of a message"},
    {"dns-mx", DnsMx, "dns-mx DOMAIN [--server ADDR[:PORT]] [--family F]   delivery candidates"},
    {"dns-txt", DnsTxt, "dns-txt NAME [--server ADDR[:PORT]]"},
    {"dns-ptr", DnsPtr, "dns-ptr IP [--server ADDR[:PORT]]   PTR and forward confirmation"},
    {"init", Init,
     "init DOMAIN [--dir D] [--hostname H] [--ipv4 A ...] [--ipv6 A|PREFIX/LEN ...] "
     "[--prefix-count N]\n"
     "       [--spool-dir P] [--log-dir P] [--control-socket P]   new config directory, DKIM "
     "keys,\n       and the DNS records to publish"},
    {"dns-records", DnsRecords,
     "dns-records [--config PATH] [--domain D ...]   the DNS records the config needs"},
    {"check-dns", CheckDns,
     "check-dns [--config PATH] [--domain D ...] [--dns-server HOST:PORT ...]   compare them "
     "with the live DNS"},
    {"suppress", relay::relayctl::SuppressCommand,
     "suppress add|remove ADDRESS --tenant DOMAIN, suppress list|export [--tenant DOMAIN],\n"
     "       suppress import FILE   the suppression list the running relay checks at RCPT"},
    {"top", relay::relayctl::TopCommand,
     "top [--config PATH | --url URL] [--interval S] [--once]   live view of the running relay"},
};

int Usage(FILE* out) {
  std::fprintf(out, "usage: relayctl COMMAND [ARGS]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %s\n", c.help);
  return out == stderr ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(stderr);
  if (std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0) {
    return Usage(stdout);
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.run(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "relayctl: unknown command %s\n", argv[1]);
  return Usage(stderr);
}
