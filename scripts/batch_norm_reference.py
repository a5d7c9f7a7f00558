#!/usr/bin/env python3
"""Reference batch normalisation forward and backward (PyTorch), for poseface-model's fused
batch norm.

Training mode: y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5) and
the gradients of sum(y * g) for x, gamma and beta, with the batch mean and biased variance
it normalised with.  Inference mode: y_eval with given running statistics.  Running
statistics after one training step as PyTorch updates them (momentum 0.1, the unbiased
batch variance): running_mean_after, running_var_after.  Inputs come from
one torch.Generator(seed): x ~ 1.5 + 2 N(0, 1) (an offset, so the mean matters), gamma
U(0.5, 1.5), beta N(0, 0.1), running mean N(0, 0.1), running variance U(0.5, 1.5), g N(0, 1).
All float32 on the CPU; the statistics are also given in float64.

Writes x, gamma, beta, grad, y, mean, variance, dx, dgamma, dbeta, running_mean,
running_var, y_eval, running_mean_after, running_var_after (.npy) and meta.json into --out.  Run from the workspace root:

    target/torch-venv/bin/python scripts/batch_norm_reference.py \
        --out crates/poseface-model/tests/fixtures/batch_norm
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-5


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--shape", default="4,5,6,7", help="n,c,h,w")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    shape = [int(d) for d in args.shape.split(",")]
    c = shape[1]

    gen = torch.Generator().manual_seed(args.seed)
    x = 1.5 + 2.0 * torch.randn(shape, generator=gen)
    gamma = torch.rand(c, generator=gen) + 0.5
    beta = 0.1 * torch.randn(c, generator=gen)
    running_mean = 0.1 * torch.randn(c, generator=gen)
    running_var = torch.rand(c, generator=gen) + 0.5
    grad = torch.randn(shape, generator=gen)

    x.requires_grad_(True)
    gamma.requires_grad_(True)
    beta.requires_grad_(True)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)
    (y * grad).sum().backward()
    dims = [0] + list(range(2, len(shape)))
    mean = x.detach().double().mean(dim=dims)
    variance = x.detach().double().var(dim=dims, unbiased=False)
    with torch.no_grad():
        y_eval = F.batch_norm(x, running_mean, running_var, gamma, beta, training=False, eps=EPS)
        # PyTorch's own running-statistics update (momentum 0.1, the unbiased variance).
        running_mean_after, running_var_after = running_mean.clone(), running_var.clone()
        F.batch_norm(x, running_mean_after, running_var_after, gamma, beta, training=True,
                     momentum=0.1, eps=EPS)

    os.makedirs(args.out, exist_ok=True)
    arrays = {"x": x, "gamma": gamma, "beta": beta, "grad": grad, "y": y, "dx": x.grad,
              "dgamma": gamma.grad, "dbeta": beta.grad, "running_mean": running_mean,
              "running_var": running_var, "y_eval": y_eval, "mean": mean, "variance": variance,
              "running_mean_after": running_mean_after, "running_var_after": running_var_after}
    for name, tensor in arrays.items():
        np.save(os.path.join(args.out, f"{name}.npy"), tensor.detach().numpy().astype(np.float32))
    meta = {"shape": shape, "seed": args.seed, "epsilon": EPS, "torch": torch.__version__}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
