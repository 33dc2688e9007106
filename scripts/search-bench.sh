#!/usr/bin/env bash
# What SEARCH costs on a large store: a release-built `#[ignore]` test fills an SQLite store
# with 1,000,000 messages and times 20 queries of its biggest conversation, printing the
# median and p99 latency (target: median under 50 ms). A benchmark: not part of .ci/run.
#
#   bash scripts/search-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --quiet --lib storage::tests::search_latency -- --ignored --nocapture \
    2>&1 | grep -E '^(search:|  )'
