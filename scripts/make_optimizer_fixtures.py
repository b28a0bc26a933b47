#!/usr/bin/env python3
"""Write the PyTorch-produced fixtures of CDCNNTests (optimizers, schedules, clipping).

Writes ``Tests/CDCNNTests/Fixtures/optimizers.safetensors`` (``--out DIR``
overrides the folder) and a short ``README.md`` next to it.  Every tensor is
float32.  Names:

Optimizers -- two parameters, ``a`` of shape [3, 4] and ``b`` of shape [5],
with fixed initial values and five fixed gradients each.  Parameter ``b`` has
*no* gradient (``grad = None``) at step 2 (0-based), so PyTorch skips it there
(no update, no state change; Adam's per-parameter step count does not advance):

  param.a.init, param.b.init        initial values
  grad.a.step0 .. grad.a.step4      gradient before each step
  grad.b.step0, step1, step3, step4 (grad.b.step2 deliberately absent)
  CONFIG.a.step0 .. CONFIG.a.step4  parameter values after each step
  CONFIG.b.step0 .. CONFIG.b.step4

  CONFIG            PyTorch optimizer
  sgd               SGD(lr=0.1)
  sgd_momentum      SGD(lr=0.1, momentum=0.9)
  sgd_nesterov_wd   SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
  sgd_momentum_wd   SGD(lr=0.05, momentum=0.9, weight_decay=5e-4)
  adam              Adam(lr=1e-2)
  adam_wd           Adam(lr=1e-2, weight_decay=0.1)
  adamw             AdamW(lr=1e-2, weight_decay=0.1)
  adam_betas        Adam(lr=1e-2, betas=(0.8, 0.9), eps=1e-6)

Schedules -- the learning rate in effect at steps 0, 1, ... (read from
``optimizer.param_groups[0]["lr"]`` before each ``scheduler.step()``), base 0.1:

  sched.step_lr         [10] StepLR(step_size=3, gamma=0.5)
  sched.cosine          [11] CosineAnnealingLR(T_max=10, eta_min=0.001), steps 0...10
                             (our CosineSchedule(base 0.1, totalSteps 12,
                             warmupSteps 2, minimum 0.001) at steps 2...12)
  sched.warmup_cosine   [12] SequentialLR([LinearLR(start_factor=1/2, end_factor=1,
                             total_iters=1), CosineAnnealingLR(T_max=10,
                             eta_min=0.001)], milestones=[2]), steps 0..11 (the
                             same CosineSchedule at steps 0..11)

Gradient clipping -- ``torch.nn.utils.clip_grad_norm_`` with max_norm 1.0 on
three gradients of shapes [3, 4], [5], [2, 2]:

  clip.grad.0 .. clip.grad.2         gradients before clipping
  clip.total_norm                    [] the returned total norm
  clip.clipped.0 .. clip.clipped.2   gradients after clipping

Everything is seeded and deterministic; re-running with the same torch
version writes the same bytes.

Usage (from the repository root):

    /work/torch-venv/bin/python scripts/make_optimizer_fixtures.py [--out DIR]
"""

import argparse
import math
import os

import torch
from safetensors.torch import save_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "Tests", "CDCNNTests", "Fixtures")

SHAPES = {"a": [3, 4], "b": [5]}
STEPS = 5
SKIPPED = {("b", 2)}  # (parameter, step) pairs with grad = None

CONFIGS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    "sgd_nesterov_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=5e-4),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adam_wd": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "adam_betas": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.9), eps=1e-6),
}


def optimizer_fixtures(out):
    g = torch.Generator().manual_seed(20240601)
    init = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    grads = {}
    for k, s in SHAPES.items():
        for t in range(STEPS):
            if (k, t) in SKIPPED:
                continue
            # Varying scales, so that Adam's normalisation and the momentum really matter.
            scale = [1.0, 0.3, 2.0, 0.05, 1.5][t]
            grads[(k, t)] = torch.randn(s, generator=g) * scale
    for k in SHAPES:
        out[f"param.{k}.init"] = init[k].clone()
    for (k, t), v in grads.items():
        out[f"grad.{k}.step{t}"] = v.clone()

    for name, make in CONFIGS.items():
        params = {k: init[k].clone().requires_grad_(True) for k in SHAPES}
        opt = make([params["a"], params["b"]])
        for t in range(STEPS):
            for k, p in params.items():
                p.grad = grads[(k, t)].clone() if (k, t) in grads else None
            opt.step()
            for k, p in params.items():
                out[f"{name}.{k}.step{t}"] = p.detach().clone()


def lrs(scheduler_factory, n):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = scheduler_factory(opt)
    values = []
    for _ in range(n):
        values.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return torch.tensor(values, dtype=torch.float32)


def schedule_fixtures(out):
    out["sched.step_lr"] = lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10)
    out["sched.cosine"] = lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 11)

    def warmup_cosine(o):
        warm = torch.optim.lr_scheduler.LinearLR(o, start_factor=0.5, end_factor=1.0, total_iters=1)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)
        return torch.optim.lr_scheduler.SequentialLR(o, [warm, cos], milestones=[2])

    out["sched.warmup_cosine"] = lrs(warmup_cosine, 12)
    # Sanity check against the closed form our CosineSchedule implements.
    for s, v in enumerate(out["sched.warmup_cosine"].tolist()):
        expect = 0.1 * (s + 1) / 2 if s < 2 else 0.001 + (0.1 - 0.001) * 0.5 * (1 + math.cos(math.pi * (s - 2) / 10))
        assert abs(v - expect) < 1e-6, (s, v, expect)


def clip_fixtures(out):
    g = torch.Generator().manual_seed(777)
    shapes = [[3, 4], [5], [2, 2]]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    for i, p in enumerate(params):
        p.grad = torch.randn(shapes[i], generator=g) * (i + 1)
        out[f"clip.grad.{i}"] = p.grad.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    assert total.item() > 1.0, "the fixture should actually clip"
    out["clip.total_norm"] = total.detach().to(torch.float32).reshape([])
    for i, p in enumerate(params):
        out[f"clip.clipped.{i}"] = p.grad.clone()


README = """# CDCNNTests fixtures

`optimizers.safetensors` holds PyTorch's parameter values after each of five
optimizer steps (SGD with and without momentum, Nesterov and weight decay;
Adam, Adam with L2 weight decay, AdamW, Adam with other betas/eps), the
learning rates of StepLR / CosineAnnealingLR / LinearLR+CosineAnnealingLR
warm-up, and the result of `torch.nn.utils.clip_grad_norm_`; all float32.
The tensor names and configurations are listed in the script's docstring.

Do not edit by hand; regenerate with, from the repository root:

    /work/torch-venv/bin/python scripts/make_optimizer_fixtures.py

Generated with **torch {torch}**, safetensors {st}, Python {py}
(`torch.set_num_threads(1)`, fixed seeds: re-running gives the same bytes).
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    out = {}
    optimizer_fixtures(out)
    schedule_fixtures(out)
    clip_fixtures(out)
    for k, v in out.items():
        assert v.dtype == torch.float32, k
    out = {k: v.contiguous() for k, v in sorted(out.items())}

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "optimizers.safetensors")
    # One metadata key only: safetensors writes metadata from a hash map, so several keys
    # would come out in a random order and the file would not be byte-identical between runs.
    save_file(out, path, metadata={"generator": f"scripts/make_optimizer_fixtures.py, torch {torch.__version__}"})
    import platform
    import safetensors
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(README.format(torch=torch.__version__, st=safetensors.__version__, py=platform.python_version()))
    print(f"wrote {len(out)} tensors to {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
