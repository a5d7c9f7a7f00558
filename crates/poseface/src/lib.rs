//! # poseface
//!
//! The umbrella crate of PoseFace-rs: it re-exports the workspace's libraries under one name
//! and provides the `poseface` command line (see the crate README for its commands).
//!
//! ```
//! use poseface::data::{EulerAngles, pose::project, mean_face::mean_face_68, estimate_pose};
//!
//! let truth = EulerAngles { yaw: 40.0, pitch: -5.0, roll: 3.0 };
//! let points = project(&mean_face_68(), truth, 0.5, [56.0, 56.0]);
//! let pose = estimate_pose(&points).unwrap();
//! assert!((pose.yaw - 40.0).abs() < 0.1);
//! ```

pub use poseface_data as data;
pub use poseface_eval as eval;
pub use poseface_landmark as landmark;
pub use poseface_loss as loss;
pub use poseface_model as model;
pub use poseface_synth as synth;
pub use poseface_train as train;
