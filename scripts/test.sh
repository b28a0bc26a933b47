#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test (debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
