#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode, then runs CDC as an edge–cloud
# system on this machine, over real HTTP, on the embedded SQLite store:
#   1. cloud: a store, an edge credential, and `cdc cloud serve` in the background,
#   2. edge:  `cdc edge run` trains cdc-ae + cdc-ec on Fashion-MNIST (m = 4, α = 8), compresses
#             the training set (entropy-coded) and uploads it in parts with its decoder; it
#             measures its bandwidth and reports it,
#   3. cloud: `cdc cloud train --store` restores the upload and trains resnext-11; once it has
#             converged the mask policy asks for clearer data if the bandwidth allows,
#   4. edge:  follows the request (fine-tunes to the new m, uploads), and the cloud trains again,
#   5. the rate–accuracy experiment in its short form (`--quick`), its table printed at the end,
# and prints the bytes sent against raw and the cloud classifier's accuracy.
# Both run on this machine, so the edge caps its upload rate (UPLINK Mbit/s, default 2) to give the
# loop a slow link to measure: at 2 Mbit/s and a 60 s budget the cloud asks for m = 3, not m = 0.
# The cloud's accuracy is measured on the test images as the edge encodes them (the deployment
# case) and on raw test images.
# Environment: EDGE_EPOCHS (default 2), CLOUD_EPOCHS (default 3), BUDGET (seconds allowed per
# upload, default 60), UPLINK (Mbit/s, default 2; 0: no cap), PORT (default 8080), WORK (default
# .build/run), EXPERIMENT=0 skips step 5.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product cdc
cdc=$PWD/.build/release/cdc
work=${WORK:-.build/run}
port=${PORT:-8080}
rm -rf "$work" && mkdir -p "$work"
echo "== cloud: store, edge credential, service on port $port"
token=$($cdc cloud add-edge --store "$work/cloud.db" --name edge-1)
$cdc cloud serve --store "$work/cloud.db" --port "$port" --time-budget "${BUDGET:-60}" > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$work/serve.log" && break; sleep 0.2; done
grep listening "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
export CDC_EDGE_TOKEN=$token
uplink=()
[ "${UPLINK:-2}" != 0 ] && uplink=(--max-rate "${UPLINK:-2}")
# The test images as the edge would send them at inference, encoded by the session that made mask m's upload.
encode_test() {
  local session=$work/edge
  [ -f "$work/edge/m$1/session.json" ] && session=$work/edge/m$1
  $cdc edge compress --session "$session" --split test --out "$work/test-m$1.cdc" --decoder-out "$work/test-m$1-decoder.safetensors" >/dev/null
}
echo "== edge: stage-1 training, compression and upload"
$cdc edge run --cloud "http://127.0.0.1:$port" --session "$work/edge" --epochs "${EDGE_EPOCHS:-2}" --rounds 1 "${uplink[@]}" "$@" | tee "$work/edge-1.txt"
m1=$(sed -n 's/.*(last upload m = \([0-4]\)).*/\1/p' "$work/edge-1.txt")
encode_test "$m1"
echo "== cloud: restore the upload and train resnext-11"
$cdc cloud train --store "$work/cloud.db" --edge edge-1 --epochs "${CLOUD_EPOCHS:-3}" --test-container "$work/test-m$m1.cdc"
echo "== edge: follow the cloud's mask request"
$cdc edge run --cloud "http://127.0.0.1:$port" --session "$work/edge" --rounds 1 "${uplink[@]}" "$@" | tee "$work/edge-2.txt"
m2=$(sed -n 's/.*(last upload m = \([0-4]\)).*/\1/p' "$work/edge-2.txt")
encode_test "$m2"
echo "== cloud: train on the clearest data it holds"
$cdc cloud train --store "$work/cloud.db" --edge edge-1 --epochs "${CLOUD_EPOCHS:-3}" --test-container "$work/test-m$m2.cdc" | tee "$work/cloud-2.txt"
echo "== what crossed the network (from /metrics)"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -E '^cdc_(received_bytes_total|current_mask|training_accuracy|bandwidth)'
kill $server; wait $server 2>/dev/null || true
raw=$(sed -n 's/.*the raw dataset is \([0-9]*\) bytes.*/\1/p' "$work/edge-1.txt")
sent=$(cat "$work/edge-1.txt" "$work/edge-2.txt" | sed -n 's/^edge: sent \([0-9]*\) bytes.*/\1/p' | python3 -c "import sys; print(sum(map(int, sys.stdin)))")
echo "== summary"
echo "uplink: $sent bytes in both uploads against $raw bytes of raw images + labels ($(python3 -c "print(f'{$raw / $sent:.1f}')")x less)"
grep "test accuracy" "$work/cloud-2.txt"
if [ "${EXPERIMENT:-1}" != 0 ]; then
  echo "== rate–accuracy experiment, short form (the README's full run drops --quick)"
  $cdc experiment rate-accuracy --quick --out "$work/experiment"
fi
