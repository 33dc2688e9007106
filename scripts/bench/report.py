#!/usr/bin/env python3
"""Turns the runs of scripts/bench.sh (one JSON line per loadgen run) into BENCHMARKS.md
(medians per scenario and server, issue 10's targets met or not, linechat's IRC port against
the IRC servers (issue 13), two linechat nodes against one and two linked ngIRCd servers
against one (issue 12), charts, machine, versions, peer configuration, commands) and BENCHMARKS.json (everything, every run). The charts
(deliveries/s and p99 per server and scenario, the guest storm's CPU per login, memory per
connection) are SVG files drawn with matplotlib into --charts; without matplotlib the report
has none. Hand-written notes after the NOTES marker in an existing BENCHMARKS.md are kept."""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess

NOTES_MARKER = "<!-- Notes below this line are written by hand and kept by scripts/bench.sh. -->"

SERVERS = [
    "linechat",
    "linechat-before",
    "linechat-nohistory",
    "linechat-irc",
    "linechat-cluster",
    "linechat-cluster-before",
    "redis",
    "ngircd",
    "ngircd-network",
    "inspircd",
    "ircd-hybrid",
]
# Issue 10's peers: single servers, one process each.
IRC = ["ngircd", "inspircd", "ircd-hybrid"]
PEERS = ["redis"] + IRC
# Issue 12: each target on two servers, and the single server it is compared with.
ACROSS_NODES = [("linechat-cluster", "linechat"), ("ngircd-network", "ngircd")]
# Issue 12's scenarios: windowed fan-out and private messages.
NODE_SCENARIOS = [
    "fanout-burst-100",
    "fanout-burst-100x10",
    "fanout-burst-1000",
    "fanout-burst-1000x10",
    "pm-100",
]
# bench.sh --baseline: each linechat target and the same target built from the baseline
# revision, run alternately with it.
BEFORE_AFTER = [("linechat", "linechat-before"), ("linechat-cluster", "linechat-cluster-before")]
# How close "within 5%" is, for throughput after a change against before it; the most memory
# per idle connection allowed, and the least cross-node private-message rate, as a share of
# one node's, and as a multiple of the baseline's.
SAME_SPEED = 0.95
MAX_IDLE_BYTES = 4096
CROSS_NODE_PM_SHARE = 0.35
CROSS_NODE_PM_GAIN = 3.0
# Issue 13: linechat's IRC port against these IRC servers.
IRC_PORT_PEERS = ["ngircd", "inspircd"]
# One colour per server in every chart.
COLOURS = {
    "linechat": "#1f77b4",
    "linechat-nohistory": "#9ecae1",
    "redis": "#d62728",
    "ngircd": "#2ca02c",
    "inspircd": "#ff7f0e",
    "ircd-hybrid": "#9467bd",
    "linechat-irc": "#17becf",
    "linechat-cluster": "#08306b",
    "ngircd-network": "#98df8a",
    "linechat-before": "#7f7f7f",
    "linechat-cluster-before": "#3f3f3f",
}

# How each server was configured for the benchmark (the configs are in scripts/bench/).
CONFIG = {
    "linechat": (
        "release build; `LINECHAT_FLOOD_LINES_PER_SEC=0` (flood control off; default 20 "
        "lines/s with a burst of 200), `LINECHAT_MAX_CONNECTIONS=100000` and "
        "`LINECHAT_MAX_CONNECTIONS_PER_IP=100000` (defaults 16,384 and 64); everything else "
        "default: history on (every message is also written to SQLite in batches), 4 MiB "
        "outbox per client, one password hash at a time (half the cores)"
    ),
    "ngircd": (
        "`scripts/bench/ngircd.conf`: `MaxPenaltyTime = 0` (command penalties, its flood "
        "protection, off; default: no cap), `MaxConnections = 0` and `MaxConnectionsIP = 0` "
        "(unlimited; defaults unlimited and 5), `MaxJoins = 0`, DNS and ident look-ups off, "
        "PING every 600 s. Not configurable: its 10-connection listen backlog and its "
        "per-client write buffer limits"
    ),
    "inspircd": (
        "`scripts/bench/inspircd.conf`, connect class: `commandrate=100000000` and "
        "`threshold=10000000` with `fakelag=no` (flood protection off; defaults 1 line/s "
        "after a penalty of 10), `recvq=64M` (default 10K), `softsendq=16M` and "
        "`hardsendq=64M` (defaults 10K and 1M), `localmax`/`globalmax=100000` (default 3 per "
        "address), `limit=100000`; `<performance netbuffersize=65534>` (the maximum; the "
        "default 10240 leaves a burst sender's lines waiting for InspIRCd's once-a-second "
        "timer after two buffers per readiness event), `softlimit=20000`, `somaxconn=4096`; "
        "DNS and ident look-ups off"
    ),
    "ircd-hybrid": (
        "`scripts/bench/ircd-hybrid.conf`: auth block `flags = exceed_limit, can_flood` (no "
        "flood limits, no Excess Flood), `default_floodcount = 0` (per-target message "
        "throttle off; default 10/s), `throttle_count = 0`/`throttle_time = 0` (connection "
        "throttle off; default 1 per 2 s per address), `default_join_flood_count = 0`, class "
        "`sendq = 64 megabytes` (default 100 KiB), `number_per_ip_*`, `number_per_cidr` and "
        "`max_number` 100,000 (defaults 2/8, 16, 100), `default_max_clients = 19000` "
        "(default 512), ident off. Its reverse-DNS look-up at connect cannot be turned off"
    ),
    "linechat-nohistory": (
        "as linechat, with `LINECHAT_HISTORY=false`: chat messages are not stored for "
        "`HISTORY` (private messages to someone offline still are, to be delivered later); "
        "in the private-message runs only"
    ),
    "linechat-irc": (
        "as linechat (history on), loaded through its IRC port (`--irc-addr`, protocol.md "
        "§12) with the generator's IRC dialect, as the IRC servers are; the line port "
        "listens too, unused; in the fan-out and private-message runs only"
    ),
    "linechat-cluster": (
        "two linechat nodes, each as linechat (history on), with `--node-name node1`/`node2`, "
        "`--nats nats://127.0.0.1:17112` and `--database-url postgres://...` (history and "
        "accounts in PostgreSQL instead of SQLite); `nats-server -js` (JetStream, storage in "
        "the run's directory, Debian's defaults otherwise); PostgreSQL 15 from `initdb -A "
        "trust` with its defaults (`fsync` and `synchronous_commit` on), run as the user "
        "`postgres`. All four (and PostgreSQL's backends) pinned to the server core; the "
        "generator puts connection i on node i mod 2, so room members split evenly and every "
        "private message crosses from one node to the other. In the windowed fan-out and "
        "private-message runs only"
    ),
    "ngircd-network": (
        "two ngIRCd servers linked as one IRC network, `scripts/bench/ngircd-network.conf`: "
        "the settings of ngircd.conf plus a `[Server]` block each (a connects to b, "
        "passwords; the link is up, `LUSERS` showing 2 servers, before a run starts) and "
        "`MaxConnections = 20000` instead of 0, which sizes its connection table up front: "
        "grown under load, the table moves the zlib stream of the (compressed) link, zlib "
        "refuses it (`Compression error: code -2`) and the network splits. Both pinned to "
        "the server core; members and pairs split across the two as for linechat-cluster. "
        "In the windowed fan-out and private-message runs only"
    ),
    "linechat-before": (
        "as linechat, the release build of the `--baseline` revision (under Versions), run "
        "in the same scenarios as linechat, right next to it, alternately before and after it"
    ),
    "linechat-cluster-before": (
        "as linechat-cluster, with the nodes of the `--baseline` revision (under Versions), "
        "its own ports, run right next to linechat-cluster, alternately before and after it"
    ),
    "redis": (
        "`scripts/bench/redis.conf`: `client-output-buffer-limit pubsub 0 0 0` (no limit; "
        "default 32 MB hard, 8 MB over 60 s), `maxclients 19968` (default 10,000), "
        "`protected-mode no` (bound to 127.0.0.1 only: the generator's sources rotate over "
        "127.0.0.x), `tcp-backlog 4096`, no persistence, `io-threads 1`. Commands are "
        "inline (plain text); replies are RESP"
    ),
}

# Scenarios in the order of the report; the titles come from the runs' parameters.
SCENARIOS = [
    "fanout-burst-100",
    "fanout-burst-100-unwindowed",
    "fanout-burst-100x10",
    "fanout-burst-100x10-unwindowed",
    "fanout-burst-1000",
    "fanout-burst-1000-unwindowed",
    "fanout-burst-1000x10",
    "fanout-burst-1000x10-unwindowed",
    "fanout-burst-10000",
    "fanout-paced-100",
    "pm-100",
    "pm-100-unwindowed",
    "guests",
    "idle",
    "logins-100",
]


