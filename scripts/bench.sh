#!/usr/bin/env bash
# Side-by-side benchmark: linechat (release build) against the IRC servers ngIRCd, InspIRCd
# and ircd-hybrid and against Redis pub/sub, with the same workloads from
# crates/loadgen, in alternating rounds. Variants, in the scenarios that name them:
# linechat-nohistory is linechat with LINECHAT_HISTORY=false, for the private-message runs;
# linechat-irc is linechat loaded through its IRC port (issue 13), in the fan-out and
# private-message runs; linechat-cluster is two linechat nodes with nats-server -js and a
# PostgreSQL (issue 12), ngircd-network two ngIRCd servers linked as one IRC network, both
# with room members and pairs split across their two servers, in the windowed fan-out and
# private-message runs. Each server runs pinned to one core (taskset -c 0; every process of
# a multi-process target on that same core), the generator to the other (taskset -c 1); each
# run gets a freshly started server. Writes
# BENCHMARKS.md (table of medians, machine, versions, how each peer was configured, the
# commands, issue 10's targets met or not) with charts in benchmarks/charts/ next to it, and
# BENCHMARKS.json (every run). See BENCHMARKS.md for what the columns mean.
#
#   bash scripts/bench.sh [--rounds N] [--servers "linechat ngircd ..."] [--quick]
#                         [--no-big] [--no-install] [--baseline REV] [--out FILE.md]
#
# --servers picks among linechat linechat-nohistory linechat-irc linechat-cluster ngircd
# ngircd-network inspircd ircd-hybrid redis (default: all of them; linechat-before and
# linechat-cluster-before come with --baseline, below). --quick runs one round
# with smaller counts (to check the set-up, not to quote; a few minutes). --no-big skips the
# runs of linechat alone at large sizes (19,000 idle connections, 10,000 members). The
# default run takes over an hour (about half an hour before the bursts were made five times
# longer; a run of linechat against a baseline alone, five rounds, takes a quarter of one).
# --baseline REV (a commit, tag or branch of this repository) measures a change against the
# code before it: REV is checked out in a detached git worktree in the work directory and
# built in release there, with a target directory of its own seeded with target/release's
# dependencies (both removed once it is built, or at exit), and its linechat runs as two more targets, linechat-before (as
# linechat, in every scenario linechat runs in, the guest storm's memory per connection and
# the large runs included) and linechat-cluster-before (as linechat-cluster), each run right
# next to its counterpart, before it in one round and after it in the next. The report then
# has a section "Before and after": medians before and after, their ratio and whether within
# 5%, memory per idle connection, cross-node private messages against one node. A full run
# with it has some 60 more runs, about a third longer, plus the baseline's build (its own
# crates only: 3 minutes on a quiet machine, 9 on a busy one).
# Needs root (apt-get, running the IRC servers as the user irc and PostgreSQL as the user
# postgres) and Debian's packages. linechat-cluster needs a linechat with the cluster
# settings (--nats, --node-name, --database-url); without them its runs are recorded as
# failed ("did not start") and the others go on.
set -euo pipefail
cd "$(dirname "$0")/.."

original_args="$*"
rounds=3
servers="linechat linechat-nohistory linechat-irc linechat-cluster ngircd ngircd-network inspircd ircd-hybrid redis"
quick=0
big=1
install=1
out=BENCHMARKS.md
baseline=
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift ;;
    --servers) servers=$2; shift ;;
    --quick) quick=1; rounds=1 ;;
    --no-big) big=0 ;;
    --no-install) install=0 ;;
    --out) out=$2; shift ;;
    --baseline) baseline=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
# --baseline: the commit, and a -before target next to each linechat target picked.
baseline_commit=
if [ -n "$baseline" ]; then
    baseline_commit=$(git rev-parse --verify --quiet "$baseline^{commit}") ||
        { echo "--baseline $baseline is not a revision of this repository" >&2; exit 2; }
    for name in linechat linechat-cluster; do
        if [[ " $servers " == *" $name "* && " $servers " != *" $name-before "* ]]; then
            servers+=" $name-before"
        fi
    done
