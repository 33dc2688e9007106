#!/usr/bin/env bash
# CPU profiles of the server on the private-message and room fan-out paths, as flame graphs.
#
#   bash scripts/flamegraph.sh LABEL [--scenarios "pm fanout"] [--rounds N] [--freq HZ] [--keep]
#
# Builds linechat and the load generator with the release settings plus line tables (a
# `profiling` profile given on cargo's command line, so Cargo.toml and target/release stay as
# they are), starts a fresh server pinned to core 0, attaches `perf record` to it, runs a
# scenario of crates/loadgen pinned to core 1, and keeps only the samples taken while the
# generator was sending (its report says how long the set-up took and how long the sending
# lasted), so logins and joins do not blur the message path. Each scenario runs --rounds
# times (3), each time on a fresh server, and the samples of all rounds are added up: one
# round of the default scenarios sends for only a second or two. Writes, in
# benchmarks/flamegraphs/:
#
#   LABEL-pm.svg, LABEL-fanout.svg   flame graphs (inferno), one tower per server thread
#   LABEL-top.txt                    per scenario: the generator's report, the functions with
#                                    the most self time, and the share of the server's CPU
#                                    in allocation, syscalls, channels, scheduling, ...
#
# --keep leaves perf.data and the folded stacks in benchmarks/flamegraphs/LABEL-*.{data,folded}
# (large; not for committing). The scenarios' parameters can be changed with PM_ARGS and
# FANOUT_ARGS. Needs perf (Debian: linux-perf) and root or kernel.perf_event_paranoid <= 1;
# installs inferno with cargo when it is missing. Run it on a quiet machine: the profile is
# of CPU time, so noise changes the proportions less than the throughput, but it still shows.
set -euo pipefail
cd "$(dirname "$0")/.."

label=
scenarios="pm fanout"
freq=999
rounds=3
keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --scenarios) scenarios=$2; shift ;;
    --freq) freq=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --keep) keep=1 ;;
    -*) echo "unknown argument $1" >&2; exit 2 ;;
    *) [ -z "$label" ] || { echo "one label only" >&2; exit 2; }; label=$1 ;;
    esac
    shift
done
[ -n "$label" ] || { echo "usage: $0 LABEL [--scenarios \"pm fanout\"] [--rounds N] [--freq HZ] [--keep]" >&2; exit 2; }

pm_args=${PM_ARGS:-"--pairs 100 --messages 2000"}
# 3,000 messages rather than the 300 of scripts/bench.sh: the burst takes a tenth of a second
# at 300, too short for enough samples at 999 Hz.
fanout_args=${FANOUT_ARGS:-"--members 1000 --senders 1 --messages 3000"}
server_core=0
loadgen_core=1
out_dir=benchmarks/flamegraphs
profile_dir=target/profiling
# DWARF unwinding copies this much of the stack with each sample: Tokio's poll chains are
# deep, and this keeps over 99% of the stacks whole (the top file says how many).
stack_bytes=32768

log() { printf '[flamegraph %s] %s\n' "$(date +%T)" "$*" >&2; }

command -v perf >/dev/null || { echo "perf is missing (Debian: apt-get install linux-perf)" >&2; exit 1; }
if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    export PATH=$HOME/.cargo/bin:$PATH
    if ! command -v inferno-flamegraph >/dev/null; then
        log "installing inferno"
        cargo install --locked inferno
    fi
fi

# Release code generation with line tables: enough for symbolised, unwindable stacks with
# inlined frames, without changing what is being measured. The profile lives only on this
# command line (and in its own target directory, target/profiling).
log "building (profile 'profiling': release + line tables)"
cargo build --profile profiling \
    --config 'profile.profiling.inherits="release"' \
    --config 'profile.profiling.debug="line-tables-only"' \
    --bin linechat --bin loadgen
linechat_bin=$profile_dir/linechat
loadgen_bin=$profile_dir/loadgen

