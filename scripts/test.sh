#!/usr/bin/env bash
# Runs the whole test suite, after installing what it needs (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
exec cargo test --locked "$@"
