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
/// times faster than a comparison sort. The curve is then read in parallel (see
/// [`kept_points`]).
pub(crate) fn roc_from_keys(keys: Vec<u64>, mut scratch: Vec<u64>) -> Result<Roc, EvalError> {
    let packed = crate::radix::sort(keys, &mut scratch, 33);
    drop(scratch);
    let (Some(&first), Some(&last)) = (packed.first(), packed.last()) else {
        return Err(EvalError::TooFew("a ROC needs pairs".into()));
    };
    // In the keys' order every non-finite score sits at one end (+NaN, +∞ first; −∞, −NaN
    // last), so the two ends tell whether any score is not finite.
    for k in [first, last] {
        let threshold = key_score(k);
        if !threshold.is_finite() {
            return Err(EvalError::NonFinite(format!(
                "a pair's score is {threshold}"
            )));
        }
    }
    let tp = packed.par_iter().map(|&k| k & 1).sum::<u64>();
    let fp = packed.len() as u64 - tp;
    if tp == 0 || fp == 0 {
        return Err(EvalError::TooFew(
            "a ROC needs both genuine and impostor pairs".into(),
        ));
    }
    Ok(curve(&packed, tp as f64, fp as f64))
}

/// The ROC points that scikit-learn's `drop_intermediate` keeps, from sorted keys with `p`
/// genuine and `n` impostor pairs, after `(0, 0)` at `+∞`.
///
/// One point per run of equal scores, at its end. Point `i`'s second differences are run
/// `i + 1`'s (impostors, genuines) minus run `i`'s, so a point is kept when it is the first
/// or the last, or when its run and the next differ in composition. That reads in parallel:
/// the keys are cut into spans at score changes, each span's genuine count gives the counts
/// before it, and a span needs only the composition of the next span's first run.
fn curve(packed: &[u64], p: f64, n: f64) -> Roc {
    let len = packed.len();
    let score = |k: usize| packed[k] >> 1;
    // Span boundaries: evenly spaced, each moved forward to the next change of score.
    let spans = rayon::current_num_threads().max(1) * 4;
    let mut cuts = vec![0];
    for s in 1..spans {
        let mut c = (len * s / spans).max(*cuts.last().expect("starts with 0"));
        while c > 0 && c < len && score(c) == score(c - 1) {
            c += 1;
        }
        if c >= len {
            // The last run reaches the end: no later cut either.
            break;
        }
        if c > *cuts.last().expect("starts with 0") {
            cuts.push(c);
        }
    }
    cuts.push(len);
    // The composition (impostors, genuines) of the run starting at `k`.
    let run = |k: usize| {
        let mut j = k + 1;
        while j < len && score(j) == score(k) {
            j += 1;
        }
        let genuine = packed[k..j].iter().map(|&q| q & 1).sum::<u64>();
        ((j - k) as u64 - genuine, genuine)
    };
    // The kept points of the span `start..end` (with `tp0` genuine pairs before it), in one
    // pass over its keys: a run's point is decided once the next run's composition is known.
    let span = |start: usize, end: usize, tp0: u64| {
        // Room for a point per four keys (random IJB-C-sized scores keep about one in four),
        // reserved, not touched: a vector growing from empty re-copied and faulted in its
        // millions of points several times.
        let mut kept = crate::pages::with_capacity((end - start) / 4);
        let mut tp = tp0;
        let (mut run_start, mut genuine) = (start, 0u64);
        // The last finished run, awaiting the next run's composition.
        let mut pending: Option<Run> = None;
        let mut decide = |pending: Option<Run>, next: Option<(u64, u64)>| {
            if let Some(Run {
                composition,
                first,
                point: (fp, tp),
            }) = pending
                && (first == 0 || next.is_none_or(|c| c != composition))
            {
                kept.push((fp, tp, key_score(packed[first])));
            }
        };
        for i in start..end {
            genuine += packed[i] & 1;
            if i + 1 < len && packed[i + 1] >> 1 == packed[i] >> 1 {
                continue;
            }
            let composition = ((i + 1 - run_start) as u64 - genuine, genuine);
            tp += genuine;
            decide(pending, Some(composition));
            pending = Some(Run {
                composition,
                first: run_start,
                point: ((i + 1) as u64 - tp, tp),
            });
            (run_start, genuine) = (i + 1, 0);
        }
        decide(pending, (end < len).then(|| run(end)));
        kept
    };
    let genuine: Vec<u64> = cuts
        .par_windows(2)
        .map(|w| packed[w[0]..w[1]].iter().map(|&q| q & 1).sum())
        .collect();
    let mut before = vec![0u64; genuine.len()];
    for i in 1..genuine.len() {
        before[i] = before[i - 1] + genuine[i - 1];
    }
    let parts: Vec<Vec<Point>> = cuts
        .par_windows(2)
        .zip(before.par_iter())
        .map(|(w, &tp0)| span(w[0], w[1], tp0))
        .collect();
    let points = 1 + parts.iter().map(Vec::len).sum::<usize>();
    let mut fpr = crate::pages::zeroed::<f64>(points);
    let mut tpr = crate::pages::zeroed::<f64>(points);
    let mut thresholds = crate::pages::zeroed::<f32>(points);
    thresholds[0] = f32::INFINITY;
    // One slice of each array per span, after the (0, 0) point.
    let mut slices = Vec::new();
    let (mut f, mut t, mut h) = (&mut fpr[1..], &mut tpr[1..], &mut thresholds[1..]);
    for part in &parts {
        let (f0, f1) = f.split_at_mut(part.len());
        let (t0, t1) = t.split_at_mut(part.len());
        let (h0, h1) = h.split_at_mut(part.len());
        slices.push((f0, t0, h0));
        (f, t, h) = (f1, t1, h1);
    }
    parts
        .par_iter()
        .zip(slices.into_par_iter())
        .for_each(|(part, (f, t, h))| {
            for (i, &(fp, tp, threshold)) in part.iter().enumerate() {
                f[i] = fp as f64 / n;
                t[i] = tp as f64 / p;
                h[i] = threshold;
            }
        });
    Roc {
        fpr,
        tpr,
        thresholds,
    }
}