fi
for name in $servers; do
    case $name in
    linechat-before | linechat-cluster-before)
        [ -n "$baseline" ] || { echo "$name needs --baseline REV" >&2; exit 2; }
        [[ " $servers " == *" ${name%-before} "* ]] ||
            { echo "$name runs next to ${name%-before}: pick both" >&2; exit 2; }
        ;;
    esac
done

server_core=0
loadgen_core=1
# ngIRCd conflicts with ircd-hybrid as a Debian package (both are "an ircd"), so its package
# is unpacked here instead of installed.
ngircd_root=/opt/linechat-bench/ngircd
ngircd_bin=$ngircd_root/usr/sbin/ngircd
# The IRC servers refuse to run as root.
peer_user=irc
# The ports the generator loads, by target: two for the two servers of linechat-cluster and
# ngircd-network (the generator puts connection i on the (i mod 2)th).
declare -A port=([linechat]=17100 [ngircd]=17101 [inspircd]=17102 [ircd-hybrid]=17103 [redis]=17104
    [linechat-nohistory]=17105 [linechat-irc]=17106 [linechat-cluster]="17110 17111"
    [ngircd-network]="17120 17121" [linechat-before]=17108 [linechat-cluster-before]="17114 17115")
# Other ports they listen on: linechat-irc's line port; the clusters' NATS and PostgreSQL.
linechat_irc_line_port=17107
declare -A nats_port=([linechat-cluster]=17112 [linechat-cluster-before]=17116)
declare -A pg_port=([linechat-cluster]=17113 [linechat-cluster-before]=17117)
declare -A other_ports=([linechat-irc]=$linechat_irc_line_port
    [linechat-cluster]="${nats_port[linechat-cluster]} ${pg_port[linechat-cluster]}"
    [linechat-cluster-before]="${nats_port[linechat-cluster-before]} ${pg_port[linechat-cluster-before]}")
declare -A dialect=([linechat]=linechat [ngircd]=irc [inspircd]=irc [ircd-hybrid]=irc [redis]=redis
    [linechat-nohistory]=linechat [linechat-irc]=irc [linechat-cluster]=linechat [ngircd-network]=irc
    [linechat-before]=linechat [linechat-cluster-before]=linechat)
# Variants of a server run only in the scenarios that name them, not in "all". A -before
# target (--baseline) runs wherever its counterpart does.
variants=" linechat-nohistory linechat-irc linechat-cluster ngircd-network "
# Connections the generator sets up at once. ngIRCd listens with a backlog of 10 (fixed in
# its code), so more at once get reset (ngircd-network: 16 spread over two servers);
# InspIRCd completes registrations on a one-second timer, so many at once keep its set-up
# short. Set-up is not measured.
declare -A connect_concurrency=([linechat]=200 [ngircd]=8 [inspircd]=1000 [ircd-hybrid]=200 [redis]=200
    [linechat-nohistory]=200 [linechat-irc]=200 [linechat-cluster]=200 [ngircd-network]=16
    [linechat-before]=200 [linechat-cluster-before]=200)
# ircd-hybrid's DNS look-ups go to this stand-in resolver (see scripts/bench/nxdns.py).
nxdns_addr=127.0.0.53

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# The python3 that has matplotlib, for the report and its charts: the one on the PATH, or the
# system's. Fails if neither has it.
pick_report_python() {
    local python
    for python in python3 /usr/bin/python3; do
        if "$python" -c 'import matplotlib' 2>/dev/null; then
            echo "$python"
            return 0
        fi
    done
    return 1
}

