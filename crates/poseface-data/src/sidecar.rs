//! The pose sidecar: per-record landmarks and Euler angles beside a dataset, in a file named
//! [`SIDECAR_FILE`] (in a RecordIO directory, or at an ImageFolder's root).
//!
//! # Format (little endian)
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `PFPOSE01` |
//! | 4 | `u32` points per record `P` (0, 5 or 68) |
//! | 4 | `u32` reserved, 0 |
//! | 8 | `u64` record count `N` |
//! | 8 | `u64` reserved, 0 |
//! | `N × (24 + 8P)` | records, keys strictly increasing |
//!
//! A record is `u64 key`, `f32 yaw, pitch, roll` (degrees, the convention of
//! [`crate::pose`]), `u32 flags` (bit 0: angles valid, bit 1: landmarks valid) and `P` points
//! as `f32 x, y` in pixels of the stored image (for RecordIO: the aligned 112×112 face).
//! Keys are RecordIO keys, or for an ImageFolder the image's position in its canonical order
//! ([`crate::ImageFolder`]). Fixed-size records make lookups a binary search over a
//! memory-mapped file, so MS1MV2-sized sidecars (5.8 M records) cost no parsing.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Location, Result};
use crate::fsutil::{MappedFile, map_file, temp_path};
use crate::landmarks::Point;
use crate::pose::EulerAngles;

/// The sidecar's file name.
pub const SIDECAR_FILE: &str = "pose.sidecar";
const MAGIC: &[u8; 8] = b"PFPOSE01";
const HEADER_LEN: usize = 32;
const FLAG_ANGLES: u32 = 1;
const FLAG_LANDMARKS: u32 = 2;

/// Pose information of one record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoseRecord {
    /// The record's key.
    pub key: u64,
    /// Euler angles, when known.
    pub angles: Option<EulerAngles>,
    /// Landmarks (as many as the sidecar's points per record), when known.
    pub landmarks: Option<Vec<Point>>,
}

/// A read-only, memory-mapped pose sidecar.
pub struct PoseSidecar {
    path: PathBuf,
    data: MappedFile,
    points: usize,
    count: usize,
}

impl std::fmt::Debug for PoseSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseSidecar")
            .field("path", &self.path)
            .field("records", &self.count)
            .finish()
    }
}

fn record_len(points: usize) -> usize {
    24 + 8 * points
}

impl PoseSidecar {
    /// Opens and validates a sidecar (header, size, key order).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let data = map_file(&path)?;
        Self::from_data(path, data)
    }

    /// Validates a sidecar held in memory; `path` names it in errors.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_data(path.as_ref().to_path_buf(), MappedFile::Owned(bytes))
    }

    fn from_data(path: PathBuf, data: MappedFile) -> Result<Self> {
        let bytes = data.as_slice();
        let err = |loc, m: String| DataError::format(&path, loc, m);
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(err(
                Location::Offset(0),
                "not a pose sidecar (magic PFPOSE01 expected)".into(),
            ));
        }
        let points = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        if !matches!(points, 0 | 5 | 68) {
            return Err(err(
                Location::Offset(8),
                format!("{points} points per record; expected 0, 5 or 68"),
            ));
        }
        let count = u64::from_le_bytes(bytes[16..24].try_into().expect("8"));
        let expected = (count as u128) * record_len(points) as u128 + HEADER_LEN as u128;
        if expected != bytes.len() as u128 {
            return Err(err(
                Location::Offset(16),
                format!(
                    "{count} records of {} bytes need {expected} bytes, the file has {}",
                    record_len(points),
                    bytes.len()
                ),
            ));
        }
        let s = Self {
            path,
            data,
            points,
            count: count as usize,
        };
        for i in 1..s.count {
            if s.key_at(i) <= s.key_at(i - 1) {
                return Err(DataError::format(
                    &s.path,
                    Location::Record(i as u64),
                    format!(
                        "key {} does not follow {} in increasing order",
                        s.key_at(i),
                        s.key_at(i - 1)
                    ),
                ));
            }
        }
        Ok(s)
    }

    fn record_bytes(&self, i: usize) -> &[u8] {
        let l = record_len(self.points);
        &self.data.as_slice()[HEADER_LEN + i * l..HEADER_LEN + (i + 1) * l]
    }

    fn key_at(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.record_bytes(i)[..8].try_into().expect("8"))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Landmarks per record (0, 5 or 68).
    pub fn points_per_record(&self) -> usize {
        self.points
    }

    /// The `i`-th record in key order.
    pub fn record(&self, i: usize) -> Option<PoseRecord> {
        (i < self.count).then(|| {
            let b = self.record_bytes(i);
            let f = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().expect("4"));
            let flags = u32::from_le_bytes(b[20..24].try_into().expect("4"));
            PoseRecord {
                key: self.key_at(i),
                angles: (flags & FLAG_ANGLES != 0).then(|| EulerAngles {
                    yaw: f(8),
                    pitch: f(12),
                    roll: f(16),
                }),
                landmarks: (flags & FLAG_LANDMARKS != 0 && self.points > 0).then(|| {
                    (0..self.points)
                        .map(|k| [f(24 + 8 * k), f(28 + 8 * k)])
                        .collect()
                }),
            }
        })
    }

    /// The record with `key`, if present.
    pub fn get(&self, key: u64) -> Option<PoseRecord> {
        let (mut lo, mut hi) = (0usize, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key_at(mid).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.record(mid),
            }
        }
        None
    }
}

