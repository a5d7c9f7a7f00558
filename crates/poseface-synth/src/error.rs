//! The crate's error type.

use std::path::PathBuf;

/// What can go wrong generating or writing synthetic data.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid synthetic-data configuration: {0}")]
    Invalid(String),
    /// Writing a dataset file failed.
    #[error(transparent)]
    Data(#[from] poseface_data::DataError),
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}