install_peers() {
    local missing=()
    command -v inspircd >/dev/null || missing+=(inspircd)
    command -v ircd-hybrid >/dev/null || missing+=(ircd-hybrid)
    command -v redis-server >/dev/null || missing+=(redis-server)
    if [ ${#missing[@]} -gt 0 ] || [ ! -x "$ngircd_bin" ]; then
        log "installing peers: ${missing[*]} ngircd"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" libident
        if [ ! -x "$ngircd_bin" ]; then
            local tmp
            tmp=$(mktemp -d)
            (cd "$tmp" && apt-get download ngircd)
            mkdir -p "$ngircd_root"
            dpkg-deb -x "$tmp"/ngircd_*.deb "$ngircd_root"
            cp "$tmp"/ngircd_*.deb "$ngircd_root/"
            rm -rf "$tmp"
        fi
    fi
    # scripts/bench/report.py draws the charts with matplotlib, Debian's for the system's
    # python3 (the python3 first on the PATH may be another one).
    if ! pick_report_python >/dev/null; then
        log "installing python3-matplotlib for the charts"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-matplotlib; } ||
            log "no matplotlib: the report will have no charts"
    fi
    # linechat-cluster's NATS and PostgreSQL, from Debian's packages when missing (the script
    # comes with the cluster settings).
    if [[ " $servers " == *" linechat-cluster "* ]] && [ -f scripts/cluster-deps.sh ]; then
        bash scripts/cluster-deps.sh
    fi
    # The distribution's own instances must not run: ours use the configs in scripts/bench/.
    local service
    for service in inspircd ircd-hybrid redis-server ngircd postgresql; do
        service "$service" stop >/dev/null 2>&1 || true
        update-rc.d "$service" disable >/dev/null 2>&1 || true
    done
}

versions() {
    local v dirty
    dirty=$(git status --porcelain -- src crates/protocol Cargo.toml Cargo.lock |
        awk '{print $2}' | tr '\n' ' ')
    echo "linechat=$("$linechat_bin" --version | awk '{print $2}')"
    echo "linechat_commit=$(git rev-parse --short HEAD)${dirty:+ with uncommitted changes in ${dirty% }}"
    if [ -n "$baseline" ]; then
        echo "linechat_before=$("$before_bin" --version | awk '{print $2}')"
        echo "linechat_before_commit=$(git rev-parse --short "$baseline_commit") ($baseline)"
    fi
    echo "ngircd=$(find "$ngircd_root" -maxdepth 1 -name 'ngircd_*.deb' | head -1 |
        sed 's/.*ngircd_\(.*\)_.*\.deb/\1/') ($("$ngircd_bin" --version 2>/dev/null | head -1))"
    for v in inspircd ircd-hybrid redis-server; do
        echo "$v=$(dpkg-query -W -f='${Version}' "$v")"
    done
    if [[ " $servers " == *" linechat-cluster "* ]]; then
        echo "nats-server=$(dpkg-query -W -f='${Version}' nats-server 2>/dev/null || echo '?')"
        echo "postgresql=$(dpkg-query -W -f='${Version}' postgresql 2>/dev/null || echo '?')"
    fi
}

cpu_busy() { # prints the busy % of cores 0 and 1 over half a second
    python3 scripts/bench/cpu_busy.py 0 1
}

# Waits (up to 10 s) for both cores to be quiet before a run: other work on this machine
# (builds, tests) competes for the same cores. Prints the background load finally seen.
wait_quiet() {
    local busy0 busy1 deadline=$((SECONDS + 10))
    while :; do
        read -r busy0 busy1 < <(cpu_busy)
        if { [ "$busy0" -le 20 ] && [ "$busy1" -le 20 ]; } || [ $SECONDS -ge $deadline ]; then
            echo "$((busy0 > busy1 ? busy0 : busy1))"
            return
        fi
        sleep 0.5
    done
}

config() { # name -> path of the config with @WORK@ and @PORT@ filled in
    local name=$1 file
    file=$work/$name.conf
    sed -e "s#@WORK@#$work/$name#g" -e "s#@PORT@#${port[$name]}#g" \
        "scripts/bench/$name.conf" >"$file"
    chown "$peer_user" "$file"
    echo "$file"
}

# A prefix, not a function: a function run with & would be a subshell, and $! its pid.
as_peer=(setpriv --reuid="$peer_user" --regid="$peer_user" --clear-groups)

