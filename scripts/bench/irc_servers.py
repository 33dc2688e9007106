#!/usr/bin/env python3
"""Waits until an IRC server sees a network of N servers: registers a client, sends `LUSERS`
and reads `251` ("There are ... on N servers") until N is reached or time runs out. Exit
status 0 once the network is whole, 1 if not within the time. scripts/bench.sh runs it before
loading ngircd-network, whose two servers link a few seconds after they start.

    python3 irc_servers.py 127.0.0.1 17120 2 30      (host, port, servers, seconds)
"""

import re
import socket
import sys
import time

host, port, want, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + seconds
seen = None
while time.monotonic() < deadline:
    try:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(b"NICK linkwait\nUSER linkwait 0 * :linkwait\n")
            buf = b""
            while time.monotonic() < deadline:
                data = sock.recv(65536)
                if not data:
                    break
                buf += data
                lines = buf.split(b"\n")
                buf = lines.pop()
                for line in lines:
                    text = line.decode("utf-8", "replace").rstrip("\r")
                    parts = text.split(" ")
                    if len(parts) > 1 and parts[1] == "251":
                        match = re.search(r"on (\d+) servers?", text)
                        seen = int(match.group(1)) if match else None
                        if seen is not None and seen >= want:
                            sock.sendall(b"QUIT\n")
                            sys.exit(0)
                        time.sleep(0.5)
                        sock.sendall(b"LUSERS\n")
                    elif len(parts) > 1 and parts[1] == "001":
                        sock.sendall(b"LUSERS\n")
                    elif parts[0] == "PING":
                        sock.sendall(b"PONG " + " ".join(parts[1:]).encode() + b"\n")
    except OSError:
        time.sleep(0.2)
print(f"{host}:{port} sees {seen} servers, not {want}", file=sys.stderr)
sys.exit(1)
