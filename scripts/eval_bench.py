#!/usr/bin/env python3
"""NumPy peer of poseface-eval's `ten_fold_6000` and `ijbc_1to1` benchmarks.

Written for this project:

- insightface's 10-fold verification as its ``verification.py`` computes it (a Python loop
  over 400 accuracy thresholds and 4,000 VAL thresholds per fold, NumPy inside), on 6,000
  random pairs of 512-d normalised embeddings, timed end to end from embeddings to the result;
- with ``--ijbc``, IJB-C 1:1 at full size the way insightface's IJB evaluation does it: a
  Python loop over templates (media averaged, then summed, L2-normalised), pair scores in
  batches of 100,000 pairs, scikit-learn's ``roc_curve`` and TAR at the nearest FAR; the same
  sizes and layout as the Rust benchmark (random features, 3 images per media). Two choices
  favour the peer over insightface's script: templates are found by a sorted lookup rather
  than a scan of all images, and features stay float32 where insightface's are float64.

Prints one JSON object; ``--json-out`` also writes it.

    /tmp/pyref/bin/python scripts/eval_bench.py --min-seconds 3 [--ijbc]
"""
import argparse
import json
import os
import resource
import time

import numpy as np
from sklearn.model_selection import KFold


def accuracy(threshold, dist, issame):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, issame))
    tn = np.sum(np.logical_and(np.logical_not(predict), np.logical_not(issame)))
    return float(tp + tn) / dist.size


def val_far(threshold, dist, issame):
    predict = np.less(dist, threshold)
    ta = np.sum(np.logical_and(predict, issame))
    fa = np.sum(np.logical_and(predict, np.logical_not(issame)))
    return float(ta) / np.sum(issame), float(fa) / np.sum(np.logical_not(issame))


def ten_fold(emb, issame):
    e1, e2 = emb[0::2], emb[1::2]
    dist = np.sum(np.square(e1 - e2), 1)
    th = np.arange(0, 4, 0.01)
    vth = np.arange(0, 4, 0.001)
    acc, vals = [], []
    for train, test in KFold(n_splits=10, shuffle=False).split(np.arange(len(dist))):
        acc_train = np.array([accuracy(t, dist[train], issame[train]) for t in th])
        acc.append(accuracy(th[int(np.argmax(acc_train))], dist[test], issame[test]))
        far_train = np.array([val_far(t, dist[train], issame[train])[1] for t in vth])
        t = float(np.interp(1e-3, far_train, vth)) if far_train.max() >= 1e-3 else 0.0
        vals.append(val_far(t, dist[test], issame[test])[0])
    return np.mean(acc), np.std(acc), np.mean(vals)


def ijbc():
    """Seconds for one IJB-C-size 1:1 evaluation, from image features to TAR@FAR."""
    from sklearn.metrics import roc_curve

    images, n_templates, n_pairs, dim = 227_630, 23_124, 15_658_489, 512
    rng = np.random.default_rng(2)
    feats = rng.uniform(-1, 1, (images, dim)).astype(np.float32)
    face_scores = np.full(images, 0.9, dtype=np.float32)
    templates = (np.arange(images) * n_templates // images + 1).astype(np.int64)
    medias = (np.arange(images) // 3).astype(np.int64)
    pairs = rng.integers(1, n_templates + 1, (n_pairs, 2))
    # Grouped by first template, as the real pair list and the Rust benchmark's are.
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    labels = (np.arange(n_pairs) % 80 == 0).astype(np.int64)
    start = time.perf_counter()
    weighted = feats * face_scores[:, None]
    ids = np.unique(templates)
    tfeat = np.zeros((len(ids), dim), dtype=np.float32)
    for k, t in enumerate(ids):
        lo, hi = np.searchsorted(templates, [t, t + 1])
        tf, tm = weighted[lo:hi], medias[lo:hi]
        summed = np.zeros(dim, dtype=np.float32)
        for m in np.unique(tm):
            summed += tf[tm == m].mean(0)
        tfeat[k] = summed
    tfeat /= np.linalg.norm(tfeat, axis=1, keepdims=True)
    row = np.zeros(ids.max() + 1, dtype=np.int64)
    row[ids] = np.arange(len(ids))
    scores = np.zeros(n_pairs, dtype=np.float32)
    for b in range(0, n_pairs, 100_000):
        a, c = row[pairs[b:b + 100_000, 0]], row[pairs[b:b + 100_000, 1]]
        scores[b:b + 100_000] = np.sum(tfeat[a] * tfeat[c], -1)
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)  # insightface: the largest TPR at the same FPR
    tar = [float(tpr[np.argmin(np.abs(fpr - far))]) for far in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)]
    return time.perf_counter() - start, tar


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--json-out")
    ap.add_argument("--ijbc", action="store_true", help="also time IJB-C-size 1:1 (once)")
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    emb = rng.uniform(-1, 1, (12000, 512)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    issame = (np.arange(6000) // 300) % 2 == 0
    runs, start = 0, time.perf_counter()
    while True:
        ten_fold(emb, issame)
        runs += 1
        if time.perf_counter() - start >= a.min_seconds:
            break
    per = (time.perf_counter() - start) / runs
    out = {
        "peer": "numpy + scikit-learn KFold (insightface verification.py loop)",
        "ten_fold_6000_seconds": per,
        "runs": runs,
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "versions": {"numpy": np.__version__},
    }
    if a.ijbc:
        out["ijbc_1to1_seconds"], out["ijbc_tar_at_far"] = ijbc()
        # ru_maxrss is in kilobytes on Linux.
        out["peak_resident_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