# The processes of the running target (several for linechat-cluster and ngircd-network),
# PostgreSQL's data directory if it runs, and why the last start failed.
server_pids=()
pg_data=
start_failure=
start_server() { # name
    local name=$1 dir=$work/$1
    rm -rf "$dir"
    mkdir -p "$dir"
    chown "$peer_user" "$dir"
    local logfile=$dir/server.log conf='' p
    start_failure=
    for p in ${port[$name]} ${other_ports[$name]:-}; do
        if ss -Htln "sport = :$p" | grep -q .; then
            start_failure="port $p is taken: is an earlier $name still running?"
            log "$start_failure"
            return 1
        fi
    done
    case $name in linechat* | ngircd-network) ;; *) conf=$(config "$name") ;; esac
    case $name in
    linechat | linechat-nohistory | linechat-irc | linechat-before)
        # Limits above the load: flood control off, connection limits above the runs.
        # History stays on (the default), so every message is also stored in SQLite, except
        # in the variant without it. linechat-irc is loaded on its IRC port.
        local history=true irc=() bin
        bin=$(binary_of "$name")
        [ "$name" != linechat-nohistory ] || history=false
        local line_port=${port[$name]}
        if [ "$name" = linechat-irc ]; then
            line_port=$linechat_irc_line_port
            irc=(--irc-addr "127.0.0.1:${port[$name]}" --irc-server-name linechat.bench.local)
        fi
        "${limits_off[@]}" LINECHAT_HISTORY=$history \
            taskset -c $server_core "$bin" --config /dev/null \
            --addr "127.0.0.1:$line_port" "${irc[@]}" --data-dir "$dir/data" >"$logfile" 2>&1 &
        server_pids=($!)
        ;;
    linechat-cluster | linechat-cluster-before)
        start_cluster "$name" "$dir" || return 1
        ;;
    ngircd)
        "${as_peer[@]}" taskset -c $server_core "$ngircd_bin" -n -f "$conf" >"$logfile" 2>&1 &
        ;;
    ngircd-network)
        start_ngircd_network "$dir"
        ;;
    inspircd)
        "${as_peer[@]}" taskset -c $server_core inspircd --nofork --config "$conf" >"$logfile" 2>&1 &
        ;;
    ircd-hybrid)
        # In a mount namespace of its own, /etc/resolv.conf names the stand-in resolver.
        echo "nameserver $nxdns_addr" >"$dir/resolv.conf"
        # shellcheck disable=SC2016 # $1 and $@ are the inner sh's
        unshare --mount sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh \
            "$dir/resolv.conf" "${as_peer[@]}" taskset -c $server_core ircd-hybrid -foreground \
            -configfile "$conf" -pidfile "$dir/hybrid.pid" -logfile "$dir/hybrid.log" \
            -klinefile "$dir/kline.db" -dlinefile "$dir/dline.db" -xlinefile "$dir/xline.db" \
            -resvfile "$dir/resv.db" >"$logfile" 2>&1 &
        ;;
    redis)
        "${as_peer[@]}" taskset -c $server_core redis-server "$conf" >"$logfile" 2>&1 &
        ;;
    esac
    [ ${#server_pids[@]} -gt 0 ] || server_pids=($!)
    for p in ${port[$name]}; do
        wait_listening "$name" "$p" || return 1
    done
    if [ "$name" = ngircd-network ]; then
        # Loaded before the link is up, the two servers would be two separate chats.
        local first
        read -r first _ <<<"${port[$name]}"
        if ! python3 scripts/bench/irc_servers.py 127.0.0.1 "$first" 2 60; then
            start_failure="the two ngIRCd servers did not link within 60 s: $(tail -3 "$dir"/*/server.log | tr '\n' ' ')"
            log "$start_failure"
            return 1
        fi
    fi
    sleep 0.2
}

# The environment that lifts linechat's limits above the load (flood control off,
# connection limits above the runs): a prefix, like as_peer.
limits_off=(env LINECHAT_FLOOD_LINES_PER_SEC=0 LINECHAT_MAX_CONNECTIONS=100000
    LINECHAT_MAX_CONNECTIONS_PER_IP=100000 RUST_LOG=warn)

# Waits (10 s at most) for a target's port to listen; fails at once if one of its
# processes has exited, with its log's last lines as the reason.
wait_listening() { # name port
    local name=$1 p=$2 _ pid
    for _ in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            return 0
        fi
        for pid in "${server_pids[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                start_failure="$name did not start: $(why_in_logs "$work/$name")"
                log "$start_failure"
                return 1
            fi
        done
        sleep 0.05
    done
    start_failure="$name is not listening on port $p"
    log "$start_failure"
    return 1
}

# What a target's logs say went wrong, on one line: their error lines, each after its log's
# name, or else the last lines of each log.
why_in_logs() { # dir
    local logs file said
    mapfile -t logs < <(find "$1" -maxdepth 2 -name '*.log' | sort)
    said=$(for file in "${logs[@]}"; do
        grep -i -m 2 -E 'error|fatal|panic|refus' "$file" | sed "s#^#${file#"$1"/}: #"
    done)
    if [ -z "$said" ]; then
        said=$(for file in "${logs[@]}"; do tail -n 2 "$file" | sed "s#^#${file#"$1"/}: #"; done)
    fi
    echo "$said" | tr '\n' ' ' | cut -c1-500
}

as_postgres=(setpriv --reuid=postgres --regid=postgres --clear-groups)
pg_bin=
pg_template=

# The linechat binary a target runs: the baseline's for a -before target.
binary_of() { # name
    case $1 in
    *-before) echo "$before_bin" ;;
    *) echo "$linechat_bin" ;;
    esac
}

