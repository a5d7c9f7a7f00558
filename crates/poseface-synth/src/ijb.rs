//! The IJB-style template set: identities with several templates, each a few media (a
//! photo, or frames of one video sharing light and background), scored template against
//! template. Written in the IJB-C file layout (`meta/ijbc_*.txt`, `loose_crop/`).

use poseface_data::pose::EulerAngles;
use rand::Rng;

use crate::config::SynthConfig;
use crate::generate::{IJB_BASE, ImagePlan};
use crate::scene::{PoseDistribution, PosePreset, stratified, stream_rng};

const SCENE_STREAM: u64 = 12;
const PLAN_STREAM: u64 = 22;

/// One image of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct IjbImage {
    /// What to render.
    pub plan: ImagePlan,
    /// File name under `loose_crop/`.
    pub name: String,
    /// Template id.
    pub template: u64,
    /// Media id.
    pub media: u64,
    /// Detector-like face score (lower for larger yaw).
    pub score: f32,
}

/// The planned set: images and template pairs `(t1, t2, label)`.
#[derive(Debug, Clone, PartialEq)]
pub struct IjbPlan {
    /// Images in file order.
    pub images: Vec<IjbImage>,
    /// Template pairs.
    pub pairs: Vec<(u64, u64, u8)>,
}

/// Plans the IJB-style set of `config`.
pub fn plan_ijb(config: &SynthConfig) -> IjbPlan {
    let c = &config.ijb;
    let poses = PoseDistribution {
        preset: PosePreset::Uniform,
        max_pitch: 15.0,
        max_roll: 10.0,
    };
    let mut rng = stream_rng(config.seed, PLAN_STREAM, 0);
    let mut images = Vec::new();
    let mut media_id = 0u64;
    let mut shot = 0u64;
    let templates = (c.identities * c.templates_per_identity) as u64;
    for i in 0..c.identities {
        for t in 0..c.templates_per_identity {
            let template = (i * c.templates_per_identity + t) as u64 + 1;
            for _ in 0..rng.random_range(1..=c.max_media) {
                media_id += 1;
                let base = poses.sample(stratified(shot), &mut rng);
                let scene_index = shot;
                shot += 1;
                for _ in 0..rng.random_range(1..=c.max_images_per_media) {
                    let pose = EulerAngles {
                        yaw: (base.yaw + rng.random_range(-6.0f32..=6.0)).clamp(-90.0, 90.0),
                        pitch: base.pitch + rng.random_range(-3.0f32..=3.0),
                        roll: base.roll + rng.random_range(-3.0f32..=3.0),
                    };
                    let score = (0.99 - 0.45 * (pose.yaw / 90.0).powi(2)
                        + rng.random_range(-0.03f32..=0.0))
                    .clamp(0.3, 1.0);
                    images.push(IjbImage {
                        plan: ImagePlan {
                            identity: IJB_BASE + i as u64,
                            pose,
                            stream: SCENE_STREAM,
                            // Frames of one media share the scene draw.
                            index: scene_index,
                        },
                        name: format!("{}.jpg", images.len() + 1),
                        template,
                        media: media_id,
                        score,
                    });
                }
            }
        }
    }
    let mut pairs = Vec::new();
    for i in 0..c.identities {
        let first = (i * c.templates_per_identity) as u64 + 1;
        for a in 0..c.templates_per_identity as u64 {
            for b in a + 1..c.templates_per_identity as u64 {
                pairs.push((first + a, first + b, 1));
            }
        }
    }
    for t in 1..=templates {
        let own = (t - 1) / c.templates_per_identity as u64;
        for _ in 0..c.impostors_per_template {
            let mut other = rng.random_range(1..=templates);
            while (other - 1) / c.templates_per_identity as u64 == own {
                other = rng.random_range(1..=templates);
            }
            pairs.push((t, other, 0));
        }
    }
    IjbPlan { images, pairs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn templates_belong_to_one_identity_and_pairs_are_labelled_by_identity() {
        let cfg = SynthConfig::preset(Preset::Small, 2);
        let plan = plan_ijb(&cfg);
        let mut owner = std::collections::HashMap::new();
        for im in &plan.images {
            assert_eq!(
                *owner.entry(im.template).or_insert(im.plan.identity),
                im.plan.identity
            );
        }
        assert_eq!(owner.len(), 200 * 2);
        let genuine = plan.pairs.iter().filter(|p| p.2 == 1).count();
        assert_eq!(genuine, 200);
        assert_eq!(plan.pairs.len(), 200 + 400 * 4);
        for &(a, b, l) in &plan.pairs {
            assert_eq!(l == 1, owner[&a] == owner[&b]);
        }
        // Several media per template on average, and more than one image per media sometimes.
        let media: std::collections::HashSet<u64> = plan.images.iter().map(|i| i.media).collect();
        assert!(media.len() > 600 && plan.images.len() > media.len());
    }
}
