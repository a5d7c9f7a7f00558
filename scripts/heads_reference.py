#!/usr/bin/env python3
"""Golden values for the margin-softmax heads of poseface-loss (our own script).

Each case is written from the published definition it reproduces, not from our Rust code:
"arcface" (and curricularface, magface, paa_*) follow the ArcFace class of insightface's
arcface_torch in its fallback form, the one its CombinedMarginLoss replaced: cos(theta + m)
with the fallback cos(theta) - m sin(m) where cos(theta) <= cos(pi - m), differentiated; "*_straight_through" follow arcface_torch's
current CombinedMarginLoss: acos, + m2, cos computed under no_grad (no fallback), - m3 for
"combined", the gradient that of the plain cosine; "*_filtered" add its
interclass_filtering_threshold (non-target cosines above it set to 0 under no_grad). The
loss is arcface_torch's DistCrossEntropy: each sample's probability floored at 1e-30 in the
value (loss at most -ln 1e-30), the gradient (softmax - onehot) / batch.

What it produces
----------------
One JSON file (default crates/poseface-loss/tests/fixtures/heads.json) with a
fixed batch (8 embeddings of dim 16, 10 classes, labels, Euler angles) and,
per head ("case", each head at s = 64 and again at s = 4), the forward logits, the mean cross-entropy loss (plus the
extra terms some heads add) and the gradients of that loss w.r.t. the raw
embeddings x and the raw class centres W, all from torch autograd in float64
on the CPU.  Stateful heads also record their updated state; the PAA cases
record their per-sample margins.

Data (numpy default_rng(0), drawn in this order): x ~ N(0,1) [8,16], row
norms ~ U(5,120) [8], W ~ N(0,1) [10,16], labels ~ U{0..9} [8], yaw ~
U(-90,90), pitch ~ U(-30,30), roll ~ U(-20,20), then a N(0,1) [16] noise
vector.  Then the overrides: sample 0 becomes -(W[label0] + 0.05 noise)
rescaled to norm 30 (target cosine ~ -0.99, so theta + m > pi); sample 3's
norm is set to 7.5 (below MagFace's l_a = 10; seed 0 draws no norm < 10 on
its own; sample 7 draws 115.3 > u_a, so the upper clamps are exercised);
sample 1 gets yaw 5, pitch 3 (frontal) and sample 2 yaw -75, pitch 10
(profile).

Run from the workspace root (needs torch, numpy):

    target/torch-venv/bin/python scripts/heads_reference.py [--out PATH]

Re-running it rewrites the same file.
"""
import argparse
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

B, D, C = 8, 16, 10
ANGLE_EPS = 1e-7


def make_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, D))
    norms = rng.uniform(5.0, 120.0, B)
    w = rng.standard_normal((C, D))
    labels = rng.integers(0, C, B)
    yaw = rng.uniform(-90.0, 90.0, B)
    pitch = rng.uniform(-30.0, 30.0, B)
    roll = rng.uniform(-20.0, 20.0, B)
    noise = rng.standard_normal(D)
    norms[0] = 30.0
    norms[3] = 7.5
    x[0] = -(w[labels[0]] + 0.05 * noise)
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * norms[:, None]
    yaw[1], pitch[1] = 5.0, 3.0
    yaw[2], pitch[2] = -75.0, 10.0
    euler = np.stack([yaw, pitch, roll], axis=1)
    return x, w, labels.astype(np.int64), euler


def arc_target(tc, m):
    """cos(theta + m) on target cosines, with the theta + m > pi fallback.
    `m` may be a float or a per-sample tensor."""
    m = torch.as_tensor(m, dtype=tc.dtype)
    sin = torch.sqrt(torch.clamp(1.0 - tc * tc, min=0.0))
    main = tc * torch.cos(m) - sin * torch.sin(m)
    fallback = tc - m * torch.sin(m)
    return torch.where(tc > torch.cos(math.pi - m).detach(), main, fallback)


def no_grad_margin(tc, m1, m2, m3):
    """arcface_torch's CombinedMarginLoss: the margin added without gradient, no fallback."""
    with torch.no_grad():
        shifted = torch.cos(m1 * torch.acos(tc) + m2) - m3
    return tc + (shifted - tc.detach())


def capped_cross_entropy(logits, labels):
    """Mean cross-entropy, each sample's value capped at -ln 1e-30, gradient unchanged."""
    per = F.cross_entropy(logits, labels, reduction="none")
    cap = -math.log(1e-30)
    return (per + (per.clamp(max=cap) - per).detach()).mean()


def replace_target(cos, onehot, new_target):
    return torch.where(onehot, new_target[:, None].expand_as(cos), cos)


