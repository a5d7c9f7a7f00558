//! # poseface-synth
//!
//! Synthetic faces with ground truth (work in progress).

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

pub use error::SynthError;