mkdir -p "$out_dir"
work=$(mktemp -d /tmp/linechat-flamegraph.XXXXXX)
server_pid=
perf_pid=
cleanup() {
    [ -z "$perf_pid" ] || kill -INT "$perf_pid" 2>/dev/null || true
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_listening() { # port
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "server did not start listening" >&2; return 1; }
        sleep 0.1
    done
}

# Waits (up to 10 s) for both cores to be quiet before a round: other work on the machine
# competes with the server for core 0, which shows in the profile as cache misses and in
# the generator's report as "server_cores_busy_pct" well above the server's own share.
wait_quiet() {
    local busy deadline=$((SECONDS + 10))
    while :; do
        busy=$(python3 scripts/bench/cpu_busy.py "$server_core" "$loadgen_core" |
            tr ' ' '\n' | sort -n | tail -1)
        if [ "$busy" -le 20 ]; then return; fi
        if [ $SECONDS -ge $deadline ]; then
            log "cores still ${busy}% busy with other work; measuring anyway"
            return
        fi
        sleep 1
    done
}

monotonic_now() {
    python3 -c 'import time; print(f"{time.clock_gettime(time.CLOCK_MONOTONIC):.6f}")'
}

# Records one round of a scenario and folds the samples taken while the generator was
# sending into $work/NAME-ROUND.folded; appends the generator's report to $work/NAME.json.
record() { # name round loadgen-arguments...
    local name=$1 round=$2; shift 2
    local port data_dir run=$work/$name-$round
    wait_quiet
    port=$(free_port)
    data_dir=$run.dir
    mkdir -p "$data_dir"
    LINECHAT_FLOOD_LINES_PER_SEC=0 LINECHAT_MAX_CONNECTIONS_PER_IP=100000 \
        taskset -c "$server_core" "$linechat_bin" --config /dev/null \
        --addr "127.0.0.1:$port" --data-dir "$data_dir" >"$run.server.log" 2>&1 &
    server_pid=$!
    wait_listening "$port"
    # perf attaches to the running server rather than starting it: when perf started it
    # through taskset (two execs), DWARF unwinding stopped at every glibc frame (malloc,
    # send, memcpy), losing the callers of 40% of the samples. perf's own process (the one
    # writing perf.data) runs on the generator's core. Timestamps are CLOCK_MONOTONIC so
    # that they can be matched with the generator's clock below.
    taskset -c "$loadgen_core" perf record -q -e cpu-clock -F "$freq" -k CLOCK_MONOTONIC \
        --call-graph "dwarf,$stack_bytes" -o "$run.data" -p "$server_pid" &
    perf_pid=$!
    sleep 0.5
    log "$name round $round: server $server_pid on 127.0.0.1:$port; loadgen $*"
    # The time is read just before the generator starts: its set-up clock starts a moment
    # later, so the window below may begin a few milliseconds early, never late.
    local started
    started=$(monotonic_now)
    taskset -c "$loadgen_core" "$loadgen_bin" --addr "127.0.0.1:$port" \
        --server-pid "$server_pid" --target linechat --label "$label round $round" \
        --json "$work/$name.json" "$@"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf_pid=
    kill -INT "$server_pid"
    wait "$server_pid" || true
    server_pid=
    local window
    window=$(python3 - "$work/$name.json" "$started" <<'PY'
import json, sys
report = json.loads(open(sys.argv[1]).read().splitlines()[-1])
if "setup_seconds" in report and "seconds" in report:
    start = float(sys.argv[2]) + report["setup_seconds"]
    # The generator's clock stops at the last delivery; right after it, the clients hang
    # up, and their logouts are no part of the message path.
    print(f"{start:.6f},{start + report['seconds']:.6f}")
PY
)
    if [ -z "$window" ]; then
        log "the generator's report has no set-up and sending times: keeping every sample"
    fi
    perf script -i "$run.data" ${window:+--time "$window"} 2>/dev/null |
        inferno-collapse-perf --kernel >"$run.folded"
    if [ "$keep" = 1 ]; then
        mv "$run.data" "$out_dir/$label-$name-$round.data"
    else
        rm -f "$run.data"
    fi
    rm -rf "$data_dir"
}