def paa_ratio(mapping, euler):
    yaw, pitch = np.abs(euler[:, 0]), np.abs(euler[:, 1])
    kind = mapping["kind"]
    if kind == "linear":
        return np.clip(np.maximum(yaw, pitch) / 90.0, 0.0, 1.0)
    if kind == "threshold":
        return (yaw > mapping["yaw_limit"]).astype(np.float64)
    if kind == "frequency":
        edges, p = mapping["edges"], np.asarray(mapping["probabilities"])
        out = []
        for v in yaw:
            b = len(p) - 1
            for i in range(len(p)):
                if edges[i] <= v < edges[i + 1]:
                    b = i
                    break
            out.append(1.0 - p[b] / p.max())
        return np.asarray(out)
    raise ValueError(kind)


def run_head(name, params, x, w, labels, euler):
    """Returns (logits, loss, extra dict) for one head; x, w are leaves."""
    xn = x / x.norm(dim=1, keepdim=True)
    wn = w / w.norm(dim=1, keepdim=True)
    cos = torch.clamp(xn @ wn.T, -1.0, 1.0)
    a = x.norm(dim=1)
    onehot = F.one_hot(labels, C).bool()
    tc = cos.gather(1, labels[:, None]).squeeze(1)
    if params.get("filter", 0.0) > 0.0:
        with torch.no_grad():
            dirty = (cos > params["filter"]) & ~onehot
        cos = cos * (1.0 - dirty.to(cos.dtype))
    s = params["s"]
    extra, add = {}, 0.0
    if name == "softmax":
        out = cos
    elif name == "sphereface":
        m = params["m"]
        th = torch.acos(torch.clamp(tc, -1 + ANGLE_EPS, 1 - ANGLE_EPS))
        k = torch.floor(m * th.detach() / math.pi)
        psi = (-1.0) ** k * torch.cos(m * th) - 2.0 * k
        out = replace_target(cos, onehot, psi)
    elif name in ("cosface", "cosface_filtered"):
        out = replace_target(cos, onehot, tc - params["m"])
    elif name in ("arcface", "arcface_filtered"):
        out = replace_target(cos, onehot, arc_target(tc, params["m"]))
    elif name == "arcface_straight_through":
        out = replace_target(cos, onehot, no_grad_margin(tc, 1.0, params["m"], 0.0))
    elif name == "combined_straight_through":
        t = no_grad_margin(tc, params["m1"], params["m2"], params["m3"])
        out = replace_target(cos, onehot, t)
    elif name == "paa_threshold_straight_through":
        r = paa_ratio(params["mapping"], euler)
        m_i = torch.tensor(params["m_b"] + r * params["delta_m"], dtype=torch.float64)
        out = replace_target(cos, onehot, no_grad_margin(tc, 1.0, m_i, 0.0))
        extra["margins"] = m_i.tolist()
    elif name == "combined":
        m1, m2, m3 = params["m1"], params["m2"], params["m3"]
        th = torch.acos(torch.clamp(tc, -1 + ANGLE_EPS, 1 - ANGLE_EPS))
        ok = (m1 * th.detach() + m2) <= math.pi
        t = torch.where(ok, torch.cos(m1 * th + m2) - m3,
                        tc - m3 - m2 * math.sin(m2))
        out = replace_target(cos, onehot, t)
    elif name == "curricularface":
        mom = params["momentum"]
        ctm = arc_target(tc, params["m"])
        t_new = mom * tc.detach().mean() + (1 - mom) * params["t_init"]
        hard = (cos.detach() > ctm.detach()[:, None]) & ~onehot
        out = torch.where(hard, cos * (t_new + cos), cos)
        out = replace_target(out, onehot, ctm)
        extra["state"] = {"t": t_new.item()}
        extra["hard_count"] = int(hard.sum())
    elif name == "magface":
        l_a, u_a, l_m, u_m = (params[k] for k in ("l_a", "u_a", "l_m", "u_m"))
        a_c = torch.clamp(a, l_a, u_a)
        m_i = (u_m - l_m) / (u_a - l_a) * (a_c - l_a) + l_m
        out = replace_target(cos, onehot, arc_target(tc, m_i))
        g = a_c / u_a ** 2 + 1.0 / a_c
        add = params["lambda_g"] * g.mean()
        extra["margins"] = m_i.tolist()
    elif name == "adaface":
        m, h, eps, ta = params["m"], params["h"], params["eps"], params["t_alpha"]
        n = torch.clamp(a, 0.001, 100.0).detach()
        bmean = ta * n.mean() + (1 - ta) * params["mean_init"]
        bstd = ta * n.std(unbiased=True) + (1 - ta) * params["std_init"]
        ms = torch.clamp((n - bmean) / (bstd + eps) * h, -1.0, 1.0)
        oh = onehot.to(cos.dtype)
        th = torch.acos(torch.clamp(cos, -1 + eps, 1 - eps))
        th_m = torch.clamp(th + oh * (-m * ms)[:, None], eps, math.pi - eps)
        out = torch.cos(th_m) - oh * (m + m * ms)[:, None]
        extra["state"] = {"batch_mean": bmean.item(), "batch_std": bstd.item()}
    elif name.startswith("paa_"):
        r = paa_ratio(params["mapping"], euler)
        m_i = torch.tensor(params["m_b"] + r * params["delta_m"], dtype=torch.float64)
        out = replace_target(cos, onehot, arc_target(tc, m_i))
        extra["margins"] = m_i.tolist()
    else:
        raise ValueError(name)
    logits = s * out
    loss = capped_cross_entropy(logits, labels) + add
    return logits, loss, extra


