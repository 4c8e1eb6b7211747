#!/usr/bin/env bash
# The chaos soak behind RELIABILITY.md: SECONDS (default 600) of load and faults on each
# store (SQLite, then MongoDB through SecantusDB), then the checks. .ci/run does the
# same for 120 s per store (tests/integration/soak.rs).
#
#   scripts/soak.sh [SECONDS] [SEED]
#
# Needs redis-server, root (for the tmpfs of the disk-full fault; without it that fault
# is left out, and the log says so) and SecantusDB in ~/.cache/rustci-secantus (see
# .ci/run; SECANTUS_VENV overrides). Writes soak-sqlite.json and soak-mongodb.json to
# $RUSTCI_SOAK_REPORT_DIR (default: a new temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustci-target}"
export RUSTCI_DATASETS="${RUSTCI_DATASETS:-$(pwd)/../shared/datasets}"
export RUSTCI_SOAK_SECONDS="${1:-600}"
export RUSTCI_SOAK_SEED="${2:-$(date +%s)}"
export RUSTCI_SOAK_REPORT_DIR="${RUSTCI_SOAK_REPORT_DIR:-$(mktemp -d -t rustci-soak.XXXXXX)}"
export RUSTCI_REQUIRE_REDIS=1 RUSTCI_REQUIRE_MONGODB=1
# The tests refuse a stale `rustci` binary: build it first (bins.rs).
cargo build --release -q --bin rustci
echo "== soak: ${RUSTCI_SOAK_SECONDS} s per store, seed ${RUSTCI_SOAK_SEED}, reports in ${RUSTCI_SOAK_REPORT_DIR}"
cargo test --release -q -p rustci-tests --test integration soak:: -- --ignored --test-threads 1
ls "$RUSTCI_SOAK_REPORT_DIR"/soak-*.json
