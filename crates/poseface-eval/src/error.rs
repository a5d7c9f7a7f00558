//! The crate's error type.

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// Inputs disagree in size.
    #[error("size mismatch: {0}")]
    Mismatch(String),
    /// An embedding or score is NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// The input cannot give the metric (too few pairs, a class missing).
    #[error("not enough data: {0}")]
    TooFew(String),
}
