//! # poseface-loss
//!
//! The training objectives of face recognition, written once against burn's
//! device-agnostic tensors:
//!
//! - [`head`]: margin-softmax heads behind one API — normalised Softmax, SphereFace, CosFace,
//!   ArcFace, Combined (m1, m2, m3), CurricularFace, MagFace, AdaFace and PoseFace's
//!   Pose-Adaptive ArcFace (PAA), whose per-sample margin grows with the pose
//!   ([`pose_margin`]);
//! - [`cross_entropy`]: the softmax cross-entropy and the normalised cosine logits;
//! - [`disentangle`]: PoseFace's orthogonality loss `‖Ŵ_id Ŵ_pᵀ‖²_F` and pose loss
//!   `‖z_p − E(l)‖²`;
//! - [`partial_fc`]: Partial FC — class centres sampled per step, every positive kept, and
//!   an SGD update that touches only the sampled rows.
//!
//! ```
//! use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
//! use poseface_loss::head::{HeadInput, MarginHead, MarginHeadConfig, PaaConfig};
//! use poseface_loss::cross_entropy::normalized_cosine;
//!
//! let device = Device::default();
//! let embeddings = Tensor::<2>::random([4, 8], Distribution::Normal(0.0, 1.0), &device);
//! let centres = Tensor::<2>::random([10, 8], Distribution::Normal(0.0, 1.0), &device);
//! let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4], [4]), &device);
//! // yaw, pitch, roll in degrees: two frontal faces, two profiles.
//! let pose = [[5.0, 0.0, 0.0], [-10.0, 5.0, 0.0], [70.0, 0.0, 0.0], [-85.0, 10.0, 0.0]];
//!
//! let mut head = MarginHead::new(MarginHeadConfig::Paa(PaaConfig::default())).unwrap();
//! let (cosine, norms) = normalized_cosine(embeddings, centres);
//! let out = head
//!     .forward(HeadInput { cosine, labels: labels.clone(), norms: Some(norms), pose: Some(&pose) })
//!     .unwrap();
//! // Profiles (|yaw| > 60°) get m_b + δm, frontal faces m_b.
//! assert_eq!(out.margins.as_deref(), Some(&[0.5, 0.5, 0.7, 0.7][..]));
//! let loss = out.loss(labels).into_scalar::<f32>();
//! assert!(loss.is_finite());
//! ```

pub mod cross_entropy;
pub mod disentangle;
mod error;
pub mod head;
mod head_config;
pub mod partial_fc;
pub mod pose_margin;

pub use disentangle::{orthogonality, pose_loss};
pub use error::LossError;
pub use head::{HeadInput, HeadOutput, MarginGradient, MarginHead, MarginHeadConfig};
pub use partial_fc::{PartialFc, PartialFcConfig, Sampled, SgdStep};
pub use pose_margin::PoseMapping;