# Adds up the rounds' folded stacks, then draws them.
render() { # name title
    local name=$1 title=$2
    python3 - "$work/$name.folded" "$work/$name.drawn" "$work/$name"-[0-9]*.folded <<'PY'
import sys
from collections import Counter
total = Counter()
for path in sys.argv[3:]:
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack:
            total[stack] += int(count)
with open(sys.argv[1], "w") as out:
    for stack, count in sorted(total.items()):
        print(stack, count, file=out)
# For the drawing, a sample inside a Tokio task keeps only its thread and the stack from the
# task's poll up: the forty frames of runtime between them are the same for every task, and
# cutting them leaves one tower per kind of task (session, writer, room, storage, ...) next
# to the runtime's own work (I/O driver, parking) and the other threads.
drawn = Counter()
for stack, count in total.items():
    frames = stack.split(";")
    cut = max((i for i, f in enumerate(frames) if f.startswith("tokio::runtime::task::harness::Harness<")), default=None)
    if cut is not None:
        frames = [frames[0]] + frames[cut:]
    drawn[";".join(frames)] += count
with open(sys.argv[2], "w") as out:
    for stack, count in sorted(drawn.items()):
        print(stack, count, file=out)
PY
    # --minwidth drops frames narrower than 0.2% of the graph: they cannot be read anyway,
    # and they make up most of the file's size.
    inferno-flamegraph --minwidth 0.2 --countname "ns of CPU" --title "$title" \
        --subtitle "$(git log -1 --format=%h -- src Cargo.toml Cargo.lock)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo '+changes'): linechat server, cpu-clock at ${freq} Hz, sending phase only, $rounds rounds" \
        <"$work/$name.drawn" >"$out_dir/$label-$name.svg"
    if [ "$keep" = 1 ]; then
        cp "$work/$name.folded" "$out_dir/$label-$name.folded"
    fi
    log "$name: wrote $out_dir/$label-$name.svg ($(du -k "$out_dir/$label-$name.svg" | cut -f1) KiB)"
}

# Self time per function, and the share per kind of work, from the folded stacks.
summarize() { # name
    local name=$1
    python3 - "$work/$name.json" "$work/$name.folded" <<'PY'
import json, re, sys
from collections import Counter

reports = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"=== {reports[0]['scenario']} {reports[0]['parameters']}")
for r in reports:
    cpu = r.get("cpu") or {}
    server_cpu = " ".join(f"{k}={round(v) if isinstance(v, float) else v}" for k, v in cpu.items()
                          if k.startswith("server") or k == "saturated")
    print(f"round: {r.get('deliveries_per_sec', 0):.0f} deliveries/s,"
          f" {r.get('delivered')}/{r.get('expected')} delivered, {r.get('seconds', 0):.2f} s sending,"
          f" p99 {r.get('p99_us', 0):.0f} us, {server_cpu}")

stacks = []
for line in open(sys.argv[2]):
    path, _, count = line.rstrip("\n").rpartition(" ")
    if path:
        stacks.append((path.split(";"), int(count)))
total = sum(c for _, c in stacks) or 1
# inferno weighs each sample by its period (ns of CPU time for cpu-clock).
print(f"server CPU time sampled while sending: {total / 1e9:.2f} s")

def strip_generics(frame):
    # Drops generic arguments (a "<" right after a name), keeping qualified paths such as
    # "<linechat::X as Trait>::f": Rust names carry the types of every future they wrap,
    # which would make "tokio::sync::" match half the stack.
    out, depth = [], 0
    for i, ch in enumerate(frame):
        if ch == "<" and (depth > 0 or (i > 0 and (frame[i - 1].isalnum() or frame[i - 1] in "_}"))):
            depth += 1
        elif ch == ">" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)

def short(frame):
    s = strip_generics(re.sub(r"::h[0-9a-f]{16}$", "", frame)).replace("_[k]", " [k]")
    return s if len(s) <= 110 else s[:107] + "..."

