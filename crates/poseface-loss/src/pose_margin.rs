//! The pose ratio `r ∈ [0, 1]` of the Pose-Adaptive ArcFace loss: PAA gives sample `i` the
//! margin `m_i = m_b + r_i·δm`, so rarer, harder poses get a larger margin.
//!
//! The paper does not publish its exact `r`; three named mappings are offered and compared in
//! the ablation study:
//!
//! - `linear`: `r = clamp(max(|yaw|, |pitch|) / 90°, 0, 1)`;
//! - `threshold`: `r = 1` when `|yaw|` exceeds a limit (default 60°), else 0;
//! - `frequency`: `r = 1 − p(bin) / max p` from a histogram of `|yaw|` over the training set,
//!   so the emptiest bins get the full margin. The histogram is given in the config, or left
//!   out there and filled from the training set's poses with [`PoseMapping::with_histogram`]
//!   (the trainer does it) before the head is built.

use serde::{Deserialize, Serialize};

use crate::LossError;

/// How a sample's Euler angles become its PAA ratio `r ∈ [0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PoseMapping {
    /// `r = clamp(max(|yaw|, |pitch|) / 90°, 0, 1)`.
    Linear,
    /// `r = 1` when `|yaw| > yaw_limit` degrees, else `r = 0`.
    Threshold {
        /// Yaw limit in degrees (default 60).
        #[serde(default = "default_yaw_limit")]
        yaw_limit: f32,
    },
    /// `r = 1 − p(bin)/max p` with `bin` the `|yaw|` bin: `edges[b] ≤ |yaw| < edges[b+1]`,
    /// `|yaw|` at or past the last edge falls in the last bin.
    Frequency {
        /// Bin edges in degrees, increasing, starting at 0 (one more than `probabilities`).
        edges: Vec<f32>,
        /// Share of training samples per bin (any non-negative weights; only ratios matter).
        /// Empty (the default): to be filled from the training set's poses.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        probabilities: Vec<f32>,
    },
}

fn default_yaw_limit() -> f32 {
    60.0
}

impl Default for PoseMapping {
    fn default() -> Self {
        Self::Threshold {
            yaw_limit: default_yaw_limit(),
        }
    }
}

impl PoseMapping {
    /// A `frequency` mapping from the `|yaw|` of every training sample, binned by `edges`.
    pub fn frequency_from_yaws(edges: Vec<f32>, yaws: &[f32]) -> Result<Self, LossError> {
        let bins = edges.len().saturating_sub(1);
        let mut counts = vec![0f32; bins];
        let mapping = Self::Frequency {
            edges,
            probabilities: vec![1.0; bins],
        };
        mapping.validate()?;
        for &yaw in yaws {
            counts[mapping.bin(yaw.abs())] += 1.0;
        }
        let total = yaws.len().max(1) as f32;
        let Self::Frequency { edges, .. } = mapping else {
            unreachable!("constructed above")
        };
        Ok(Self::Frequency {
            edges,
            probabilities: counts.into_iter().map(|c| c / total).collect(),
        })
    }

