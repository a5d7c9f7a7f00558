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
    /// A report or plot could not be written.
    #[error("cannot write report: {0}")]
    Io(String),
}

/// Fails on the first NaN or infinite value, naming its row (`dim` values per row) as `what`.
pub(crate) fn check_finite<T: Copy + Into<f64> + std::fmt::Display>(
    values: &[T],
    dim: usize,
    what: &str,
) -> Result<(), EvalError> {
    match values.iter().position(|&v| !v.into().is_finite()) {
        Some(i) => Err(EvalError::NonFinite(format!(
            "{what} {} has {}",
            i / dim.max(1),
            values[i]
        ))),
        None => Ok(()),
    }
}
