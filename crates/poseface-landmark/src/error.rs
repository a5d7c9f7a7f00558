//! Errors of the landmark crate.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LandmarkError {
    /// Landmarks of the wrong count or with no extent.
    #[error("bad landmarks: {0}")]
    Shape(String),
    /// Invalid settings.
    #[error("bad settings: {0}")]
    Config(String),
    /// The reconstruction loss stopped being finite.
    #[error("pretraining diverged: loss not finite at step {step} (lower the learning rate)")]
    NonFinite {
        /// Step (1-based) whose loss was not finite.
        step: usize,
    },
    /// A weights file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}