/// Writes a sidecar; records must come in increasing key order. Written to a temporary file
/// renamed into place by [`PoseSidecarWriter::finish`].
pub struct PoseSidecarWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    points: usize,
    count: u64,
    last: Option<u64>,
}

impl PoseSidecarWriter {
    /// Starts a sidecar at `path` with `points` landmarks per record (0, 5 or 68).
    pub fn create(path: impl AsRef<Path>, points: usize) -> Result<Self> {
        if !matches!(points, 0 | 5 | 68) {
            return Err(DataError::Invalid(format!(
                "{points} points per record; expected 0, 5 or 68"
            )));
        }
        let path = path.as_ref().to_path_buf();
        let tmp = temp_path(&path);
        let file = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        let mut out = BufWriter::new(file);
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&(points as u32).to_le_bytes());
        out.write_all(&header).map_err(|e| DataError::io(&tmp, e))?;
        Ok(Self {
            path,
            out,
            points,
            count: 0,
            last: None,
        })
    }

    /// Appends one record.
    pub fn push(&mut self, r: &PoseRecord) -> Result<()> {
        if self.last.is_some_and(|k| r.key <= k) {
            return Err(DataError::Invalid(format!(
                "sidecar key {} is not above the previous {:?}",
                r.key, self.last
            )));
        }
        let lm = r.landmarks.as_deref();
        if lm.is_some_and(|l| l.len() != self.points) {
            return Err(DataError::Invalid(format!(
                "record {} has {} landmarks, the sidecar holds {}",
                r.key,
                lm.map_or(0, <[_]>::len),
                self.points
            )));
        }
        let mut b = Vec::with_capacity(record_len(self.points));
        b.extend_from_slice(&r.key.to_le_bytes());
        let a = r.angles.unwrap_or_default();
        for v in [a.yaw, a.pitch, a.roll] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let flags = (u32::from(r.angles.is_some()) * FLAG_ANGLES)
            | (u32::from(lm.is_some()) * FLAG_LANDMARKS);
        b.extend_from_slice(&flags.to_le_bytes());
        for k in 0..self.points {
            let p = lm.map_or([0.0; 2], |l| l[k]);
            b.extend_from_slice(&p[0].to_le_bytes());
            b.extend_from_slice(&p[1].to_le_bytes());
        }
        self.out
            .write_all(&b)
            .map_err(|e| DataError::io(temp_path(&self.path), e))?;
        self.count += 1;
        self.last = Some(r.key);
        Ok(())
    }

    /// Writes the count, syncs and renames the file into place.
    pub fn finish(self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let tmp = temp_path(&self.path);
        let io = |e| DataError::io(&tmp, e);
        let mut file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(SeekFrom::Start(16)).map_err(io)?;
        file.write_all(&self.count.to_le_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| DataError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lookup_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIDECAR_FILE);
        let mut w = PoseSidecarWriter::create(&path, 5).unwrap();
        let recs = vec![
            PoseRecord {
                key: 1,
                angles: Some(EulerAngles {
                    yaw: 10.0,
                    pitch: -2.0,
                    roll: 0.5,
                }),
                landmarks: Some(vec![[1.0, 2.0]; 5]),
            },
            PoseRecord {
                key: 7,
                angles: None,
                landmarks: None,
            },
            PoseRecord {
                key: 9,
                angles: Some(EulerAngles::default()),
                landmarks: None,
            },
        ];
        for r in &recs {
            w.push(r).unwrap();
        }
        assert!(w.push(&recs[0]).is_err());
        w.finish().unwrap();
        let s = PoseSidecar::open(&path).unwrap();
        assert_eq!(s.len(), 3);
        for r in &recs {
            assert_eq!(s.get(r.key).as_ref(), Some(r));
        }
        assert_eq!(s.get(8), None);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        let e = PoseSidecar::open(&path).unwrap_err().to_string();
        assert!(e.contains("at byte offset 16") && e.contains("need"), "{e}");
    }
}
