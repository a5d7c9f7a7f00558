//! The crate's error type.

/// Why a head or Partial FC step could not be built or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// A configuration value is out of range; the message names the field.
    #[error("invalid loss configuration: {0}")]
    Config(String),
    /// The head needs an input the caller did not give (e.g. PAA without poses).
    #[error("the {head} head needs {what}")]
    MissingInput {
        /// The head's name.
        head: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// Inputs disagree in size.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A label is outside the class range.
    #[error("label {label} at batch row {row} is outside 0..{classes}")]
    Label {
        /// Batch row.
        row: usize,
        /// The offending label.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
}