def scenario_rank(scenario):
    """Position in the report: exact names first, then by prefix (guests-N, idle-N)."""
    if scenario in SCENARIOS:
        return (SCENARIOS.index(scenario), 0)
    prefix, _, count = scenario.rpartition("-")
    if prefix in SCENARIOS and count.isdigit():
        return (SCENARIOS.index(prefix), int(count))
    return (len(SCENARIOS), 0)


def title(scenario, parameters, alone):
    p = dict(part.split("=", 1) for part in parameters.split() if "=" in part)
    n = lambda key: f"{int(p.get(key, 0)):,}"
    who = " (linechat alone)" if alone else ""
    if scenario.startswith("fanout"):
        senders = int(p.get("senders", 1))
        pace = (
            f"at {n('rate')} messages/s in all"
            if int(p.get("rate", 0))
            else "as fast as possible"
            + (
                f", at most {n('window')} in flight per sender"
                if int(p.get("window", 0))
                else ", unwindowed (as fast as the socket takes)"
            )
        )
        kind = "paced" if int(p.get("rate", 0)) else "burst"
        return (
            f"Fan-out, {kind}: {n('members')} members in one room, {senders} sender"
            f"{'s' if senders > 1 else ''} sending {n('messages')} messages of {p.get('size')} "
            f"bytes each, {pace}{who}"
        )
    if scenario.startswith("pm"):
        pace = (
            f"at {n('rate')} messages/s in all"
            if int(p.get("rate", 0))
            else "as fast as possible"
            + (
                f", at most {n('window')} in flight per pair"
                if int(p.get("window", 0))
                else ", unwindowed (as fast as the socket takes)"
            )
        )
        return (
            f"Private messages: {n('pairs')} pairs at once, {n('messages')} messages of "
            f"{p.get('size')} bytes per pair, {pace}{who}"
        )
    if scenario.startswith("idle"):
        return f"Idle: {n('clients')} logged-in connections{who}"
    if scenario.startswith("guests"):
        together = (
            "one after another (each waits for its `OK NICK`)"
            if int(p.get("concurrency", 1)) <= 1
            else f"{n('concurrency')} at a time"
        )
        return (
            f"Guest login storm: {n('guests')} guests log in with `NICK` {together}, each "
            f"connection staying and reading everything it is sent{who}"
        )
    if scenario.startswith("logins"):
        return (
            f"Login storm: {n('accounts')} accounts REGISTER, then LOGIN, {n('concurrency')} "
            f"at once, each over a fresh connection, while {p.get('senders')} sender sends "
            f"{n('rate')} messages/s to a room of {n('members')} members"
        )
    return scenario


