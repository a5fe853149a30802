// Writes delivery log lines for delivery_log_python_test.sh: `delivery_log_example DIR N` writes
// N numbered records (queue ids q0..q<N-1>, every event kind, hostile bytes in the reply text)
// to DIR/delivery-0.log with size rotation, moving the file away once midway as logrotate would
// (to DIR/delivery-0.log.moved) and reopening on the request.
#include <stdio.h>

#include <cstdlib>
#include <string>

#include "relay/delivery/delivery_log.h"

int main(int argc, char** argv) {
  using relay::delivery::DeliveryEvent;
  using relay::delivery::DeliveryRecord;
  if (argc != 3) {
    fprintf(stderr, "usage: delivery_log_example DIR N\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int n = std::atoi(argv[2]);
  relay::delivery::DeliveryLogOptions o;
  o.path = relay::delivery::DeliveryLogPath(dir, 0);
  o.rotate_bytes = 64 << 10;
  o.rotate_keep = 1000;
  o.buffer_bytes_max = 4096;
  auto log = relay::delivery::DeliveryLog::Open(o);
  if (!log.ok()) {
    fprintf(stderr, "%s\n", std::string(log.status().message()).c_str());
    return 1;
  }
  const DeliveryEvent events[] = {DeliveryEvent::kReceived, DeliveryEvent::kDelivered,
                                  DeliveryEvent::kDeferred, DeliveryEvent::kBounced,
                                  DeliveryEvent::kExpired,  DeliveryEvent::kDsnSent};
  const std::string hostile =
      std::string("quote\" back\\ nl\n tab\t ctl\x01 del\x7f caf\xc3\xa9 \xff\xc0\xaf ") +
      "\xed\xa0\x80 \xf0\x9d\x84\x9e" + std::string(1, '\0') + "end";
  for (int i = 0; i < n; ++i) {
    if (i == n / 2) {
      if ((*log)->Flush().ok() && rename(o.path.c_str(), (o.path + ".moved").c_str()) == 0) {
        (*log)->RequestReopen();
      } else {
        fprintf(stderr, "rename failed\n");
        return 1;
      }
    }
    std::string qid = "q" + std::to_string(i);
    std::string rcpt = "user" + std::to_string(i) + "@example.com";
    DeliveryRecord r;
    r.event = events[i % 6];
    r.time_unix_ms = 1763840000000 + i;
    r.queue_id = qid;
    r.sender = i % 7 == 0 ? "" : "bounces@example.org";
    r.recipient = rcpt;
    r.site = "google";
    r.mx_host = "gmail-smtp-in.l.google.com";
    r.source_address = "2001:db8::1";
    if (i % 2 == 0) {
      r.tls_version = "TLSv1.3";
      r.tls_cipher = "TLS_AES_256_GCM_SHA384";
    }
    r.reply_code = 421;
    r.reply_enhanced = "4.7.0";
    r.reply_text = hostile;
    r.attempt = 1 + i % 3;
    r.queued_ms = i * 10;
    r.attempt_ms = i % 1000;
    (*log)->Append(r);
  }
  if (!(*log)->Flush().ok()) return 1;
  return 0;
}
