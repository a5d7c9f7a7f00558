//! The 10-fold verification protocol of LFW-style `.bin` sets, exactly as insightface's
//! `verification.py` computes it.
//!
//! Pair `k` is rows `2k` and `2k + 1` of the embeddings. Distances are squared L2 between
//! the (already normalised) embeddings, in `f64`: insightface's `test()` copies the network's
//! float32 outputs into float64 arrays, so the image + mirror sum ([`fuse_flip_f64`]), the
//! normalisation and the distances are all double precision there (only the summation order
//! differs, far below the thresholds' 0.01 spacing). Folds are contiguous, sized like scikit-learn's
//! `KFold(n_splits, shuffle=False)` (the first `n % folds` folds one pair larger). For each
//! fold the threshold among `0, 0.01, …, 3.99` with the best accuracy on the other folds (the
//! first one on ties) is applied to the fold; accuracy is reported as mean ± population std.
//!
//! VAL@FAR: on the other folds, the threshold (among `0, 0.001, …, 3.999`) at which the
//! false accept rate reaches the target, interpolated linearly between the last threshold
//! at or below the target FAR and the next one, is applied to the fold. (insightface
//! interpolates with `scipy.interpolate.interp1d(far, thresholds, kind="slinear")`, which
//! current SciPy refuses because the FAR curve has repeated values; this is the same
//! piecewise-linear reading made well defined.) When the target FAR is never reached the
//! threshold is 0, as in insightface.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, check_finite};

/// What the 10-fold protocol reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationResult {
    /// Accuracy per fold.
    pub fold_accuracy: Vec<f64>,
    /// Best threshold per fold (chosen on the other folds).
    pub fold_threshold: Vec<f64>,
    /// Mean accuracy.
    pub accuracy_mean: f64,
    /// Population standard deviation of the fold accuracies.
    pub accuracy_std: f64,
    /// Mean of the per-fold thresholds.
    pub threshold_mean: f64,
    /// Mean VAL (true accept rate) at the target FAR.
    pub val: f64,
    /// Population standard deviation of VAL over folds.
    pub val_std: f64,
    /// Mean FAR actually reached on the test folds.
    pub far: f64,
    /// The target FAR of `val`.
    pub far_target: f64,
}

/// Contiguous fold ranges of `n` items, as scikit-learn's `KFold(folds, shuffle=False)`.
pub fn fold_ranges(n: usize, folds: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::with_capacity(folds);
    let mut start = 0;
    for f in 0..folds {
        let size = n / folds + usize::from(f < n % folds);
        out.push(start..start + size);
        start += size;
    }
    out
}

/// Squared L2 distance of each pair (rows `2k`, `2k + 1` of `embeddings`, `f32` or `f64`,
/// `dim` wide), accumulated in `f64`.
pub fn pair_distances<T: Copy + Into<f64> + std::fmt::Display>(
    embeddings: &[T],
    dim: usize,
) -> Result<Vec<f64>, EvalError> {
    if dim == 0 || !embeddings.len().is_multiple_of(2 * dim) {
        return Err(EvalError::Mismatch(format!(
            "{} values are not whole pairs of {dim}-d embeddings",
            embeddings.len()
        )));
    }
    check_finite(embeddings, dim, "embedding row")?;
    Ok(embeddings
        .chunks_exact(2 * dim)
        .map(|p| {
            p[..dim]
                .iter()
                .zip(&p[dim..])
                .map(|(&a, &b)| {
                    let d = a.into() - b.into();
                    d * d
                })
                .sum()
        })
        .collect())
}

/// Counts over a set of pairs at every threshold at once: `same[t]` / `diff[t]` are the
/// genuine / impostor pairs with distance below threshold `t` (thresholds `i · step`).
struct Counts {
    same: Vec<u32>,
    diff: Vec<u32>,
    n_same: u32,
    n_diff: u32,
}

