//! insightface's face-recognition layout on top of RecordIO: `train.rec`, `train.idx`,
//! `property`, an optional pose sidecar `train.pose`.
//!
//! Record 0 has `flag = 2` and labels `[A, B]`: image records are keys `1..A` and identity
//! records are keys `A..B`, identity record `k` holding `[first, end)` image keys of one
//! identity. Datasets without that header (record 0 with `flag == 0`) are read as a flat list
//! of image records whose primary label is the identity.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Location, Result};
use crate::recordio::{IrHeader, IrRecord, RecordIoReader, RecordIoWriter};

/// File names inside a RecordIO dataset directory.
pub const REC_FILE: &str = "train.rec";
/// The index file name.
pub const IDX_FILE: &str = "train.idx";
/// The `num_classes,height,width` file name.
pub const PROPERTY_FILE: &str = "property";

/// The contents of insightface's `property` file: `num_classes,height,width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// Number of identities.
    pub num_classes: u64,
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
}

impl Property {
    /// Reads and parses a `property` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let fields: Vec<&str> = text.trim().split(',').map(str::trim).collect();
        let err = || {
            DataError::format(
                path,
                Location::Line(1),
                format!(
                    "expected `num_classes,height,width`, found {:?}",
                    text.trim()
                ),
            )
        };
        let [n, h, w] = fields.as_slice() else {
            return Err(err());
        };
        Ok(Self {
            num_classes: n.parse().map_err(|_| err())?,
            height: h.parse().map_err(|_| err())?,
            width: w.parse().map_err(|_| err())?,
        })
    }

    /// Writes the file (`num_classes,height,width` and a newline).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(
            path,
            format!("{},{},{}\n", self.num_classes, self.height, self.width),
        )
        .map_err(|e| DataError::io(path, e))
    }
}

/// `[first, end)` image positions per identity.
type IdentityRanges = Vec<(u64, u64)>;

/// A face-recognition RecordIO dataset: images with identity labels, grouped by identity.
#[derive(Debug)]
pub struct FaceRecordSet {
    dir: PathBuf,
    reader: RecordIoReader,
    /// Image keys in dataset order.
    images: Vec<u64>,
    /// `[first, end)` positions into `images` per identity when the header gives them.
    identities: Option<Vec<(u64, u64)>>,
    property: Option<Property>,
}

impl FaceRecordSet {
    /// Opens `dir/train.rec` + `dir/train.idx` (+ `dir/property` when present).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let reader = RecordIoReader::open(dir.join(REC_FILE), dir.join(IDX_FILE))?;
        let property_path = dir.join(PROPERTY_FILE);
        let property = if property_path.exists() {
            Some(Property::read(&property_path)?)
        } else {
            None
        };
        let (images, identities) = match reader.contains(0).then(|| reader.read(0)).transpose()? {
            Some(r0) if r0.header.flag > 0 => Self::from_header(&reader, &r0)?,
            _ => (reader.keys().collect(), None),
        };
        Ok(Self {
            dir,
            reader,
            images,
            identities,
            property,
        })
    }

    fn from_header(
        reader: &RecordIoReader,
        r0: &IrRecord<'_>,
    ) -> Result<(Vec<u64>, Option<IdentityRanges>)> {
        let path = reader.path();
        let err = |k: u64, m: String| DataError::format(path, Location::Record(k), m);
        let range = |k: u64, r: &IrRecord<'_>| -> Result<(u64, u64)> {
            match r.labels.as_slice() {
                [a, b, ..] if a.is_finite() && b.is_finite() && *a >= 0.0 && a <= b => {
                    Ok((*a as u64, *b as u64))
                }
                l => Err(err(
                    k,
                    format!("expected a label range [start, end), found {l:?}"),
                )),
            }
        };
        let (a, b) = range(0, r0)?;
        if a == 0 {
            return Err(err(0, "header record announces image keys 1..0".into()));
        }
        for k in [a - 1, b.saturating_sub(1)] {
            if k > 0 && !reader.contains(k) {
                return Err(err(
                    k,
                    format!("header announces keys up to {k} but the index lacks it"),
                ));
            }
        }
        let images: Vec<u64> = (1..a).collect();
        let mut identities = Vec::with_capacity((b - a) as usize);
        for k in a..b {
            let (s, e) = range(k, &reader.read(k)?)?;
            if s < 1 || e > a {
                return Err(err(
                    k,
                    format!("identity range [{s}, {e}) lies outside the image keys 1..{a}"),
                ));
            }
            identities.push((s - 1, e - 1));
        }
        Ok((images, Some(identities)))
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The underlying RecordIO reader.
    pub fn reader(&self) -> &RecordIoReader {
        &self.reader
    }

    /// The `property` file, when present.
    pub fn property(&self) -> Option<Property> {
        self.property
    }

    /// Number of image records.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The RecordIO key of the `i`-th image.
    pub fn key(&self, i: usize) -> Option<u64> {
        self.images.get(i).copied()
    }

    /// Image keys in dataset order.
    pub fn keys(&self) -> &[u64] {
        &self.images
    }

    /// Per identity, the `[first, end)` positions of its images, from the header records.
    /// `None` for datasets without identity records (use [`FaceRecordSet::group_by_label`]).
    pub fn identity_ranges(&self) -> Option<&[(u64, u64)]> {
        self.identities.as_deref()
    }

    /// The `i`-th image: `(identity label, encoded image bytes)`.
    pub fn image(&self, i: usize) -> Result<(u32, Cow<'_, [u8]>)> {
        let key = self.key(i).ok_or_else(|| {
            DataError::Invalid(format!(
                "image {i} out of range ({} images)",
                self.images.len()
            ))
        })?;
        let r = self.reader.read(key)?;
        let label = r.primary_label();
        if !(label.is_finite() && label >= 0.0 && label <= u32::MAX as f32) {
            return Err(DataError::format(
                self.reader.path(),
                Location::Record(key),
                format!("identity label {label} is not a non-negative number"),
            ));
        }
        Ok((label as u32, r.payload))
    }

    /// Groups image positions by identity label, reading every record's header.
    pub fn group_by_label(&self) -> Result<std::collections::BTreeMap<u32, Vec<usize>>> {
        let mut groups = std::collections::BTreeMap::<u32, Vec<usize>>::new();
        for i in 0..self.images.len() {
            let key = self.images[i];
            let label = self.reader.read(key)?.primary_label();
            if !(label.is_finite() && label >= 0.0) {
                return Err(DataError::format(
                    self.reader.path(),
                    Location::Record(key),
                    format!("identity label {label} is not a non-negative number"),
                ));
            }
            groups.entry(label as u32).or_default().push(i);
        }
        Ok(groups)
    }
}

