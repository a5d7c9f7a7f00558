//! A landmark autoencoder on burn: 68 two-dimensional facial landmarks are normalised
//! (centred, unit RMS radius), encoded by an MLP into a small latent code and decoded back.
//!
//! PoseFace uses the pretrained, frozen encoder as the target of its pose branch: the pose
//! projection of a face's feature must equal the code of the face's landmarks, so the pose
//! subspace carries landmark (pose and expression) information and nothing else. This crate
//! knows nothing of faces beyond their landmarks and can be used on its own.
//!
//! - [`normalise`](mod@normalise): the normalisation, on host slices and on tensors;
//! - [`model`]: [`LandmarkAutoencoderConfig`] → [`LandmarkAutoencoder`] (`encode`, `decode`);
//! - [`pretrain`](mod@pretrain): training from any [`LandmarkSource`], and [`frozen`] for use as a target;
//! - [`metrics`]: NME by inter-ocular distance and by box size;
//! - [`store`]: one safetensors file with the configuration in its metadata.
//!
//! ```
//! use burn::tensor::Device;
//! use poseface_landmark::{LandmarkAutoencoderConfig, PretrainConfig, evaluate, pretrain};
//!
//! // Ten shapes of 68 points (a real run draws millions from poseface-synth).
//! let shapes: Vec<Vec<[f32; 2]>> = (0..10)
//!     .map(|i| (0..68).map(|k| [k as f32 + i as f32 * (k % 3) as f32, (k * k % 17) as f32]).collect())
//!     .collect();
//! let device = Device::default();
//! let config = PretrainConfig { steps: 20, batch_size: 10, ..PretrainConfig::default() };
//! let ae = pretrain(
//!     &LandmarkAutoencoderConfig::new().with_hidden(32).with_latent(4),
//!     &config,
//!     &shapes,
//!     &device,
//!     &mut |_| {},
//! )?;
//! let report = evaluate(&ae, &shapes, &device)?;
//! assert_eq!(report.count, 10);
//! # Ok::<(), poseface_landmark::LandmarkError>(())
//! ```

mod error;
pub mod metrics;
pub mod model;
pub mod normalise;
pub mod pretrain;
pub mod store;

pub use error::LandmarkError;
pub use metrics::{NmeReport, evaluate};
pub use model::{LandmarkAutoencoder, LandmarkAutoencoderConfig};
pub use normalise::{normalise, normalise_tensor};
pub use pretrain::{
    IOD_FLOOR, LandmarkSource, PretrainConfig, PretrainStep, Weighting, frozen, pretrain,
};
pub use store::{load, save};
