#!/usr/bin/env python3
"""NumPy peer of poseface-eval's `ten_fold_6000` benchmark.

Written for this project: insightface's 10-fold verification as its ``verification.py``
computes it (a Python loop over 400 accuracy thresholds and 4,000 VAL thresholds per fold,
NumPy inside), on 6,000 random pairs of 512-d normalised embeddings, timed end to end from
embeddings to the result. Prints one JSON object; ``--json-out`` also writes it.

    /tmp/pyref/bin/python scripts/eval_bench.py --min-seconds 3
"""
import argparse
import json
import os
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-seconds", type=float, default=3.0)
    ap.add_argument("--json-out")
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
    print(json.dumps(out))
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
