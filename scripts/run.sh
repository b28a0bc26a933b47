#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode, then runs CDC as an edge–cloud
# system on this machine, over real HTTP, on the embedded SQLite store:
#   1. cloud: a store, an edge credential, and `cdc cloud serve` in the background,
#   2. edge:  `cdc edge run` trains cdc-ae + cdc-ec (m = 4, the default α, a learned prior),
#             compresses its training images (entropy-coded) and uploads them in parts with the
#             decoder, measuring its bandwidth,
#   3. cloud: `cdc cloud train --store` restores the upload and trains resnext-11; once training
#             has converged, the mask policy asks the edge for the clearest m the bandwidth allows,
#   4. edge:  follows the request (fine-tunes to the new m, uploads), and the cloud trains again,
#   5. the same images sent raw and as JPEG and WebP at about the bytes of CDC's upload, trained on
#      the same way (`cdc experiment compare-uplink`), and the summary table.
# Both run on this machine, so the edge caps its upload rate (UPLINK Mbit/s) to give the loop a
# slow link to measure. Accuracy is measured on test images as the edge encodes them (the
# deployment case).
#
# Defaults: a short run (SUBSET training images, a few epochs, one seed; see docs/main-job.md for
# its time). FULL=1 runs all 60 000 images with longer training. AUDIO=1 runs the same loop on
# audio: the project's synthetic spoken digits (written by scripts/make-spoken-digits.sh into
# .build/spoken-digits unless DATA names an audio dataset), cdc-ae-1d + cdc-ec-1d on the edge and
# m5 on the cloud; step 5 is then left out (Opus and μ-law are rows of `cdc experiment
# rate-accuracy` on audio, see docs/audio.md).
# SYSTEM=vae-cls runs the same loop with the VAE codec on the edge instead of CDC's autoencoder:
# it trains encoder, quantizer and a classifier on the latents jointly under a rate constraint,
# uploads coded latents with a small latent file (no decoder), and the cloud trains a classifier
# on the latents themselves (m = 4, 3, 2 are L = 2, 3, 6 centres). Images only.
# Environment: SYSTEM (cdc or vae-cls), SUBSET, TEST_SUBSET, EDGE_EPOCHS, RETUNE_EPOCHS, CLOUD_EPOCHS, RATE_WEIGHT (λ of
# the learned prior's rate term), BUDGET (seconds the cloud allows per upload), UPLINK (Mbit/s; 0: no cap), CODECS
# (jpeg,webp), DATA (a dataset directory in any format --data reads; default: Debian's
# Fashion-MNIST), PORT (default 8080), WORK (default .build/run), FULL.
set -euo pipefail
cd "$(dirname "$0")/.."
audio=${AUDIO:-0}
if [ "$audio" != 0 ]; then
  : "${SUBSET:=0}" "${TEST_SUBSET:=0}" "${EDGE_EPOCHS:=40}" "${CLOUD_EPOCHS:=12}" "${BUDGET:=40}" "${RATE_WEIGHT:=0}"
  : "${RETUNE_EPOCHS:=5}" "${UPLINK:=0.5}"
fi
if [ "${FULL:-0}" != 0 ]; then
  : "${SUBSET:=0}" "${TEST_SUBSET:=0}" "${EDGE_EPOCHS:=10}" "${CLOUD_EPOCHS:=10}" "${BUDGET:=60}"
else
  : "${SUBSET:=6000}" "${TEST_SUBSET:=5000}" "${EDGE_EPOCHS:=10}" "${CLOUD_EPOCHS:=4}" "${BUDGET:=6}"
fi
: "${RATE_WEIGHT:=0.15}" "${RETUNE_EPOCHS:=3}" "${UPLINK:=2}" "${CODECS:=jpeg,webp}"
start=$(date +%s)
scripts/setup.sh
if [ "$audio" != 0 ] && [ -z "${DATA:-}" ]; then
  DATA=.build/spoken-digits
  [ -d "$DATA" ] || scripts/make-spoken-digits.sh "$DATA"
