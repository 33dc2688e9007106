#!/usr/bin/env bash
# Runs the whole test suite, after installing what it needs (scripts/test-deps.sh): cargo's
# tests, then scripts/system-tests.sh. Arguments go to `cargo test`; with any, only cargo's
# tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
cargo test --locked "$@"
if [ $# -eq 0 ]; then
    bash scripts/system-tests.sh
fi
