#!/usr/bin/env bash
# Installs the Debian packages swift-cdc needs (skipped when already present).
# Used by scripts/run.sh and scripts/test.sh; safe to run repeatedly.
set -euo pipefail
packages=(libdnnl-dev zlib1g-dev libturbojpeg0-dev libwebp-dev libpng-dev libsndfile1-dev libsoxr-dev libopus-dev espeak-ng sox dataset-fashion-mnist iproute2 iptables curl python3)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6 toolchain needed, e.g. /opt/swift/usr/bin)" >&2; exit 1; }
