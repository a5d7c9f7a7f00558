//! The pose-aware part a training method adds after the backbone, as one module type so that
//! training, checkpoints and optimisers handle every method alike.

use burn::module::Module;

use crate::disentangle::DisentangledHead;
use crate::dream::Dream;
use crate::pose_aware::PoseAwareHeads;
use crate::pose_regressor::PoseRegressor;

/// What sits between the backbone and the margin head.
// One per run, moved once per step: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum PoseModule {
    /// PoseFace: identity and pose projections.
    Disentangled(DisentangledHead),
    /// p-CNN-style multi-task: a pose regression side head.
    Regressor(PoseRegressor),
    /// DREAM: a yaw-gated residual on the embedding.
    Dream(Dream),
    /// PAMs-style pose-aware heads, fused at test time.
    PoseAware(PoseAwareHeads),
}

impl PoseModule {
    /// Size of the identity embedding this module trains from a backbone embedding of
    /// `backbone_size` (the margin head's input; pose-aware heads fuse to more at test time).
    pub fn identity_size(&self, backbone_size: usize) -> usize {
        match self {
            Self::Disentangled(h) => h.identity_size(),
            Self::Regressor(_) | Self::Dream(_) | Self::PoseAware(_) => backbone_size,
        }
    }
}
