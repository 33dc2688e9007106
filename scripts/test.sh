#!/usr/bin/env bash
# Runs the whole test suite, after installing what it needs (scripts/test-deps.sh, and
# scripts/cluster-deps.sh for the tests that start NATS and PostgreSQL): cargo's
# tests, then scripts/system-tests.sh. Arguments go to `cargo test`; with any, only cargo's
# tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
# The suite mostly runs cold (CI, a fresh clone), where incremental compilation only writes
# caches nobody reads: without it, building linechat's own crates takes 23 s instead of 30.
# (Between edits, `cargo test` keeps it, or CARGO_INCREMENTAL=1 here.)
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Most tests wait on sockets and timers rather than the CPU: three per core run the suite in
# about half the time of one per core, cargo's default.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-$((3 * $(nproc)))}
bash scripts/cluster-deps.sh
# Without the default `jemalloc` feature: its C build would take two of the suite's minutes,
# and the allocator changes no behaviour (src/main.rs).
cargo test --locked --no-default-features "$@"
if [ $# -eq 0 ]; then
    bash scripts/system-tests.sh
fi