# linechat-cluster (and linechat-cluster-before): PostgreSQL (a copy of a database cluster
# made once per benchmark), then nats-server with JetStream, then two linechat nodes with the
# same settings as linechat, every process on the server core. server_pids: node 1, node 2,
# NATS, PostgreSQL's postmaster (its backends are its children, which the generator counts
# with it).
start_cluster() { # name dir
    local name=$1 dir=$2 bin pg=${pg_port[$1]} nats=${nats_port[$1]}
    bin=$(binary_of "$name")
    if [ -z "$pg_template" ]; then
        pg_bin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
        if [ ! -x "$pg_bin/initdb" ] || ! command -v nats-server >/dev/null; then
            start_failure="linechat-cluster needs nats-server and PostgreSQL (scripts/cluster-deps.sh)"
            log "$start_failure"
            return 1
        fi
        pg_template=$work/pg-template
        mkdir -p "$pg_template"
        chown postgres "$pg_template"
        "${as_postgres[@]}" "$pg_bin/initdb" -D "$pg_template" -A trust -U postgres \
            >"$work/initdb.log" 2>&1 || { start_failure="initdb failed: $(tail -3 "$work/initdb.log")"; return 1; }
    fi
    cp -a "$pg_template" "$dir/pg"
    chown postgres "$dir" "$dir/pg"
    # Set first: stop_server stops a PostgreSQL that pg_ctl gave up waiting for, too.
    pg_data=$dir/pg
    "${as_postgres[@]}" taskset -c $server_core "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w \
        -o "-p $pg -k $dir -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 ||
        { start_failure="PostgreSQL did not start: $(tail -3 "$dir/pg.log" | tr '\n' ' ')"; log "$start_failure"; return 1; }
    "${as_postgres[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg" -U postgres linechat ||
        { start_failure="createdb failed"; log "$start_failure"; return 1; }
    local postmaster
    postmaster=$(head -1 "$dir/pg/postmaster.pid")
    taskset -c $server_core nats-server -js -sd "$dir/nats" -a 127.0.0.1 -p "$nats" \
        >"$dir/nats.log" 2>&1 &
    local nats_pid=$!
    server_pids=("$nats_pid" "$postmaster")
    wait_listening "$name" "$nats" || return 1
    local node node_port nodes=()
    node=1
    for node_port in ${port[$name]}; do
        "${limits_off[@]}" taskset -c $server_core "$bin" --config /dev/null \
            --addr "127.0.0.1:$node_port" --data-dir "$dir/node$node" --node-name "node$node" \
            --nats "nats://127.0.0.1:$nats" \
            --database-url "postgres://postgres@127.0.0.1:$pg/linechat" \
            >"$dir/node$node.log" 2>&1 &
        nodes+=($!)
        node=$((node + 1))
    done
    # Nodes first: stop_server stops them before what they depend on.
    server_pids=("${nodes[@]}" "$nats_pid" "$postmaster")
}