def parse_label(label):
    out = {}
    for part in (label or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            out[key] = value
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ms(us):
    if us is None:
        return "-"
    value = us / 1000
    if value < 1:
        return f"{value:.3f}"
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def num(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def machine():
    info = {}
    try:
        cpuinfo = open("/proc/cpuinfo").read()
        models = [l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")]
        mhz = [l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("cpu MHz")]
        flags = next((l for l in cpuinfo.splitlines() if l.startswith("flags")), "")
        info["cpu"] = models[0] if models else platform.processor()
        info["cores"] = len(models)
        info["mhz"] = mhz[0] if mhz else "?"
        info["hypervisor"] = "yes" if " hypervisor" in flags else "no"
    except OSError:
        pass
    info["uname"] = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    try:
        mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        info["memory"] = f"{int(mem.split()[1]) // 1024} MiB"
    except (OSError, StopIteration):
        pass
    try:
        os_release = dict(
            l.rstrip().split("=", 1) for l in open("/etc/os-release") if "=" in l
        )
        info["os"] = os_release.get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    return info


def summarise(runs):
    groups = {}
    for run in runs:
        label = parse_label(run.get("label"))
        key = (label.get("scenario", "?"), run.get("target", "?"))
        groups.setdefault(key, []).append((label, run))
    summary = []
    for (scenario, target), entries in groups.items():
        ok = [r for _, r in entries if "failed" not in r]
        failed = [r for _, r in entries if "failed" in r]
        cpu = [r.get("cpu") or {} for r in ok]
        storm = [r.get("storm") or {} for r in ok]
        row = {
            "scenario": scenario,
            "target": target,
            "parameters": next((r.get("parameters", "") for r in ok), ""),
            "messages_per_read": median([r.get("messages_per_read") for r in ok]),
            "runs": len(entries),
            "failed_runs": len(failed),
            "extra_runs": sum(1 for label, _ in entries if label.get("round") == "extra"),
            "failures": [r["failed"] for r in failed],
            "deliveries_per_sec": median([r["deliveries_per_sec"] for r in ok]),
            "deliveries_per_sec_all": [round(r["deliveries_per_sec"]) for r in ok],
            "p50_us": median([r["p50_us"] for r in ok]),
            "p90_us": median([r["p90_us"] for r in ok]),
            "p99_us": median([r["p99_us"] for r in ok]),
            "p99_us_all": [round(r["p99_us"]) for r in ok],
            "p999_us": median([r["p999_us"] for r in ok]),
            "max_us": median([r["max_us"] for r in ok]),
            # Runs before 2026-11-28 have no read latency (their latency was it).
            "read_p99_us": median([(r.get("read_latency") or {}).get("p99_us") for r in ok]),
            "delivered": sum(r["delivered"] for r in ok),
            "expected": sum(r["expected"] for r in ok),
            "out_of_order": sum(r["out_of_order"] for r in ok),
            "errors": sum(r.get("errors", 0) for r in ok),
            "closed_early": sum(r.get("closed_early", 0) for r in ok),
            "timed_out": sum(r.get("timed_out", 0) for r in ok),
            "first_problem": next((r["first_problem"] for r in ok if r.get("first_problem")), None),
            "server_cpu_pct": median([c.get("server_pct") for c in cpu]),
            "generator_cpu_pct": median([c.get("generator_pct") for c in cpu]),
            "generator_cpu_pct_max": max([c.get("generator_pct", 0) for c in cpu], default=None),
            "generator_core_busy_pct": median([c.get("generator_cores_busy_pct") for c in cpu]),
            "server_core_busy_pct": median([c.get("server_cores_busy_pct") for c in cpu]),
            "generator_saturated_runs": sum(1 for c in cpu if c.get("saturated") in ("generator", "both")),
            "server_saturated_runs": sum(1 for c in cpu if c.get("saturated") in ("server", "both")),
            "background_pct": median([float(l.get("background", "nan")) for l, r in entries if "failed" not in r and l.get("background")]),
            "setup_seconds": median([r.get("setup_seconds") for r in ok]),
            "rss_per_connection_bytes": median([r.get("rss_per_connection_bytes") for r in ok]),
            "rss_per_connection_all": [round(r["rss_per_connection_bytes"]) for r in ok if r.get("rss_per_connection_bytes") is not None],
            "connections_per_sec": median([r.get("connections_per_sec") for r in ok]),
            "connections": median([r.get("connections") for r in ok]),
            "registers_per_sec": median([s.get("registers_per_sec") for s in storm]),
            "logins_per_sec": median([s.get("logins_per_sec") for s in storm]),
            "login_p99_us": median([(s.get("login_latency") or {}).get("p99_us") for s in storm]),
            "storm_failures": sum(s.get("failures", 0) for s in storm),
            "storm_seconds": median([s.get("storm_seconds") for s in storm]),
            "chat_before_p50_us": median([(s.get("chat_before_storm") or {}).get("p50_us") for s in storm]),
            "chat_before_p99_us": median([(s.get("chat_before_storm") or {}).get("p99_us") for s in storm]),
            "chat_before_max_us": median([(s.get("chat_before_storm") or {}).get("max_us") for s in storm]),
            "seconds_all": [round(r["seconds"], 2) for r in ok],
        }
        guests = [r["guests"] for r in ok if r.get("guests")]
        if guests:
            row.update(guest_summary(guests))
        summary.append(row)
    rank = {name: i for i, name in enumerate(SERVERS)}
    summary.sort(key=lambda r: (scenario_rank(r["scenario"]), rank.get(r["target"], 99)))
    return summary


def guest_summary(guests):
    """Medians over the runs of the guest storm, with the CPU per login slice by slice."""
    slices = {}
    for g in guests:
        for piece in g.get("slices", []):
            slices.setdefault(piece["online"], []).append(piece)
    return {
        "guests": median([g["guests"] for g in guests]),
        "guests_logged_in": median([g.get("logged_in", g["guests"]) for g in guests]),
        "guest_runs_given_up": sum(1 for g in guests if g.get("gave_up")),
        "guest_concurrency": median([g["concurrency"] for g in guests]),
        "guest_logins_seconds": median([g["logins_seconds"] for g in guests]),
        "guest_logins_per_sec": median([g["logins_per_sec"] for g in guests]),
        "guest_delivered_seconds": median([g["delivered_seconds"] for g in guests]),
        "guest_delivered_seconds_all": [round(g["delivered_seconds"], 2) for g in guests],
        "guest_server_cpu_ms_per_login": median([g.get("server_cpu_ms_per_login") for g in guests]),
        "guest_generator_cpu_ms_per_login": median([g.get("generator_cpu_ms_per_login") for g in guests]),
        "guest_slices": [
            {
                "online": online,
                "server_cpu_ms_per_login": median([p.get("server_cpu_ms_per_login") for p in pieces]),
                "generator_cpu_ms_per_login": median([p.get("generator_cpu_ms_per_login") for p in pieces]),
            }
            for online, pieces in sorted(slices.items())
        ],
        "notices_expected": sum(g.get("notices_expected") or 0 for g in guests),
        "notices_received": sum(g["notices_received"] for g in guests),
        "guests_short": sum(g["guests_short"] for g in guests),
        "guest_lines_received": median([g["lines_received"] for g in guests]),
        "guest_bytes_received": median([g["bytes_received"] for g in guests]),
    }


def spread(values):
    values = [v for v in values if v]
    return max(values) / min(values) if len(values) >= 2 and min(values) > 0 else 1.0


def outliers(runs):
    """Scenario and server pairs whose rounds disagree by more than 30%, on deliveries/s
    for the throughput runs or on p99 for the paced and login runs."""
    out = []
    for row in summarise(runs):
        if row["scenario"].startswith("idle") or row["runs"] > 3:
            continue
        paced = "paced" in row["scenario"] or row["scenario"].startswith("logins")
        if row["scenario"].startswith("guests"):
            values = row.get("guest_delivered_seconds_all", [])
        else:
            values = row["p99_us_all"] if paced else row["deliveries_per_sec_all"]
        if spread(values) > 1.3 or row["failed_runs"]:
            out.append((row["scenario"], row["target"]))
    return out


def notes_for(row):
    notes = []
    # While connecting (idle), saturation says nothing about what is measured.
    if row["generator_saturated_runs"] and not row["scenario"].startswith("idle"):
        notes.append(f"generator-bound in {row['generator_saturated_runs']}/{row['runs']} runs")
    if row["server_saturated_runs"] and not row["scenario"].startswith("idle"):
        notes.append(f"server core saturated in {row['server_saturated_runs']}/{row['runs']}")
    if row["delivered"] < row["expected"]:
        notes.append(f"LOST {row['expected'] - row['delivered']:,} of {row['expected']:,}")
    if row["errors"]:
        notes.append(f"{row['errors']:,} error lines")
    if row["closed_early"]:
        notes.append(f"{row['closed_early']:,} connections closed")
    if row["timed_out"]:
        notes.append(f"{row['timed_out']:,} receivers timed out")
    if row.get("guest_runs_given_up"):
        notes.append(
            f"GAVE UP in {row['guest_runs_given_up']}/{row['runs']} runs (--give-up-secs): "
            f"median {num(row['guests_logged_in'])} of {num(row['guests'])} guests logged in")
    if row.get("guests_short"):
        notes.append(f"{row['guests_short']:,} guests missed notices")
    if row["out_of_order"]:
        notes.append(f"{row['out_of_order']:,} out of order")
    if row["failed_runs"]:
        notes.append(f"{row['failed_runs']} runs FAILED")
    if row["extra_runs"]:
        notes.append(f"rounds disagreed: {row['extra_runs']} more run")
    return "; ".join(notes) or "ok"


def cpu_cell(row):
    def pct(value):
        return "-" if value is None else f"{value:.0f}%"

    return f"{pct(row['server_cpu_pct'])} / {pct(row['generator_cpu_pct'])}"


def chat_table(rows, lines):
    lines.append(
        "| server | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | msgs/read | CPU server / generator | notes |"
    )
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for row in rows:
        lines.append(
            f"| {row['target']} | {num(row['deliveries_per_sec'])} | {ms(row['p50_us'])} | "
            f"{ms(row['p90_us'])} | {ms(row['p99_us'])} | {ms(row['p999_us'])} | "
            f"{ms(row['max_us'])} | {num(row['messages_per_read'], 1)} | {cpu_cell(row)} | {notes_for(row)} |"
        )


def paced_target(paced):
    """The paced target's line: p99 to arrival, and to the generator's read beside it."""
    read = f"; to the generator's read: {ms(paced['read_p99_us'])} ms" if paced and paced.get("read_p99_us") else ""
    return (f"paced 1,000 msgs/s to 100 members: p99 under 1 ms (linechat: "
            f"{ms(paced['p99_us']) if paced else '-'} ms{read})")


def find(summary, scenario, target):
    return next((r for r in summary if r["scenario"] == scenario and r["target"] == target), None)


def mark(ok):
    return "met" if ok else ("**not met**" if ok is not None else "not measured")


def largest(summary, prefix, target):
    """The row of `target` in the scenario `prefix`-N with the largest N (guests-10000)."""
    rows = [
        r for r in summary
        if r["target"] == target and r["scenario"].rpartition("-")[0] == prefix
        and r["scenario"].rpartition("-")[2].isdigit()
    ]
    return max(rows, key=lambda r: int(r["scenario"].rpartition("-")[2]), default=None)


def slice_at(slices, online):
    """The CPU per login of the slice that ends at `online` guests, or nearest above it."""
    later = [s for s in slices if s["online"] >= online and s["server_cpu_ms_per_login"] is not None]
    return min(later, key=lambda s: s["online"], default=None)


# Issue 10: how far CPU per login may rise from the first slice of logins to the last and
# still count as flat, and how close "level" is.
FLAT_RATIO = 1.5
LEVEL = 0.95


def targets_issue10(summary):
    """Issue 10's targets, met or not, with the figures behind each verdict."""
    out = []

    def line(ok, text):
        out.append(f"- {text}: {mark(ok)}")

    def rate(row):
        return row["deliveries_per_sec"] if row and row["deliveries_per_sec"] else None

    def best(scenario, names):
        rows = [find(summary, scenario, name) for name in names]
        rows = [r for r in rows if rate(r)]
        return max(rows, key=rate, default=None)

    for scenario, what in (("pm-100", "windowed"), ("pm-100-unwindowed", "unwindowed")):
        top = best(scenario, PEERS)
        lc = find(summary, scenario, "linechat")
        nohist = find(summary, scenario, "linechat-nohistory")
        if not top or not rate(lc):
            line(None, f"private messages, 100 pairs, {what}")
            continue
        peer = f"best peer: {top['target']}, {num(rate(top))}"
        line(rate(lc) >= LEVEL * rate(top),
             f"private messages, 100 pairs, {what}, history on: at least level with the best "
             f"peer (linechat: {num(rate(lc))} deliveries/s, {rate(lc) / rate(top):.2f}x; "
             f"{peer}; within 5% counts as level)")
        if rate(nohist):
            line(rate(nohist) >= 1.3 * rate(top),
                 f"... history off: at least 1.3x the best peer (linechat-nohistory: "
                 f"{num(rate(nohist))}, {rate(nohist) / rate(top):.2f}x)")
            line(rate(lc) >= 0.8 * rate(nohist),
                 f"... history costs at most 20% (history on / off: "
                 f"{rate(lc) / rate(nohist):.2f}x)")
        else:
            line(None, "... history off: at least 1.3x the best peer")
            line(None, "... history costs at most 20%")
    for members in ("100", "1000"):
        for senders in ("", "x10"):
            for mode in ("", "-unwindowed"):
                scenario = f"fanout-burst-{members}{senders}{mode}"
                who = f"{int(members):,} members, {'10 senders' if senders else '1 sender'}, " + (
                    "unwindowed" if mode else "windowed")
                lc = find(summary, scenario, "linechat")
                if not rate(lc):
                    line(None, f"fan-out, {who}")
                    continue
                redis = find(summary, scenario, "redis")
                if rate(redis):
                    line(rate(lc) >= 1.2 * rate(redis),
                         f"fan-out, {who}: at least 1.2x Redis (linechat: {num(rate(lc))} "
                         f"deliveries/s, Redis: {num(rate(redis))}, "
                         f"{rate(lc) / rate(redis):.2f}x)")
                top = best(scenario, IRC)
                if top:
                    line(rate(lc) >= 2 * rate(top),
                         f"... at least 2x the best IRC server ({top['target']}: "
                         f"{num(rate(top))}, {rate(lc) / rate(top):.2f}x)")
    storm = largest(summary, "guests", "linechat")
    if storm and storm.get("guest_delivered_seconds") is not None:
        count = f"{int(storm['guests']):,}"
        if storm.get("guest_runs_given_up"):
            line(False,
                 f"{count} guests logging in one after another, each reading what it is sent: "
                 f"under 5 s (linechat: gave up after {num(storm['guest_logins_seconds'], 0)} s "
                 f"with {num(storm['guests_logged_in'])} logged in, "
                 f"{num(storm['guest_logins_per_sec'])}/s)")
        else:
            line(storm["guest_delivered_seconds"] < 5,
                 f"{count} guests logging in one after another, each reading what it is sent: "
                 f"under 5 s (linechat: every notice delivered after "
                 f"{num(storm['guest_delivered_seconds'], 2)} s, the last `OK NICK` after "
                 f"{num(storm['guest_logins_seconds'], 2)} s)")
        slices = storm["guest_slices"]
        first = slice_at(slices, 1) if slices else None
        last = slices[-1] if slices else None
        marks = [slice_at(slices, k) for k in (1000, 5000, 10000) if k <= storm["guests"]]
        marks = [m for m in marks if m]
        if last and last not in marks:
            marks.append(last)
        figures = " / ".join(
            f"{num(m['server_cpu_ms_per_login'], 3)} ms at {m['online']:,}" for m in marks)
        flat = None
        if first and last and first["server_cpu_ms_per_login"] and last["server_cpu_ms_per_login"] is not None:
            ratio = last["server_cpu_ms_per_login"] / first["server_cpu_ms_per_login"]
            flat = ratio <= FLAT_RATIO
            figures += f"; last slice / first: {ratio:.1f}x"
        line(flat,
             f"... server CPU per login flat as the number online grows (at most "
             f"{FLAT_RATIO}x from the first slice of logins to the last; per login by guests "
             f"online: {figures or '-'})")
        memory = storm.get("rss_per_connection_bytes")
        redis = largest(summary, "idle", "redis")
        versus = (
            f"; Redis, idle, not logged in: {num(redis['rss_per_connection_bytes'])} bytes"
            if redis and redis.get("rss_per_connection_bytes") is not None else ""
        )
        line(None if memory is None else memory <= 4096,
             f"memory per logged-in idle connection at {count} connections, after the guest "
             f"storm with its notices delivered: at most 4 KiB of server RSS (linechat: "
             f"{num(memory)} bytes{versus})")
    else:
        line(None, "guests logging in one after another: under 5 s")
        line(None, "memory per logged-in idle connection after the guest storm: at most 4 KiB")
    paced = find(summary, "fanout-paced-100", "linechat")
    line(None if not paced or paced["p99_us"] is None else paced["p99_us"] < 1000,
         paced_target(paced))
    ours = [r for r in summary if r["target"] in ("linechat", "linechat-nohistory")]
    trouble = [
        r for r in ours
        if r["delivered"] < r["expected"] or r["timed_out"] or r["failed_runs"] or r.get("guests_short")
    ]
    line(not trouble if ours else None,
         "nothing lost, ever: every receiver got every message in every linechat run"
         + (f" (losses or failures in: {', '.join(r['target'] + ' ' + r['scenario'] for r in trouble)})"
            if trouble else f" ({len(ours)} scenario and server pairs checked)"))
    theirs = [
        r["target"] + " " + r["scenario"] for r in summary
        if r["target"] in PEERS and (r["delivered"] < r["expected"] or r["timed_out"])
    ]
    if theirs:
        out.append(f"- (peers that lost messages or timed out, for the record: {', '.join(theirs)})")
    return out


def rate_of(row):
    return row["deliveries_per_sec"] if row and row["deliveries_per_sec"] else None


def scenario_words(scenario):
    """`fanout-burst-1000x10-unwindowed` -> `fan-out, 1,000 members, 10 senders, unwindowed`."""
    mode = "unwindowed" if scenario.endswith("-unwindowed") else "windowed"
    base = scenario.removesuffix("-unwindowed")
    if base.startswith("pm-"):
        return f"private messages, {int(base[3:]):,} pairs, {mode}"
    if base.startswith("fanout-paced-"):
        return f"fan-out, {int(base.removeprefix('fanout-paced-')):,} members, paced"
    shape = base.removeprefix("fanout-burst-")
    members, _, senders = shape.partition("x")
    senders = int(senders or 1)
    return (f"fan-out, {int(members):,} members, {senders} sender{'s' if senders > 1 else ''}, "
            f"{mode}")


def nothing_lost(summary, targets):
    """The "nothing lost" line for `targets`: every run delivered everything, or where not."""
    rows = [r for r in summary if r["target"] in targets]
    trouble = [
        r for r in rows
        if r["delivered"] < r["expected"] or r["timed_out"] or r["failed_runs"]
    ]
    names = " and ".join(targets)
    text = f"nothing lost: every receiver got every message in every {names} run" + (
        f" (losses or failures in: {', '.join(r['target'] + ' ' + r['scenario'] for r in trouble)})"
        if trouble else f" ({len(rows)} scenario and server pairs checked)")
    return f"- {text}: {mark(not trouble if rows else None)}"


def targets_issue13(summary):
    """linechat's IRC port against ngIRCd and InspIRCd (issue 13 asks for the comparison, not
    for a figure), and against linechat's own protocol, scenario by scenario."""
    out = []
    scenarios = sorted({r["scenario"] for r in summary if r["target"] == "linechat-irc"},
                       key=scenario_rank)
    for scenario in scenarios:
        irc = find(summary, scenario, "linechat-irc")
        if not rate_of(irc):
            out.append(f"- {scenario_words(scenario)}: linechat-irc not measured"
                       + (" (its runs failed)" if irc and irc["failed_runs"] else ""))
            continue
        versus = []
        for name in IRC_PORT_PEERS + ["linechat"]:
            other = find(summary, scenario, name)
            if rate_of(other):
                what = "linechat's own protocol" if name == "linechat" else name
                versus.append(f"{what} {num(rate_of(other))} ({rate_of(irc) / rate_of(other):.2f}x)")
        out.append(
            f"- {scenario_words(scenario)}: linechat-irc {num(rate_of(irc))} deliveries/s, "
            f"p99 {ms(irc['p99_us'])} ms; " + ("; ".join(versus) or "no IRC server measured"))
    if out:
        out.append(nothing_lost(summary, ["linechat-irc"]))
    return out


def across_nodes(summary, lines):
    """Issue 12: each two-server target against its single server, and the two against
    each other, in a table of medians and ratios."""
    rows = [r for r in summary if r["target"] in {t for t, _ in ACROSS_NODES}]
    if not rows:
        return
    lines.append("## Across nodes (issue 12)")
    lines.append("")
    lines.append(
        "Two linechat nodes clustered over NATS with PostgreSQL as their store "
        "(linechat-cluster) against one linechat node (linechat), and two ngIRCd servers "
        "linked as one IRC network (ngircd-network), the classic way IRC scales, against "
        "one ngIRCd (ngircd), under the same load in the same run. The generator puts "
        "connection i on server i mod 2: a room's members are split evenly between the two "
        "servers, so every room message crosses to the other server once, and each "
        "private-message pair has its sender on one server and its receiver on the other, so "
        "every private message crosses. Medians of the rounds; a ratio above 1 means the "
        "two servers delivered more than one."
    )
    lines.append("")
    lines.append(
        "**One core for all.** Every process of a target runs on the server core (`taskset "
        "-c 0`): both linechat nodes, nats-server and PostgreSQL with its backends; or both "
        "ngIRCd servers. So each target gets the same CPU as a single server, and these "
        "figures measure what spreading over nodes costs, not what it gains: the two nodes "
        "and NATS take turns on one core, every crossing message is encoded, sent through "
        "NATS (two more socket hops) and decoded, and the cores' switching between processes "
        "is paid too. With a core (or a machine) per node, as in a real deployment, each "
        "node would carry about half the deliveries on its own CPU. CPU server is the sum "
        "over the target's processes and their children, as a share of the one core."
    )
    lines.append("")
    lines.append(
        "| scenario | linechat | linechat-cluster | cluster / linechat | p99 linechat / cluster ms "
        "| ngircd | ngircd-network | network / ngircd | p99 ngircd / network ms "
        "| cluster / network |"
    )
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")

    def ratio(a, b):
        return f"{rate_of(a) / rate_of(b):.2f}x" if rate_of(a) and rate_of(b) else "-"

    def p99(row):
        return ms(row["p99_us"]) if row and rate_of(row) else "-"

    scenarios = sorted({r["scenario"] for r in rows}, key=scenario_rank)
    for scenario in scenarios:
        single, cluster = find(summary, scenario, "linechat"), find(summary, scenario, "linechat-cluster")
        ngircd, network = find(summary, scenario, "ngircd"), find(summary, scenario, "ngircd-network")
        lines.append(
            f"| {scenario_words(scenario)} | {num(rate_of(single))} | {num(rate_of(cluster))} | "
            f"{ratio(cluster, single)} | {p99(single)} / {p99(cluster)} | {num(rate_of(ngircd))} | "
            f"{num(rate_of(network))} | {ratio(network, ngircd)} | {p99(ngircd)} / {p99(network)} | "
            f"{ratio(cluster, network)} |"
        )
    lines.append("")
    lines.append(nothing_lost(summary, ["linechat-cluster"]))
    lines.append(nothing_lost(summary, ["ngircd-network"]))
    for row in rows:
        if row["failures"]:
            lines.append(f"- {row['target']} {row['scenario']}: a run failed: `{row['failures'][0]}`")
            break
    lines.append("")
    lines.append("All figures of these runs (latency percentiles, CPU, notes) are in the tables "
                 "under Results.")
    lines.append("")


def thousands(values):
    return ", ".join(f"{v / 1000:,.0f}K" for v in values) or "-"


def same_speed(ratio, paced):
    """The "within 5%" cell: after against before, faster counting as within. A paced run's
    throughput is the pace's, so its verdict is left to its p99."""
    if ratio is None:
        return "not measured"
    if paced:
        return "paced: its rate is the pace's"
    if ratio < SAME_SPEED:
        return f"**no**: {(1 - ratio) * 100:.1f}% slower"
    if ratio > 1 / SAME_SPEED:
        return f"yes: {(ratio - 1) * 100:.0f}% faster"
    return "yes"


def before_and_after(summary, lines, versions, rounds):
    """bench.sh --baseline: each linechat target against the same target built from the
    baseline revision, in the same run: fan-out and private-message throughput within 5%,
    memory per idle connection, and cross-node private messages against one node, against
    the baseline and against two linked ngIRCd servers."""
    pairs = [(after, before) for after, before in BEFORE_AFTER
             if any(r["target"] == before for r in summary)]
    if not pairs:
        return
    lines.append("## Before and after")
    lines.append("")
    lines.append(
        f"The code measured (after: commit {versions.get('linechat_commit', '?')}) against "
        f"the `--baseline` revision (before: commit "
        f"{versions.get('linechat_before_commit', '?')}), built in release from a worktree "
        "of its own and loaded by the same generator in the same run: linechat-before ran "
        "as linechat and linechat-cluster-before as linechat-cluster, each right next to its "
        "counterpart, after it in odd rounds and before it in even ones, so that both met "
        "the same background load. Deliveries/s are medians of the rounds (the rounds' "
        f"values beside them); within 5% means after is at least {SAME_SPEED}x before "
        "(faster counts as within)."
        + (" **One round only**: these are single runs, a check of the set-up, not figures "
           "to quote." if rounds == 1 else "")
    )
    lines.append("")
    lines.append(
        "| scenario | target | before deliveries/s | after deliveries/s | after / before "
        "| within 5% | rounds before | rounds after | p99 before / after ms |"
    )
    lines.append("|---|---|--:|--:|--:|---|--:|--:|--:|")
    compared, slower, unmeasured = [], [], []
    scenarios = sorted({r["scenario"] for r in summary
                        if r["scenario"].startswith(("fanout", "pm"))}, key=scenario_rank)
    for scenario in scenarios:
        for after_name, before_name in pairs:
            after, before = find(summary, scenario, after_name), find(summary, scenario, before_name)
            if not after and not before:
                continue
            ratio = rate_of(after) / rate_of(before) if rate_of(after) and rate_of(before) else None
            label = f"{after_name} {scenario}"
            paced = "paced" in scenario
            if ratio is None:
                unmeasured.append(label)
            elif not paced:
                compared.append((ratio, label))
                if ratio < SAME_SPEED:
                    slower.append(f"{label} ({ratio:.2f}x)")
            p99 = lambda row: ms(row["p99_us"]) if rate_of(row) else "-"
            lines.append(
                f"| {scenario_words(scenario)} "
                f"| {after_name} | {num(rate_of(before))} | {num(rate_of(after))} | "
                f"{f'{ratio:.2f}x' if ratio is not None else '-'} | {same_speed(ratio, paced)} | "
                f"{thousands(before['deliveries_per_sec_all']) if before else '-'} | "
                f"{thousands(after['deliveries_per_sec_all']) if after else '-'} | "
                f"{p99(before)} / {p99(after)} |"
            )
    lines.append("")

    def line(ok, text):
        lines.append(f"- {text}: {mark(ok)}")

    if compared:
        lowest = min(compared)
        line(not slower,
             f"fan-out and private-message throughput within 5% of before, in every burst "
             f"scenario ({len(compared)} scenario and target pairs; "
             + (f"more than 5% slower in: {', '.join(slower)}" if slower
                else f"lowest after / before: {lowest[0]:.2f}x, {lowest[1]}")
             + ")")
    else:
        line(None, "fan-out and private-message throughput within 5% of before")
    if unmeasured:
        lines.append(f"- not compared (a side has no successful run): {', '.join(unmeasured)}")

    # Memory per idle connection: after the guest storm, and idle at the large size.
    memory = []
    storm = largest(summary, "guests", "linechat")
    if storm:
        memory.append((storm["scenario"], f"after the guest storm of {num(storm['guests'] or storm['connections'])}"))
    if find(summary, "idle-19000", "linechat"):
        memory.append(("idle-19000", "with 19,000 idle connections"))
    for scenario, what in memory:
        after, before = find(summary, scenario, "linechat"), find(summary, scenario, "linechat-before")
        value = after["rss_per_connection_bytes"] if after else None
        previous = before["rss_per_connection_bytes"] if before else None
        line(None if value is None else value <= MAX_IDLE_BYTES,
             f"memory per logged-in idle connection {what}: at most 4 KiB (after: "
             f"{num(value)} bytes; before: {num(previous)} bytes)")
    if not memory:
        line(None, "memory per logged-in idle connection: at most 4 KiB")

    # Cross-node private messages: every one crosses from one node to the other.
    cluster, single = find(summary, "pm-100", "linechat-cluster"), find(summary, "pm-100", "linechat")
    cluster_before = find(summary, "pm-100", "linechat-cluster-before")
    single_before = find(summary, "pm-100", "linechat-before")
    network = find(summary, "pm-100", "ngircd-network")
    if rate_of(cluster) and rate_of(single):
        share = rate_of(cluster) / rate_of(single)
        share_before = (f"{rate_of(cluster_before) / rate_of(single_before):.2f}x"
                        if rate_of(cluster_before) and rate_of(single_before) else "not measured")
        line(share >= CROSS_NODE_PM_SHARE,
             f"cross-node private messages (pm-100 on linechat-cluster: every one crosses "
             f"nodes) at least {CROSS_NODE_PM_SHARE}x one node's rate (linechat-cluster "
             f"{num(rate_of(cluster))} / linechat {num(rate_of(single))}: {share:.2f}x; "
             f"before: {share_before})")
    else:
        line(None, f"cross-node private messages at least {CROSS_NODE_PM_SHARE}x one node's rate")
    if rate_of(cluster) and rate_of(cluster_before):
        gain = rate_of(cluster) / rate_of(cluster_before)
        line(gain >= CROSS_NODE_PM_GAIN,
             f"... at least {CROSS_NODE_PM_GAIN:.0f}x before (linechat-cluster-before: "
             f"{num(rate_of(cluster_before))}; after / before: {gain:.2f}x)")
    else:
        line(None, f"... at least {CROSS_NODE_PM_GAIN:.0f}x before")
    if rate_of(cluster) and rate_of(network):
        line(rate_of(cluster) > rate_of(network),
             f"... ahead of two linked ngIRCd servers (ngircd-network: "
             f"{num(rate_of(network))}; linechat-cluster / ngircd-network: "
             f"{rate_of(cluster) / rate_of(network):.2f}x)")
    else:
        line(None, "... ahead of two linked ngIRCd servers (ngircd-network)")
    afters = [after for after, _ in pairs]
    lines.append(nothing_lost(summary, afters))
    rows = [r for r in summary if r["target"] in afters and r["scenario"].startswith(("fanout", "pm"))]
    disorder = [f"{r['target']} {r['scenario']} ({r['out_of_order']:,})" for r in rows if r["out_of_order"]]
    line(not disorder if rows else None,
         f"order kept per sender: every {' and '.join(afters)} receiver got each sender's "
         f"messages in the order sent"
         + (f" (out of order in: {', '.join(disorder)})" if disorder
            else f" ({len(rows)} scenario and server pairs checked)"))
    lines.append("")


def targets_issue5(summary):
    out = []

    def line(ok, text):
        if ok is not None:
            out.append(f"- {text}: {mark(ok)}")

    for scenario, who in (("fanout-burst-1000", "1 sender"), ("fanout-burst-1000x10", "10 senders")):
        burst = find(summary, scenario, "linechat")
        if not (burst and burst["deliveries_per_sec"]):
            line(None, f"fan-out burst, 1,000 members, {who}")
            continue
        rate = burst["deliveries_per_sec"]
        line(rate >= 4e6, f"fan-out burst, 1,000 members, {who}: at least 4,000,000 deliveries/s (linechat: {num(rate)})")
        irc = [find(summary, scenario, s) for s in IRC]
        irc = [r for r in irc if r and r["deliveries_per_sec"]]
        if irc:
            best = max(irc, key=lambda r: r["deliveries_per_sec"])
            line(rate > best["deliveries_per_sec"],
                 f"... ahead of every IRC server (best: {best['target']}, {num(best['deliveries_per_sec'])})")
        redis = find(summary, scenario, "redis")
        if redis and redis["deliveries_per_sec"]:
            line(rate >= 0.95 * redis["deliveries_per_sec"],
                 f"... at least level with Redis ({num(redis['deliveries_per_sec'])}; within 5% counts as level)")
    paced = find(summary, "fanout-paced-100", "linechat")
    line(paced and paced["p99_us"] is not None and paced["p99_us"] < 1000, paced_target(paced))
    for scenario in ("idle-2000", "idle-19000"):
        idle = find(summary, scenario, "linechat")
        if idle and idle["rss_per_connection_bytes"] is not None:
            line(idle["rss_per_connection_bytes"] < 8192,
                 f"idle logged-in connection under 8 KiB of server memory ({scenario}: "
                 f"{num(idle['rss_per_connection_bytes'])} bytes)")
    storm = find(summary, "logins-100", "linechat")
    line(storm and storm["p99_us"] is not None and storm["p99_us"] < 5000,
         f"login storm does not lift chat p99 above 5 ms (linechat during the storm: "
         f"{ms(storm['p99_us']) if storm else '-'} ms; before it: "
         f"{ms(storm['chat_before_p99_us']) if storm else '-'} ms)")
    return out


def ms_label(value):
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def short(scenario):
    """A chart label: the scenario name without its family prefix."""
    for prefix in ("fanout-burst-", "fanout-"):
        if scenario.startswith(prefix):
            return "fan-out " + scenario[len(prefix):].replace("-unwindowed", " unwin.")
    return scenario.replace("-unwindowed", " unwin.")


def draw_charts(summary, directory):
    """Draws the SVG charts into `directory`; returns (caption, path) pairs, or none without
    matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    os.makedirs(directory, exist_ok=True)
    # Stable ids and no date in the files: a regenerated chart differs only where its data does.
    plt.rcParams["svg.hashsalt"] = "linechat-bench"
    plt.rcParams["font.size"] = 8
    charts = []

    def save(fig, name, caption):
        path = os.path.join(directory, name)
        fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        charts.append((caption, path))

    by_scenario = {}
    for row in summary:
        by_scenario.setdefault(row["scenario"], []).append(row)

    def small_multiples(scenarios, value, unit, name, caption, label):
        scenarios = [s for s in scenarios if any(value(r) is not None for r in by_scenario[s])]
        if not scenarios:
            return
        columns = 4
        rows_n = (len(scenarios) + columns - 1) // columns
        fig, axes = plt.subplots(rows_n, columns, figsize=(3.2 * columns, 1.9 * rows_n), squeeze=False)
        for ax in axes.flat[len(scenarios):]:
            ax.axis("off")
        for ax, scenario in zip(axes.flat, scenarios):
            rows = [r for r in by_scenario[scenario] if value(r) is not None][::-1]
            bars = ax.barh([r["target"] for r in rows], [value(r) for r in rows],
                           color=[COLOURS.get(r["target"], "grey") for r in rows])
            ax.bar_label(bars, labels=[label(value(r)) for r in rows], fontsize=6, padding=2)
            # Room on the right for the longest bar's label.
            ax.set_xlim(0, max(value(r) for r in rows) * 1.3)
            ax.set_title(short(scenario), fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_xlabel(unit, fontsize=7)
        fig.tight_layout()
        save(fig, name, caption)

    chat = [s for s in by_scenario if s.startswith(("fanout", "pm"))]
    bursts = [s for s in chat if "paced" not in s]
    small_multiples(bursts, lambda r: r["deliveries_per_sec"] and r["deliveries_per_sec"] / 1e6,
                    "million deliveries/s", "deliveries.svg",
                    "Deliveries per second (median of the rounds; more is better)",
                    lambda v: f"{v:.2f}")
    small_multiples(chat, lambda r: r["p99_us"] and r["p99_us"] / 1e3, "p99 latency, ms",
                    "p99.svg", "p99 latency (median of the rounds; less is better)", ms_label)

    nodes = [r for r in summary
             if r["target"] in {t for t, _ in ACROSS_NODES} and r["deliveries_per_sec"]]
    if nodes:
        scenarios = [s for s in NODE_SCENARIOS if s in by_scenario]
        targets = [t for pair in ACROSS_NODES for t in pair[::-1]]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3))
        width = 0.8 / len(targets)
        for ax, value, unit in (
            (axes[0], lambda r: r["deliveries_per_sec"] / 1e6, "million deliveries/s"),
            (axes[1], lambda r: r["p99_us"] / 1e3, "p99 latency, ms"),
        ):
            for k, target in enumerate(targets):
                rows = [find(summary, s, target) for s in scenarios]
                ax.bar([i + (k - (len(targets) - 1) / 2) * width for i in range(len(scenarios))],
                       [value(r) if rate_of(r) else 0 for r in rows], width,
                       label=target, color=COLOURS.get(target, "grey"))
            ax.set_xticks(range(len(scenarios)), [short(s) for s in scenarios], fontsize=7)
            ax.set_ylabel(unit, fontsize=7)
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        save(fig, "nodes.svg",
             "Across nodes (issue 12): one server against two, all on one core (deliveries/s: "
             "more is better; p99: less is better)")

    storms = [r for r in summary if r["scenario"].startswith("guests") and r.get("guest_slices")]
    if storms:
        fig, ax = plt.subplots(figsize=(6, 3))
        for row in storms:
            points = [p for p in row["guest_slices"] if p["server_cpu_ms_per_login"] is not None]
            ax.plot([p["online"] for p in points], [p["server_cpu_ms_per_login"] for p in points],
                    marker="o", color=COLOURS.get(row["target"], "grey"),
                    label=f"{row['target']}, server")
            ax.plot([p["online"] for p in points], [p["generator_cpu_ms_per_login"] for p in points],
                    marker=".", linestyle="--", color="grey", label="generator")
        ax.set_xlabel("guests online at the end of the slice")
        ax.set_ylabel("CPU ms per login")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "guests-cpu.svg",
             "Guest login storm: CPU per login, slice by slice, as the number online grows "
             "(flat is the target)")

    memory = []
    for row in summary:
        if row.get("rss_per_connection_bytes") is None:
            continue
        if row["scenario"].startswith("guests"):
            memory.append((f"{row['target']} (after the guest storm, {num(row['connections'])})", row))
        elif row["scenario"].startswith("idle"):
            memory.append((f"{row['target']} (idle, {num(row['connections'])})", row))
    if memory:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(memory) + 0.8))
        memory = memory[::-1]
        ax.barh([label for label, _ in memory], [r["rss_per_connection_bytes"] for _, r in memory],
                color=[COLOURS.get(r["target"], "grey") for _, r in memory])
        ax.axvline(4096, color="black", linestyle=":", linewidth=1, label="4 KiB target")
        ax.set_xlabel("server memory per connection, bytes")
        ax.legend()
        save(fig, "memory.svg", "Server memory per logged-in idle connection (less is better)")
    return charts


def guests_table(rows, lines):
    for row in rows:
        slices = row.get("guest_slices") or []
        cpu = ", ".join(
            f"{num(p['server_cpu_ms_per_login'], 3)} at {p['online']:,}" for p in slices
            if p["server_cpu_ms_per_login"] is not None
        )
        expected = row.get("notices_expected")
        lines.append("| | |")
        lines.append("|---|--:|")
        lines.append(f"| guests logged in / meant to | {num(row.get('guests_logged_in'))} / {num(row.get('guests'))} |")
        lines.append(f"| logins done (last `OK NICK`) | {num(row.get('guest_logins_seconds'), 2)} s |")
        lines.append(f"| every notice delivered | {num(row.get('guest_delivered_seconds'), 2)} s |")
        lines.append(f"| logins/s | {num(row.get('guest_logins_per_sec'))} |")
        lines.append(f"| login p50 / p99, connect to `OK NICK` | {ms(row['p50_us'])} / {ms(row['p99_us'])} ms |")
        lines.append(f"| server CPU per login, by guests online (ms) | {cpu or '-'} |")
        lines.append(
            f"| CPU per login over the storm, server / generator | "
            f"{num(row.get('guest_server_cpu_ms_per_login'), 3)} / "
            f"{num(row.get('guest_generator_cpu_ms_per_login'), 3)} ms |")
        lines.append(f"| server memory per connection after the storm | {num(row['rss_per_connection_bytes'])} bytes |")
        lines.append(
            f"| `NOTICE ONLINE` names received / expected (all runs) | "
            f"{num(row.get('notices_received'))} / {num(expected) if expected else '-'} |")
        lines.append(
            f"| received by the guests per run, lines / bytes | {num(row.get('guest_lines_received'))} / "
            f"{num(row.get('guest_bytes_received'))} |")
        lines.append(f"| CPU server / generator | {cpu_cell(row)} |")
        lines.append(f"| notes | {notes_for(row)} |")
    lines.append("")
    lines.append(
        "Each guest connects (source addresses rotate over 127.0.0.x), sends `NICK <name>` "
        "and waits for `OK NICK` before the next connects; every connection then stays open "
        "and reads everything it is sent, above all a `NOTICE ONLINE` for every guest who "
        "logs in after it (n(n-1)/2 notices for n guests), and each guest's count is checked. "
        "CPU per login is the server's CPU time (`/proc/<pid>/stat`) over each slice of "
        "logins divided by the logins in it. Memory per connection: growth of the server's "
        "`VmRSS` from before the first connection to a few seconds after every notice was "
        "delivered, divided by the connections (the kernel's socket buffers are not in RSS). "
        "A storm still logging guests in after `--give-up-secs` stops there, and reports what "
        "it did by then."
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", required=True)
    parser.add_argument("--outliers", action="store_true",
                        help="only print scenario|server pairs whose rounds disagree")
    parser.add_argument("--out")
    parser.add_argument("--json")
    parser.add_argument("--elapsed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--command", default="bash scripts/bench.sh")
    parser.add_argument("--versions", default="")
    parser.add_argument("--server-core", default="0")
    parser.add_argument("--loadgen-core", default="1")
    parser.add_argument("--charts", help="directory for the SVG charts (none without it)")
    args = parser.parse_args()

    runs = [json.loads(l) for l in open(args.runs) if l.strip()]
    if args.outliers:
        for scenario, target in outliers(runs):
            print(f"{scenario}|{target}")
        return
    versions = dict(l.split("=", 1) for l in args.versions.splitlines() if "=" in l)
    summary = summarise(runs)
    info = machine()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    kept = ""
    if os.path.exists(args.out):
        old = open(args.out).read()
        if NOTES_MARKER in old:
            kept = old.split(NOTES_MARKER, 1)[1].strip("\n")

    lines = []
    lines.append("# Benchmarks")
    lines.append("")
    lines.append(
        f"linechat side by side with the IRC servers ngIRCd, InspIRCd and ircd-hybrid, and with "
        f"Redis pub/sub as the reference for raw fan-out speed, under the same workloads from "
        f"the load generator (`crates/loadgen`); with linechat's IRC port (linechat-irc, "
        f"issue 13) beside the IRC servers, and two linechat nodes (linechat-cluster) and two "
        f"linked ngIRCd servers (ngircd-network) beside one of each (issue 12). Measured {now}, {args.rounds} rounds, "
        f"{args.elapsed // 60} min {args.elapsed % 60} s. Every figure is the **median of the "
        f"rounds**; every run started a fresh server. Servers ran pinned to core "
        f"{args.server_core} (`taskset -c {args.server_core}`), the generator to core "
        f"{args.loadgen_core}, and the servers took turns, in a different order each round."
    )
    lines.append("")
    lines.append(
        "**Noise.** Other engineers were building and testing on this 2-core machine at the "
        "same time, so timings are noisy. Before each run the script waited (up to 10 s) for "
        "both cores to fall below 20% busy; the background load it saw last is in the JSON "
        "(`background` in each run's label), and the busy time of each core during the run is "
        "there too (`cpu.*_cores_busy_pct`). Medians damp the outliers; single runs can be "
        "far off."
    )
    lines.append("")
    lines.append(
        "Every burst runs twice. Windowed, each sender keeps at most a window of messages in "
        "flight (sent but not yet received by one receiver it is paired with; `--window`, "
        "1,000 by default): enough to keep every server busy. Unwindowed (`--window 0`, "
        "scenarios named `-unwindowed`), each sender writes as fast as its socket takes, "
        "which measures how a server copes with an unbounded backlog as well (InspIRCd then "
        "reads a client's excess input only once a second, and the latency becomes the depth "
        "of the backlog). Burst latencies are therefore latencies under full load, not idle "
        "latencies; the paced runs give those. Every run checks that every receiver got "
        "every message (and in order); a shortfall shows as LOST in the notes."
    )
    lines.append("")
    lines.append(
        "The generator speaks the same workload in three dialects: linechat's protocol; IRC "
        "(`NICK`/`USER`, `JOIN #room`, `PRIVMSG`, `PONG` to every `PING`; lines end with LF "
        "alone, which all three servers accept, because ircd-hybrid 8 stops parsing a "
        "client's input at a CR LF split across two reads and then drops a fast sender for "
        "\"Excess Flood\" even with flood protection off); and Redis (`SUBSCRIBE`, "
        "`PUBLISH` as inline commands; a private conversation is a channel per receiver, and "
        "Redis publishers are extra connections, not members). Names have at most 9 "
        "characters, the RFC nick length."
    )
    lines.append("")
    lines.append(
        "Latencies are from send to arrival (the send time travels in the message; the "
        "arrival is the kernel's receive stamp on the receiving socket, `SO_TIMESTAMPNS`), "
        "in milliseconds. They leave out the generator's own time to get round to each "
        "socket (one core reads every receiver in turn), which is the same for every server; "
        "runs before 2026-11-28 included it. The latency to the generator's read is kept in "
        "`BENCHMARKS.json` (`read_latency`) and quoted for the paced target. "
        "**msgs/read** is how many messages a receiver got per read, i.e. roughly how many "
        "the server packed into each write. **CPU server / generator** is each process's "
        "CPU time during the measured part, as a share of the one core it was pinned to; at "
        "90% or more the process counts as saturated, and a generator at that level means "
        "the generator, not only the server, may have been the bottleneck (flagged in the "
        "notes)."
    )
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    lines.append(f"- CPU: {info.get('cpu', '?')}, {info.get('cores', '?')} cores at {info.get('mhz', '?')} MHz (virtual machine: {info.get('hypervisor', '?')})")
    lines.append(f"- Memory: {info.get('memory', '?')}")
    lines.append(f"- OS: {info.get('os', '?')}")
    lines.append(f"- `uname -a`: `{info.get('uname', '?')}`")
    lines.append("")
    lines.append("## Versions")
    lines.append("")
    lines.append("| server | version |")
    lines.append("|---|---|")
    lines.append(
        f"| linechat | {versions.get('linechat', '?')} (`cargo run --release --bin linechat -- --version`), "
        f"release build of commit {versions.get('linechat_commit', '?')} |"
    )
    if "linechat_before_commit" in versions:
        lines.append(
            f"| linechat-before, linechat-cluster-before | {versions.get('linechat_before', '?')}, "
            f"release build of the `--baseline` revision, commit "
            f"{versions['linechat_before_commit']} |"
        )
    lines.append(f"| ngIRCd | {versions.get('ngircd', '?')} (Debian package, unpacked: it conflicts with ircd-hybrid) |")
    lines.append(f"| InspIRCd | {versions.get('inspircd', '?')} (Debian package) |")
    lines.append(f"| ircd-hybrid | {versions.get('ircd-hybrid', '?')} (Debian package) |")
    lines.append(f"| Redis | {versions.get('redis-server', '?')} (Debian package) |")
    if "nats-server" in versions:
        lines.append(f"| NATS (linechat-cluster) | {versions['nats-server']} (Debian package `nats-server`) |")
    if "postgresql" in versions:
        lines.append(f"| PostgreSQL (linechat-cluster) | {versions['postgresql']} (Debian package) |")
    lines.append("")
    lines.append("## How each server was configured")
    lines.append("")
    lines.append(
        "All listen on 127.0.0.1 only, on high ports, started by `scripts/bench.sh` from the "
        "configs in `scripts/bench/` (the IRC servers and Redis as the user `irc`, "
        "PostgreSQL as the user `postgres`). Flood protection is off or far above the load, "
        "so that what is measured is delivery speed. The variants (linechat-nohistory, "
        "linechat-irc, linechat-cluster, ngircd-network) run only in the scenarios that name "
        "them."
    )
    lines.append("")
    lines.append("| server | configuration |")
    lines.append("|---|---|")
    present = {r["target"] for r in summary}
    for name in SERVERS:
        # The original six always; a variant added later only when it ran.
        if name in present or name in PEERS + ["linechat", "linechat-nohistory"]:
            lines.append(f"| {name} | {CONFIG[name]} |")
    lines.append("")
    before_and_after(summary, lines, versions, args.rounds)
    lines.append("## Targets (issue 10)")
    lines.append("")
    lines.append(
        "Medians of the rounds, from this run. \"Level\" allows 5%; CPU per login counts as "
        f"flat when the last slice of logins costs at most {FLAT_RATIO}x the first."
    )
    lines.append("")
    lines.extend(targets_issue10(summary))
    lines.append("")
    earlier = targets_issue5(summary)
    if earlier:
        lines.append("### Earlier targets (issue 5)")
        lines.append("")
        lines.extend(earlier)
        lines.append("")
    irc_port = targets_issue13(summary)
    if irc_port:
        lines.append("### linechat's IRC port against ngIRCd and InspIRCd (issue 13)")
        lines.append("")
        lines.append(
            "linechat-irc is linechat loaded through its IRC port with the same IRC client "
            "load as the IRC servers; deliveries/s per scenario, with the ratio of "
            "linechat-irc to each (above 1: linechat-irc delivered more)."
        )
        lines.append("")
        lines.extend(irc_port)
        lines.append("")
    across_nodes(summary, lines)
    charts = draw_charts(summary, args.charts) if args.charts else []
    if charts:
        lines.append("## Charts")
        lines.append("")
        base = os.path.dirname(os.path.abspath(args.out))
        for caption, path in charts:
            lines.append(f"*{caption}*")
            lines.append("")
            name = os.path.splitext(os.path.basename(path))[0]
            lines.append(f"![{name}]({os.path.relpath(os.path.abspath(path), base)})")
            lines.append("")
    profiles = [
        label
        for label in ("before", "after")
        if os.path.exists(f"benchmarks/flamegraphs/{label}-pm.svg")
    ]
    if profiles:
        lines.append("## Profiles")
        lines.append("")
        lines.append(
            "CPU flame graphs of the server on the private-message and fan-out paths, made "
            "by `scripts/flamegraph.sh` with `perf` (how, and how to read them: "
            "[benchmarks/README.md](benchmarks/README.md)). `before` is commit 0130bbd, "
            "five tasks between a sender and a recipient's writer; `after` is the code that "
            "removed the hops. The shares of CPU by kind of work are in the `-top.txt` files."
        )
        lines.append("")
        for label in profiles:
            links = ", ".join(
                f"[{scenario}](benchmarks/flamegraphs/{label}-{scenario}.svg)"
                for scenario in ("pm", "fanout")
            )
            lines.append(
                f"- {label}: {links}, "
                f"[top functions and shares](benchmarks/flamegraphs/{label}-top.txt)"
            )
        lines.append("")
    history = [
        label
        for label in ("history-before", "history-after")
        if os.path.exists(f"benchmarks/flamegraphs/{label}-pm.svg")
    ]
    if history:
        lines.append(
            "History written below chat's priority (2026-11-28), private messages with "
            "history on, 100 pairs × 2,000, 3 rounds each: `history-before` is commit "
            "635eaeb, the writer a task of the network runtime; `history-after` the writer "
            "on a thread of its own at nice 19. While the generator sends, the writer and "
            "SQLite's thread took 27.5% of the server's samples before (13.9% the writer "
            "task, 13.6% SQLite's thread) and 1.8% after; the sending went at 790 K against "
            "942 K PMs/s (medians, perf attached). The history is written once the burst is "
            "over."
        )
        lines.append("")
        for label in history:
            lines.append(
                f"- {label}: [pm](benchmarks/flamegraphs/{label}-pm.svg), "
                f"[top functions and shares](benchmarks/flamegraphs/{label}-top.txt)"
            )
        lines.append("")
    lines.append("## Results")
    lines.append("")
    by_scenario = {}
    for row in summary:
        by_scenario.setdefault(row["scenario"], []).append(row)
    for scenario, rows in by_scenario.items():
        # linechat-before (bench.sh --baseline) is linechat too.
        alone = (
            {r["target"] for r in rows} <= {"linechat", "linechat-before"}
            and any(r["target"] == "linechat" for r in rows)
            and not scenario.startswith("logins")
        )
        lines.append(f"### {title(scenario, rows[0]['parameters'], alone)}")
        lines.append("")
        if scenario.startswith("guests"):
            guests_table(rows, lines)
        elif scenario.startswith("idle"):
            lines.append("| server | connections | server memory per connection (bytes) | logins/s while connecting | notes |")
            lines.append("|---|--:|--:|--:|---|")
            for ours in ("linechat", "linechat-before"):
                storm = find(summary, "guests-" + scenario.rpartition("-")[2], ours)
                if storm and not any(r["target"] == ours for r in rows):
                    lines.append(
                        f"| {ours}, after the guest storm | {num(storm['connections'])} | "
                        f"{num(storm['rss_per_connection_bytes'])} | {num(storm['connections_per_sec'])} | "
                        f"logged in one after another, every notice delivered |"
                    )
            for row in rows:
                lines.append(
                    f"| {row['target']} | {num(row['connections'])} | "
                    f"{num(row['rss_per_connection_bytes'])} | {num(row['connections_per_sec'])} | {notes_for(row)} |"
                )
            lines.append("")
            lines.append(
                "Memory per connection: growth of the server's resident memory "
                "(`VmRSS` in `/proc/<pid>/status`) from before the first connection to 5 s "
                "(`--settle-secs`) after the last one logged in, divided by the connections; "
                "linechat's, after the guest storm, from before the first guest to 5 s after "
                "the last notice arrived. Redis has no login: its connections are "
                "only connected. Logins/s is how fast the generator got them all logged in "
                "(InspIRCd completes registrations on a one-second timer)."
            )
        elif scenario.startswith("logins"):
            for row in rows:
                lines.append("| | |")
                lines.append("|---|--:|")
                lines.append(f"| registrations/s | {num(row['registers_per_sec'], 1)} |")
                lines.append(f"| logins/s | {num(row['logins_per_sec'], 1)} |")
                lines.append(f"| login p99, connect to `OK` | {ms(row['login_p99_us'])} ms |")
                lines.append(f"| storm duration | {num(row['storm_seconds'], 1)} s |")
                lines.append(f"| chat latency before the storm, p50 / p99 / max | {ms(row['chat_before_p50_us'])} / {ms(row['chat_before_p99_us'])} / {ms(row['chat_before_max_us'])} ms |")
                lines.append(f"| chat latency during the storm, p50 / p99 / p99.9 / max | {ms(row['p50_us'])} / {ms(row['p99_us'])} / {ms(row['p999_us'])} / {ms(row['max_us'])} ms |")
                lines.append(f"| CPU server / generator | {cpu_cell(row)} |")
                lines.append(f"| failures, notes | {row['storm_failures']}; {notes_for(row)} |")
            lines.append("")
            lines.append(
                "linechat only: the IRC servers and Redis have no accounts, so they have no "
                "login storm."
            )
        else:
            chat_table(rows, lines)
        lines.append("")
        problems = [r for r in rows if r["first_problem"] or r["failures"]]
        for row in problems:
            if row["first_problem"]:
                lines.append(f"- {row['target']}: first problem seen: `{row['first_problem']}`")
            for failure in row["failures"][:2]:
                lines.append(f"- {row['target']}: a run failed: `{failure}`")
        if problems:
            lines.append("")
    lines.append("Per-round values (deliveries/s and p99 in µs, in run order) are in `BENCHMARKS.json`.")
    lines.append("")
    lines.append("## Commands")
    lines.append("")
    lines.append("```sh")
    lines.append(args.command)
    lines.append("```")
    lines.append("")
    lines.append(
        "It builds the release binaries, installs the peers from Debian's packages if they "
        "are missing (`apt-get install inspircd ircd-hybrid redis-server`; ngIRCd with "
        "`apt-get download ngircd` and `dpkg-deb -x` into `/opt/linechat-bench/ngircd`, "
        "because its package conflicts with ircd-hybrid's) and, for linechat-cluster, "
        "nats-server and PostgreSQL (`scripts/cluster-deps.sh`), stops the distribution's own "
        "instances, then for each round, scenario and server starts the server with "
        "`taskset -c 0`, runs the generator with `taskset -c 1`, and stops the server. "
        "linechat-cluster starts a PostgreSQL (a copy of one `initdb` made at the start, "
        "`pg_ctl start` as the user `postgres`, `createdb linechat`), `nats-server -js`, then "
        "the two nodes, and stops them in the reverse order (PostgreSQL with `pg_ctl stop -m "
        "fast`); ngircd-network starts both ngIRCd servers and waits until `LUSERS` on one "
        "shows 2 servers. Their generator gets both addresses (`--addr a,b`) and every pid "
        "(`--server-pid p1,p2,...`). A single run looks like this:"
    )
    lines.append("")
    lines.append("```sh")
    lines.append("taskset -c 1 ./target/release/loadgen --addr 127.0.0.1:17100 --dialect linechat \\")
    lines.append("    --target linechat --server-pid <pid> --json runs.jsonl \\")
    lines.append("    fanout --members 1000 --senders 1 --messages 1000")
    lines.append("```")
    lines.append("")
    lines.append("The scenarios' generator arguments:")
    lines.append("")
    seen = set()
    for run in runs:
        label = parse_label(run.get("label"))
        scenario = label.get("scenario")
        if scenario and scenario not in seen and "failed" not in run:
            seen.add(scenario)
            lines.append(f"- `{scenario}`: `{run.get('scenario')} {params_to_flags(run.get('parameters', ''))}`")
    lines.append("")
    lines.append(NOTES_MARKER)
    if kept:
        lines.append("")
        lines.append(kept)
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    with open(args.json, "w") as f:
        json.dump(
            {
                "generated": now,
                "command": args.command,
                "rounds": args.rounds,
                "elapsed_seconds": args.elapsed,
                "machine": info,
                "versions": versions,
                "configuration": CONFIG,
                "summary": summary,
                "runs": runs,
            },
            f,
            indent=1,
        )
        f.write("\n")


def params_to_flags(parameters):
    return " ".join(f"--{p.split('=')[0]} {p.split('=')[1]}" for p in parameters.split() if "=" in p)


if __name__ == "__main__":
    main()