/// Writes a dataset in insightface's layout: header record, images grouped by identity,
/// identity records, `property`.
///
/// Identities must be written in order, each one's images together.
pub struct FaceRecordWriter {
    dir: PathBuf,
    writer: RecordIoWriter,
    num_images: u64,
    num_identities: u64,
    /// `[first, end)` image keys per finished identity.
    ranges: Vec<(u64, u64)>,
    next_key: u64,
    current: Option<u32>,
    size: (u32, u32),
}

impl FaceRecordWriter {
    /// Starts writing into `dir` (created if missing) a set of exactly `num_images` images of
    /// `num_identities` identities, whose images are `height × width`.
    pub fn create(
        dir: impl AsRef<Path>,
        num_images: u64,
        num_identities: u64,
        size: (u32, u32),
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let mut writer = RecordIoWriter::create(dir.join(REC_FILE), dir.join(IDX_FILE))?;
        let a = num_images + 1;
        let header = IrHeader::default();
        writer.write(0, &header, &[a as f32, (a + num_identities) as f32], &[])?;
        Ok(Self {
            dir,
            writer,
            num_images,
            num_identities,
            ranges: Vec::new(),
            next_key: 1,
            current: None,
            size,
        })
    }

    /// Appends one encoded image of identity `label` (labels `0, 1, 2, …` in order); returns
    /// its key.
    pub fn push(&mut self, label: u32, image: &[u8]) -> Result<u64> {
        if self.next_key > self.num_images {
            return Err(DataError::Invalid(format!(
                "more images than the {} announced",
                self.num_images
            )));
        }
        if self.current != Some(label) {
            let expected = self.ranges.len() as u32 + u32::from(self.current.is_some());
            if label != expected {
                return Err(DataError::Invalid(format!(
                    "identity {label} written out of order: expected identity {expected}"
                )));
            }
            self.close_identity();
            self.current = Some(label);
        }
        let key = self.next_key;
        let header = IrHeader {
            flag: 0,
            label: label as f32,
            id: key,
            id2: 0,
        };
        self.writer.write(key, &header, &[], image)?;
        self.next_key += 1;
        Ok(key)
    }

    fn close_identity(&mut self) {
        if self.current.is_some() {
            let start = self.ranges.last().map_or(1, |r| r.1);
            self.ranges.push((start, self.next_key));
        }
    }

    /// Writes the identity records, the index and `property`.
    pub fn finish(mut self) -> Result<()> {
        self.close_identity();
        if self.next_key != self.num_images + 1 || self.ranges.len() as u64 != self.num_identities {
            return Err(DataError::Invalid(format!(
                "announced {} images of {} identities, wrote {} of {}",
                self.num_images,
                self.num_identities,
                self.next_key - 1,
                self.ranges.len()
            )));
        }
        for (i, &(s, e)) in self.ranges.iter().enumerate() {
            let key = self.num_images + 1 + i as u64;
            let header = IrHeader {
                flag: 0,
                label: 0.0,
                id: key,
                id2: 0,
            };
            self.writer
                .write(key, &header, &[s as f32, e as f32], &[])?;
        }
        self.writer.finish()?;
        Property {
            num_classes: self.num_identities,
            height: self.size.0,
            width: self.size.1,
        }
        .write(self.dir.join(PROPERTY_FILE))
    }
}