fn counts(
    dist: &[f64],
    issame: &[bool],
    idx: impl Iterator<Item = usize>,
    steps: usize,
    step: f64,
) -> Counts {
    // A pair with distance d is accepted at every threshold t with d < t, i.e. from the first
    // index i with i·step > d. Histogram those first indices, then prefix-sum.
    let (mut same, mut diff) = (vec![0u32; steps + 1], vec![0u32; steps + 1]);
    let (mut n_same, mut n_diff) = (0, 0);
    for i in idx {
        let d = dist[i];
        let mut first = ((d / step).floor().max(0.0) as usize).min(steps);
        while first < steps && (first as f64 * step) <= d {
            first += 1;
        }
        while first > 0 && ((first - 1) as f64 * step) > d {
            first -= 1;
        }
        if issame[i] {
            same[first] += 1;
            n_same += 1;
        } else {
            diff[first] += 1;
            n_diff += 1;
        }
    }
    for t in 1..=steps {
        same[t] += same[t - 1];
        diff[t] += diff[t - 1];
    }
    same.truncate(steps);
    diff.truncate(steps);
    Counts {
        same,
        diff,
        n_same,
        n_diff,
    }
}

impl Counts {
    fn accuracy(&self, t: usize) -> f64 {
        let tp = self.same[t];
        let tn = self.n_diff - self.diff[t];
        (tp + tn) as f64 / (self.n_same + self.n_diff) as f64
    }
    fn far(&self, t: usize) -> f64 {
        self.diff[t] as f64 / self.n_diff as f64
    }
}

