#!/bin/sh
# echo-bot.sh - a linechat bot in plain POSIX sh: it echoes room and private messages.
#
# Usage: echo-bot.sh [host] [port] [name] [room]   (defaults: 127.0.0.1 8080 echobot bots)
# Stop it with Ctrl-C, or by signalling its process group; it also ends when the server
# closes the connection.
#
# The protocol it relies on: one line per command or reply, fields separated by one space,
# and every server line starts with an upper-case keyword.
#   server: HELLO ...                   -> we log in as a guest: NICK <name>
#   server: OK NICK <name>              -> we create the room:   CR <room>
#   server: ERR ROOM_EXISTS ...         -> so we join it:        JR <room>
#   server: RM <room> <from> <text>     -> we answer:            RM <room> echo: <text>
#   server: PM <from> <text>            -> we answer:            PM <from> echo: <text>
#   server: ERR ... before OK NICK (name taken, guests disabled) -> we QUIT.
# Everything else (OK RM, PONG, NOTICE ..., JR <room> <user>, ...) is ignored.
#
# Wiring: nc's output goes down a pipe into the loop below, and the loop's output goes back
# to nc's input through a named pipe. nc only notices that the server closed the connection
# when it next writes to it, so a keepalive PING (answered by PONG) is sent every
# $ECHO_BOT_KEEPALIVE seconds (default 30); nc then exits, the loop reads end-of-file, and
# the script ends.

host=${1:-127.0.0.1}
port=${2:-8080}
name=${3:-echobot}
room=${4:-bots}
keepalive=${ECHO_BOT_KEEPALIVE:-30}

fifo=${TMPDIR:-/tmp}/echo-bot.$$
mkfifo "$fifo" || exit 1
trap 'kill "$pinger" 2>/dev/null; rm -f "$fifo"' EXIT
trap 'exit 1' HUP INT TERM

# Reads server lines on stdin and writes commands on stdout.
bot() {
    logged_in=no
    while IFS= read -r line; do
        case $line in
        HELLO*)
            printf 'NICK %s\n' "$name" ;;
        "OK NICK "*)
            logged_in=yes
            printf 'CR %s\n' "$room" ;;
        "ERR ROOM_EXISTS "*)
            printf 'JR %s\n' "$room" ;;
        "ERR "*)
            if [ "$logged_in" = no ]; then
                printf 'echo-bot: cannot log in: %s\n' "$line" >&2
                printf 'QUIT\n'
            fi ;;
        "RM "*)
            rest=${line#RM }        # <room> <from> <text>
            to=${rest%% *}
            rest=${rest#* }         # <from> <text>
            text=${rest#* }
            case $text in
            echo:*) ;;              # never echo an echo: two bots would loop forever
            *) printf 'RM %s echo: %s\n' "$to" "$text" ;;
            esac ;;
        "PM "*)
            rest=${line#PM }        # <from> <text>
            from=${rest%% *}
            text=${rest#* }
            case $text in
            echo:*) ;;
            *) printf 'PM %s echo: %s\n' "$from" "$text" ;;
            esac ;;
        esac
    done
}

while sleep "$keepalive"; do printf 'PING\n'; done >"$fifo" &
pinger=$!
nc "$host" "$port" <"$fifo" | bot >"$fifo"
