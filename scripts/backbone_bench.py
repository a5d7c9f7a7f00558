#!/usr/bin/env python3
"""PyTorch peer of `crates/poseface-model/benches/backbone.rs` (our own script).

Times, on the CPU with the same thread count, the same IResNet (the architecture of
scripts/iresnet_reference.py) at the same shapes:
  forward     eval mode, no_grad, batch B
  train_step  train mode: forward, mean-squared error to a fixed target, backward,
              SGD (lr 0.1, momentum 0.9, weight decay 5e-4)
and writes the median seconds per iteration as JSON.

    target/torch-venv/bin/python scripts/backbone_bench.py \
        --models r18-w0.25-s56,r18 --batch 32 --threads 2 --out target/bench/backbone_torch.json
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iresnet_reference import LAYERS, IResNet  # noqa: E402


def parse(name):
    parts = name.split("-")
    width, size = 1.0, 112
    for p in parts[1:]:
        if p.startswith("w"):
            width = float(p[1:])
        elif p.startswith("s"):
            size = int(p[1:])
    return parts[0], width, size


def median_time(fn, iters, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="r18-w0.25-s56,r18")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", default="target/bench/backbone_torch.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {"torch": torch.__version__, "threads": args.threads, "batch": args.batch,
               "models": {}}
    for name in [m for m in args.models.split(",") if m]:
        arch, width, size = parse(name)
        model = IResNet(LAYERS[arch], width=width, input_size=size, embedding=512)
        x = torch.rand(args.batch, 3, size, size) * 2 - 1
        target = torch.randn(args.batch, 512)

        model.eval()

        def forward():
            with torch.no_grad():
                model(x).sum().item()

        fwd = median_time(forward, args.iters)
        model.train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1,
                              momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = ((model(x) - target) ** 2).mean()
            loss.backward()
            opt.step()
            model.fc.bias.sum().item()

        train = median_time(step, args.iters)
        results["models"][name] = {"forward_s": fwd, "train_step_s": train}
        print(f"torch/{name}/b{args.batch}: forward {fwd * 1e3:.1f} ms "
              f"({args.batch / fwd:.1f} img/s), train_step {train * 1e3:.1f} ms "
              f"({args.batch / train:.1f} img/s)", flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
