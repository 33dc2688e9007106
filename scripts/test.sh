#!/usr/bin/env bash
# Runs the whole test suite, after installing what it needs (scripts/test-deps.sh): cargo's
# tests, then the scripts that check what a test process cannot do cheaply (a full disk on a
# tmpfs, a hard kill under read load, 200 clients that never read a long history). Arguments go to `cargo test`; with any, only cargo's
# tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --locked "$@"
if [ $# -eq 0 ]; then
    bash scripts/disk-full.sh
    bash scripts/storage-under-read-load.sh 100 6
    bash scripts/memory-budget.sh 200 1024
fi
