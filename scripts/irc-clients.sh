#!/usr/bin/env bash
# End to end with a real IRC client: WeeChat (weechat-headless, no terminal needed) joins a
# room on linechat's IRC port and talks with a line-protocol client there, both ways.
# Installs weechat-headless with apt-get when it is missing. Not run by CI (see README).
# Usage: scripts/irc-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v weechat-headless >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq weechat-headless >/dev/null
fi
cargo build --quiet --no-default-features --bin linechat
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
line_port=$(free_port)
irc_port=$(free_port)
target/debug/linechat --addr "127.0.0.1:$line_port" --irc-addr "127.0.0.1:$irc_port" \
    --irc-server-name irc.test --data-dir "$work/data" >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    nc -z 127.0.0.1 "$irc_port" 2>/dev/null && break
    sleep 0.1
done

# The line client creates #lobby, then starts WeeChat, scripted: it connects, joins #lobby and
# says hello; its logger writes what the channel shows to a file. The line client answers and
# checks that WeeChat's log shows the answer.
python3 - "$line_port" "$irc_port" "$work" <<'PY'
import glob, socket, subprocess, sys, time
port, irc_port, work = int(sys.argv[1]), sys.argv[2], sys.argv[3]
logs = f"{work}/weechat/logs"
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rw", newline="\n")
def send(line):
    f.write(line + "\n"); f.flush()
def until(want, seconds=30):
    s.settimeout(seconds)
    while True:
        line = f.readline().rstrip("\n")
        if not line:
            sys.exit(f"closed while waiting for {want!r}")
        if line.startswith(want):
            return line
until("HELLO")
send("NICK nc_user")
until("OK NICK")
send("CR lobby")
until("OK CR lobby")
commands = ";".join([
    "/set logger.file.flush_delay 0",
    f"/server add linechat 127.0.0.1/{irc_port} -notls -nicks=wee",
    "/connect linechat",
    # WeeChat's own delays: the script below waits for what it needs, not for time.
    "/wait 2 /join -server linechat #lobby",
    "/wait 4 /msg -server linechat #lobby hello from weechat",
])
weechat = subprocess.Popen(
    ["weechat-headless", "--dir", f"{work}/weechat", "--run-command", commands],
    stdout=open(f"{work}/weechat.out", "w"), stderr=subprocess.STDOUT)
def done(code, message):
    weechat.terminate()
    weechat.wait()
    print(message)
    sys.exit(code)
until("JR lobby wee")
until("RM lobby wee hello from weechat")
send("RM lobby hi weechat")
until("OK RM lobby")
deadline = time.time() + 30
while time.time() < deadline:
    for path in glob.glob(f"{logs}/*lobby*"):
        if "hi weechat" in open(path, errors="replace").read():
            done(0, "ok: WeeChat and a line client talked in #lobby")
    time.sleep(0.2)
done(1, "WeeChat's log of #lobby never showed the line client's message")
PY
