#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode, then runs CDC end to end on
# Fashion-MNIST through files on this machine:
#   1. edge: trains cdc-ae + cdc-ec jointly (m = 4, α = 8; progress bar, final losses and accuracy),
#   2. edge: compresses the training and test sets into entropy-coded containers and exports the decoder,
#   3. cloud: restores the training set with the uploaded decoder and trains resnext-11,
#   4. the rate–accuracy experiment in its short form (`--quick`: raw, CDC and plain AE at every m,
#      an α sweep, JPEG and WebP on 6 000 / 2 000 images), its table printed at the end,
# and prints the uplink bytes against raw and the cloud classifier's accuracy.
# Environment: EDGE_EPOCHS (default 2), CLOUD_EPOCHS (default 3), WORK (default .build/run),
# EXPERIMENT=0 skips step 4.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product cdc
cdc=.build/release/cdc
work=${WORK:-.build/run}
rm -rf "$work" && mkdir -p "$work"
echo "== edge: stage-1 training"
$cdc edge train --epochs "${EDGE_EPOCHS:-2}" --out "$work/edge" "$@"
echo "== edge: compression"
$cdc edge compress --session "$work/edge" --split train --out "$work/train.cdcl" --decoder-out "$work/decoder.safetensors"
$cdc edge compress --session "$work/edge" --split test --out "$work/test.cdcl" --decoder-out "$work/decoder.safetensors"
$cdc inspect "$work/train.cdcl"
echo "== cloud: restore and train resnext-11"
$cdc cloud train --container "$work/train.cdcl" --test-container "$work/test.cdcl" \
  --decoder "$work/decoder.safetensors" --epochs "${CLOUD_EPOCHS:-3}"
if [ "${EXPERIMENT:-1}" != 0 ]; then
  echo "== rate–accuracy experiment, short form (the README's full run drops --quick)"
  $cdc experiment rate-accuracy --quick --out "$work/experiment"
fi
