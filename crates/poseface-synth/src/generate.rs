//! From seeds to pictures: identities by index, image plans, and parallel rendering that
//! builds each identity's mesh once.
//!
//! Identity `k` is drawn from the random stream `(seed, IDENTITY_STREAM, k)`. Training uses
//! `k < identities`, the verification pair sets `EVAL_BASE + i` and the IJB-style set
//! `IJB_BASE + i`, so the three are disjoint by construction.

use std::sync::atomic::{AtomicU64, Ordering};

use image::RgbImage;
use poseface_data::align_face;
use poseface_data::landmarks::{Point, five_from_68};
use poseface_data::pose::EulerAngles;
use rayon::prelude::*;

use crate::config::SynthConfig;
use crate::error::SynthError;
use crate::face::FaceShape;
use crate::identity::{Expression, Identity, IdentityCode};
use crate::mesh::{FaceMesh, MeshResolution};
use crate::render::{Renderer, Scene};
use crate::scene::stream_rng;

/// Random stream of identity codes.
pub const IDENTITY_STREAM: u64 = 1;
/// First identity index of the verification pair sets.
pub const EVAL_BASE: u64 = 1 << 32;
/// First identity index of the IJB-style set.
pub const IJB_BASE: u64 = 1 << 33;

/// The code of identity `index` under `seed`.
pub fn identity_code(seed: u64, index: u64) -> IdentityCode {
    IdentityCode::sample(&mut stream_rng(seed, IDENTITY_STREAM, index))
}

/// One picture to make: whose, in which pose, and which random stream draws the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImagePlan {
    /// Identity index.
    pub identity: u64,
    /// Head pose.
    pub pose: EulerAngles,
    /// Random stream of the scene (one per output set).
    pub stream: u64,
    /// Index within the stream.
    pub index: u64,
}

/// A rendered picture with its ground truth.
#[derive(Debug, Clone)]
pub struct SynthSample {
    /// Identity index.
    pub identity: u64,
    /// The loose crop.
    pub image: RgbImage,
    /// 68 landmarks in the loose crop (hidden ones included).
    pub landmarks: Vec<Point>,
    /// Landmark visibility.
    pub visible: Vec<bool>,
    /// Head pose.
    pub angles: EulerAngles,
    /// Expression.
    pub expression: Expression,
}

impl SynthSample {
    /// The 112×112 ArcFace-aligned face (5 points from the 68) and the landmarks in it.
    pub fn aligned(&self) -> Result<(RgbImage, Vec<Point>), SynthError> {
        let five = five_from_68(&self.landmarks)?;
        let (crop, m) = align_face(&self.image, &five)?;
        Ok((crop, m.apply_points(&self.landmarks)))
    }
}

/// Renders image plans under one configuration.
#[derive(Debug, Clone)]
pub struct Generator {
    config: SynthConfig,
}

impl Generator {
    /// A generator for `config` (validated).
    pub fn new(config: SynthConfig) -> Result<Self, SynthError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// Identity `index`.
    pub fn identity(&self, index: u64) -> Identity {
        Identity::new(
            &identity_code(self.config.seed, index),
            self.config.identity_spread,
        )
    }

    fn resolution(&self) -> MeshResolution {
        MeshResolution {
            columns: self.config.mesh[0],
            rows: self.config.mesh[1],
        }
    }

    /// Renders one plan with a prepared shape and mesh.
    pub fn render_with(
        &self,
        shape: &FaceShape,
        mesh: &FaceMesh,
        plan: &ImagePlan,
        renderer: &mut Renderer,
    ) -> SynthSample {
        let mut rng = stream_rng(self.config.seed, plan.stream, plan.index);
        let (scene, expression): (Scene, Expression) =
            self.config.variation.draw(plan.pose, &mut rng);
        let r = renderer.render(shape, mesh, &expression, &scene);
        SynthSample {
            identity: plan.identity,
            image: r.image,
            landmarks: r.landmarks,
            visible: r.visible,
            angles: plan.pose,
            expression,
        }
    }

    /// Renders `plans` in parallel (each identity's mesh built once) and maps every sample
    /// through `f` (with its plan's position); results come back in plan order. `tick` is called once per image.
    pub fn render_map<T: Send>(
        &self,
        plans: &[ImagePlan],
        f: impl Fn(usize, SynthSample) -> Result<T, SynthError> + Sync,
        tick: &(dyn Fn() + Sync),
    ) -> Result<Vec<T>, SynthError> {
        // Group plan positions by identity, keeping first-appearance order.
        let mut order: Vec<usize> = (0..plans.len()).collect();
        order.sort_by_key(|&i| (plans[i].identity, i));
        let mut groups: Vec<&[usize]> = Vec::new();
        let mut start = 0;
        for k in 1..=order.len() {
            if k == order.len() || plans[order[k]].identity != plans[order[start]].identity {
                groups.push(&order[start..k]);
                start = k;
            }
        }
        let done: Vec<Vec<(usize, T)>> = groups
            .par_iter()
            .map_init(Renderer::default, |renderer, group| {
                let shape = FaceShape::new(&self.identity(plans[group[0]].identity));
                let mesh = FaceMesh::build(&shape, self.resolution());
                group
                    .iter()
                    .map(|&i| {
                        let s = self.render_with(&shape, &mesh, &plans[i], renderer);
                        let out = f(i, s)?;
                        tick();
                        Ok((i, out))
                    })
                    .collect::<Result<Vec<_>, SynthError>>()
            })
            .collect::<Result<_, _>>()?;
        let mut slots: Vec<Option<T>> = (0..plans.len()).map(|_| None).collect();
        for (i, t) in done.into_iter().flatten() {
            slots[i] = Some(t);
        }
        Ok(slots
            .into_iter()
            .map(|s| s.expect("every plan rendered"))
            .collect())
    }
}

/// A thread-safe counter that reports progress as `(done, total)`.
pub(crate) struct Ticker<'a> {
    done: AtomicU64,
    total: u64,
    stage: &'static str,
    report: &'a (dyn Fn(&str, u64, u64) + Sync),
}

impl<'a> Ticker<'a> {
    pub(crate) fn new(
        stage: &'static str,
        total: u64,
        report: &'a (dyn Fn(&str, u64, u64) + Sync),
    ) -> Self {
        report(stage, 0, total);
        Self {
            done: AtomicU64::new(0),
            total,
            stage,
            report,
        }
    }

    pub(crate) fn tick(&self) {
        let d = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        (self.report)(self.stage, d, self.total);
    }
}
