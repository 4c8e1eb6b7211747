#!/usr/bin/env bash
# A server on MongoDB killed with SIGKILL under load, and the one that takes over: its
# commits retried and failed (rebuilds) over the next 60 s, from its /metrics.
#
#   scripts/mongo_takeover.sh mongodb://127.0.0.1:PORT
#
# Needs a MongoDB server that runs transactions (a replica set; SecantusDB works, see
# README "Set up"). Uses ports 7611/7612 and a fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rustci-target}"
cargo build --release -q --bin rustci
B="$CARGO_TARGET_DIR/release/rustci"
URI="${1:?a mongodb:// URI}/takeover_$(date +%s)"
TMP=$(mktemp -d)
pid=
start() {
  "$B" serve --listen 127.0.0.1:7611 --store "$URI" --data-dir "$TMP/data" \
    --metrics-listen 127.0.0.1:7612 >"$TMP/serve$1.log" 2>&1 &
  pid=$!
}
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/data"
start 1
sleep 3
"$B" bench --server http://127.0.0.1:7611 --jobs 100000 --rate 40 --runners 2 >/dev/null 2>&1 &
bench=$!
sleep 20
kill -9 "$pid"
kill "$bench" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
start 2
sleep 3
"$B" bench --server http://127.0.0.1:7611 --jobs 2400 --rate 40 --runners 2 --format json |
  python3 -c 'import json,sys; r=json.load(sys.stdin); print("lifecycles", r["lifecycles"], "failed calls", r["failed_calls"])'
curl -s http://127.0.0.1:7612/metrics | grep -E '^rustci_store'
echo "rebuilds in the new server's log: $(grep -c 'rebuilding state' "$TMP/serve2.log" || true)"
