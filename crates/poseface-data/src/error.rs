//! The crate's typed error: every failure names the file, the place in it and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in a file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The whole file (it could not be opened, or its kind is wrong).
    File,
    /// A byte offset into the file.
    Offset(u64),
    /// A 1-based line number of a text file.
    Line(usize),
    /// The index of a record or an entry (RecordIO key, pair index, image index).
    Record(u64),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File => Ok(()),
            Location::Offset(o) => write!(f, " at byte offset {o}"),
            Location::Line(l) => write!(f, " at line {l}"),
            Location::Record(r) => write!(f, " at record {r}"),
        }
    }
}

/// Every error `poseface-data` returns.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused an operation on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents do not follow its format.
    #[error("{path}{location}: {message}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// Where in the file.
        location: Location,
        /// What was found and what was expected.
        message: String,
    },
    /// An image could not be decoded.
    #[error("{source_name}: cannot decode image: {message}")]
    Image {
        /// The image's file path, or `FILE[record N]` for an image embedded in a container.
        source_name: String,
        /// The decoder's explanation.
        message: String,
    },
    /// An argument given by the caller is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error in `path` at `location`.
    pub fn format(path: impl AsRef<Path>, location: Location, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.as_ref().to_path_buf(),
            location,
            message: message.into(),
        }
    }

    /// An image decoding error for the image called `source_name`.
    pub fn image(source_name: impl Into<String>, message: impl fmt::Display) -> Self {
        DataError::Image {
            source_name: source_name.into(),
            message: message.to_string(),
        }
    }
}
