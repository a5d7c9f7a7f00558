#!/usr/bin/env python3
"""Reference IResNet (insightface arcface_torch layout) with random weights.

Our own PyTorch implementation, written from the architecture description in
crates/poseface-model (IBasicBlock: BN -> conv3x3 -> BN -> PReLU -> conv3x3
(stride) -> BN, plus identity / 1x1-conv+BN downsample, no activation after
the add; stem conv3x3 -> BN -> PReLU; head BN2d -> flatten -> dropout -> fc ->
BatchNorm1d "features" with weight fixed at 1).  Parameter names match the
released arcface_torch checkpoints (conv1, bn1, prelu, layer1.0.bn1, ...,
layer1.0.downsample.0/1, bn2, fc, features).

What it produces, in --out DIR:
  backbone.pth          torch.save(model.state_dict()) (zip format, with
                        num_batches_tracked, as insightface checkpoints have)
  backbone.safetensors  the same state dict via safetensors.torch.save_file
  input.npy             float32 [B,3,S,S], uniform in [-1, 1]
  embedding.npy         float32 [B,E], model(input) in eval mode, no_grad
  meta.json             arch, layers, width, input_size, embedding, batch,
                        seed, torch version, key_count, embedding_norms

Random weights (torch.manual_seed(seed) before building, so fc keeps its
default init; then one torch.Generator(seed) draws, module by module in
state-dict order): conv N(0, 0.5*sqrt(2/fan_in)); BN weight U(0.5,1.5), bias
N(0,0.1), running_mean N(0,0.1), running_var U(0.5,1.5); PReLU U(0.05,0.4);
features: weight 1, bias and running stats as the other BNs.  CPU, float32.

Run from the workspace root:

    target/torch-venv/bin/python scripts/iresnet_reference.py --arch r18 \
        --width 0.0625 --input-size 56 --embedding 64 --batch 2 \
        --out crates/poseface-model/tests/fixtures/iresnet_r18_w0625_s56
    target/torch-venv/bin/python scripts/iresnet_reference.py --arch r50 \
        --out target/reference/iresnet_r50
"""
import argparse
import json
import math
import os

import numpy as np
import torch
from torch import nn

LAYERS = {"r18": [2, 2, 2, 2], "r34": [3, 4, 6, 3], "r50": [3, 4, 14, 3],
          "r100": [3, 13, 30, 3], "r200": [6, 26, 60, 6]}
EPS = 1e-5


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=EPS)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=EPS)
        self.downsample = downsample

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return y + identity


class IResNet(nn.Module):
    def __init__(self, layers, width=1.0, input_size=112, embedding=512):
        super().__init__()
        ch = [max(1, int(round(b * width))) for b in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch[0], eps=EPS)
        self.prelu = nn.PReLU(ch[0])
        inplanes = ch[0]
        for i, (planes, n) in enumerate(zip(ch, layers)):
            down = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=2, bias=False),
                nn.BatchNorm2d(planes, eps=EPS))
            blocks = [IBasicBlock(inplanes, planes, 2, down)]
            blocks += [IBasicBlock(planes, planes) for _ in range(1, n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        f = input_size
        for _ in range(4):
            f = (f + 1) // 2  # conv3x3 stride 2 pad 1: ceil(S/2)
        self.bn2 = nn.BatchNorm2d(ch[3], eps=EPS)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(ch[3] * f * f, embedding)
        self.features = nn.BatchNorm1d(embedding, eps=EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        self.final_size = f

    def forward(self, x, trace=None):
        x = self.prelu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
            if trace is not None:
                trace.append((f"layer{i}", tuple(x.shape), x.abs().mean().item(),
                              x.abs().max().item()))
        x = torch.flatten(self.bn2(x), 1)
        x = self.fc(self.dropout(x))
        return self.features(x)


def randomize(model, gen):
    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=gen) * std)

    def uniform(t, lo, hi):
        t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=gen))

    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                normal(mod.weight, 0.5 * math.sqrt(2.0 / fan_in))
            elif isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                if name == "features":
                    mod.weight.fill_(1.0)
                else:
                    uniform(mod.weight, 0.5, 1.5)
                normal(mod.bias, 0.1)
                normal(mod.running_mean, 0.1)
                uniform(mod.running_var, 0.5, 1.5)
            elif isinstance(mod, nn.PReLU):
                uniform(mod.weight, 0.05, 0.4)


def main():
    ap = argparse.ArgumentParser(description="IResNet reference embeddings")
    ap.add_argument("--arch", default="r18", choices=sorted(LAYERS))
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(args.seed)

    layers = LAYERS[args.arch]
    model = IResNet(layers, args.width, args.input_size, args.embedding)
    gen = torch.Generator().manual_seed(args.seed)
    randomize(model, gen)
    model.eval()

    inp = (torch.rand((args.batch, 3, args.input_size, args.input_size),
                      generator=gen) * 2.0 - 1.0).float()
    trace = []
    with torch.no_grad():
        emb = model(inp, trace)
    for name, shape, mean_abs, max_abs in trace:
        print(f"{name}: shape {shape} mean|a| {mean_abs:.4g} max|a| {max_abs:.4g}")
    assert torch.isfinite(emb).all(), "non-finite embedding"
    norms = emb.norm(dim=1).tolist()
    print("final spatial size:", model.final_size)
    print("embedding norms:", [round(v, 4) for v in norms])
    print("embedding[0][:6]:", [round(v, 5) for v in emb[0, :6].tolist()])

    sd = model.state_dict()
    print(f"state dict: {len(sd)} keys; first 10:")
    for k in list(sd)[:10]:
        print(f"  {k} {list(sd[k].shape)} {str(sd[k].dtype).replace('torch.', '')}")

    os.makedirs(args.out, exist_ok=True)
    torch.save(sd, os.path.join(args.out, "backbone.pth"))
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()},
              os.path.join(args.out, "backbone.safetensors"))
    np.save(os.path.join(args.out, "input.npy"), inp.numpy().astype(np.float32))
    np.save(os.path.join(args.out, "embedding.npy"), emb.numpy().astype(np.float32))
    meta = {"arch": args.arch, "layers": layers, "width": args.width,
            "input_size": args.input_size, "embedding": args.embedding,
            "batch": args.batch, "seed": args.seed, "torch": torch.__version__,
            "key_count": len(sd), "embedding_norms": norms}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out))
    print(f"wrote {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
