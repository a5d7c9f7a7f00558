//! # poseface-train
//!
//! Training face-recognition models on burn, the way `arcface_torch` users expect:
//!
//! - [`config`]: one TOML file per experiment (backbone, head, Partial FC, SGD with warmup
//!   and polynomial decay, verification sets, checkpoints), `key=value` overrides, unknown
//!   keys named with the nearest valid one;
//! - [`trainer`]: the loop — batches → backbone → sampled class centres → margin head →
//!   cross-entropy; SGD; periodic verification; progress through a [`TrainObserver`];
//! - [`checkpoint`]: atomic checkpoints (`backbone.safetensors`, `centres.npy`,
//!   `state.json`) and resume;
//! - [`embed`]: embeddings of aligned faces (with the flip sum) from a run or from
//!   insightface weights;
//! - [`verifier`]: `.bin` pair sets scored with insightface's 10-fold protocol, by pose when
//!   yaws are known, and the raw-pixel baseline.
//!
//! ```no_run
//! use burn::tensor::Device;
//! use poseface_train::{ExperimentConfig, Trainer};
//!
//! let config = ExperimentConfig::load("configs/synth-arcface.toml".as_ref(), &[])?;
//! let mut trainer = Trainer::new(config, &Device::default().autodiff(), true)?;
//! let summary = trainer.run(&mut ())?;
//! println!("cross-pose accuracy {:.3}", summary.verification[0].accuracy);
//! # Ok::<(), poseface_train::TrainError>(())
//! ```

pub mod checkpoint;
pub mod clip;
pub mod compare;
pub mod config;
pub mod embed;
mod error;
pub mod ijb;
pub mod method;
pub mod metrics;
pub mod probe;
mod step;
pub mod trainer;
pub mod verifier;

pub use config::{ExperimentConfig, Precision};
pub use embed::Embedder;
pub use error::TrainError;
pub use method::{MethodConfig, PamsConfig, PoseFaceConfig, PoseRegressionConfig, PoseTarget};
pub use trainer::{
    PoseLandmarkNme, RunInfo, StepLog, TrainObserver, TrainSummary, Trainer, set_precision,
};
pub use verifier::{VerificationSet, VerifyReport};
