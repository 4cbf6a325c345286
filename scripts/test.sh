#!/usr/bin/env bash
# The full test run: install dependencies, build everything, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
start=$(date +%s)
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/rvpp-test.log
status=${PIPESTATUS[0]}
echo "rvpp tests finished in $(( $(date +%s) - start )) s with status $status"
exit "$status"
