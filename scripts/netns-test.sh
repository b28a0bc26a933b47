#!/usr/bin/env bash
# The network test of the services: the edge in one network namespace, the cloud in another, joined
# by a veth pair whose edge side is shaped with tc (tbf rate) and loses packets at random
# (iptables statistic DROP); a proxy in the cloud's namespace (scripts/delay-proxy.py) adds
# 50 ms each way (100 ms round trip), because this kernel has no netem qdisc.
# Phase A: 1 Mbit/s, 100 ms, 5 % loss: the upload completes, the edge's measured bandwidth is
# within 25 % of the shaped rate (a second attempt with a fresh upload if the first misses; both
# are printed), and after the cloud trains the mask request is what fits
# 1 Mbit/s. Phase B: 20 Mbit/s, no loss: the clearer upload completes, its measured bandwidth
# is within 25 % of 20 Mbit/s, and the mask that fits follows the rate to m = 0. The set is
# 30 000 images so that phase B's upload (a few MB) is long enough for TCP to reach the link's
# rate: a few hundred kB with a 100 ms round trip is mostly slow start (about 0.4 s) and
# measured a third of the rate. Needs root; scripts/test.sh runs it with the release build
# (CDC=path/to/cdc picks another).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "netns-test: needs root (network namespaces)" >&2; exit 1; }
CDC=${CDC:-$PWD/.build/release/cdc}
[ -x "$CDC" ] || { echo "netns-test: $CDC is not built (swift build -c release --product cdc)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/cdc-netns.XXXXXX)
EDGE=cdc-edge-$$ CLOUD=cdc-cloud-$$
SAMPLES=${SAMPLES:-30000} BUDGET=${BUDGET:-60}
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  [ -n "${PROXY:-}" ] && kill "$PROXY" 2>/dev/null || true
  ip netns del "$EDGE" 2>/dev/null || true
  ip netns del "$CLOUD" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "netns-test: FAIL: $*" >&2; exit 1; }

ip netns add "$EDGE"; ip netns add "$CLOUD"
ip link add "ve$$" type veth peer name "vc$$"
ip link set "ve$$" netns "$EDGE"; ip link set "vc$$" netns "$CLOUD"
ip -n "$EDGE" addr add 10.78.0.1/24 dev "ve$$"; ip -n "$CLOUD" addr add 10.78.0.2/24 dev "vc$$"
for ns in "$EDGE" "$CLOUD"; do ip -n "$ns" link set lo up; done
ip -n "$EDGE" link set "ve$$" up; ip -n "$CLOUD" link set "vc$$" up
shape() {   # shape RATE LOSS: the edge's uplink
  ip netns exec "$EDGE" tc qdisc replace dev "ve$$" root tbf rate "$1" burst 16kb latency 500ms
  ip netns exec "$EDGE" iptables -F OUTPUT
  if [ "$2" != 0 ]; then
    ip netns exec "$EDGE" iptables -A OUTPUT -o "ve$$" -m statistic --mode random --probability "$2" -j DROP
  fi
}

echo "netns-test: a session of $SAMPLES images to upload"
"$CDC" edge train --subset "$SAMPLES" --epochs 1 --out "$WORK/session" >/dev/null 2>&1
TOKEN=$("$CDC" cloud add-edge --store "$WORK/cloud.db" --name edge-1)
EDGE_NAME=edge-1
ip netns exec "$CLOUD" "$CDC" cloud serve --store "$WORK/cloud.db" --host 127.0.0.1 --port 8081 --time-budget "$BUDGET" \
  > "$WORK/serve.log" 2>&1 &
