#!/usr/bin/python3
"""pyspf's check_host() for each line "IP SENDER HELO" of a file, one result per line.

Asks only the DNS server at 127.0.0.1:PORT. dns/spf_pyspf_test.cc compares these results, from an
implementation nobody here wrote (Debian's python3-spf), with dns/spf.h's.

Usage: spf_pyspf_check.py PORT CASES_FILE
"""
import sys

import dns.resolver
import spf


def main():
    port, cases = int(sys.argv[1]), sys.argv[2]
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.timeout = 2
    resolver.lifetime = 4
    dns.resolver.default_resolver = resolver
    with open(cases) as f:
        for line in f:
            ip, sender, helo = line.split()
            result, _ = spf.check2(i=ip, s=sender, h=helo, querytime=10)
            print(result, flush=True)


if __name__ == "__main__":
    main()
