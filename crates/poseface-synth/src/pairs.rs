//! Verification pair sets in the way CPLFW and LFW are built: contiguous folds of equal
//! size, half positive (positives first in each fold), identities disjoint between folds.
//!
//! - **Cross-pose** (`synth_cplfw.bin`): positives pair one image with |yaw| ≤ 30° and one
//!   with |yaw| ≥ 45° and a yaw difference of at least `min_yaw_difference` (a share
//!   `1 − cross_pose_share` takes any two poses instead); negatives pair an identity with one
//!   of its three nearest identities in parameter space, in the same mix of poses, so pose
//!   is no cue.
//! - **Frontal** (`synth_lfw.bin`): all |yaw| ≤ 20°, negatives between random identities.

use poseface_data::pose::EulerAngles;
use rand::Rng;
use rand::seq::SliceRandom;

use crate::config::SynthConfig;
use crate::generate::{EVAL_BASE, ImagePlan, identity_code};
use crate::scene::stream_rng;

/// Which pair set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairKind {
    /// Cross-pose positives, hard negatives (`synth_cplfw.bin`).
    CrossPose,
    /// Frontal pairs, random negatives (`synth_lfw.bin`).
    Frontal,
}

impl PairKind {
    /// The file name of the set.
    pub fn file_name(self) -> &'static str {
        match self {
            PairKind::CrossPose => "synth_cplfw.bin",
            PairKind::Frontal => "synth_lfw.bin",
        }
    }

    fn streams(self) -> (u64, u64) {
        match self {
            PairKind::CrossPose => (10, 20),
            PairKind::Frontal => (11, 21),
        }
    }
}

/// One planned pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairPlan {
    /// The fold it belongs to.
    pub fold: usize,
    /// Same identity?
    pub same: bool,
    /// First image.
    pub a: ImagePlan,
    /// Second image.
    pub b: ImagePlan,
}

/// The identity indices of fold `f`.
pub fn fold_identities(config: &SynthConfig, f: usize) -> Vec<u64> {
    let p = &config.pairs;
    let (lo, hi) = (f * p.identities / p.folds, (f + 1) * p.identities / p.folds);
    (lo..hi).map(|i| EVAL_BASE + i as u64).collect()
}

fn cross_pose_yaws(rng: &mut impl Rng, min_diff: f32) -> (f32, f32) {
    let a = rng.random_range(0.0f32..=30.0);
    let same_side = rng.random::<bool>();
    let lo = if same_side {
        (a + min_diff).max(45.0)
    } else {
        (min_diff - a).max(45.0)
    };
    let b = rng.random_range(lo.min(90.0)..=90.0);
    let sa = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let sb = if same_side { sa } else { -sa };
    if rng.random::<bool>() {
        (sa * a, sb * b)
    } else {
        (sb * b, sa * a)
    }
}

/// Plans every pair of a set, fold by fold.
pub fn plan_pairs(config: &SynthConfig, kind: PairKind) -> Vec<PairPlan> {
    let p = &config.pairs;
    let (scene_stream, plan_stream) = kind.streams();
    let mut out = Vec::with_capacity(p.folds * p.pairs_per_fold);
    for f in 0..p.folds {
        let mut rng = stream_rng(config.seed, plan_stream, f as u64);
        let mut ids = fold_identities(config, f);
        ids.shuffle(&mut rng);
        let codes: Vec<_> = ids.iter().map(|&i| identity_code(config.seed, i)).collect();
        let half = p.pairs_per_fold / 2;
        for k in 0..p.pairs_per_fold {
            let same = k < half;
            let slot = if same { k } else { k - half };
            let anchor = slot % ids.len();
            let other = if same {
                anchor
            } else if kind == PairKind::CrossPose {
                // One of the three nearest identities of the fold.
                let mut near: Vec<(f32, usize)> = (0..ids.len())
                    .filter(|&j| j != anchor)
                    .map(|j| (codes[anchor].distance(&codes[j]), j))
                    .collect();
                near.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
                near[rng.random_range(0..near.len().min(3))].1
            } else {
                let j = rng.random_range(0..ids.len() - 1);
                if j >= anchor { j + 1 } else { j }
            };
            let (ya, yb) = match kind {
                PairKind::CrossPose if rng.random::<f32>() < p.cross_pose_share => {
                    cross_pose_yaws(&mut rng, p.min_yaw_difference)
                }
                PairKind::CrossPose => (
                    rng.random_range(-90.0f32..=90.0),
                    rng.random_range(-90.0f32..=90.0),
                ),
                PairKind::Frontal => (
                    rng.random_range(-20.0f32..=20.0),
                    rng.random_range(-20.0f32..=20.0),
                ),
            };
            let mut pose = |yaw: f32| EulerAngles {
                yaw,
                pitch: rng.random_range(-10.0f32..=10.0),
                roll: rng.random_range(-8.0f32..=8.0),
            };
            let (pa, pb) = (pose(ya), pose(yb));
            let index = (out.len() * 2) as u64;
            out.push(PairPlan {
                fold: f,
                same,
                a: ImagePlan {
                    identity: ids[anchor],
                    pose: pa,
                    stream: scene_stream,
                    index,
                },
                b: ImagePlan {
                    identity: ids[other],
                    pose: pb,
                    stream: scene_stream,
                    index: index + 1,
                },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn folds_are_contiguous_balanced_and_identity_disjoint() {
        let cfg = SynthConfig::preset(Preset::Small, 4);
        let pairs = plan_pairs(&cfg, PairKind::CrossPose);
        assert_eq!(pairs.len(), 6000);
        let mut cross = 0;
        for (f, fold) in pairs.chunks(600).enumerate() {
            assert!(fold.iter().all(|p| p.fold == f));
            assert!(
                fold[..300]
                    .iter()
                    .all(|p| p.same && p.a.identity == p.b.identity)
            );
            assert!(
                fold[300..]
                    .iter()
                    .all(|p| !p.same && p.a.identity != p.b.identity)
            );
            let ids = fold_identities(&cfg, f);
            assert!(
                fold.iter()
                    .all(|p| ids.contains(&p.a.identity) && ids.contains(&p.b.identity))
            );
            cross += fold[..300]
                .iter()
                .filter(|p| (p.a.pose.yaw - p.b.pose.yaw).abs() >= 30.0)
                .count();
        }
        // 90% are drawn cross-pose; some of the rest cross 30° by chance.
        assert!(cross as f32 / 3000.0 > 0.9, "{cross}");
        // Hard negatives are nearer in parameter space than random pairs.
        let dist = |p: &PairPlan| {
            identity_code(cfg.seed, p.a.identity).distance(&identity_code(cfg.seed, p.b.identity))
        };
        let hard: f32 = pairs.iter().filter(|p| !p.same).map(dist).sum::<f32>() / 3000.0;
        let easy = plan_pairs(&cfg, PairKind::Frontal);
        let random: f32 = easy.iter().filter(|p| !p.same).map(dist).sum::<f32>() / 3000.0;
        assert!(hard < 0.8 * random, "hard {hard} random {random}");
        assert!(
            easy.iter()
                .all(|p| p.a.pose.yaw.abs() <= 20.0 && p.b.pose.yaw.abs() <= 20.0)
        );
    }
}
