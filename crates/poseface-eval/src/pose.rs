//! Pose-stratified verification: the 10-fold protocol's decisions, split by the head poses
//! of the two faces of each pair.
//!
//! Each pair is decided with the threshold of the fold it belongs to (as in
//! [`crate::verification`]); accuracy is then counted per bucket:
//!
//! - **by pose class** of both faces: frontal–frontal, frontal–profile, profile–profile,
//!   where a face is *profile* when `|yaw| ≥ profile_from` (45° by default, the middle of the
//!   range);
//! - **by yaw difference** `|yaw_a − yaw_b|`: `[0, 15)`, `[15, 30)`, `[30, 45)`, `[45, 60)`,
//!   `[60, 90)`, `[90, 180]` degrees.

use serde::{Deserialize, Serialize};

use crate::error::EvalError;
use crate::verification::{VerificationResult, fold_ranges};

/// The default |yaw| from which a face counts as profile, degrees.
pub const PROFILE_FROM: f32 = 45.0;

/// Edges of the yaw-difference buckets, degrees.
pub const DELTA_EDGES: [f32; 7] = [0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 180.0];

/// Accuracy within one bucket of pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketAccuracy {
    /// The bucket's name (`frontal-frontal`, `Δyaw 15–30`, …).
    pub bucket: String,
    /// Pairs in the bucket.
    pub pairs: usize,
    /// Genuine pairs among them.
    pub positives: usize,
    /// Share decided correctly (`None` for an empty bucket).
    pub accuracy: Option<f64>,
}

/// Accuracy by pose class and by yaw difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseStratified {
    /// frontal–frontal, frontal–profile, profile–profile.
    pub by_pose: Vec<BucketAccuracy>,
    /// By |Δyaw| ([`DELTA_EDGES`]).
    pub by_yaw_difference: Vec<BucketAccuracy>,
}

/// Splits the decisions of a 10-fold run (`result`, computed on `dist`/`issame` with the same
/// fold count) by the yaws of each pair's faces.
pub fn pose_stratified(
    dist: &[f64],
    issame: &[bool],
    yaws: &[[f32; 2]],
    result: &VerificationResult,
    profile_from: f32,
) -> Result<PoseStratified, EvalError> {
    if dist.len() != issame.len() || dist.len() != yaws.len() {
        return Err(EvalError::Mismatch(format!(
            "{} distances, {} labels, {} yaw pairs",
            dist.len(),
            issame.len(),
            yaws.len()
        )));
    }
    if let Some(k) = yaws
        .iter()
        .position(|y| !y[0].is_finite() || !y[1].is_finite())
    {
        return Err(EvalError::NonFinite(format!("yaw of pair {k}")));
    }
    let folds = result.fold_threshold.len();
    if folds == 0 || dist.len() < folds {
        return Err(EvalError::Mismatch(format!(
            "a {folds}-fold result does not fit {} pairs",
            dist.len()
        )));
    }
    // [pairs, positives, correct] per bucket.
    let mut pose = [[0usize; 3]; 3];
    let mut delta = [[0usize; 3]; 6];
    for (f, range) in fold_ranges(dist.len(), folds).into_iter().enumerate() {
        let th = result.fold_threshold[f];
        for k in range {
            let correct = (dist[k] < th) == issame[k];
            let profiles = yaws[k].iter().filter(|y| y.abs() >= profile_from).count();
            let d = (yaws[k][0] - yaws[k][1]).abs();
            let b = DELTA_EDGES[1..]
                .iter()
                .position(|&e| d < e)
                .unwrap_or(DELTA_EDGES.len() - 2);
            for cell in [&mut pose[profiles], &mut delta[b]] {
                cell[0] += 1;
                cell[1] += usize::from(issame[k]);
                cell[2] += usize::from(correct);
            }
        }
    }
    let bucket = |name: String, c: [usize; 3]| BucketAccuracy {
        bucket: name,
        pairs: c[0],
        positives: c[1],
        accuracy: (c[0] > 0).then(|| c[2] as f64 / c[0] as f64),
    };
    let names = ["frontal-frontal", "frontal-profile", "profile-profile"];
    Ok(PoseStratified {
        by_pose: names
            .iter()
            .zip(pose)
            .map(|(n, c)| bucket(n.to_string(), c))
            .collect(),
        by_yaw_difference: (0..6)
            .map(|b| {
                bucket(
                    format!("Δyaw {}–{}", DELTA_EDGES[b], DELTA_EDGES[b + 1]),
                    delta[b],
                )
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verification::verify_distances;

    #[test]
    fn decisions_are_counted_in_the_right_buckets() {
        // 20 pairs, alternating genuine/impostor. Genuine pairs are close (0.5) except the two
        // frontal–profile genuine pairs 4 and 14 (distance 3.0, missed at any sensible
        // threshold); impostors are far (2.5).
        let issame: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        let mut dist: Vec<f64> = issame.iter().map(|&s| if s { 0.5 } else { 2.5 }).collect();
        dist[4] = 3.0;
        dist[14] = 3.0;
        let mut yaws = vec![[0.0f32, 10.0]; 20];
        yaws[4] = [0.0, 70.0];
        yaws[14] = [-5.0, 80.0];
        yaws[7] = [60.0, -60.0];
        let r = verify_distances(&dist, &issame, 10, 1e-3).unwrap();
        let s = pose_stratified(&dist, &issame, &yaws, &r, PROFILE_FROM).unwrap();
        // By hand: frontal–profile holds pairs 4 and 14, both wrong; profile–profile pair 7,
        // an impostor at 2.5, right; the other 17 frontal–frontal pairs are all right.
        assert_eq!((s.by_pose[1].pairs, s.by_pose[1].accuracy), (2, Some(0.0)));
        assert_eq!((s.by_pose[2].pairs, s.by_pose[2].accuracy), (1, Some(1.0)));
        assert_eq!((s.by_pose[0].pairs, s.by_pose[0].accuracy), (17, Some(1.0)));
        // By |Δyaw|: 10 → [0,15): 17 pairs; 70 and 85 → [60,90); 120 → [90,180].
        assert_eq!(s.by_yaw_difference[0].pairs, 17);
        assert_eq!(s.by_yaw_difference[4].pairs, 2);
        assert_eq!(s.by_yaw_difference[5].pairs, 1);
        assert_eq!(s.by_yaw_difference[1].accuracy, None);
        assert!(pose_stratified(&dist, &issame, &yaws[..3], &r, 45.0).is_err());
    }
}
