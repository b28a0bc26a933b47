#!/usr/bin/env python3
"""Write the PyTorch-produced test fixtures of CDCModelsTests.

Builds the spec's reference models with the builders of
``../shared/bench/torch_reference.py`` (relative to the repository root;
``--reference DIR`` overrides the directory) and writes, into
``Tests/CDCModelsTests/Fixtures/`` (``--out DIR`` overrides):

  NAME.weights.safetensors  the model's state_dict exactly as PyTorch holds it
                            (same names, float32; BatchNorm's
                            num_batches_tracked kept as int64, as in a user's
                            checkpoint).  BatchNorm running_mean / running_var
                            / weight / bias are set to random non-trivial
                            values so that eval-mode BN is really exercised.
  NAME.io.safetensors       float32 inputs and PyTorch outputs:
                              input, output_eval                 (all models)
                              latent, symbols, restored          (autoencoders)
                              input_train, output_train,
                              running_mean_after,
                              running_var_after                  (resnext-11)
                              grad_fc_weight, loss               (cdc-ec)
  python_mixed.safetensors  tensors of several dtypes written by Python's
                            safetensors (format/interop test).  Its two
                            metadata keys come out in a random order on each
                            run (safetensors uses a hash map), so only this
                            file is not byte-identical between runs; all
                            tensor bytes are.

Metadata: weights files carry {"format": "pt"}; io files carry one key,
"fixture", a JSON string with model, seed, torch version and per-model facts
(m, L, latent_gain, min_ceil_margin; labels and grad_fc_weight_of for cdc-ec;
train_bn and bn_momentum for resnext-11).
  state_dict_names.json     ``torch_reference.py --names`` output.

NAME is one of cdc-ae (m=4), cdc-ae-m2 (the same architecture with m=2),
cdc-ec, resnext-11, cdc-ae-1d (m=4), cdc-ec-1d.  Images are batch 2 of
1x28x28 uniform [0, 1); audio is batch 2 of 1x512 uniform [-1, 1).
resnext-29 and m5 are too large to commit as weights: their io files
(resnext-29.io.safetensors, m5.io.safetensors: input, output_eval,
output_train) come from formula weights (formula_state) that the tests
recompute; m5's input is batch 2 of 1x8000 uniform [-1, 1).
Everything is seeded (one fixed seed per model) and runs on one thread, so
re-running gives the same files with the same torch version.

Usage (from the repository root):

    /work/torch-venv/bin/python scripts/make_fixtures.py
        [--reference ../shared/bench] [--out Tests/CDCModelsTests/Fixtures]
"""

import argparse
import copy
import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (seed, kind, builder-kwargs)
MODELS = {
    "cdc-ae":     (1001, "ae2d", {"m": 4}),
    "cdc-ae-m2":  (1002, "ae2d", {"m": 2}),
    "cdc-ec":     (1003, "ec2d", {}),
    "resnext-11": (1004, "resnext", {}),
    "cdc-ae-1d":  (1005, "ae1d", {"m": 4}),
    "cdc-ec-1d":  (1006, "ec1d", {}),
}
EC_LABELS = [3, 7]
# PyTorch's default init gives tanh latents of std ~0.06, so every symbol is
# 0 or 1 even for m=2.  The autoencoders' last encoder conv (encoder.4) is
# multiplied by this gain (before saving) so the latents spread over (-1, 1)
# and all quantizer levels, including the lower clamp, are exercised.
LATENT_GAIN = 10.0
IMAGE_SHAPE = (1, 28, 28)
AUDIO_SHAPE = (1, 512)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reference", default=os.path.join("..", "shared", "bench"),
                   help="directory holding torch_reference.py, relative to "
                        "the repository root unless absolute "
                        "(default ../shared/bench)")
    p.add_argument("--out", default=os.path.join("Tests", "CDCModelsTests",
                                                 "Fixtures"),
                   help="output directory, relative to the repository root "
                        "unless absolute")
    return p.parse_args()


def randomize_batchnorm(model, gen):
    """Non-trivial BN parameters and running statistics (eval-mode BN test)."""
    import torch
    import torch.nn as nn
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                n = mod.num_features
                mod.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                mod.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(n, generator=gen) * 0.1)


def build(ref, kind, kwargs):
    if kind == "ae2d":
        return ref.cdc_ae(channels=1, m=kwargs["m"])
    if kind == "ec2d":
        return ref.cdc_ec(channels=1, height=28, width=28, classes=10)
    if kind == "resnext":
        return ref.resnext("resnext-11", channels=1, classes=10)
    if kind == "ae1d":
        return ref.cdc_ae_1d(m=kwargs["m"])
    if kind == "ec1d":
        return ref.cdc_ec_1d(classes=10)
    raise ValueError(kind)


def make_input(kind, batch, gen):
    import torch
    if kind.endswith("1d"):
        return torch.rand(batch, *AUDIO_SHAPE, generator=gen) * 2 - 1
    return torch.rand(batch, *IMAGE_SHAPE, generator=gen)


