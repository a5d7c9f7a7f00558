//! # poseface-eval
//!
//! Face-verification metrics computed exactly as the field computes them, on plain `f32`
//! (or, for the 10-fold protocol, `f64`) embeddings from any source (no deep-learning
//! dependency):
//!
//! - [`verification`]: insightface's 10-fold protocol for `.bin` pair sets (accuracy
//!   mean ± std, per-fold thresholds, VAL@FAR), and `normalize(e + e_flip)` in `f64`;
//! - [`roc`]: scikit-learn's `roc_curve` and insightface's TAR@FAR reading;
//! - [`ijb`]: IJB-B/C template aggregation (face score, media mean, media sum, L2) and
//!   cosine pair scores;
//! - [`pose`]: the 10-fold decisions split by pose class (frontal/profile) and by yaw
//!   difference;
//! - [`probe`]: ridge-regression probes (held-out R²), e.g. how much head pose an identity
//!   embedding still carries;
//! - [`histogram`]: genuine and impostor score distributions;
//! - [`report`] and [`plot`]: a Markdown summary and plots as SVG and PNG (ROC curves,
//!   accuracy by pose bucket, score histograms).
//!
//! ```
//! use poseface_eval::roc::roc_curve;
//! use poseface_eval::verification::verify_distances;
//!
//! // 20 pairs: genuine ones closer (distance 0.4) than impostors (1.6).
//! let issame: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
//! let dist: Vec<f64> = issame.iter().map(|&s| if s { 0.4 } else { 1.6 }).collect();
//! let r = verify_distances(&dist, &issame, 10, 1e-3).unwrap();
//! assert_eq!(r.accuracy_mean, 1.0);
//!
//! let scores: Vec<f32> = dist.iter().map(|d| -*d as f32).collect();
//! let roc = roc_curve(&issame, &scores).unwrap();
//! assert_eq!(roc.auc(), 1.0);
//! ```

pub mod dot;
mod error;
pub mod histogram;
pub mod ijb;
mod pages;
pub mod plot;
pub mod pose;
pub mod probe;
mod radix;
pub mod report;
pub mod roc;
pub mod verification;

pub use error::EvalError;
pub use probe::{ProbeFit, ridge_probe};
pub use roc::{IJB_FARS, Roc, roc_curve};
pub use verification::{VerificationResult, fuse_flip, fuse_flip_f64, verify, verify_distances};
