#!/usr/bin/env python3
"""What a client that never reads can make the server hold.

Fills the global history with `--messages` lines of about 3.9 kB, then opens `--clients`
connections with a small receive buffer that each send `NICK` and `HISTORY * <messages>`
and never read a byte. Prints the server's resident memory before and after, and per client.
With --max-kib, exits 1 when the growth per client is above it.

    python3 scripts/memory_probe.py --addr 127.0.0.1:PORT --pid PID --clients 60
"""

import argparse
import os
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def connect(host, port, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connect, so that the advertised window stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    return sock


def read_until(sock, needle, count=1):
    data = b""
    while data.count(needle) < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise SystemExit(f"closed while waiting for {needle!r}")
        data += chunk
    return data


def fill_history(host, port, messages, size):
    sock = connect(host, port)
    read_until(sock, b"HELLO")
    sock.sendall(b"NICK filler\n")
    read_until(sock, b"OK NICK")
    text = "h" * size
    batch = 100
    for start in range(0, messages, batch):
        n = min(batch, messages - start)
        sock.sendall("".join(f"MSG {start + i} {text}\n" for i in range(n)).encode())
        read_until(sock, b"OK MSG", n)
    sock.sendall(b"QUIT\n")
    read_until(sock, b"OK QUIT")
    sock.close()


def settle(pid, seconds):
    """Waits until the resident size stops growing (or `seconds` pass); returns the peak."""
    peak = rss_kib(pid)
    start = quiet_since = time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = rss_kib(pid)
        if now > peak + 256:
            quiet_since = time.monotonic()
        peak = max(peak, now)
        # At least 5 s: on a busy machine the server may take a while to start answering.
        if time.monotonic() - start > 5 and time.monotonic() - quiet_since > 2:
            break
    return peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=3900)
    parser.add_argument("--rcvbuf", type=int, default=4096)
    parser.add_argument("--settle", type=float, default=20)
    parser.add_argument("--skip-fill", action="store_true")
    parser.add_argument("--max-kib", type=float, help="fail above this growth per client")
    args = parser.parse_args()
    host, port = args.addr.rsplit(":", 1)
    port = int(port)

    if not args.skip_fill:
        fill_history(host, port, args.messages, args.size)
    time.sleep(1)
    before = rss_kib(args.pid)
    clients = []
    for i in range(args.clients):
        sock = connect(host, port, args.rcvbuf)
        sock.sendall(f"NICK r{i}\nHISTORY * {args.messages}\n".encode())
        clients.append(sock)
    peak = settle(args.pid, args.settle)
    held = rss_kib(args.pid)
    per_client = (peak - before) / max(args.clients, 1)
    print(
        f"clients={args.clients} rss_before_kib={before} rss_peak_kib={peak} "
        f"rss_end_kib={held} per_client_kib={per_client:.0f}"
    )
    for sock in clients:
        sock.close()
    if args.max_kib is not None and per_client > args.max_kib:
        print(f"FAIL: {per_client:.0f} KiB per client > {args.max_kib}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