# ngircd-network: two ngIRCd servers, a and b, from scripts/bench/ngircd-network.conf; a
# connects to b.
start_ngircd_network() { # dir
    local dir=$1 me peer my_port peer_port passive
    local ports
    read -ra ports <<<"${port[ngircd-network]}"
    for me in a b; do
        if [ $me = a ]; then
            peer=b my_port=${ports[0]} peer_port=${ports[1]} passive=no
        else
            peer=a my_port=${ports[1]} peer_port=${ports[0]} passive=yes
        fi
        mkdir -p "$dir/$me"
        chown "$peer_user" "$dir/$me"
        sed -e "s#@WORK@#$dir/$me#g" -e "s#@PORT@#$my_port#g" -e "s#@NAME@#$me.ngircd.bench.local#g" \
            -e "s#@PEER@#$peer.ngircd.bench.local#g" -e "s#@PEER_PORT@#$peer_port#g" \
            -e "s#@PASSIVE@#$passive#g" scripts/bench/ngircd-network.conf >"$dir/$me.conf"
        chown "$peer_user" "$dir/$me.conf"
        "${as_peer[@]}" taskset -c $server_core "$ngircd_bin" -n -f "$dir/$me.conf" \
            >"$dir/$me/server.log" 2>&1 &
        server_pids+=($!)
    done
}

# Stops every process of the running target, in the order started (a cluster's nodes before
# NATS), then PostgreSQL with pg_ctl (a fast shutdown: it ends its backends cleanly).
stop_server() {
    local pid _
    for pid in "${server_pids[@]}"; do
        [ -n "$pg_data" ] && [ "$pid" = "$(head -1 "$pg_data/postmaster.pid" 2>/dev/null)" ] && continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    server_pids=()
    if [ -n "$pg_data" ]; then
        "${as_postgres[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
        pg_data=
    fi
}

# Scenario name | loadgen arguments | servers: "all" (every server but the variants) and
# other names. They cover issue 10's targets: private messages and room fan-out, windowed
# (at most 1,000 messages in flight per sender) and unwindowed (--window 0: as fast as the
# socket takes); paced fan-out; the guest login storm with the memory per connection after
# it (linechat), next to the peers' memory per idle connection; the account login storm.
if [ $quick = 1 ]; then
    fanout_messages=(2000 200 300 30)
    pm_messages=300
    paced_messages=2000
    crowd=2000
    give_up=60
    logins="logins --accounts 50 --concurrency 25 --members 100 --rate 1000"
else
    # Each burst lasts about a second at linechat's rate (5 million deliveries a fan-out,
    # a million private messages): long enough that a run measures the steady rate rather
    # than the start of its queues, where runs of a fifth of a second disagreed by up to 2x.
    fanout_messages=(50000 5000 5000 500)
    pm_messages=10000
    paced_messages=3000
    crowd=10000
    give_up=120
    logins="logins --accounts 200 --concurrency 50 --members 100 --rate 1000"
fi
scenarios=()
i=0
for shape in "100 1" "100 10" "1000 1" "1000 10"; do
    read -r members senders <<<"$shape"
    name=fanout-burst-$members
    [ "$senders" = 1 ] || name+=x$senders
    args="fanout --members $members --senders $senders --messages ${fanout_messages[$i]}"
    scenarios+=("$name|$args|all linechat-irc linechat-cluster ngircd-network"
        "$name-unwindowed|$args --window 0|all linechat-irc")
    i=$((i + 1))
done
scenarios+=(
    "fanout-paced-100|fanout --members 100 --senders 1 --messages $paced_messages --rate 1000|all"
    "pm-100|pm --pairs 100 --messages $pm_messages|all linechat-nohistory linechat-irc linechat-cluster ngircd-network"
    "pm-100-unwindowed|pm --pairs 100 --messages $pm_messages --window 0|all linechat-nohistory linechat-irc"
    "guests-$crowd|guests --guests $crowd --settle-secs 5 --give-up-secs $give_up|linechat"
    "idle-$crowd|idle --clients $crowd --settle-secs 5|ngircd inspircd ircd-hybrid redis"
    "logins-100|$logins|linechat"
)

