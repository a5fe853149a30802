// relayctl's queue inspection commands, as library code the relayctl main dispatches to:
//
//   relayctl queue list  [--spool DIR] [--domain DOMAIN] [--sender ADDR|@DOMAIN]
//   relayctl queue show  ID [--spool DIR]
//   relayctl queue stats [--spool DIR]
//   relayctl queue summary [--spool DIR] [--by domain|sender] [--top N]
//
// They read the spool through queue::SpoolReader: no lock, nothing written, safe while relayd
// runs; what they show is what the last group commit of each shard made durable. DIR is one
// shard's spool directory, or a directory whose subdirectories are the shards' spools (every
// subdirectory holding segment files is read). retry, bounce and delete change the queue and need
// a control request to the owning shard: not here yet.
//
// `list` prints one line per live message: id, age, sender, recipients (pending/total), the most
// attempts of any recipient, the next attempt, and the last reply; --domain keeps messages with a
// pending recipient in DOMAIN, --sender keeps messages from that address (or any address @DOMAIN).
// `show` prints the envelope, each recipient's state and the message's header section.
// `stats` prints counts and bytes by state and pending recipients by destination domain.
// `summary` prints pending recipients by destination domain (or, --by sender, by the sending
// domain, the tenant) and by how long their message has been queued, in Postfix qshape's
// buckets (up to 5 minutes, 10, 20, ... 1280, more): the biggest N rows, then "(other)".
//
// argv[0] is "queue". Returns the process exit code: 0 success, 1 failure (no spool, no such
// message), 2 usage. Listings go to stdout, errors to stderr. Main thread only.
#pragma once

namespace relay::relayctl {

inline constexpr char kDefaultSpoolDir[] = "/var/spool/relay";

int QueueCommand(int argc, char** argv);

}  // namespace relay::relayctl