type Point = (u64, u64, f32);

/// A run of tied scores read off the sorted keys.
#[derive(Clone, Copy)]
struct Run {
    /// Impostors and genuines in the run.
    composition: (u64, u64),
    /// Where the run starts among the keys.
    first: usize,
    /// False and true positives up to the run's end.
    point: (u64, u64),
}

impl Roc {
    /// TAR at each target FAR, read as insightface's IJB evaluation does: the TPR of the ROC
    /// point whose FPR is nearest the target, the last such point on ties. insightface
    /// reverses the curve and then takes the first nearest point, "the largest TPR at the
    /// same FPR": a vertical step of the curve has its foot and its top at one FPR, and the
    /// top is read.
    pub fn tar_at_far(&self, fars: &[f64]) -> Vec<f64> {
        fars.iter()
            .map(|&target| {
                let mut best = 0;
                for (k, f) in self.fpr.iter().enumerate() {
                    if (f - target).abs() <= (self.fpr[best] - target).abs() {
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
        // FAR 0 is nearest the first two points, (0, 0) and (0, .5): the top of the step.
        assert_eq!(r.tar_at_far(&[0.0, 0.3, 0.9]), vec![0.5, 0.5, 1.0]);
        // Exactly as far from FPR 0.25 as from 0.5 (binary fractions): the later point, as
        // the reversed curve's first.
        let even = Roc {
            fpr: vec![0.0, 0.25, 0.5],
            tpr: vec![0.0, 0.5, 1.0],
            thresholds: vec![f32::INFINITY, 0.5, 0.1],
        };
        assert_eq!(even.tar_at_far(&[0.375]), vec![1.0]);
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

    /// scikit-learn's `roc_curve` written out plainly: scores sorted in decreasing order, one
    /// point per distinct score, points with zero second differences dropped.
    fn plain_roc(labels: &[bool], scores: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f32>) {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let (mut fps, mut tps, mut ths) = (Vec::new(), Vec::new(), Vec::new());
        let (mut fp, mut tp) = (0u64, 0u64);
        for (i, &k) in order.iter().enumerate() {
            if labels[k] {
                tp += 1;
            } else {
                fp += 1;
            }
            if i + 1 == order.len() || scores[order[i + 1]] != scores[k] {
                fps.push(fp);
                tps.push(tp);
                ths.push(scores[k]);
            }
        }
        let mut keep = vec![0];
        for i in 1..fps.len().saturating_sub(1) {
            let d2 = |v: &[u64]| v[i + 1] + v[i - 1] != 2 * v[i];
            if d2(&fps) || d2(&tps) {
                keep.push(i);
            }
        }
        if fps.len() > 1 {
            keep.push(fps.len() - 1);
        }
        let mut fpr = vec![0.0];
        let mut tpr = vec![0.0];
        let mut thresholds = vec![f32::INFINITY];
        for i in keep {
            fpr.push(fps[i] as f64 / fp as f64);
            tpr.push(tps[i] as f64 / tp as f64);
            thresholds.push(ths[i]);
        }
        (fpr, tpr, thresholds)
    }

    #[test]
    fn long_runs_of_ties_across_the_parallel_spans_give_the_plain_curve() {
        // About 50,000 pairs whose scores take 41 values (runs of about 1,220 ties, so the
        // spans' even cuts fall inside runs): runs of different compositions, then runs all
        // of one composition (every interior point collinear, dropped); then 3 values; then
        // one value and its two zeros.
        let cases: Vec<(Vec<bool>, Vec<f32>)> = vec![
            (
                (0..50_000).map(|k| k % 7 == 0 || k % 11 == 0).collect(),
                (0..50_000)
                    .map(|k| ((k * 7_919) % 41) as f32 / 8.0 - 2.0)
                    .collect(),
            ),
            (
                (0..50_020).map(|k| k % 2 == 0).collect(),
                (0..50_020).map(|k| (k / 1_220) as f32 / 8.0).collect(),
            ),
            (
                (0..50_000).map(|k| k % 2 == 0).collect(),
                (0..50_000).map(|k| (k % 3) as f32).collect(),
            ),
            (
                (0..9).map(|k| k % 3 == 0).collect(),
                vec![0.0, -0.0, 0.0, 0.5, 0.5, 0.5, -0.0, 0.5, 0.0],
            ),
        ];
        for (labels, scores) in cases {
            let roc = roc_curve(&labels, &scores).unwrap();
            let (fpr, tpr, thresholds) = plain_roc(&labels, &scores);
            assert_eq!(roc.fpr, fpr);
            assert_eq!(roc.tpr, tpr);
            let bits = |v: &[f32]| v.iter().map(|t| (t + 0.0).to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&roc.thresholds), bits(&thresholds));
        }
    }
}
