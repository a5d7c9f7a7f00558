#!/usr/bin/env python3
"""Reference values for poseface-eval's verification and ROC metrics.

Written for this project: an independent NumPy / scikit-learn implementation of
insightface's 10-fold verification protocol (``verification.py``: squared L2 on normalised
embeddings, ``KFold(10, shuffle=False)``, thresholds ``arange(0, 4, 0.01)``, first argmax
on the training folds) and of its IJB TAR@FAR reading (``sklearn.metrics.roc_curve``, the
curve reversed, then the first point with the nearest FPR: the highest TPR at that FPR). VAL@FAR uses the piecewise-linear reading documented in
``crates/poseface-eval/src/verification.rs`` (SciPy's ``interp1d`` no longer accepts the
repeated FAR values insightface hands it).

Writes ``crates/poseface-eval/tests/fixtures/``: ``eval_random.f32`` (float32 embeddings,
little endian) and ``eval_reference.json``.

    python3 scripts/eval_reference.py     # needs numpy, scikit-learn
"""
import json
import os

import numpy as np
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "poseface-eval", "tests", "fixtures")


def accuracy_at(threshold, dist, issame):
    predict = dist < threshold
    tp = np.sum(predict & issame)
    tn = np.sum(~predict & ~issame)
    return float(tp + tn) / dist.size


def val_far_at(threshold, dist, issame):
    predict = dist < threshold
    val = np.sum(predict & issame) / np.sum(issame)
    far = np.sum(predict & ~issame) / np.sum(~issame)
    return float(val), float(far)


def val_threshold(far_train, thresholds, target):
    if far_train.max() < target:
        return 0.0
    last = np.nonzero(far_train <= target)[0]
    last = int(last[-1]) if last.size else 0
    if far_train[last] == target or last == len(thresholds) - 1:
        return float(thresholds[last])
    f0, f1 = far_train[last], far_train[last + 1]
    t0, t1 = thresholds[last], thresholds[last + 1]
    return float(t0 + (target - f0) / (f1 - f0) * (t1 - t0))


def ten_fold(dist, issame, far_target=1e-3):
    thresholds = np.arange(0, 4, 0.01)
    val_thresholds = np.arange(0, 4, 0.001)
    acc, thr, vals, fars = [], [], [], []
    idx = np.arange(len(dist))
    for train, test in KFold(n_splits=10, shuffle=False).split(idx):
        acc_train = np.array([accuracy_at(t, dist[train], issame[train]) for t in thresholds])
        best = int(np.argmax(acc_train))
        acc.append(accuracy_at(thresholds[best], dist[test], issame[test]))
        thr.append(float(thresholds[best]))
        far_train = np.array([val_far_at(t, dist[train], issame[train])[1] for t in val_thresholds])
        t = val_threshold(far_train, val_thresholds, far_target)
        v, f = val_far_at(t, dist[test], issame[test])
        vals.append(v)
        fars.append(f)
    return {
        "fold_accuracy": acc,
        "fold_threshold": thr,
        "accuracy_mean": float(np.mean(acc)),
        "accuracy_std": float(np.std(acc)),
        "val": float(np.mean(vals)),
        "val_std": float(np.std(vals)),
        "far": float(np.mean(fars)),
    }


def roc_reference(issame, scores):
    fpr, tpr, thr = roc_curve(issame.astype(int), scores)
    fars = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    # As insightface's IJB evaluation: the curve reversed, then the first point with the
    # nearest FPR, i.e. the largest TPR at that FPR.
    rfpr, rtpr = np.flipud(fpr), np.flipud(tpr)
    tar = [float(rtpr[np.argmin(np.abs(rfpr - x))]) for x in fars]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "tar_at_far": tar}