fi
swift build -c release --product cdc
built=$(date +%s)
cdc=$PWD/.build/release/cdc
work=${WORK:-.build/run}
port=${PORT:-8080}
rm -rf "$work" && mkdir -p "$work"
echo "== cloud: store, edge credential, service on port $port"
token=$($cdc cloud add-edge --store "$work/cloud.db" --name edge-1)
$cdc cloud serve --store "$work/cloud.db" --port "$port" --time-budget "$BUDGET" > "$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$work/serve.log" && break; sleep 0.2; done
grep listening "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
export CDC_EDGE_TOKEN=$token
data_args=()
[ -n "${DATA:-}" ] && data_args=(--data "$DATA")
system=${SYSTEM:-cdc}
edge_args=("${data_args[@]}" --cloud "http://127.0.0.1:$port" --session "$work/edge" --subset "$SUBSET" --rounds 1 --system "$system")
# λ of the learned prior is CDC's; vae-cls has its own rate target per m.
rate_args=(--rate-weight "$RATE_WEIGHT")
[ "$system" = vae-cls ] && rate_args=()
[ "$UPLINK" != 0 ] && edge_args+=(--max-rate "$UPLINK")
cloud_args=("${data_args[@]}" --store "$work/cloud.db" --edge edge-1 --test-subset "$TEST_SUBSET")
# The test images as the edge would send them at inference, encoded by the session that made mask m's upload.
encode_test() {
  local session=$work/edge
  { [ -f "$work/edge/m$1/session.json" ] || [ -f "$work/edge/m$1/vae-session.json" ]; } && session=$work/edge/m$1
  $cdc edge compress "${data_args[@]}" --session "$session" --split test --out "$work/test-m$1.cdc" --decoder-out "$work/test-m$1-decoder.safetensors" >/dev/null
}
last_mask() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['uploads'][-1]['mask'])" "$1"; }

echo "== edge: stage-1 training, compression and upload"
$cdc edge run "${edge_args[@]}" --epochs "$EDGE_EPOCHS" "${rate_args[@]}" --report "$work/edge-1.json"
m1=$(last_mask "$work/edge-1.json")
encode_test "$m1"
echo "== cloud: restore the upload and train the classifier (resnext-11 for images, m5 for audio)"
$cdc cloud train "${cloud_args[@]}" --epochs "$CLOUD_EPOCHS" --test-container "$work/test-m$m1.cdc" --report "$work/cloud-1.json"
echo "== edge: follow the cloud's mask request"
$cdc edge run "${edge_args[@]}" --retune-epochs "$RETUNE_EPOCHS" --report "$work/edge-2.json"
m2=$(last_mask "$work/edge-2.json")
encode_test "$m2"
echo "== cloud: train on the clearest data it holds"
$cdc cloud train "${cloud_args[@]}" --epochs "$CLOUD_EPOCHS" --test-container "$work/test-m$m2.cdc" --report "$work/cloud-2.json"
echo "== what crossed the network (from /metrics)"
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -E '^cdc_(received_bytes_total|current_mask|training_accuracy|bandwidth)' || true
kill $server; wait $server 2>/dev/null || true
if [ "$audio" != 0 ]; then
  end=$(date +%s)
  echo "== summary"
  python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
for n in (1, 2):
    c = json.load(open(f"{w}/cloud-{n}.json"))
    print(f"cloud round {n}: m = {c['mask']}, {c['uplinkBytes']} bytes uplink, {c['model']}, "
          f"test accuracy through the codec {100 * (c.get('accuracyThroughCodec') or 0):.2f}%, "
          f"on raw clips {100 * (c.get('accuracyRawTest') or 0):.2f}%")
PY
  echo "Audio against Opus and μ-law: cdc experiment rate-accuracy --data $DATA (docs/audio.md)."
  echo "Time: $((end - built)) s for the job, $((built - start)) s for set-up and the release build."
  exit 0
fi
echo "== the same images sent raw, as JPEG and as WebP, trained on the same way"
$cdc experiment compare-uplink "${data_args[@]}" --subset "$SUBSET" --cdc "$work/cloud-2.json" --edge-report "$work/edge-1.json" \
  --edge-report "$work/edge-2.json" --codecs "$CODECS" --out "$work/summary.md" > /dev/null
end=$(date +%s)
echo "== summary"
cat "$work/summary.md"
echo "Short of the paper's setting: $( [ "$SUBSET" = 0 ] && echo "all" || echo "$SUBSET of 60 000") training images," \
  "$EDGE_EPOCHS edge epochs (+ $RETUNE_EPOCHS to retune), $CLOUD_EPOCHS cloud epochs, one seed (differences of about a point" \
  "are within the seed-to-seed spread of the longer runs); full runs: docs/experiments.md."
echo "Time: $((end - built)) s for the job, $((built - start)) s for set-up and the release build."