def leaf_name(frames):
    # Inlined closures and async blocks are named "{async_fn#0}" and the like: name the
    # function they sit in as well.
    leaf = short(frames[-1])
    if leaf.startswith("{"):
        outer = next((short(f) for f in reversed(frames[1:-1]) if "::" in f and not f.startswith("{")), None)
        if outer:
            leaf = f"{leaf} in {outer}"
    return leaf if len(leaf) <= 110 else leaf[:107] + "..."

# A stack that does not reach the thread's start lost its callers (unwinding failed).
whole = sum(c for frames, c in stacks if len(frames) > 1 and frames[1] in ("clone3", "clone", "start_thread", "_start"))
print(f"stacks unwound to the thread's start: {100 * whole / total:.1f}%")

threads = Counter()
selfs = Counter()
inclusive = Counter()
for frames, count in stacks:
    threads[frames[0]] += count
    selfs[leaf_name(frames)] += count
    for name in {short(f) for f in frames[1:]}:
        if re.match(r"^<?linechat::", name):
            inclusive[name] += count
print("\nby thread:")
for name, count in threads.most_common():
    print(f"  {100 * count / total:5.1f}%  {name}")

# Which Tokio task the time went to: the future above the last Harness::poll, named by the
# async function body most often seen in it (the sessions are the async block spawned in
# Server::run).
def task_key(frames):
    cut = max((i for i, f in enumerate(frames) if f.startswith("tokio::runtime::task::harness::Harness<")), default=None)
    if cut is None:
        where = "outside tasks: I/O driver, parking" if frames[0].startswith("tokio") else "thread"
        return f"{frames[0]} ({where})", None
    future = frames[cut + 1] if cut + 1 < len(frames) else ""
    m = re.search(r"((?:linechat|sqlx_\w+|tokio)::[\w:]*(?:\{impl#\d+\}::)?[\w:]*)", future)
    key = re.sub(r"::$", "", m.group(1)) if m else "(task)"
    body = next((short(f) for f in frames[cut + 1:]
                 if re.match(r"^<?(linechat|sqlx_\w+)::", short(f)) and short(f).endswith("{{closure}}")), None)
    return key, body
tasks = Counter()
bodies = {}
for frames, count in stacks:
    key, body = task_key(frames)
    tasks[key] += count
    if body:
        bodies.setdefault(key, Counter())[body] += count
print("\nby Tokio task (the future a task runs, with all it calls):")
for key, count in tasks.most_common(12):
    name = bodies[key].most_common(1)[0][0] if key in bodies else key
    if name.startswith("linechat::server::Server::run::{{closure}}::"):
        name += " (connections: sessions)"
    print(f"  {100 * count / total:5.1f}%  {name}")
print("\ntop 15 functions by self time (leaf frame; [k] = kernel):")
for name, count in selfs.most_common(15):
    print(f"  {100 * count / total:5.1f}%  {name}")
print("\ntop 15 linechat functions by total time (with what they call):")
for name, count in inclusive.most_common(15):
    print(f"  {100 * count / total:5.1f}%  {name}")

