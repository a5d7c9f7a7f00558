//! Genuine and impostor score distributions of a pair set: how far apart the two classes
//! lie, which a single accuracy hides.

use serde::{Deserialize, Serialize};

use crate::error::EvalError;

/// Pair counts per score bin, for genuine and impostor pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    /// Bin edges, increasing (one more than bins); bin `b` is `[edges[b], edges[b+1])`, the
    /// last bin closed.
    pub edges: Vec<f64>,
    /// Genuine pairs per bin.
    pub genuine: Vec<usize>,
    /// Impostor pairs per bin.
    pub impostor: Vec<usize>,
}

impl ScoreHistogram {
    /// Cosine similarities `1 − d/2` of unit embeddings at squared L2 distances `dist`, in
    /// `bins` equal bins over `[−1, 1]` (values outside are clamped into the end bins).
    pub fn from_distances(dist: &[f64], issame: &[bool], bins: usize) -> Result<Self, EvalError> {
        if dist.len() != issame.len() || bins == 0 {
            return Err(EvalError::Mismatch(format!(
                "{} distances, {} labels, {bins} bins: need one label per distance and ≥ 1 bin",
                dist.len(),
                issame.len()
            )));
        }
        if let Some(k) = dist.iter().position(|d| !d.is_finite()) {
            return Err(EvalError::NonFinite(format!("distance {k} is not finite")));
        }
        let edges: Vec<f64> = (0..=bins)
            .map(|b| -1.0 + 2.0 * b as f64 / bins as f64)
            .collect();
        let mut genuine = vec![0; bins];
        let mut impostor = vec![0; bins];
        for (&d, &same) in dist.iter().zip(issame) {
            let cosine = 1.0 - d / 2.0;
            let b = (((cosine + 1.0) / 2.0 * bins as f64).floor().max(0.0) as usize).min(bins - 1);
            if same {
                genuine[b] += 1;
            } else {
                impostor[b] += 1;
            }
        }
        Ok(Self {
            edges,
            genuine,
            impostor,
        })
    }

    /// Pairs in `counts`.
    pub fn total(counts: &[usize]) -> usize {
        counts.iter().sum()
    }

    /// `counts` as shares of their total (zeros for an empty class).
    pub fn shares(counts: &[usize]) -> Vec<f64> {
        let total = Self::total(counts).max(1) as f64;
        counts.iter().map(|&c| c as f64 / total).collect()
    }

    /// Checks that the bins and counts agree (one more edge than bins, at least one bin), as
    /// a histogram read from a file may not.
    pub fn check(&self) -> Result<(), EvalError> {
        let bins = self.edges.len().saturating_sub(1);
        if bins == 0 || self.genuine.len() != bins || self.impostor.len() != bins {
            return Err(EvalError::Mismatch(format!(
                "score histogram with {} edges, {} genuine and {} impostor counts: need one \
                 more edge than counts and at least one bin",
                self.edges.len(),
                self.genuine.len(),
                self.impostor.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inconsistent_histograms_are_errors_not_panics() {
        let bad = ScoreHistogram {
            edges: vec![-1.0, 0.0, 1.0],
            genuine: vec![1],
            impostor: vec![1, 2],
        };
        assert!(bad.check().is_err());
        let path = std::env::temp_dir().join(format!("poseface-hist-{}.svg", std::process::id()));
        assert!(crate::plot::score_histogram("bad", &bad, &path).is_err());
        assert!(crate::plot::tar_far("t", &[], 0.0, &path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn distances_fall_into_cosine_bins() {
        // d = 0 → cos 1 (last bin), d = 2 → cos 0 (bin 2 of 4: [0, 0.5)), d = 4 → cos −1
        // (first bin), d = 1.2 → cos 0.4 (bin 2), d = 0.5 → cos 0.75 (bin 3).
        let h = ScoreHistogram::from_distances(
            &[0.0, 2.0, 4.0, 1.2, 0.5],
            &[true, false, false, true, true],
            4,
        )
        .unwrap();
        assert_eq!(h.edges, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(h.genuine, vec![0, 0, 1, 2]);
        assert_eq!(h.impostor, vec![1, 0, 1, 0]);
        assert_eq!(
            ScoreHistogram::shares(&h.genuine),
            vec![0.0, 0.0, 1.0 / 3.0, 2.0 / 3.0]
        );
        assert!(ScoreHistogram::from_distances(&[f64::NAN], &[true], 4).is_err());
        assert!(ScoreHistogram::from_distances(&[1.0], &[], 4).is_err());
    }
}
