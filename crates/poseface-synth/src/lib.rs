//! # poseface-synth
//!
//! Pose-controlled synthetic faces with ground truth: a procedural 3D face model of our
//! own, a z-buffer renderer, and writers that put the pictures into the formats real
//! face-recognition data comes in. It is the built-in dataset of PoseFace (no download) and
//! a controlled benchmark for pose imbalance, since every picture's identity, 68 landmarks
//! and yaw/pitch/roll are known exactly.
//!
//! - **Model** ([`identity`], [`face`], [`mesh`]): 34 identity parameters (head, jaw,
//!   cheeks, brows, eyes, nose, mouth, chin, ears, skin, texture, hair, beard) and four
//!   expressions shape a closed head-and-neck surface with albedo and semantic regions; the
//!   68 iBUG landmarks are points on it.
//! - **Rendering** ([`raster`], [`render`], [`scene`]): perspective camera, z-buffer with
//!   anti-aliasing at the silhouette and occlusion edges (or everywhere), Lambert + ambient
//!   light, flat / gradient / noise backgrounds, blur, sensor noise and JPEG degradation;
//!   landmarks come with visibility. Poses follow the
//!   convention of [`poseface_data::pose`].
//! - **Datasets** ([`config`], [`generate`], [`pairs`], [`ijb`], [`writer`]): presets
//!   `tiny` / `small` / `medium` written as RecordIO + pose sidecar, cross-pose and frontal
//!   verification `.bin` files, and an IJB-C-layout template set; byte-identical for a seed.
//! - **Landmarks only** ([`landmark_sampler`]): millions of (landmarks, pose, identity)
//!   samples without rasterising; **montages** ([`montage`]) for looking at the faces.
//!
//! ```
//! use poseface_data::pose::{EulerAngles, estimate_pose};
//! use poseface_synth::face::FaceShape;
//! use poseface_synth::identity::{Expression, Identity, IdentityCode};
//! use poseface_synth::mesh::{FaceMesh, MeshResolution};
//! use poseface_synth::render::{Renderer, Scene};
//!
//! // The average identity, turned 40° towards the image's right.
//! let shape = FaceShape::new(&Identity::new(&IdentityCode::mean(), 1.0));
//! let mesh = FaceMesh::build(&shape, MeshResolution::default());
//! let pose = EulerAngles { yaw: 40.0, pitch: 0.0, roll: 0.0 };
//! let out = Renderer::default().render(&shape, &mesh, &Expression::default(), &Scene::clean(pose));
//! assert_eq!(out.image.dimensions(), (160, 160));
//! // The rendered landmarks give back the pose.
//! let fitted = estimate_pose(&out.landmarks).unwrap();
//! assert!((fitted.yaw - 40.0).abs() < 4.0);
//! ```

pub mod config;
mod error;
pub mod face;
pub mod generate;
pub mod identity;
pub mod ijb;
pub mod landmark_sampler;
pub mod mesh;
pub mod montage;
mod noise;
pub mod pairs;
pub mod raster;
pub mod render;
pub mod scene;
pub mod writer;

pub use config::{Preset, SynthConfig};
pub use error::SynthError;
pub use generate::{Generator, SynthSample};
pub use writer::{SynthReport, write_dataset};