def ijb_reference(rng):
    """IJB-style template aggregation as insightface's eval_ijbc.py does it (N1D1F2)."""
    n_ids, dim = 40, 16
    centres = rng.standard_normal((n_ids, dim))
    templates, medias, feats, ident = [], [], [], []
    media = 100
    for t in range(2 * n_ids):
        tid = 1000 + 3 * t  # non-contiguous ids
        for _ in range(rng.integers(1, 4)):
            media += 1
            for _ in range(rng.integers(1, 4)):
                templates.append(tid)
                medias.append(media)
                feats.append(centres[t // 2] + rng.standard_normal(dim) * 1.2)
        ident.append(t // 2)
    feats = np.array(feats, dtype=np.float32)
    faceness = rng.uniform(0.4, 1.0, len(templates)).astype(np.float32)
    templates, medias = np.array(templates), np.array(medias)
    img = feats * faceness[:, np.newaxis]
    uq = np.unique(templates)
    tfeat = np.zeros((len(uq), dim), dtype=np.float32)
    for k, t in enumerate(uq):
        ind_t = np.where(templates == t)
        f, m = img[ind_t], medias[ind_t]
        um, counts = np.unique(m, return_counts=True)
        parts = []
        for u, ct in zip(um, counts):
            ind_m = np.where(m == u)
            parts.append(f[ind_m] if ct < 2 else np.mean(f[ind_m], axis=0, keepdims=True))
        tfeat[k] = np.sum(np.concatenate(parts), axis=0)
    tnorm = tfeat / np.linalg.norm(tfeat, axis=1, keepdims=True)
    index = {t: k for k, t in enumerate(uq)}
    t1 = rng.choice(uq, 400)
    t2 = rng.choice(uq, 400)
    t2[:60] = [u + 3 if ((u - 1000) // 3) % 2 == 0 else u - 3 for u in t1[:60]]  # genuine pairs
    ident_of = {1000 + 3 * t: t // 2 for t in range(2 * n_ids)}
    labels = np.array([ident_of[a] == ident_of[b] for a, b in zip(t1, t2)])
    score = np.sum(tnorm[[index[a] for a in t1]] * tnorm[[index[b] for b in t2]], -1)
    return {
        "dim": dim,
        "features": feats.ravel().tolist(),
        "face_scores": faceness.tolist(),
        "templates": templates.tolist(),
        "medias": medias.tolist(),
        "t1": [int(x) for x in t1],
        "t2": [int(x) for x in t2],
        "labels": labels.tolist(),
        "pair_scores": score.astype(np.float32).tolist(),
        "roc": roc_reference(labels, score.astype(np.float32)),
    }


def main():
    rng = np.random.default_rng(20261128)
    # Random embeddings: 1003 pairs (folds of 101 and 100), 16-d; genuine pairs share a
    # direction plus noise of varying strength, so the classes overlap.
    n, dim = 1003, 16
    issame = rng.random(n) < 0.5
    base = rng.standard_normal((n, dim))
    noise = rng.standard_normal((n, dim)) * rng.uniform(0.3, 1.5, (n, 1))
    other = rng.standard_normal((n, dim))
    a = base
    b = np.where(issame[:, None], base + noise, other)
    emb = np.empty((2 * n, dim), dtype=np.float32)
    emb[0::2] = a / np.linalg.norm(a, axis=1, keepdims=True)
    emb[1::2] = b / np.linalg.norm(b, axis=1, keepdims=True)
    e1, e2 = emb[0::2], emb[1::2]
    # insightface's test() copies the network's float32 outputs into float64 arrays: the
    # distances are double precision.
    dist = np.sum(np.square(e1.astype(np.float64) - e2.astype(np.float64)), 1)
    scores = np.sum(e1 * e2, 1).astype(np.float32)
    # Grid distances: every distance lies exactly on the threshold grid (ties at thresholds),
    # with a few repeated scores for the ROC.
    m = 600
    grid_same = np.arange(m) % 3 != 0
    grid_dist = np.where(grid_same, rng.integers(20, 160, m), rng.integers(90, 260, m)) * 0.01
    grid_scores = (-np.round(grid_dist, 1)).astype(np.float32)
    ijb = ijb_reference(rng)
    os.makedirs(OUT, exist_ok=True)
    emb.astype("<f4").tofile(os.path.join(OUT, "eval_random.f32"))
    ref = {
        "generator": "scripts/eval_reference.py",
        "random": {
            "dim": dim,
            "issame": issame.tolist(),
            "scores": scores.tolist(),
            "ten_fold": ten_fold(dist, issame),
            "roc": roc_reference(issame, scores),
        },
        "grid": {
            "issame": grid_same.tolist(),
            "dist": grid_dist.tolist(),
            "scores": grid_scores.tolist(),
            "ten_fold": ten_fold(grid_dist, grid_same),
            "roc": roc_reference(grid_same, grid_scores),
        },
        "ijb": ijb,
    }
    with open(os.path.join(OUT, "eval_reference.json"), "w") as f:
        json.dump(ref, f)
    print("wrote", OUT, ref["random"]["ten_fold"]["accuracy_mean"], ref["grid"]["ten_fold"]["accuracy_mean"])


if __name__ == "__main__":
    main()
