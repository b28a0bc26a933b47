#!/usr/bin/env python3
"""Peak resident memory of PyTorch running only the spec's edge step.

torch_reference.py reports one peak for its whole run (every benchmark); this script runs
just the edge step (cdc-ae + cdc-ec, batch 128, m = 4, alpha = 48, two Adam optimizers) the
same way -- warm-up, then timed repeats -- so that its peak can be compared with
`cdc bench --only edge_step`'s `peak_rss_after_edge_step_mb`.

    python scripts/torch_edge_peak_rss.py [--channels-last] [--reference ../shared/bench]
"""
import argparse
import json
import os
import resource
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    sys.path.insert(0, os.path.abspath(args.reference))
    import torch
    import torch_reference as ref

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.rand(128, 1, 28, 28, generator=g).to(memory_format=fmt)
    y = torch.randint(0, 10, (128,), generator=g)
    ae = ref.cdc_ae(1, 4).train().to(memory_format=fmt)
    ec = ref.cdc_ec(1, 28, 28, 10).train().to(memory_format=fmt)
    opt_ae = torch.optim.Adam(ae.parameters(), lr=1e-3)
    opt_ec = torch.optim.Adam(ec.parameters(), lr=1e-3)
    stats = ref.time_calls(lambda: ref.edge_step(ae, ec, opt_ae, opt_ec, x, y, 48.0), args.warmup, args.repeats)
    print(json.dumps({"torch": torch.__version__, "channels_last": args.channels_last,
                      "edge_step_median_ms": stats["median_ms"],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
