#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode and trains the reference
# edge models (cdc-ae + cdc-ec, m = 4, α = 48) on Fashion-MNIST for one epoch, printing the
# final losses and the test accuracy through the codec. Extra arguments go to `cdc train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product cdc
exec .build/release/cdc edge train --epochs 1 "$@"
