//! `metrics.jsonl`: one JSON object per line, appended as the run goes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::TrainError;
use crate::trainer::io;

/// An append-only JSON-lines log.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens (or creates) the log for appending.
    pub fn open(path: &Path) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Opens the log for a session that starts after `step` steps: records of later steps
    /// (left by an interrupted session that is about to redo them) are dropped first.
    pub fn open_at(path: &Path, step: usize) -> Result<Self, TrainError> {
        if path.is_file() {
            let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v["step"].as_u64())
                        .is_some_and(|s| s as usize <= step)
                        && step > 0
                })
                .map(|line| format!("{line}\n"))
                .collect();
            poseface_data::fsutil::write_atomic(path, kept.as_bytes())?;
        }
        Self::open(path)
    }

    /// Appends one record.
    pub fn write(&mut self, record: &serde_json::Value) -> Result<(), TrainError> {
        let mut line = record.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| io(&self.path, e))
    }
}