def last_linear_name(model):
    import torch.nn as nn
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] + ".weight"


def fixtures_for(ref, name, seed, kind, kwargs):
    """Returns (state_dict, io-tensors dict, metadata dict)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = build(ref, kind, kwargs)
    gen = torch.Generator().manual_seed(seed)
    randomize_batchnorm(model, gen)
    if kind.startswith("ae"):
        with torch.no_grad():
            model.encoder[4].weight.mul_(LATENT_GAIN)
            model.encoder[4].bias.mul_(LATENT_GAIN)
    model.eval()
    state = {k: v.detach().clone().contiguous()
             for k, v in model.state_dict().items()}

    io = {}
    meta = {"model": name, "seed": str(seed), "torch": torch.__version__}
    x = make_input(kind, 2, gen)
    io["input"] = x
    with torch.no_grad():
        io["output_eval"] = model(x)

    if kind.startswith("ae"):
        q = model.quantizer
        meta["m"] = str(q.m)
        meta["L"] = str(q.L)
        with torch.no_grad():
            latent = model.encoder(x)
            sym = q.symbols(latent)                       # int8
            restored = model.decoder(q.restore(sym))
        io["latent"] = latent
        io["symbols"] = sym.to(torch.float32)
        io["restored"] = restored
        if not torch.equal(restored, io["output_eval"]):
            diff = (restored - io["output_eval"]).abs().max().item()
            print(f"  note: {name}: restored != output_eval "
                  f"(max |diff| {diff:g})")
        # How close latent*L comes to a ceil boundary that changes a symbol
        # (an integer k with -L+1 <= k <= L-1; near +-L the clamp hides it):
        # the margin a reimplementation's float error has before a symbol
        # flips.
        t = latent.double() * q.L
        k = torch.round(t).clamp(-q.L + 1, q.L - 1)
        margin = (t - k).abs().min().item()
        meta["latent_gain"] = repr(LATENT_GAIN)
        meta["min_ceil_margin"] = repr(margin)
        counts = torch.bincount((sym.flatten().long() + q.L - 1),
                                minlength=2 * q.L).tolist()
        print(f"  {name}: latent std {latent.std().item():.3f}, symbol "
              f"counts {-q.L + 1}..{q.L}: {counts}, min |latent*L - "
              f"boundary| = {margin:.3g}")

    if kind == "ec2d":
        fc = last_linear_name(model)
        meta["grad_fc_weight_of"] = fc
        meta["labels"] = json.dumps(EC_LABELS)
        params = dict(model.named_parameters())
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), torch.tensor(EC_LABELS))
        loss.backward()
        io["grad_fc_weight"] = params[fc].grad.detach().clone()
        io["loss"] = loss.detach().clone()
        model.zero_grad(set_to_none=True)
        print(f"  {name}: last Linear weight is '{fc}', loss {loss.item():.6f}")

    if kind == "resnext":
        xt = make_input(kind, 4, gen)
        tm = copy.deepcopy(model).train()
        with torch.no_grad():
            io["input_train"] = xt
            io["output_train"] = tm(xt)
        bn = tm.stem[1]
        io["running_mean_after"] = bn.running_mean.detach().clone()
        io["running_var_after"] = bn.running_var.detach().clone()
        meta["bn_momentum"] = str(bn.momentum)
        meta["train_bn"] = "stem.1"

    io = {k: v.detach().to(torch.float32).contiguous() for k, v in io.items()}
    return state, io, meta


def formula_state(model, torch):
    """Deterministic weights for models too large to commit (resnext-29: 10.5M parameters).

    Tensor t (0-based, in sorted state_dict name order), element j (row-major), with b the
    PyTorch init bound 1/sqrt(fan_in) (fan_in = numel / shape[0]) for >= 2-D tensors:
      weights (>= 2-D):      b * sin(0.37 j + 1.3 t)
      BatchNorm weight:      1 + 0.1 sin(0.37 j + 1.3 t)
      BatchNorm running_var: 1 + 0.25 (1 + sin(0.37 j + 1.3 t))
      other 1-D tensors:     0.1 sin(0.37 j + 1.3 t)   (biases, BN bias, running_mean)
      num_batches_tracked:   0
    computed in float64, rounded to float32. Tests/CDCModelsTests recompute the same values
    in Swift, so only the input and outputs need committing.
    """
    import numpy as np
    state = model.state_dict()
    out = {}
    for t, name in enumerate(sorted(state)):
        ref = state[name]
        if ref.dtype == torch.int64:
            out[name] = torch.zeros_like(ref)
            continue
        j = np.arange(ref.numel(), dtype=np.float64)
        s = np.sin(0.37 * j + 1.3 * t)
        if ref.dim() >= 2:
            v = s / np.sqrt(ref.numel() / ref.shape[0])
        elif name.endswith("running_var"):
            v = 1 + 0.25 * (1 + s)
        elif name.endswith(".weight") and name.replace(".weight", ".running_mean") in state:
            v = 1 + 0.1 * s
        else:
            v = 0.1 * s
        out[name] = torch.from_numpy(v.astype(np.float32).reshape(tuple(ref.shape)))
    model.load_state_dict(out)
    return out


def formula_fixture(ref, torch, name, seed):
    """Inputs and outputs of resnext-29 with formula weights (no weights file)."""
    torch.manual_seed(seed)
    model = ref.resnext(name, channels=1, classes=10)
    formula_state(model, torch)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, 28, 28, generator=gen)
    with torch.no_grad():
        out_eval = model.eval()(x)
        out_train = model.train()(x)
    return {"input": x, "output_eval": out_eval, "output_train": out_train}


def formula_fixture_m5(ref, torch, seed):
    """Inputs and outputs of m5 with formula weights (no weights file: 558 090 parameters)."""
    torch.manual_seed(seed)
    model = ref.m5(classes=10)
    formula_state(model, torch)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 1, 8000, generator=gen) * 2 - 1
    with torch.no_grad():
        out_eval = model.eval()(x)
        out_train = model.train()(x)
    return {"input": x, "output_eval": out_eval, "output_train": out_train}


def write_mixed(path):
    import torch
    from safetensors.torch import save_file
    tensors = {
        "f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3),
        "f16": torch.tensor([1, -2, 65504, 6e-8], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -3.5], dtype=torch.bfloat16),
        "i64": torch.tensor([-1, 0, 1 << 40], dtype=torch.int64),
        "u8": torch.tensor([0, 1, 2, 254, 255], dtype=torch.uint8),
        "scalar": torch.tensor(3.25, dtype=torch.float32),
    }
    save_file(tensors, path,
              metadata={"format": "pt", "source": "make_fixtures.py"})


def describe(path):
    """Read a file back with safetensors; one line per tensor."""
    from safetensors import safe_open
    lines = []
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        for k in f.keys():
            t = f.get_tensor(k)
            lines.append(f"    {k:40s} {str(t.dtype):15s} {list(t.shape)}")
    return meta, lines


def main():
    args = parse_args()
    ref_dir = args.reference
    if not os.path.isabs(ref_dir):
        ref_dir = os.path.join(REPO_ROOT, ref_dir)
    ref_dir = os.path.normpath(ref_dir)
    out_dir = args.out
    if not os.path.isabs(out_dir):
        out_dir = os.path.join(REPO_ROOT, out_dir)
    os.makedirs(out_dir, exist_ok=True)

    sys.path.insert(0, ref_dir)
    import torch
    from safetensors.torch import save_file
    import torch_reference as ref

    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, reference {ref_dir}")

    written = []
    for name, (seed, kind, kwargs) in MODELS.items():
        state, io, meta = fixtures_for(ref, name, seed, kind, kwargs)
        wpath = os.path.join(out_dir, f"{name}.weights.safetensors")
        ipath = os.path.join(out_dir, f"{name}.io.safetensors")
        # safetensors writes metadata keys in a random (hash-map) order, so
        # each file gets at most one key to keep the files byte-reproducible.
        save_file(state, wpath, metadata={"format": "pt"})
        save_file(io, ipath,
                  metadata={"fixture": json.dumps(meta, sort_keys=True)})
        written += [wpath, ipath]

    fpath = os.path.join(out_dir, "resnext-29.io.safetensors")
    save_file(formula_fixture(ref, torch, "resnext-29", 1007), fpath,
              metadata={"fixture": "resnext-29 with formula weights (formula_state in make_fixtures.py)"})
    written.append(fpath)

    fpath = os.path.join(out_dir, "m5.io.safetensors")
    save_file(formula_fixture_m5(ref, torch, 1008), fpath,
              metadata={"fixture": "m5 with formula weights (formula_state in make_fixtures.py)"})
    written.append(fpath)

    mpath = os.path.join(out_dir, "python_mixed.safetensors")
    write_mixed(mpath)
    written.append(mpath)

    npath = os.path.join(out_dir, "state_dict_names.json")
    names = subprocess.run(
        [sys.executable, os.path.join(ref_dir, "torch_reference.py"),
         "--names"], check=True, capture_output=True, text=True).stdout
    json.loads(names)                                       # sanity check
    with open(npath, "w") as f:
        f.write(names)
    written.append(npath)

    for p in written:                 # safetensors creates files as 0600
        os.chmod(p, 0o644)

    print("\nwritten:")
    total = 0
    for p in written:
        size = os.path.getsize(p)
        total += size
        print(f"  {os.path.relpath(p, REPO_ROOT):60s} {size:>10,d} bytes")
    print(f"  {'total':60s} {total:>10,d} bytes")

    print("\nread back:")
    for p in written:
        if not p.endswith(".safetensors"):
            continue
        meta, lines = describe(p)
        print(f"  {os.path.basename(p)}  metadata={meta}")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
