//! ROC curves and TAR at fixed FAR, as scikit-learn's `roc_curve` and insightface's IJB
//! evaluation compute them.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, check_finite};

/// A ROC curve: false and true positive rates at decreasing score thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roc {
    /// False positive rate per point (starts at 0).
    pub fpr: Vec<f64>,
    /// True positive rate per point (starts at 0).
    pub tpr: Vec<f64>,
    /// Score threshold per point (the first is `+∞`).
    pub thresholds: Vec<f32>,
}

/// The FARs insightface reports for IJB-B/C: `1e-6 … 1e-1`.
pub const IJB_FARS: [f64; 6] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];

/// The ROC of `scores` (higher = more likely genuine) against `labels`, with scikit-learn's
/// `roc_curve(labels, scores)` semantics (`drop_intermediate=True`): one point per distinct
/// score, collinear points dropped, `(0, 0)` prepended.
pub fn roc_curve(labels: &[bool], scores: &[f32]) -> Result<Roc, EvalError> {
    if labels.len() != scores.len() {
        return Err(EvalError::Mismatch(format!(
            "{} labels but {} scores",
            labels.len(),
            scores.len()
        )));
    }
    check_finite(scores, 1, "score")?;
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(EvalError::TooFew(
            "a ROC needs both genuine and impostor pairs".into(),
        ));
    }
    let packed: Vec<u64> = scores
        .par_iter()
        .zip(labels.par_iter())
        .map(|(&s, &l)| roc_key(s, l))
        .collect();
    roc_from_keys(packed, Vec::new())
}

/// A (score, label) pair as one 33-bit integer whose increasing order is the scores'
/// decreasing total order (IEEE bits with the sign handled, then inverted), the label in the
/// lowest bit.
pub(crate) fn roc_key(s: f32, label: bool) -> u64 {
    // `+ 0.0` turns −0.0 into +0.0, so that the two zeros tie as they compare equal.
    let b = (s + 0.0).to_bits();
    let key = !(if b >> 31 == 1 { !b } else { b | 0x8000_0000 });
    (u64::from(key) << 1) | u64::from(label)
}

/// The score a [`roc_key`] was made from.
fn key_score(key: u64) -> f32 {
    let b = !((key >> 1) as u32);
    f32::from_bits(if b >> 31 == 1 { b & 0x7FFF_FFFF } else { !b })
}

/// The ROC of pairs given as [`roc_key`]s, in any order, with both labels present;
/// `scratch` is a buffer the sort may use (resized as needed), so that a caller holding a
/// dead one of the right size spares a fresh allocation. A non-finite score is an error.
///
/// Descending scores; ties collapse into one point, so their order does not matter. The keys
/// are radix-sorted in parallel (three passes of 11 bits): on IJB-C's 15.7 M pairs several
/// times faster than a comparison sort.
pub(crate) fn roc_from_keys(keys: Vec<u64>, mut scratch: Vec<u64>) -> Result<Roc, EvalError> {
    let packed = crate::radix::sort(keys, &mut scratch, 33);
    drop(scratch);
    // One point per distinct score: (false positives, true positives, threshold) so far.
    // drop_intermediate keeps the ends and every point where the curve bends (a non-zero
    // second difference), decided as the points stream by, so the millions of points on the
    // straight runs are never stored.
    let n = packed.len();
    let mut kept: Vec<Point> = Vec::new();
    let (mut before, mut here): (Option<Point>, Option<Point>) = (None, None);
    let (mut tp, mut fp) = (0u64, 0u64);
    for (k, &p) in packed.iter().enumerate() {
        if p & 1 == 1 {
            tp += 1;
        } else {
            fp += 1;
        }
        if k + 1 < n && packed[k + 1] >> 1 == p >> 1 {
            continue;
        }
        let threshold = key_score(p);
        if !threshold.is_finite() {
            return Err(EvalError::NonFinite(format!(
                "a pair's score is {threshold}"
            )));
        }
        let next = (fp, tp, threshold);
        if let Some(h) = here {
            let bends = before.is_none_or(|b| {
                let d2 = |f: fn(&Point) -> u64| f(&next) + f(&b) != 2 * f(&h);
                d2(|q| q.0) || d2(|q| q.1)
            });
            if bends {
                kept.push(h);
            }
        }
        (before, here) = (here, Some(next));
    }
    let Some(last) = here else {
        return Err(EvalError::TooFew("a ROC needs pairs".into()));
    };
    kept.push(last);
    if tp == 0 || fp == 0 {
        return Err(EvalError::TooFew(
            "a ROC needs both genuine and impostor pairs".into(),
        ));
    }
    let (p, n) = (tp as f64, fp as f64);
    let mut roc = Roc {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f32::INFINITY],
    };
    for (f, t, threshold) in kept {
        roc.fpr.push(f as f64 / n);
        roc.tpr.push(t as f64 / p);
        roc.thresholds.push(threshold);
    }
    Ok(roc)
}

type Point = (u64, u64, f32);

impl Roc {
    /// TAR at each target FAR, read as insightface's IJB evaluation does: the TPR of the ROC
    /// point whose FPR is nearest the target (the first such point on ties).
    pub fn tar_at_far(&self, fars: &[f64]) -> Vec<f64> {
        fars.iter()
            .map(|&target| {
                let mut best = 0;
                for (k, f) in self.fpr.iter().enumerate() {
                    if (f - target).abs() < (self.fpr[best] - target).abs() {
                        best = k;
                    }
                }
                self.tpr[best]
            })
            .collect()
    }

    /// Area under the curve (trapezoidal).
    pub fn auc(&self) -> f64 {
        self.fpr
            .windows(2)
            .zip(self.tpr.windows(2))
            .map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) * 0.5)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_zeros_tie_as_scikit_learn_ties_them() {
        // roc_curve([1, 0], [0.0, -0.0]) has one point after (0, 0): both pairs at 0.
        let roc = roc_curve(&[true, false], &[0.0, -0.0]).unwrap();
        assert_eq!(roc.fpr, vec![0.0, 1.0]);
        assert_eq!(roc.tpr, vec![0.0, 1.0]);
    }

    #[test]
    fn matches_a_hand_computed_curve() {
        // scores 0.9 (+), 0.8 (−), 0.7 (+), 0.7 (−), 0.1 (−): by hand, points after (0,0):
        // t=0.9 (0, .5), t=0.8 (1/3, .5), t=0.7 (2/3, 1), t=0.1 (1, 1); none collinear with
        // its neighbours except none, so all stay.
        let labels = [true, false, true, false, false];
        let scores = [0.9, 0.8, 0.7, 0.7, 0.1];
        let r = roc_curve(&labels, &scores).unwrap();
        assert_eq!(r.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        let third = 1.0 / 3.0;
        assert_eq!(r.fpr, vec![0.0, 0.0, third, 2.0 * third, 1.0]);
        assert_eq!(r.tar_at_far(&[0.0, 0.3, 0.9]), vec![0.0, 0.5, 1.0]);
        assert!((r.auc() - (third * 0.5 + third * 0.75 + third)).abs() < 1e-12);
    }

    #[test]
    fn collinear_points_are_dropped_and_bad_input_is_an_error() {
        // Three impostors in a row below all genuines: the middle points are collinear.
        let r = roc_curve(&[true, false, false, false], &[0.9, 0.5, 0.4, 0.3]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 1.0]);
        assert!(roc_curve(&[true], &[0.1, 0.2]).is_err());
        assert!(roc_curve(&[true, false], &[f32::NAN, 0.2]).is_err());
        assert!(roc_curve(&[true, true], &[0.1, 0.2]).is_err());
    }
}