SERVER=$!
ip netns exec "$CLOUD" python3 scripts/delay-proxy.py 10.78.0.2:8080 127.0.0.1:8081 "${DELAY:-0.05}" > "$WORK/proxy.log" 2>&1 &
PROXY=$!
for _ in $(seq 50); do grep -q "listening" "$WORK/serve.log" && grep -q "delay-proxy" "$WORK/proxy.log" && break; sleep 0.2; done
grep -q "listening" "$WORK/serve.log" || fail "the cloud did not start: $(cat "$WORK/serve.log")"
grep -q "delay-proxy" "$WORK/proxy.log" || fail "the delay proxy did not start: $(cat "$WORK/proxy.log")"
api() { ip netns exec "$EDGE" curl -sf -H "Authorization: Bearer $TOKEN" "http://10.78.0.2:8080$1"; }
metric() { api /metrics | awk -v m="$1" '$1 ~ "^"m"[{]" {print $2}'; }
json() { python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('null' if v is None else v)"; }

echo "netns-test: phase A: 1 Mbit/s, 100 ms round trip, 5 % loss"
shape 1mbit 0.05
# One upload of the whole set; the measured rate must be within 25 % of the shaped one. A TCP flow
# on a lossy link has bad runs (5 % loss at 100 ms caps one flow near 0.6 Mbit/s, and the tail of
# an upload has fewer flows), so a phase whose rate misses is tried once more, as a second edge
# with the same data (a fresh upload), and both attempts are printed.
phase_a() {   # phase_a EDGE_NAME TOKEN: upload, then check the measured rate
  ip netns exec "$EDGE" env CDC_EDGE_TOKEN="$2" "$CDC" edge run --cloud http://10.78.0.2:8080 --session "$WORK/session" \
    --subset "$SAMPLES" --samples-per-part 1000 --parallel 8 --rounds 1 2> "$WORK/edge-a-$1.log" || fail "phase A upload ($1): $(tail -5 "$WORK/edge-a-$1.log")"
  grep "uploaded m" "$WORK/edge-a-$1.log"
  BW=$(metric cdc_bandwidth_bytes_per_second)
  [ -n "$BW" ] || fail "no bandwidth in /metrics after phase A ($1)"
  python3 -c "bw=$BW*8/1e6; print(f'netns-test: phase A ($1): measured {bw:.3f} Mbit/s against 1 Mbit/s shaped'); exit(0 if abs(bw-1)<=0.25 else 1)"
}
if ! phase_a edge-1 "$TOKEN"; then
  echo "netns-test: phase A missed the 25 % band; a second attempt with a fresh upload"
  TOKEN=$("$CDC" cloud add-edge --store "$WORK/cloud.db" --name edge-2)
  EDGE_NAME=edge-2
  phase_a edge-2 "$TOKEN" || fail "measured bandwidth not within 25 % of 1 Mbit/s in two attempts"
fi
"$CDC" cloud train --store "$WORK/cloud.db" --edge "$EDGE_NAME" --epochs 1 --model resnext-11 >/dev/null 2>&1 || fail "cloud train"
REQ_A=$(api /v1/mask)
echo "netns-test: after training at 1 Mbit/s: $REQ_A"
MASK_A=$(echo "$REQ_A" | json mask)
case "$MASK_A" in 1|2|3) ;; *) fail "at 1 Mbit/s and a ${BUDGET} s budget the cloud should ask for m in 1…3, not $MASK_A";; esac

echo "netns-test: phase B: 20 Mbit/s, 100 ms round trip, no loss"
shape 20mbit 0
ip netns exec "$EDGE" env CDC_EDGE_TOKEN="$TOKEN" "$CDC" edge run --cloud http://10.78.0.2:8080 --session "$WORK/session" \
  --subset "$SAMPLES" --samples-per-part 1000 --parallel 8 --rounds 1 --retune-epochs 1 2> "$WORK/edge-b.log" \
  || fail "phase B upload: $(tail -5 "$WORK/edge-b.log")"
grep "uploaded m" "$WORK/edge-b.log"
grep -q "uploaded m = $MASK_A" "$WORK/edge-b.log" || fail "the edge did not upload the requested m = $MASK_A"
REQ_B=$(api /v1/mask)
echo "netns-test: at 20 Mbit/s: $REQ_B"
[ "$(echo "$REQ_B" | json fittingMask)" = 0 ] || fail "at 20 Mbit/s m = 0 should fit the budget"
python3 -c "b=$(metric cdc_bandwidth_bytes_per_second)*8/1e6; print(f'netns-test: measured {b:.2f} Mbit/s against 20 Mbit/s shaped'); exit(0 if abs(b-20)<=5 else 1)" \
  || fail "measured bandwidth not within 25 % of 20 Mbit/s"
[ "$(metric cdc_current_mask)" = "$MASK_A" ] || fail "the store should hold m = $MASK_A complete"
echo "netns-test: PASS"
