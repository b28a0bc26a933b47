#!/usr/bin/env python3
"""Times PyTorch's audio steps alone — `audio_edge_step` (cdc-ae-1d + cdc-ec-1d), `audio_cloud_step`
(cdc-ec-1d) and `audio_m5_step` (m5 on 64 clips of 8000 samples, SGD, BN in training mode) — in
fp32 and under bf16 autocast, with the reference's own models and timing protocol
(`audio_benchmarks` of ../shared/bench/torch_reference.py), and prints JSON shaped like its
--bench --bf16 output ({"timings": {…, "bf16": {…}}}), so that
`cdc bench --only audio_edge_step,audio_cloud_step,audio_m5_step --compare FILE` compares
against NCHW fp32 and bf16 in one run, without the image steps.

    ../torch-venv/bin/python scripts/torch_audio_steps.py > torch-audio.json
"""
import argparse, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "bench"))
import torch                     # noqa: E402
import torch_reference as ref    # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--audio-batch", type=int, default=64)
    p.add_argument("--audio-len", type=int, default=8000)
    p.add_argument("--audio-classes", type=int, default=10)
    p.add_argument("--mask", type=int, default=4)
    p.add_argument("--alpha", type=float, default=48.0)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--cloud-repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    timings = ref.audio_benchmarks(a)
    ref.AUTOCAST_BF16 = True
    try:
        timings["bf16"] = ref.audio_benchmarks(a)
    finally:
        ref.AUTOCAST_BF16 = False
    for k in ("audio_edge_step", "audio_cloud_step", "audio_m5_step"):
        print(f"{k}: fp32 {timings[k]['median_ms']:.1f} ms, bf16 {timings['bf16'][k]['median_ms']:.1f} ms", file=sys.stderr)
    print(json.dumps({"threads": a.threads, "torch": torch.__version__, "timings": timings}, indent=2))


if __name__ == "__main__":
    main()
