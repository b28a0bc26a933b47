#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test (debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
# The network test (edge and cloud in two network namespaces, a shaped link) needs root.
if [ "$(id -u)" -eq 0 ] && [ "${NETNS_TEST:-1}" != 0 ]; then
  scripts/netns-test.sh
else
  echo "scripts/netns-test.sh skipped (needs root; NETNS_TEST=0 skips it)" >&2
fi
