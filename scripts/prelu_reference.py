#!/usr/bin/env python3
"""Reference PReLU forward and backward (PyTorch), for the fused PReLU of poseface-model.

One slope per channel, as insightface's IResNet uses it (`nn.PReLU(planes)`).  Inputs are
drawn from one torch.Generator(seed): x uniform in [-2, 2] (no exact zeros, where PyTorch's
and burn's gradient conventions differ), slopes uniform in [0.05, 0.4] as the reference
IResNet's, and an upstream gradient g from N(0, 1).  Outputs: y = prelu(x, alpha) and the
gradients of sum(y * g) with respect to x and alpha, all float32 on the CPU.

Writes x.npy, alpha.npy, grad.npy, y.npy, dx.npy, dalpha.npy and meta.json into --out.
Run from the workspace root:

    target/torch-venv/bin/python scripts/prelu_reference.py \
        --out crates/poseface-model/tests/fixtures/prelu
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--shape", default="3,5,4,6", help="n,c,h,w")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    shape = [int(d) for d in args.shape.split(",")]

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(shape, generator=gen) * 4.0 - 2.0
    assert (x != 0).all()
    alpha = torch.rand(shape[1], generator=gen) * 0.35 + 0.05
    grad = torch.randn(shape, generator=gen)

    x.requires_grad_(True)
    alpha.requires_grad_(True)
    y = F.prelu(x, alpha)
    (y * grad).sum().backward()

    os.makedirs(args.out, exist_ok=True)
    arrays = {"x": x, "alpha": alpha, "grad": grad, "y": y, "dx": x.grad, "dalpha": alpha.grad}
    for name, tensor in arrays.items():
        np.save(os.path.join(args.out, f"{name}.npy"), tensor.detach().numpy().astype(np.float32))
    meta = {"shape": shape, "seed": args.seed, "torch": torch.__version__,
            "negative_fraction": float((x < 0).float().mean())}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