    /// Checks the parameters: a positive finite yaw limit, increasing edges from 0, one
    /// probability per bin, non-negative and not all zero (or none yet, to be filled from the
    /// training set).
    pub fn validate(&self) -> Result<(), LossError> {
        let bad = |message: String| Err(LossError::Config(format!("pose mapping: {message}")));
        match self {
            Self::Linear => Ok(()),
            Self::Threshold { yaw_limit } => {
                if yaw_limit.is_finite() && *yaw_limit >= 0.0 {
                    Ok(())
                } else {
                    bad(format!("yaw_limit must be ≥ 0 degrees, got {yaw_limit}"))
                }
            }
            Self::Frequency {
                edges,
                probabilities,
            } => {
                if edges.len() < 2 || edges[0] != 0.0 {
                    return bad(format!(
                        "edges must start at 0 and have ≥ 2 entries, got {edges:?}"
                    ));
                }
                if edges.windows(2).any(|w| {
                    w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater)
                        || !w[1].is_finite()
                }) {
                    return bad(format!("edges must increase, got {edges:?}"));
                }
                if probabilities.is_empty() {
                    return Ok(());
                }
                if probabilities.len() != edges.len() - 1 {
                    return bad(format!(
                        "{} edges make {} bins but {} probabilities were given",
                        edges.len(),
                        edges.len() - 1,
                        probabilities.len()
                    ));
                }
                if probabilities.iter().any(|p| !p.is_finite() || *p < 0.0)
                    || probabilities.iter().all(|&p| p == 0.0)
                {
                    return bad(format!(
                        "probabilities must be ≥ 0 and not all 0, got {probabilities:?}"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Whether this is a `frequency` mapping still waiting for its training-set histogram.
    pub fn needs_histogram(&self) -> bool {
        matches!(self, Self::Frequency { probabilities, .. } if probabilities.is_empty())
    }

    /// Fills a `frequency` mapping's missing histogram from the `|yaw|` of every training
    /// sample; any other mapping is returned unchanged.
    pub fn with_histogram(self, yaws: &[f32]) -> Result<Self, LossError> {
        match self {
            Self::Frequency { edges, .. } if self.needs_histogram() => {
                Self::frequency_from_yaws(edges, yaws)
            }
            other => Ok(other),
        }
    }

    /// The bin of `|yaw|` under a `frequency` mapping (0 for the other mappings).
    fn bin(&self, abs_yaw: f32) -> usize {
        match self {
            Self::Frequency { edges, .. } => {
                let last = edges.len() - 2;
                (0..=last)
                    .find(|&b| edges[b] <= abs_yaw && abs_yaw < edges[b + 1])
                    .unwrap_or(last)
            }
            _ => 0,
        }
    }

    /// The ratio `r ∈ [0, 1]` for one sample with the given yaw and pitch in degrees.
    pub fn ratio(&self, yaw: f32, pitch: f32) -> f32 {
        match self {
            Self::Linear => (yaw.abs().max(pitch.abs()) / 90.0).clamp(0.0, 1.0),
            Self::Threshold { yaw_limit } => f32::from(u8::from(yaw.abs() > *yaw_limit)),
            Self::Frequency { probabilities, .. } => {
                let max = probabilities.iter().copied().fold(0.0, f32::max);
                1.0 - probabilities[self.bin(yaw.abs())] / max
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frequency() -> PoseMapping {
        PoseMapping::Frequency {
            edges: vec![0.0, 15.0, 30.0, 45.0, 60.0, 75.0, 90.0],
            probabilities: vec![0.40, 0.25, 0.15, 0.10, 0.06, 0.04],
        }
    }

    #[test]
    fn ratios_by_hand() {
        assert_eq!(PoseMapping::Linear.ratio(-45.0, 10.0), 0.5);
        assert_eq!(PoseMapping::Linear.ratio(5.0, -60.0), 60.0 / 90.0);
        assert_eq!(PoseMapping::Linear.ratio(120.0, 0.0), 1.0);
        let t = PoseMapping::default();
        assert_eq!(t.ratio(60.0, 0.0), 0.0);
        assert_eq!(t.ratio(-60.5, 0.0), 1.0);
        let f = frequency();
        assert_eq!(f.ratio(3.0, 0.0), 0.0);
        // 75° sits on an edge and belongs to the bin above it: 1 − 0.04/0.40.
        assert!((f.ratio(-75.0, 0.0) - 0.9).abs() < 1e-6);
        assert!((f.ratio(95.0, 0.0) - 0.9).abs() < 1e-6);
        assert!((f.ratio(44.9, 0.0) - 0.625).abs() < 1e-6);
    }

    #[test]
    fn frequency_from_yaws_counts_bins() {
        let yaws = [1.0, -2.0, 3.0, 20.0, -70.0, 89.0];
        let m = PoseMapping::frequency_from_yaws(vec![0.0, 15.0, 30.0, 90.0], &yaws).unwrap();
        let PoseMapping::Frequency { probabilities, .. } = &m else {
            panic!("{m:?}")
        };
        assert_eq!(probabilities, &[0.5, 1.0 / 6.0, 2.0 / 6.0]);
        assert!((m.ratio(50.0, 0.0) - (1.0 - (2.0 / 6.0) / 0.5)).abs() < 1e-6);
    }

    #[test]
    fn a_frequency_mapping_without_probabilities_is_filled_from_the_training_yaws() {
        let m: PoseMapping =
            toml::from_str("kind = \"frequency\"\nedges = [0.0, 30.0, 60.0, 90.0]").unwrap();
        assert!(m.needs_histogram());
        m.validate().unwrap();
        // 3 frontal, 1 half-profile, 0 profile samples: p = (3/4, 1/4, 0).
        let m = m.with_histogram(&[5.0, -10.0, 29.0, 45.0]).unwrap();
        assert!(!m.needs_histogram());
        assert!((m.ratio(10.0, 0.0) - 0.0).abs() < 1e-6);
        assert!((m.ratio(-40.0, 0.0) - (1.0 - 0.25 / 0.75)).abs() < 1e-6);
        assert!((m.ratio(80.0, 0.0) - 1.0).abs() < 1e-6);
        // The other mappings need no histogram and pass through.
        assert_eq!(
            PoseMapping::Linear.with_histogram(&[]).unwrap(),
            PoseMapping::Linear
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let e = PoseMapping::Frequency {
            edges: vec![0.0, 30.0, 20.0],
            probabilities: vec![1.0, 1.0],
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("edges must increase"), "{e}");
        let e = PoseMapping::Frequency {
            edges: vec![0.0, 30.0, 90.0],
            probabilities: vec![1.0],
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("2 bins but 1 probabilities"), "{e}");
        assert!(
            PoseMapping::Threshold {
                yaw_limit: f32::NAN
            }
            .validate()
            .is_err()
        );
    }
}
