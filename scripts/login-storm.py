#!/usr/bin/env python3
"""Password guessing against a running linechat server, as issue 9 item 3 measured it.

Registers an account, then sends GUESSES wrong LOGINs for it at once from ADDRESSES loopback
addresses (one connection per guess), while the owner logs in with the right password from
an address that has not guessed. Prints how many guesses had their password checked (answered
BAD_PASSWORD rather than TOO_MANY_ATTEMPTS) and how long the owner's login took.

    python3 scripts/login-storm.py HOST PORT [GUESSES] [ADDRESSES]
"""
import asyncio
import sys
import time


async def session(host, port, source, line):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    await reader.readline()  # HELLO
    writer.write(line.encode() + b"\n")
    await writer.drain()
    return reader, writer


async def ask(host, port, source, line):
    reader, writer = await session(host, port, source, line)
    reply = (await reader.readline()).decode().strip()
    writer.close()
    return reply


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    guesses = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    addresses = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    account = f"target{int(time.time())}"
    print(await ask(host, port, "127.0.0.1", f"REGISTER {account} the right one"))
    # Open every guessing connection first, then send all guesses together.
    sessions = [
        await session(host, port, f"127.0.1.{1 + i % addresses}", "")
        for i in range(guesses)
    ]
    for i, (_, writer) in enumerate(sessions):
        writer.write(f"LOGIN {account} guess{i}\n".encode())
    started = time.monotonic()
    await asyncio.gather(*(w.drain() for _, w in sessions))
    owner = asyncio.create_task(
        ask(host, port, "127.0.2.1", f"LOGIN {account} the right one")
    )
    replies = await asyncio.gather(*(r.readline() for r, _ in sessions))
    owner_reply = await owner
    owner_took = time.monotonic() - started
    checked = sum(1 for r in replies if r.startswith(b"ERR BAD_PASSWORD"))
    print(f"guesses={guesses} addresses={addresses} checked={checked}")
    print(f"owner: {owner_reply!r} after {owner_took:.2f} s")


asyncio.run(main())
