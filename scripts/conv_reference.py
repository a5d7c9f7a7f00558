#!/usr/bin/env python3
"""Reference 2-D convolutions, forward and backward (PyTorch), for poseface-model's conv2d.

The convolutions of insightface's IResNet, at small sizes: 3x3 with stride 1 and 2 (padding
1), the 1x1 stride-2 shortcut, and a 1x1 stride-1 convolution (whose patches are the image
itself).  For each case, inputs come from one torch.Generator(seed): x ~ N(0, 1), weights
N(0, 1/fan_in), an upstream gradient g ~ N(0, 1); outputs are y = conv2d(x, w) (no bias)
and the gradients of sum(y * g) for x and w, all float32 on the CPU.

Writes <case>_{x,weight,grad,y,dx,dweight}.npy and meta.json (the cases' strides and
paddings) into --out.  Run from the workspace root:

    target/torch-venv/bin/python scripts/conv_reference.py \
        --out crates/poseface-model/tests/fixtures/conv
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

# name: (x shape, c_out, kernel, stride, padding)
CASES = {
    "k3s1": ([3, 4, 9, 8], 6, 3, 1, 1),
    "k3s2": ([2, 5, 10, 9], 7, 3, 2, 1),
    "k1s2": ([3, 6, 7, 7], 4, 1, 2, 0),
    "k1s1": ([2, 3, 5, 5], 4, 1, 1, 0),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    meta = {"seed": args.seed, "torch": torch.__version__, "cases": {}}
    for name, (shape, c_out, k, stride, pad) in CASES.items():
        x = torch.randn(shape, generator=gen)
        fan_in = shape[1] * k * k
        w = torch.randn([c_out, shape[1], k, k], generator=gen) / math.sqrt(fan_in)
        x.requires_grad_(True)
        w.requires_grad_(True)
        y = F.conv2d(x, w, stride=stride, padding=pad)
        g = torch.randn(y.shape, generator=gen)
        (y * g).sum().backward()
        arrays = {"x": x, "weight": w, "grad": g, "y": y, "dx": x.grad, "dweight": w.grad}
        for key, tensor in arrays.items():
            path = os.path.join(args.out, f"{name}_{key}.npy")
            np.save(path, tensor.detach().numpy().astype(np.float32))
        meta["cases"][name] = {"stride": stride, "padding": pad}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