work=$(mktemp -d /tmp/linechat-bench.XXXXXX)
chmod 755 "$work"
runs=$work/runs.jsonl
nxdns_pid=
baseline_src=
trap 'stop_server; remove_baseline_src; [ -z "$nxdns_pid" ] || kill "$nxdns_pid" 2>/dev/null; log "work directory: $work"' EXIT

# --baseline's worktree and build, once its binary is copied out (or the script ends).
remove_baseline_src() {
    [ -n "$baseline_src" ] || return 0
    git worktree remove --force "$baseline_src" >/dev/null 2>&1 || rm -rf "$baseline_src"
    git worktree prune
    rm -rf "$work/baseline-target"
    baseline_src=
}

log "building the release binaries"
cargo build --release --quiet --bin linechat --bin loadgen
# The binaries are copied: others may rebuild target/release while the benchmark runs.
mkdir -p "$work/bin"
cp target/release/linechat target/release/loadgen "$work/bin/"
linechat_bin=$work/bin/linechat
loadgen_bin=$work/bin/loadgen
before_bin=$work/bin/linechat-before
if [ -n "$baseline" ]; then
    # A target directory of its own: the baseline's build must not replace this tree's
    # artefacts (nor wait for its lock), and both stay apart from target/release.
    log "building the release linechat of $baseline ($(git rev-parse --short "$baseline_commit"))"
    baseline_src=$work/baseline-src
    git worktree add --quiet --detach "$baseline_src" "$baseline_commit"
    # Seeded with this tree's release artefacts, so that the dependencies both use are not
    # built again; cargo's fingerprints rebuild whatever differs, and the worktree's own
    # crates always (its files, just checked out, are newer than any artefact).
    mkdir -p "$work/baseline-target/release"
    for dir in deps build .fingerprint; do
        [ ! -d "target/release/$dir" ] || cp -a --reflink=auto "target/release/$dir" "$work/baseline-target/release/"
    done
    (cd "$baseline_src" && CARGO_TARGET_DIR=$work/baseline-target cargo build --release --quiet --bin linechat)
    cp "$work/baseline-target/release/linechat" "$before_bin"
    remove_baseline_src
fi
[ $install = 1 ] && install_peers
for name in $servers; do
    case $name in
    linechat | linechat-nohistory | linechat-irc | linechat-cluster | redis | inspircd | ircd-hybrid) ;;
    linechat-before | linechat-cluster-before) ;;
    ngircd | ngircd-network) [ -x "$ngircd_bin" ] || { log "ngircd is not installed"; exit 1; } ;;
    *) log "unknown server $name"; exit 2 ;;
    esac
done
ulimit -n "$(ulimit -Hn)"
peer_versions=$(versions)
if [[ " $servers " == *" ircd-hybrid "* ]]; then
    python3 scripts/bench/nxdns.py "$nxdns_addr" 53 &
    nxdns_pid=$!
fi

# One run: a fresh server, the generator, the server stopped. Failures are recorded too.
run_one() { # round scenario-name server args
    local round=$1 scenario=$2 name=$3 args=$4
    local background
    background=$(wait_quiet)
    if ! start_server "$name"; then
        record_failure "$name" "$scenario" "$round" "server did not start: ${start_failure:-?}"
        stop_server
        return
    fi
    local out status=0 addrs="" p pids
    for p in ${port[$name]}; do addrs+="${addrs:+,}127.0.0.1:$p"; done
    pids=$(IFS=,; echo "${server_pids[*]}")
    # shellcheck disable=SC2086
    # The timeout only catches a hung run (the guest storm gives up after $give_up s).
    out=$(RUST_BACKTRACE=0 timeout 600 taskset -c $loadgen_core "$loadgen_bin" \
        --addr "$addrs" --dialect "${dialect[$name]}" --target "$name" \
        --connect-concurrency "${connect_concurrency[$name]}" \
        --server-pid "$pids" --label "scenario=$scenario,round=$round,background=$background" \
        --json "$runs" $args 2>&1) || status=$?
    if [ $status -ne 0 ]; then
        log "FAILED ($status): $name $scenario: $(echo "$out" | tail -6 | tr '\n' ' ')"
        record_failure "$name" "$scenario" "$round" "$out"
    else
        log "$(echo "$out" | tail -1 | cut -c1-400)"
    fi
    local pid
    for pid in "${server_pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "a process ($pid) of $name exited during the run: $(why_in_logs "$work/$name")"
        fi
    done
    stop_server
}

