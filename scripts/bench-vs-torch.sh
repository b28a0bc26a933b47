#!/usr/bin/env bash
# Runs the PyTorch reference and `cdc bench` on this machine, one after the other, and prints
# our JSON with a "comparison" section (ratio of our median to PyTorch's NCHW, best fp32 and
# bf16-autocast figures, and to the fastest of them, per timing) plus
# the edge step's peak memory in both.
#
#   scripts/bench-vs-torch.sh [PYTHON]      # PYTHON: a python with torch, numpy, safetensors
#
# Make that python once, outside the repository:
#   python3 -m venv ../torch-venv && ../torch-venv/bin/pip install torch numpy safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-../torch-venv/bin/python}
ref=../shared/bench/torch_reference.py
out=${BENCH_OUT:-.build/bench}
mkdir -p "$out"
scripts/setup.sh
swift build -c release --product cdc >&2
echo "PyTorch reference (torch_reference.py --bench) ..." >&2
"$py" "$ref" --bench --bf16 > "$out/torch.json"
"$py" scripts/torch_edge_peak_rss.py > "$out/torch-edge-rss.json"
echo "swift-cdc (cdc bench) ..." >&2
.build/release/cdc bench --compare "$out/torch.json" > "$out/cdc.json"
"$py" - "$out" <<'PY'
import json, sys
d = sys.argv[1]
ours, torch, rss = (json.load(open(f"{d}/{n}.json")) for n in ("cdc", "torch", "torch-edge-rss"))
print(f"{'timing':18s} {'swift-cdc ms':>12s} {'torch NCHW':>11s} {'torch best':>11s} {'ratio':>6s} {'torch bf16':>11s} {'vs fastest':>10s}")
for k, c in sorted(ours["comparison"].items()):
    if isinstance(c, dict):
        bf = f"{c['torch_bf16_ms']:11.1f} {c['ratio_vs_fastest']:10.2f}" if "torch_bf16_ms" in c else ""
        print(f"{k:18s} {c['ours_ms']:12.1f} {c['torch_nchw_ms']:11.1f} {c['torch_best_ms']:11.1f} {c['ratio_vs_best']:6.2f} {bf}")
print(f"peak RSS, edge step only: swift-cdc {ours['peak_rss_after_edge_step_mb']} MiB, torch {rss['peak_rss_mb']} MiB")
print(f"peak RSS, whole benchmark: swift-cdc {ours['peak_rss_mb']} MiB, torch {torch['peak_rss_mb']} MiB")
PY
echo "JSON: $out/cdc.json, $out/torch.json" >&2
