//! The crate's error type.

use std::path::PathBuf;

/// Why a run could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The experiment configuration is invalid.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file (or the key) at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Training or validation data could not be read.
    #[error("{0}")]
    Data(String),
    /// A data-layer error.
    #[error(transparent)]
    DataLayer(#[from] poseface_data::DataError),
    /// A loss or Partial FC error.
    #[error(transparent)]
    Loss(#[from] poseface_loss::LossError),
    /// Weights could not be read or written.
    #[error(transparent)]
    Weights(#[from] poseface_model::ImportError),
    /// The landmark autoencoder could not be loaded.
    #[error(transparent)]
    Landmark(#[from] poseface_landmark::LandmarkError),
    /// A metric could not be computed.
    #[error(transparent)]
    Eval(#[from] poseface_eval::EvalError),
    /// The loss or a gradient stopped being finite; the last good checkpoint is kept.
    #[error(
        "`{term}` is not finite at step {step} (loss {loss}, lr {lr}); stopped before the update. Last good checkpoint: {}",
        last_checkpoint.as_ref().map_or("none yet".to_string(), |p| p.display().to_string())
    )]
    NonFinite {
        /// The step whose loss was not finite.
        step: usize,
        /// The loss value.
        loss: f64,
        /// What was not finite: the first loss term (`margin`, `orth`, `pose`), `loss`, or
        /// the gradient of the `backbone`, the `pose module` or the `class centres`.
        term: String,
        /// The learning rate at that step.
        lr: f64,
        /// The newest checkpoint on disk.
        last_checkpoint: Option<PathBuf>,
    },
}