# A failed run, in the runs file: the last lines of what went wrong.
record_failure() { # name scenario round text
    python3 - "$runs" "$@" <<'PY'
import json, sys
path, name, scenario, round_, out = sys.argv[1:]
lines = [l.strip() for l in out.splitlines() if l.strip()]
with open(path, "a") as f:
    f.write(json.dumps({"target": name, "label": f"scenario={scenario},round={round_}",
                        "failed": " ".join(lines[-6:])[:600]}) + "\n")
PY
}

started=$(date +%s)
for round in $(seq "$rounds"); do
    for entry in "${scenarios[@]}"; do
        IFS='|' read -r scenario args targets <<<"$entry"
        # Rotate the order of the servers from round to round. A -before target runs right
        # next to its counterpart, after it in odd rounds and before it in even ones, so that
        # the old and the new binary alternate and meet the same background.
        list=()
        for name in $servers; do
            [[ $name != *-before ]] || continue
            case " $targets " in
            *" $name "*) list+=("$name") ;;
            *" all "*) [[ "$variants" == *" $name "* ]] || list+=("$name") ;;
            esac
        done
        count=${#list[@]}
        [ "$count" -gt 0 ] || continue
        order=()
        for i in $(seq 0 $((count - 1))); do
            name=${list[$(((i + round - 1) % count))]}
            if [[ " $servers " != *" $name-before "* ]]; then
                order+=("$name")
            elif [ $((round % 2)) = 1 ]; then
                order+=("$name" "$name-before")
            else
                order+=("$name-before" "$name")
            fi
        done
        for name in "${order[@]}"; do
            log "round $round/$rounds: $scenario on $name"
            run_one "$round" "$scenario" "$name" "$args"
        done
    done
done
# Outliers: a scenario whose rounds disagree on a server (deliveries/s or p99 more than 30%
# apart, e.g. because a build started next door) is run once more there; the median then
# has one more value to choose from.
if [ "$rounds" -ge 2 ]; then
    while IFS='|' read -r scenario name; do
        [ -n "$scenario" ] || continue
        for entry in "${scenarios[@]}"; do
            IFS='|' read -r s args _ <<<"$entry"
            if [ "$s" = "$scenario" ]; then
                log "rerun (the rounds disagreed): $scenario on $name"
                run_one extra "$scenario" "$name" "$args"
            fi
        done
    done < <(python3 scripts/bench/report.py --runs "$runs" --outliers)
fi
if [ $big = 1 ] && [ $quick = 0 ] && [[ " $servers " == *" linechat "* ]]; then
    log "linechat alone: 19,000 idle connections, then a room of 10,000 members"
    alone=(linechat)
    [[ " $servers " != *" linechat-before "* ]] || alone=(linechat linechat-before)
    for name in "${alone[@]}"; do
        run_one 1 idle-19000 "$name" "idle --clients 19000 --settle-secs 5"
    done
    for ((i = ${#alone[@]} - 1; i >= 0; i--)); do
        run_one 1 fanout-burst-10000 "${alone[$i]}" "fanout --members 10000 --senders 1 --messages 200"
    done
fi
elapsed=$(($(date +%s) - started))

cmdline="bash scripts/bench.sh${original_args:+ $original_args}"
report_python=$(pick_report_python) || report_python=python3
"$report_python" scripts/bench/report.py --runs "$runs" --out "$out" --json "${out%.md}.json" \
    --charts "$(dirname "$out")/benchmarks/charts" \
    --elapsed "$elapsed" --rounds "$rounds" --command "$cmdline" \
    --versions "$peer_versions" --server-core $server_core --loadgen-core $loadgen_core
log "wrote $out and ${out%.md}.json in $((elapsed / 60)) min $((elapsed % 60)) s"