CASES = [
    ("softmax", {"s": 64.0}),
    ("sphereface", {"s": 64.0, "m": 1.5}),
    ("cosface", {"s": 64.0, "m": 0.4}),
    ("arcface", {"s": 64.0, "m": 0.5}),
    ("arcface_straight_through", {"s": 64.0, "m": 0.5, "gradient": "straight-through"}),
    ("combined", {"s": 64.0, "m1": 1.0, "m2": 0.3, "m3": 0.2}),
    ("curricularface", {"s": 64.0, "m": 0.5, "t_init": 0.0, "momentum": 0.01}),
    ("magface", {"s": 64.0, "l_a": 10.0, "u_a": 110.0, "l_m": 0.45, "u_m": 0.8,
                 "lambda_g": 35.0}),
    ("adaface", {"s": 64.0, "m": 0.4, "h": 0.333, "t_alpha": 0.01, "eps": 1e-3,
                 "mean_init": 20.0, "std_init": 100.0}),
    ("paa_linear", {"s": 64.0, "m_b": 0.5, "delta_m": 0.2,
                    "mapping": {"kind": "linear"}}),
    ("paa_threshold", {"s": 64.0, "m_b": 0.5, "delta_m": 0.2,
                       "mapping": {"kind": "threshold", "yaw_limit": 60.0}}),
    ("paa_frequency", {"s": 64.0, "m_b": 0.5, "delta_m": 0.2,
                       "mapping": {"kind": "frequency",
                                   "edges": [0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0],
                                   "probabilities": [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]}}),
    ("combined_straight_through", {"s": 64.0, "m1": 1.0, "m2": 0.3, "m3": 0.2,
                                   "gradient": "straight-through"}),
    ("paa_threshold_straight_through", {"s": 64.0, "m_b": 0.5, "delta_m": 0.2,
                                        "gradient": "straight-through",
                                        "mapping": {"kind": "threshold", "yaw_limit": 60.0}}),
    ("arcface_filtered", {"s": 64.0, "m": 0.5, "filter": 0.3}),
    ("cosface_filtered", {"s": 64.0, "m": 0.4, "filter": 0.3}),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="crates/poseface-loss/tests/fixtures/heads.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x_np, w_np, labels_np, euler = make_data()
    labels = torch.from_numpy(labels_np)

    # Sanity checks on the constructed samples.
    xn = x_np / np.linalg.norm(x_np, axis=1, keepdims=True)
    wn = w_np / np.linalg.norm(w_np, axis=1, keepdims=True)
    tcos = (xn * wn[labels_np]).sum(1)
    fb = tcos[0] <= math.cos(math.pi - 0.5)
    print(f"sample 0: target cos {tcos[0]:.6f}, theta {math.acos(tcos[0]):.4f}, "
          f"cos(pi-0.5) {math.cos(math.pi - 0.5):.4f} -> arcface fallback taken: {fb}")
    assert fb, "sample 0 must take the theta + m > pi branch"
    print("norms:", np.round(np.linalg.norm(x_np, axis=1), 3).tolist())
    print("target cos:", np.round(tcos, 4).tolist())

    doc = {"generator": "scripts/heads_reference.py", "torch": torch.__version__,
           "batch": B, "dim": D, "classes": C,
           "x": x_np.tolist(), "w": w_np.tolist(), "labels": labels_np.tolist(),
           "euler": euler.tolist(), "cases": []}
    # Every head twice: at its usual scale (s = 64, where random data saturates the softmax)
    # and at s = 4, where the non-target gradients depend on the margin too.
    runs = CASES + [(name, {**params, "s": 4.0}) for name, params in CASES]
    for name, params in runs:
        x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
        w = torch.tensor(w_np, dtype=torch.float64, requires_grad=True)
        logits, loss, extra = run_head(name, params, x, w, labels, euler)
        loss.backward()
        for t in (logits, x.grad, w.grad):
            assert torch.isfinite(t).all(), name
        case = {"name": name, "head": params, "loss": loss.item(),
                "logits": logits.detach().tolist(),
                "grad_x": x.grad.tolist(), "grad_w": w.grad.tolist()}
        if "state" in extra:
            case["state"] = extra["state"]
        if "margins" in extra and name.startswith("paa_"):
            case["margins"] = extra["margins"]
        doc["cases"].append(case)
        info = ""
        if "state" in extra:
            info += " state=" + json.dumps(extra["state"])
        if "margins" in extra:
            info += " margins=[" + ", ".join(f"{v:.4f}" for v in extra["margins"]) + "]"
        if "hard_count" in extra:
            info += f" hard={extra['hard_count']}"
        print(f"{name:26s} loss={loss.item():.10g} |grad_x|={x.grad.norm():.6g} "
              f"|grad_w|={w.grad.norm():.6g}{info}")

    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
