//! Atomic file writes: a temporary file beside the target, synced, then renamed over it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The temporary name used while writing `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}

/// A read-only file in memory: memory-mapped, or owned when the file is empty.
pub enum MappedFile {
    /// A read-only map of the whole file.
    Mapped(memmap2::Mmap),
    /// An empty file (zero-length maps are not portable).
    Empty,
    /// Bytes already in memory.
    Owned(Vec<u8>),
}

impl MappedFile {
    /// The file's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            MappedFile::Mapped(m) => m,
            MappedFile::Empty => &[],
            MappedFile::Owned(v) => v,
        }
    }
}

/// Maps `path` read-only.
pub fn map_file(path: &Path) -> Result<MappedFile> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if len == 0 {
        return Ok(MappedFile::Empty);
    }
    // SAFETY: the map is read-only. Like every reader of memory-mapped datasets we assume the
    // file is not truncated or rewritten by another process while it is open; all reads are
    // bounds-checked against the length seen at open time.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
    Ok(MappedFile::Mapped(map))
}
