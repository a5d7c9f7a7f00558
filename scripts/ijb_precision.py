#!/usr/bin/env python3
"""How much IJB-C TAR@FAR moves when template features and pair scores are single instead of
double precision (our own script; the figure quoted in docs/PARITY.md).

poseface-eval keeps IJB templates and scores in float32; insightface's eval_ijbc.py sums the
media in float32 but normalises the templates and scores the pairs in float64. Real IJB-C is
not available here, so this builds a set of IJB-C's size with a realistic score spread:
3,531 subjects, 23,124 templates of 512-d features (a subject's direction plus per-template
noise of varying strength, so genuine cosines spread from about 0.1 to 0.8 while impostors
lie around 0 +- 0.04), 19,557 genuine and 15,638,932 impostor pairs. The same float32 template sums are then normalised and scored
once in float32 and once in float64, and TAR at FAR 1e-6 ... 1e-1 is read from each ROC as
insightface reads it (the curve reversed, the first point with the nearest FPR).

    target/bench-venv/bin/python scripts/ijb_precision.py     # numpy, scikit-learn; ~2 min
"""
import json

import numpy as np
from sklearn.metrics import roc_curve

SUBJECTS, TEMPLATES, DIM = 3_531, 23_124, 512
GENUINE, IMPOSTORS = 19_557, 15_638_932
FARS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
BATCH = 100_000


def tar_at_far(labels, scores):
    fpr, tpr, _ = roc_curve(labels, scores)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    return [float(tpr[np.argmin(np.abs(fpr - far))]) for far in FARS]


def scores_of(feats, t1, t2):
    out = np.empty(len(t1), dtype=feats.dtype)
    for b in range(0, len(t1), BATCH):
        out[b:b + BATCH] = np.sum(feats[t1[b:b + BATCH]] * feats[t2[b:b + BATCH]], -1)
    return out


def main():
    rng = np.random.default_rng(7)
    subject = rng.integers(0, SUBJECTS, TEMPLATES)
    centres = rng.standard_normal((SUBJECTS, DIM)).astype(np.float32)
    # Template sums as float32 (as both sides hold them after the media sums).
    # Per-template quality: noise from half to three times the subject direction's scale, so
    # genuine cosines spread from about 0.1 to 0.8 and overlap the impostors' tail.
    sigma = rng.uniform(0.5, 3.0, (TEMPLATES, 1))
    sums = (centres[subject] + sigma * rng.standard_normal((TEMPLATES, DIM))).astype(np.float32)
    by_subject = {}
    for t, s in enumerate(subject):
        by_subject.setdefault(int(s), []).append(t)
    multi = [ts for ts in by_subject.values() if len(ts) > 1]
    g = np.array([rng.choice(multi[k], 2, replace=False)
                  for k in rng.integers(0, len(multi), GENUINE)])
    i1 = rng.integers(0, TEMPLATES, IMPOSTORS)
    i2 = rng.integers(0, TEMPLATES, IMPOSTORS)
    same = subject[i1] == subject[i2]
    i2[same] = (i2[same] + 1) % TEMPLATES  # almost surely another subject now
    t1 = np.concatenate([g[:, 0], i1])
    t2 = np.concatenate([g[:, 1], i2])
    labels = np.concatenate([np.ones(GENUINE, np.int8), (subject[i1] == subject[i2]).astype(np.int8)])

    f32 = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    f64 = sums.astype(np.float64)
    f64 /= np.linalg.norm(f64, axis=1, keepdims=True)
    s32 = scores_of(f32, t1, t2)
    s64 = scores_of(f64, t1, t2)
    tar32, tar64 = tar_at_far(labels, s32), tar_at_far(labels, s64)
    genuine = int(labels.sum())
    moved = [round(abs(a - b) * genuine) for a, b in zip(tar32, tar64)]
    ties32 = len(s32) - len(np.unique(s32))
    ties64 = len(s64) - len(np.unique(s64))
    out = {
        "pairs": len(labels),
        "genuine": genuine,
        "tar_float32": tar32,
        "tar_float64": tar64,
        "genuine_pairs_moved": moved,
        "max_abs_tar_difference": max(abs(a - b) for a, b in zip(tar32, tar64)),
        "repeated_scores_float32": ties32,
        "repeated_scores_float64": ties64,
        "genuine_mean_score": float(s64[labels == 1].mean()),
        "genuine_score_quantiles_10_50_90": np.quantile(s64[labels == 1], [0.1, 0.5, 0.9]).tolist(),
        "impostor_score_std": float(s64[labels == 0].std()),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
