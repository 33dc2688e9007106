#!/usr/bin/env python3
"""Soak driver for linechat: hundreds of clients join, chat, leave and reconnect for a set
time, while a group of "stayers" checks that none of their messages to each other is lost or
duplicated. Run by scripts/soak.sh, which also watches the server's memory and tasks.

    python3 scripts/soak.py HOST PORT SECONDS [STAYERS] [CHURNERS]
"""
import asyncio
import random
import sys
import time

HOST, PORT, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
STAYERS = int(sys.argv[4]) if len(sys.argv) > 4 else 20
CHURNERS = int(sys.argv[5]) if len(sys.argv) > 5 else 300
ROOM = "soak"
RATE = 4  # lines per second per client, well under the default flood limit


class Client:
    def __init__(self, name, index):
        self.name, self.index = name, index

    async def open(self):
        source = f"127.0.0.{2 + self.index % 200}"
        self.reader, self.writer = await asyncio.open_connection(
            HOST, PORT, local_addr=(source, 0), limit=1 << 20)
        hello = await self.line()
        assert hello.startswith("HELLO"), hello

    async def line(self):
        raw = await self.reader.readline()
        if not raw:
            raise ConnectionError("closed")
        return raw.decode().rstrip("\n")

    def send(self, line):
        self.writer.write((line + "\n").encode())

    async def until(self, prefix, on_other=None):
        while True:
            line = await self.line()
            if line.startswith(prefix):
                return line
            if on_other:
                on_other(line)

    def close(self):
        self.writer.close()


async def join(index):
    me = Client(f"stay{index}", index)
    await me.open()
    me.send(f"NICK {me.name}")
    await me.until("OK NICK")
    me.send(f"CR {ROOM}")
    if (await me.until(("OK CR", "ERR"))).startswith("ERR"):
        me.send(f"JR {ROOM}")
        await me.until("OK JR")
    return me


async def stayer(me, deadline, results):
    """Sends numbered room messages and checks that those of the other stayers arrive
    exactly once and in order."""
    seen = {}  # sender -> last sequence number
    problems = []

    def note(line):
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] == "RM" and parts[2].startswith("stay"):
            sender, seq = parts[2], int(parts[3].split()[0])
            last = seen.get(sender, -1)
            if seq != last + 1:
                problems.append(f"{me.name}: from {sender} got {seq} after {last}")
            seen[sender] = seq

    sent = 0
    while time.monotonic() < deadline:
        me.send(f"RM {ROOM} {sent} from {me.name}")
        sent += 1
        try:
            await asyncio.wait_for(me.until("OK RM", note), 5)
        except asyncio.TimeoutError:
            problems.append(f"{me.name}: no OK RM within 5 s")
            break
        await asyncio.sleep(1 / RATE)
    # Drain: everyone's last messages arrive within a moment.
    try:
        while True:
            note(await asyncio.wait_for(me.line(), 2))
    except (asyncio.TimeoutError, ConnectionError):
        pass
    results.append((me.name, sent, dict(seen), problems))


async def churner(index, deadline, counts):
    while time.monotonic() < deadline:
        me = Client(f"churn{index}", STAYERS + index)
        try:
            await me.open()
            me.send(f"NICK {me.name}")
            await me.until("OK NICK")
            room = f"{ROOM}{random.randrange(20)}" if random.random() < 0.5 else ROOM
            me.send(f"CR {room}")
            reply = await me.until(("OK CR", "ERR"))
            if reply.startswith("ERR"):
                me.send(f"JR {room}")
                await me.until(("OK JR", "ERR"))
            for n in range(random.randrange(1, 6)):
                me.send(f"RM {room} churn {n}")
                await me.until(("OK RM", "ERR"))
                await asyncio.sleep(1 / RATE)
            how = random.choice(["quit", "leave", "drop"])
            if how == "leave":
                me.send(f"LR {room}")
                await me.until(("OK LR", "ERR"))
                me.send("QUIT")
            elif how == "quit":
                me.send("QUIT bye")
            counts[how] = counts.get(how, 0) + 1
        except (ConnectionError, OSError) as error:
            counts["errors"] = counts.get("errors", 0) + 1
            print(f"churner {index}: {error}", file=sys.stderr)
        finally:
            me.close()
        await asyncio.sleep(random.random() * 0.5)


async def main():
    stayers = []
    for index in range(STAYERS):  # one at a time, so that every one starts in the room
        stayers.append(await join(index))
    deadline = time.monotonic() + SECONDS
    results, counts = [], {}
    await asyncio.gather(
        *(stayer(me, deadline, results) for me in stayers),
        *(churner(i, deadline, counts) for i in range(CHURNERS)))
    for me in stayers:
        me.send("QUIT")
        me.close()
    problems = [p for _, _, _, ps in results for p in ps]
    sent = {name: n for name, n, _, _ in results}
    # Every stayer must have seen the last message of every other stayer.
    for name, _, seen, _ in results:
        for other, n in sent.items():
            if other != name and seen.get(other, -1) != n - 1:
                problems.append(f"{name}: last from {other} was {seen.get(other)}, sent {n}")
    total = sum(sent.values())
    print(f"soak: {STAYERS} stayers sent {total} room messages, churn sessions {counts}, "
          f"{len(problems)} problems")
    for problem in problems[:20]:
        print("  " + problem)
    sys.exit(1 if problems else 0)


asyncio.run(main())