# Each sample goes to one kind of work, so that the shares add up to 100%. Time in the
# kernel goes to its system call when that is a socket or wake-up call; other kernel time
# (file I/O, page faults, interrupts) goes, like user-space time, to the nearest enclosing
# frame that names a kind: malloc called while encoding counts as allocation, a memcpy or
# a pwrite(2) inside SQLite as SQLite, linechat code under Tokio's poll loop as linechat.
scheduling = "tokio scheduling, tasks, wakers (incl. futex/eventfd wakes)"
syscall_kinds = [
    ("syscall write/send (sockets)", r"^__x64_sys_(write|writev|sendto|sendmsg)$"),
    ("syscall read/recv (sockets)", r"^__x64_sys_(read|readv|recvfrom|recvmsg)$"),
    ("syscall epoll_wait/ctl", r"^__x64_sys_epoll_"),
    (scheduling, r"^__x64_sys_(futex|sched_yield)$"),
]
user_kinds = [
    ("allocation (malloc/free/realloc)", r"^(malloc|free|realloc|calloc|cfree|_int_malloc|_int_free|_int_realloc|malloc_consolidate|sysmalloc|__libc_(malloc|free|realloc|calloc)|__GI___libc_(malloc|free|realloc|calloc)|tcache_\w+|__rust_(alloc|dealloc|realloc)|unlink_chunk.*|alloc::raw_vec::.*grow.*)$"),
    ("SQLite / storage (incl. its file I/O)", r"(^sqlite3|^sqlx|^<sqlx|linechat::server::storage|^unixWrite|^seekAndWrite)"),
    ("hashing / hash maps", r"(core::hash|std::hash|hashbrown|[Ss]ip[Hh]asher|RandomState|BuildHasher)"),
    # Waking the task at the other end of a channel is scheduling work, not the channel's.
    (scheduling, r"(AtomicWaker::wake|::wake_by_ref$|::wake_by_val$|::wake$|Notify::notify)"),
    ("channels (tokio::sync)", r"^<?tokio::sync::"),
    ("encoding replies (outbox, fmt)", r"(^<?linechat::connection::outbox::(encode|Delivery)|^<?linechat_protocol::reply|^<?core::fmt|^<?alloc::fmt|^<alloc::string::String as core::fmt::Write>|itoa)"),
    ("decoding / parsing commands", r"(^<?linechat::connection::(codec|telnet)|^<?linechat_protocol::command|^<?nom::|Decoder|^<?tokio_util::codec|^<?memchr)"),
    ("tokio I/O driver (mio, readiness)", r"(^<?tokio::runtime::io|^<?mio::|^<?tokio::io::poll_evented|^<?tokio::net::)"),
    (scheduling, r"(^<?tokio::runtime::|^<?tokio::task::|^<?tokio::loom::|[Ww]aker|^<?tokio::time::|^<?tokio_util::task)"),
    ("linechat code (rest)", r"^<?linechat::"),
]
syscall_kinds = [(name, re.compile(p)) for name, p in syscall_kinds]
user_kinds = [(name, re.compile(p)) for name, p in user_kinds]
share = Counter()
for frames, count in stacks:
    frames = [strip_generics(f) for f in frames[1:]]
    kind = None
    user = [f for f in frames if not f.endswith("_[k]")]
    syscall = next((f[:-4] for f in frames if f.startswith("__x64_sys_")), None)
    if syscall:
        kind = next((name for name, p in syscall_kinds if p.search(syscall)), None)
        # write(2) to mio's eventfd is how one thread wakes the runtime up.
        if kind and kind.startswith("syscall write") and any("mio::sys::unix::waker" in f for f in user):
            kind = scheduling
    if kind is None:
        for frame in reversed(user):
            kind = next((name for name, p in user_kinds if p.search(frame)), None)
            if kind:
                break
    if kind is None:
        kind = "other kernel (page faults, interrupts, other syscalls)" if len(user) < len(frames) else "other (std, libc, unresolved)"
    share[kind] += count
print("\nshare by kind of work (nearest enclosing frame decides; adds up to 100%):")
for name, count in share.most_common():
    print(f"  {100 * count / total:5.1f}%  {name}")
print()
PY
}

top=$out_dir/$label-top.txt
{
    echo "# linechat CPU profile '$label': server code of commit $(git log -1 --format=%h -- src Cargo.toml Cargo.lock)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' with uncommitted changes') (HEAD $(git rev-parse --short HEAD)), $(date -u +%F)"
    echo "# server on core $server_core, loadgen on core $loadgen_core; perf cpu-clock at $freq Hz, DWARF call graphs;"
    echo "# samples from the sending phase only. Made by scripts/flamegraph.sh."
    echo
} >"$top"
for scenario in $scenarios; do
    case $scenario in
    pm) args=$pm_args; title="linechat: private messages ($pm_args)" ;;
    fanout) args=$fanout_args; title="linechat: room fan-out ($fanout_args)" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
    for round in $(seq 1 "$rounds"); do
        # shellcheck disable=SC2086
        record "$scenario" "$round" "$scenario" $args
    done
    render "$scenario" "$title"
    summarize "$scenario" >>"$top"
done
log "wrote $top"
cat "$top"
