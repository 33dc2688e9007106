#!/usr/bin/env python3
"""A DNS server that answers every query at once with NXDOMAIN ("no such name").

ircd-hybrid looks up every client's address in DNS when it connects, and cannot be told
not to. On this machine the upstream resolver falls behind when hundreds of clients connect
at once (look-ups then take 4 to 12 seconds), which would make connection set-up, not the
measured chat, dominate hybrid's runs. scripts/bench.sh runs hybrid in its own mount
namespace with a resolv.conf that points here, so its look-ups fail at once, as the other
servers' (configured off) do not happen at all.

    python3 nxdns.py 127.0.0.53 53
"""

import socket
import sys


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.53"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 53
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    while True:
        query, peer = sock.recvfrom(4096)
        if len(query) < 12:
            continue
        # Same id and question; flags: response, recursion desired as asked, recursion
        # available, RCODE 3 (NXDOMAIN); no answers, authority or additional records.
        flags = 0x8000 | (query[2] << 8 & 0x0100) | 0x0080 | 3
        header = query[:2] + flags.to_bytes(2, "big") + query[4:6] + b"\0\0\0\0\0\0"
        # The question section runs to the end of the query's first question.
        end = 12
        while end < len(query) and query[end] != 0:
            end += query[end] + 1
        end += 5  # the root label, QTYPE and QCLASS
        sock.sendto(header + query[12:end], peer)


if __name__ == "__main__":
    main()
