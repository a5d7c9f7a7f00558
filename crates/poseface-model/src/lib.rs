//! # poseface-model
//!
//! Face-recognition backbones written once against burn's device-agnostic API, so the same
//! model runs on the pure-Rust CPU backend, CUDA, WGPU or libtorch:
//!
//! - [`iresnet`]: insightface's IResNet 18/34/50/100/200 (`arcface_torch` layout), with a
//!   width multiplier and any square input size for CPU-sized variants;
//! - [`mobilefacenet`]: MobileFaceNet as its paper defines it;
//! - [`dream`]: DREAM's yaw-gated residual; [`pose_regressor`]: a pose side head (the
//!   multi-task baseline, and DREAM's yaw estimate); [`pose_module`]: either of those or the
//!   disentangled head, as one module type;
//! - [`param_ids`]: process-independent parameter ids, so saved optimiser state reloads;
//! - [`disentangle`]: PoseFace's identity/pose projections, foldable into the backbone for
//!   export;
//! - [`import`]: insightface `backbone.pth` / safetensors state dicts in, safetensors out,
//!   through burn-store with one explicit key rule per renamed tensor.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Tensor};
//! use poseface_model::iresnet::{IResNetConfig, IResNetDepth};
//!
//! let device = Device::default();
//! // IResNet-18 at 1/8 width on 32×32 inputs, 16-d embedding: a toy-sized network.
//! let model = IResNetConfig::depth(IResNetDepth::R18)
//!     .with_width(0.125)
//!     .with_input_size(32)
//!     .with_embedding_size(16)
//!     .init(&device);
//! let faces = Tensor::<4>::random([2, 3, 32, 32], Distribution::Uniform(-1.0, 1.0), &device);
//! let embeddings = model.forward(faces);
//! assert_eq!(embeddings.dims(), [2, 16]);
//! ```

pub mod backbone;
pub mod batch_norm;
pub mod conv;
pub mod disentangle;
pub mod dream;
#[cfg(feature = "flex")]
mod flex_blocks;
pub mod import;
pub mod iresnet;
pub mod mobilefacenet;
pub mod param_ids;
pub mod pose_aware;
pub mod pose_module;
pub mod pose_regressor;
pub mod prelu;

pub use backbone::{Backbone, BackboneConfig};
pub use disentangle::{DisentangledHead, DisentangledHeadConfig};
pub use dream::{Dream, DreamConfig};
pub use import::{
    ImportError, cast_to_f32, cast_to_module, float_dtype, load_insightface, save_insightface,
};
pub use iresnet::{IResNet, IResNetConfig, IResNetDepth};
pub use mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};
pub use param_ids::stable_param_ids;
pub use pose_aware::{PoseAwareHeads, PoseAwareHeadsConfig, pose_groups};
pub use pose_module::PoseModule;
pub use pose_regressor::{PoseRegressor, PoseRegressorConfig};
