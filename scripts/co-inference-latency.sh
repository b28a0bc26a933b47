#!/usr/bin/env bash
# Co-inference over the real service at several upload caps: a cloud (`cdc cloud serve
# --inference DIR`, the systems of a `cdc experiment co-inference --out DIR` run) and an edge
# (`cdc edge infer`) on this machine over HTTP. For every cap in CAPS (Mbit/s) the edge runs the
# partition search by measured latency (--split auto: cloud-only and one DISC-like point per
# split, each probed over the capped link) and sends the test set with the chosen point; then the
# fixed systems of SYSTEMS go through at the same cap. Reports (JSON) go to OUT.
#
# Usage: scripts/co-inference-latency.sh DIR [OUT]
# Environment: CAPS (default "2 20"), EDGE_THREADS (threads of the edge's engine, default 1:
# a device weaker than the 2-core cloud), DEVICE_SLOWDOWN (K ≥ 1, default 1: emulate an edge K
# times slower, `cdc edge infer --device-slowdown`), TEST_SUBSET (default 2000), TRAIN_SUBSET (the
# experiment's, default 10000), PORT (default 8091), SYSTEMS (keys as `cdc edge infer` takes
# them: "system|split|config" with `_` for spaces in the config, e.g. "disc-like|G|tau=0.0_b=2";
# default: raw, WebP at 2 bpp and CDC at m = 4), SEARCH (0 skips the partition search, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/co-inference-latency.sh DIR [OUT]}
out=${2:-$dir/latency}
: "${CAPS:=2 20}" "${EDGE_THREADS:=1}" "${DEVICE_SLOWDOWN:=1}" "${TEST_SUBSET:=2000}" "${TRAIN_SUBSET:=10000}" "${PORT:=8091}"
: "${SYSTEMS:=raw|input|8-bit webp|input|q=1 cdc|input|m=4}" "${SEARCH:=1}"
cdc=$PWD/.build/release/cdc
[ -x "$cdc" ] || swift build -c release --product cdc
mkdir -p "$out"
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
token=$($cdc cloud add-edge --store "$work/cloud.db" --name edge-1)
$cdc cloud serve --store "$work/cloud.db" --port "$PORT" --inference "$dir" --train-subset "$TRAIN_SUBSET" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 300); do grep -q listening "$work/serve.log" && break; sleep 0.2; done
grep listening "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
export CDC_EDGE_TOKEN=$token
common=(--cloud "http://127.0.0.1:$PORT" --models "$dir" --train-subset "$TRAIN_SUBSET" --test-subset "$TEST_SUBSET" --threads "$EDGE_THREADS" --device-slowdown "$DEVICE_SLOWDOWN")
for cap in $CAPS; do
  if [ "$SEARCH" = 1 ]; then
    echo "== cap $cap Mbit/s: partition search by measured latency, then the test set"
    $cdc edge infer "${common[@]}" --max-rate "$cap" --system disc-like --split auto --report "$out/auto-$cap.json"
  fi
  for s in $SYSTEMS; do
    IFS='|' read -r system split config <<< "$s"
    echo "== cap $cap Mbit/s: $system $split $config"
    name="$system-$split-$config"
    name=${name//[^A-Za-z0-9._=+-]/_}
    $cdc edge infer "${common[@]}" --max-rate "$cap" --system "$system" --split "$split" --config "$config" \
      --report "$out/$name-$cap.json"
  done
done
echo "reports in $out"
