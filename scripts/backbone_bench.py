#!/usr/bin/env python3
"""PyTorch peer of `poseface bench backbone` (our own script).

Times, on the same device (and on the CPU with the same thread count), the same IResNet
(the architecture of scripts/iresnet_reference.py) at the same shapes:
  forward     eval mode, no_grad, a batch already on the device
  embed_flip  eval mode, no_grad: aligned 112x112 faces from host memory, uploaded,
              average-pooled to the input side, embedded with their mirror images,
              summed and read back
  train_step  train mode: forward, mean-squared error to a fixed target, backward,
              SGD (lr 0.1, momentum 0.9, weight decay 5e-4)
and writes the median seconds per iteration (after --warmup untimed) as JSON. With --amp
(CUDA only) all three run under float16 autocast, the training step with a gradient
scaler, as arcface_torch trains with fp16. With --compile the model goes through
torch.compile first (its compilation happens in the untimed warm-up).

    target/torch-venv/bin/python scripts/backbone_bench.py \
        --models r18-w0.25-s56 --batch 32 --threads 2 --out /tmp/backbone_torch.json
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from iresnet_reference import LAYERS, IResNet  # noqa: E402


def parse(name):
    parts = name.split("-")
    if parts[0] not in LAYERS:
        sys.exit(f"--models {name}: only IResNets ({', '.join(LAYERS)}) have a PyTorch peer here")
    width, size = 1.0, 112
    for p in parts[1:]:
        try:
            if p.startswith("w"):
                width = float(p[1:])
                continue
            if p.startswith("s"):
                size = int(p[1:])
                continue
        except ValueError:
            pass
        sys.exit(f"--models {name}: `{p}` is neither -w<width> nor -s<input side>")
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
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--amp", action="store_true", help="float16 autocast (CUDA only)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (inductor) before timing")
    ap.add_argument("--out", required=True, help="JSON file to write")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.amp and device.type != "cuda":
        sys.exit("--amp needs a CUDA device")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        # float32 means float32: no TF32 in convolutions or matrix products.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def autocast():
        if args.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    results = {"torch": torch.__version__, "threads": args.threads, "batch": args.batch,
               "tf32": False,
               "device": torch.cuda.get_device_name(device) if cuda else "cpu",
               "amp": args.amp, "compile": args.compile, "models": {}}
    for name in [m for m in args.models.split(",") if m]:
        arch, width, size = parse(name)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        model = IResNet(LAYERS[arch], width=width, input_size=size, embedding=512).to(device)
        net = torch.compile(model) if args.compile else model
        x = (torch.rand(args.batch, 3, size, size) * 2 - 1).to(device)
        faces = np.random.default_rng(0).uniform(-1, 1, (args.batch, 3, 112, 112)).astype(
            np.float32)
        target = torch.randn(args.batch, 512).to(device)

        model.eval()

        def forward():
            with torch.no_grad(), autocast():
                net(x).sum().item()

        def embed_flip():
            with torch.no_grad(), autocast():
                batch = torch.from_numpy(faces).to(device)
                if size != 112:
                    batch = F.avg_pool2d(batch, 112 // size)
                e = net(batch) + net(torch.flip(batch, dims=[3]))
                e.float().cpu().numpy()

        fwd = median_time(forward, args.iters, args.warmup)
        emb = median_time(embed_flip, args.iters, args.warmup)
        model.train()
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1,
                              momentum=0.9, weight_decay=5e-4)
        scaler = torch.amp.GradScaler("cuda", enabled=args.amp)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = ((net(x).float() - target) ** 2).mean()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            model.fc.bias.sum().item()

        train = median_time(step, args.iters, args.warmup)
        results["models"][name] = {"forward_s": fwd, "embed_flip_s": emb, "train_step_s": train}
        if cuda:
            results["models"][name]["peak_device_bytes"] = torch.cuda.max_memory_allocated(device)
        print(f"torch/{name}/b{args.batch}: forward {fwd * 1e3:.1f} ms "
              f"({args.batch / fwd:.1f} img/s), embed_flip {emb * 1e3:.1f} ms "
              f"({args.batch / emb:.1f} img/s), train_step {train * 1e3:.1f} ms "
              f"({args.batch / train:.1f} img/s)", flush=True)
    # ru_maxrss is in KiB on Linux.
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