/// Accepted genuine and impostor shares at one arbitrary threshold.
fn val_far(
    dist: &[f64],
    issame: &[bool],
    idx: std::ops::Range<usize>,
    threshold: f64,
) -> (f64, f64) {
    let (mut ta, mut fa, mut ns, mut nd) = (0u32, 0u32, 0u32, 0u32);
    for i in idx {
        let accept = dist[i] < threshold;
        if issame[i] {
            ns += 1;
            ta += u32::from(accept);
        } else {
            nd += 1;
            fa += u32::from(accept);
        }
    }
    (ta as f64 / ns as f64, fa as f64 / nd as f64)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// Runs the protocol on pair distances.
pub fn verify_distances(
    dist: &[f64],
    issame: &[bool],
    folds: usize,
    far_target: f64,
) -> Result<VerificationResult, EvalError> {
    if dist.len() != issame.len() {
        return Err(EvalError::Mismatch(format!(
            "{} pairs of embeddings but {} labels",
            dist.len(),
            issame.len()
        )));
    }
    if folds < 2 || dist.len() < folds {
        return Err(EvalError::TooFew(format!(
            "{} pairs cannot make {folds} folds",
            dist.len()
        )));
    }
    let ranges = fold_ranges(dist.len(), folds);
    for r in &ranges {
        let s = issame[r.clone()].iter().filter(|&&x| x).count();
        if s == 0 || s == r.len() {
            return Err(EvalError::TooFew(format!(
                "fold {}..{} lacks genuine or impostor pairs",
                r.start, r.end
            )));
        }
    }
    let (mut acc, mut thr, mut vals, mut fars) = (vec![], vec![], vec![], vec![]);
    for test in &ranges {
        let train = || (0..dist.len()).filter(|i| !test.contains(i));
        // Accuracy: thresholds 0.00 … 3.99, first argmax on the training folds.
        let c = counts(dist, issame, train(), 400, 0.01);
        let best = (0..400).fold(0, |b, t| if c.accuracy(t) > c.accuracy(b) { t } else { b });
        let th = best as f64 * 0.01;
        let correct = test
            .clone()
            .filter(|&i| (dist[i] < th) == issame[i])
            .count();
        acc.push(correct as f64 / test.len() as f64);
        thr.push(th);
        // VAL@FAR: thresholds 0.000 … 3.999.
        let c = counts(dist, issame, train(), 4000, 0.001);
        let t_far = if c.far(3999) >= far_target {
            let last = (0..4000)
                .rev()
                .find(|&t| c.far(t) <= far_target)
                .unwrap_or(0);
            if c.far(last) == far_target || last == 3999 {
                last as f64 * 0.001
            } else {
                let (f0, f1) = (c.far(last), c.far(last + 1));
                let (t0, t1) = (last as f64 * 0.001, (last + 1) as f64 * 0.001);
                t0 + (far_target - f0) / (f1 - f0) * (t1 - t0)
            }
        } else {
            0.0
        };
        let (v, f) = val_far(dist, issame, test.clone(), t_far);
        vals.push(v);
        fars.push(f);
    }
    let (accuracy_mean, accuracy_std) = mean_std(&acc);
    let (val, val_std) = mean_std(&vals);
    Ok(VerificationResult {
        accuracy_mean,
        accuracy_std,
        threshold_mean: mean_std(&thr).0,
        fold_accuracy: acc,
        fold_threshold: thr,
        val,
        val_std,
        far: mean_std(&fars).0,
        far_target,
    })
}

/// The 10-fold protocol with VAL@FAR=1e-3 on normalised embeddings (`dim` wide, pair `k`
/// = rows `2k`, `2k+1`), as insightface evaluates a `.bin` set.
pub fn verify<T: Copy + Into<f64> + std::fmt::Display>(
    embeddings: &[T],
    dim: usize,
    issame: &[bool],
) -> Result<VerificationResult, EvalError> {
    verify_distances(&pair_distances(embeddings, dim)?, issame, 10, 1e-3)
}

/// Rows of `embeddings` + their flipped-image embeddings, summed and L2-normalised in
/// `f64`: insightface's `normalize(e + e_flip)` on the float64 copies its `test()` makes.
pub fn fuse_flip_f64(
    embeddings: &[f32],
    flipped: &[f32],
    dim: usize,
) -> Result<Vec<f64>, EvalError> {
    if embeddings.len() != flipped.len() || dim == 0 || !embeddings.len().is_multiple_of(dim) {
        return Err(EvalError::Mismatch(format!(
            "{} and {} values for {dim}-d rows",
            embeddings.len(),
            flipped.len()
        )));
    }
    let mut out = Vec::with_capacity(embeddings.len());
    for (a, b) in embeddings.chunks_exact(dim).zip(flipped.chunks_exact(dim)) {
        let start = out.len();
        out.extend(a.iter().zip(b).map(|(&x, &y)| f64::from(x) + f64::from(y)));
        normalise_f64(&mut out[start..]);
    }
    Ok(out)
}

/// Divides `row` by `max(‖row‖, 1e-12)`, as scikit-learn's `normalize` (which leaves zero rows
/// as they are) and PyTorch's `F.normalize` do.
pub fn normalise_f64(row: &mut [f64]) {
    let n = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
    row.iter_mut().for_each(|v| *v /= n);
}

/// [`fuse_flip_f64`] rounded to `f32`, for callers that store embeddings in single precision.
pub fn fuse_flip(embeddings: &[f32], flipped: &[f32], dim: usize) -> Result<Vec<f32>, EvalError> {
    Ok(fuse_flip_f64(embeddings, flipped, dim)?
        .into_iter()
        .map(|v| v as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_added_and_normalised_in_double_precision() {
        // 2^24 + 1 is not a float32: a single-precision sum would make both components equal.
        let big = 16_777_216f32;
        let out = fuse_flip_f64(&[big, big], &[1.0, 0.0], 2).unwrap();
        let n = (16_777_217f64.powi(2) + 16_777_216f64.powi(2)).sqrt();
        assert_eq!(out, vec![16_777_217.0 / n, 16_777_216.0 / n]);
        assert!(out[0] > out[1]);
        // A zero row stays zero, as scikit-learn's `normalize` leaves it.
        assert_eq!(
            fuse_flip_f64(&[0.0; 2], &[0.0; 2], 2).unwrap(),
            vec![0.0; 2]
        );
        assert!(fuse_flip_f64(&[1.0; 3], &[1.0; 2], 2).is_err());
    }

    #[test]
    fn folds_are_sized_like_kfold() {
        let r = fold_ranges(23, 10);
        let sizes: Vec<usize> = r.iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(r[9].end, 23);
    }

    #[test]
    fn separable_pairs_score_perfectly_and_bad_input_is_an_error() {
        // Genuine distances 0.5, impostor 2.5: every threshold in (0.5, 2.5] is perfect; the
        // first argmax is 0.51.
        let issame: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        let dist: Vec<f64> = issame.iter().map(|&s| if s { 0.5 } else { 2.5 }).collect();
        let r = verify_distances(&dist, &issame, 10, 1e-3).unwrap();
        assert_eq!(r.accuracy_mean, 1.0);
        assert_eq!(r.accuracy_std, 0.0);
        assert!((r.threshold_mean - 0.51).abs() < 1e-12);
        assert_eq!(r.val, 1.0);
        assert!(verify_distances(&dist[..50], &issame, 10, 1e-3).is_err());
        assert!(pair_distances(&[0.0, f32::NAN, 1.0, 1.0], 2).is_err());
        assert!(pair_distances(&[0.0; 6], 2).is_err());
    }
}
