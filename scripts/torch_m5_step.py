#!/usr/bin/env python3
"""Times PyTorch's `audio_m5_step` alone (m5 on 64 clips of 8000 samples, SGD, BN in training
mode), fp32 and under bf16 autocast, with the reference's own models and timing protocol
(../shared/bench/torch_reference.py), and prints JSON shaped like its --bench output:
{"timings": {"audio_m5_step": …, "bf16": {"audio_m5_step": …}}}, so that
`cdc bench --only audio_m5_step --compare FILE` compares against both.

    ../torch-venv/bin/python scripts/torch_m5_step.py [--repeats N] > torch-m5.json
"""
import argparse, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "bench"))
import torch                     # noqa: E402
import torch_reference as ref    # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--len", type=int, default=8000)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    x = torch.rand(a.batch, 1, a.len, generator=g) * 2 - 1
    y = torch.randint(0, a.classes, (a.batch,), generator=g)
    out = {"threads": a.threads, "torch": torch.__version__, "timings": {}}
    for block, bf16 in (("fp32", False), ("bf16", True)):
        ref.AUTOCAST_BF16 = bf16
        net = ref.m5(a.classes).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        t = ref.with_rate(ref.time_calls(lambda: ref.cloud_step(net, opt, x, y), a.warmup, a.repeats), a.batch)
        t["model"] = "m5"
        if bf16:
            out["timings"]["bf16"] = {"audio_m5_step": t}
        else:
            out["timings"]["audio_m5_step"] = t
        print(f"{block}: audio_m5_step median {t['median_ms']:.1f} ms", file=sys.stderr)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
