#!/usr/bin/env python3
"""Reference values for poseface-eval's linear pose probe (``src/probe.rs``).

Written for this project. The probe asks how much of a target (e.g. head yaw) a ridge
regression can read off features, fitted on one part of the data and scored on the rest:

1. Rows ``0..n_train`` are the fit half, rows ``n_train..n`` the score half.
2. Features are standardised with the fit half's column mean and population standard
   deviation (``ddof=0``); a column whose std is exactly 0 is divided by 1 instead.
3. ``sklearn.linear_model.Ridge(alpha=1.0, fit_intercept=True)`` is fitted on the
   standardised fit half (the penalty does not touch the intercept).
4. The standardised score half is predicted and scored with ``sklearn.metrics.r2_score``:
   R² = 1 - SS_res / SS_tot, SS_tot about the score half's own target mean, so a useless
   probe scores about 0 or below.

Writes ``crates/poseface-eval/tests/fixtures/probe_reference.json``: a list of cases
``{name, n_train, d, x (row-major, n*d), y, r2, coef (standardised space), intercept}``.
The features are drawn in float64 and rounded to float32 values (then stored as float64),
so a reader that takes float32 features sees exactly the inputs used here. Deterministic
(``numpy.random.default_rng``); prints each case's R².

    /tmp/pyref/bin/python scripts/probe_reference.py     # needs numpy, scikit-learn
"""
import json
import os

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

OUT = os.path.join(
    os.path.dirname(__file__), "..", "crates", "poseface-eval", "tests", "fixtures",
    "probe_reference.json",
)
ALPHA = 1.0
SEED = 20240611


def probe(x, y, n_train):
    """Returns (r2, coef, intercept) of the ridge probe described above."""
    fit, score = x[:n_train], x[n_train:]
    mean = fit.mean(axis=0)
    std = fit.std(axis=0, ddof=0)
    std[std == 0] = 1.0
    model = Ridge(alpha=ALPHA, fit_intercept=True).fit((fit - mean) / std, y[:n_train])
    pred = model.predict((score - mean) / std)
    return float(r2_score(y[n_train:], pred)), model.coef_, float(model.intercept_)


def f32(a):
    """Rounds to float32-representable values, kept as float64."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def cases(rng):
    # (a) linear signal plus a little noise
    x = f32(rng.standard_normal((60, 5)))
    y = x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + 0.3 * rng.standard_normal(60)
    yield "linear", x, y, 30
    # (b) no signal: y independent of x
    x = f32(rng.standard_normal((80, 8)))
    y = rng.standard_normal(80)
    yield "no_signal", x, y, 40
    # (c) wide: d = 30 just over n_train = 28 (no unique least-squares fit; the penalty decides)
    x = f32(rng.standard_normal((40, 30)))
    y = x[:, :4] @ np.array([1.0, -1.0, 0.5, 2.0]) + 0.5 * rng.standard_normal(40)
    yield "wide", x, y, 28
    # (d) one constant column (std 0, kept at scale 1); its values are exact, so the
    #     fit half's std is exactly 0
    x = f32(rng.standard_normal((50, 4)) * np.array([1.0, 2.0, 0.5, 1.0]) + 1.0)
    x[:, 2] = 2.5
    y = 2.0 * x[:, 0] - x[:, 1] + 0.7 * x[:, 3] + 0.2 * rng.standard_normal(50)
    yield "constant_column", x, y, 25
    # (e) nonlinear: a linear probe partly misses |x0|
    x = f32(rng.standard_normal((100, 3)))
    y = np.abs(x[:, 0]) * 10.0 + rng.standard_normal(100)
    yield "nonlinear", x, y, 50


def main():
    rng = np.random.default_rng(SEED)
    out = []
    for name, x, y, n_train in cases(rng):
        r2, coef, intercept = probe(x, y, n_train)
        print(f"{name:16s} n={x.shape[0]:3d} d={x.shape[1]:2d} n_train={n_train:3d} r2={r2!r}")
        out.append({
            "name": name,
            "n_train": n_train,
            "d": int(x.shape[1]),
            "x": [float(v) for v in x.ravel()],
            "y": [float(v) for v in y],
            "r2": r2,
            "coef": [float(v) for v in coef],
            "intercept": intercept,
        })
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
