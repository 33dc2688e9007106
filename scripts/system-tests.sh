#!/usr/bin/env bash
# The checks a test process cannot do cheaply, run after `cargo test` by scripts/test.sh and
# .ci/run: the server on a full tmpfs (needs root for the mount), a hard kill under heavy
# history reading, and clients that never read a long history.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/disk-full.sh
bash scripts/storage-under-read-load.sh 100 6
bash scripts/memory-budget.sh 200 1024
