//! MXNet RecordIO (`train.rec` + `train.idx`), bit-compatible with the files insightface
//! distributes (MS1MV2, MS1MV3, Glint360K) and with dmlc-core's writer.
//!
//! On disk each record is one or more *parts*: a little-endian `u32` magic `0xced7230a`, a
//! `u32` word `cflag << 29 | length`, `length` bytes and zero padding to a multiple of four.
//! dmlc's writer splits a payload wherever the magic word appears at a 4-byte-aligned offset
//! inside it (the word itself is dropped and re-inserted on reading): `cflag` is 0 for a whole
//! record, 1 for the first part, 2 for a middle part and 3 for the last. `train.idx` holds one
//! `key<TAB>offset` line per record. The payload starts with an [`IrHeader`].
//!
//! Written by hand: no maintained Rust crate reads this format.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Location, Result};
use crate::fsutil::{MappedFile, map_file};

/// The word that starts every record part.
pub const MAGIC: u32 = 0xced7_230a;
/// Largest part length the format can express (29 bits).
pub const MAX_PART_LEN: usize = (1 << 29) - 1;
/// Size of the packed image-record header (`<IfQQ`).
pub const IR_HEADER_LEN: usize = 24;

/// The image-record header MXNet packs in front of every payload (`struct IRHeader`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IrHeader {
    /// Number of extra `f32` labels following the header (0: the label is `label`).
    pub flag: u32,
    /// The label when `flag == 0` (insightface: the identity), else conventionally 0.
    pub label: f32,
    /// The record's id (insightface: its key).
    pub id: u64,
    /// A second id, unused by insightface.
    pub id2: u64,
}

/// One decoded image record: header, extra labels and the remaining bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IrRecord<'a> {
    /// The packed header.
    pub header: IrHeader,
    /// The `header.flag` labels that follow the header (empty when `flag == 0`).
    pub labels: Vec<f32>,
    /// The bytes after the header and labels: usually an encoded image.
    pub payload: Cow<'a, [u8]>,
}

impl IrRecord<'_> {
    /// The label a classifier trains on: `labels[0]` when there are extra labels, else `label`.
    pub fn primary_label(&self) -> f32 {
        self.labels.first().copied().unwrap_or(self.header.label)
    }

    /// Serialises header, labels and payload into one record payload.
    ///
    /// The header's `flag` is taken from `labels.len()`.
    pub fn pack(&self) -> Vec<u8> {
        pack_record(&self.header, &self.labels, &self.payload)
    }
}

/// Packs a header, extra labels and payload the way `mx.recordio.pack` does.
pub fn pack_record(header: &IrHeader, labels: &[f32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(IR_HEADER_LEN + 4 * labels.len() + payload.len());
    out.extend_from_slice(&(labels.len() as u32).to_le_bytes());
    let label = if labels.is_empty() { header.label } else { 0.0 };
    out.extend_from_slice(&label.to_le_bytes());
    out.extend_from_slice(&header.id.to_le_bytes());
    out.extend_from_slice(&header.id2.to_le_bytes());
    for l in labels {
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Parses an [`IrRecord`] out of a record payload; `what` names the record in errors.
pub fn unpack_record<'a>(bytes: Cow<'a, [u8]>, path: &Path, key: u64) -> Result<IrRecord<'a>> {
    let err = |m: String| DataError::format(path, Location::Record(key), m);
    if bytes.len() < IR_HEADER_LEN {
        return Err(err(format!(
            "record of {} bytes is shorter than the {IR_HEADER_LEN}-byte IRHeader",
            bytes.len()
        )));
    }
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let header = IrHeader {
        flag: u32_at(0),
        label: f32::from_bits(u32_at(4)),
        id: u64_at(8),
        id2: u64_at(16),
    };
    let n = header.flag as usize;
    let labels_end = IR_HEADER_LEN as u64 + 4 * n as u64;
    if labels_end > bytes.len() as u64 {
        return Err(err(format!(
            "IRHeader flag {} announces {} label bytes but only {} bytes follow the header",
            header.flag,
            4 * n as u64,
            bytes.len() - IR_HEADER_LEN
        )));
    }
    let labels_end = labels_end as usize;
    let labels = bytes[IR_HEADER_LEN..labels_end]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    let payload = match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(&b[labels_end..]),
        Cow::Owned(mut v) => {
            v.drain(..labels_end);
            Cow::Owned(v)
        }
    };
    Ok(IrRecord {
        header,
        labels,
        payload,
    })
}

/// Random access to a RecordIO file through its index; the `.rec` is memory-mapped.
pub struct RecordIoReader {
    rec_path: PathBuf,
    data: MappedFile,
    /// `(key, offset)` in index order.
    entries: Vec<(u64, u64)>,
    /// Positions into `entries` sorted by key, for lookups.
    by_key: Vec<u32>,
}

impl std::fmt::Debug for RecordIoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordIoReader")
            .field("rec_path", &self.rec_path)
            .field("records", &self.entries.len())
            .finish()
    }
}

impl RecordIoReader {
    /// Opens `rec_path` with the index at `idx_path`.
    pub fn open(rec_path: impl AsRef<Path>, idx_path: impl AsRef<Path>) -> Result<Self> {
        let rec_path = rec_path.as_ref().to_path_buf();
        let idx_path = idx_path.as_ref();
        let data = map_file(&rec_path)?;
        let text = std::fs::read(idx_path).map_err(|e| DataError::io(idx_path, e))?;
        let entries = parse_index(&text, idx_path, data.as_slice().len() as u64)?;
        Self::from_parts(rec_path, data, entries)
    }

    /// Reads a RecordIO file held in memory; `rec_path` names it in errors.
    pub fn from_bytes(rec_path: impl AsRef<Path>, rec: Vec<u8>, idx: &[u8]) -> Result<Self> {
        let rec_path = rec_path.as_ref().to_path_buf();
        let mut idx_name = rec_path.clone().into_os_string();
        idx_name.push(" index");
        let entries = parse_index(idx, Path::new(&idx_name), rec.len() as u64)?;
        Self::from_parts(rec_path, MappedFile::Owned(rec), entries)
    }

    /// Opens a `.rec` file without an index by scanning it from the start; keys are 0, 1, …
    pub fn open_scan(rec_path: impl AsRef<Path>) -> Result<Self> {
        let rec_path = rec_path.as_ref().to_path_buf();
        let data = map_file(&rec_path)?;
        let mut entries = Vec::new();
        let mut offset = 0u64;
        let len = data.as_slice().len() as u64;
        while offset < len {
            let (_, next) = read_record_at(data.as_slice(), offset, &rec_path)?;
            entries.push((entries.len() as u64, offset));
            offset = next;
        }
        Self::from_parts(rec_path, data, entries)
    }

    fn from_parts(rec_path: PathBuf, data: MappedFile, entries: Vec<(u64, u64)>) -> Result<Self> {
        if entries.len() > u32::MAX as usize {
            return Err(DataError::format(
                &rec_path,
                Location::File,
                "more than 2^32 records are not supported",
            ));
        }
        let mut by_key: Vec<u32> = (0..entries.len() as u32).collect();
        by_key.sort_by_key(|&i| entries[i as usize].0);
        if let Some(w) = by_key
            .windows(2)
            .find(|w| entries[w[0] as usize].0 == entries[w[1] as usize].0)
        {
            return Err(DataError::format(
                &rec_path,
                Location::Record(entries[w[0] as usize].0),
                "key appears twice in the index",
            ));
        }
        Ok(Self {
            rec_path,
            data,
            entries,
            by_key,
        })
    }

    /// Path of the `.rec` file.
    pub fn path(&self) -> &Path {
        &self.rec_path
    }

    /// Number of records in the index.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys in index order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.entries.iter().map(|e| e.0)
    }

    /// The byte offset of the record with `key`, from the index.
    pub fn offset(&self, key: u64) -> Option<u64> {
        self.position(key).map(|p| self.entries[p].1)
    }

    /// Whether `key` is in the index.
    pub fn contains(&self, key: u64) -> bool {
        self.position(key).is_some()
    }

    fn position(&self, key: u64) -> Option<usize> {
        self.by_key
            .binary_search_by_key(&key, |&i| self.entries[i as usize].0)
            .ok()
            .map(|p| self.by_key[p] as usize)
    }

    /// The raw payload of the record with `key` (parts joined; borrowed when it is one part).
    pub fn read_raw(&self, key: u64) -> Result<Cow<'_, [u8]>> {
        let pos = self.position(key).ok_or_else(|| {
            DataError::format(
                &self.rec_path,
                Location::Record(key),
                "key is not in the index",
            )
        })?;
        let (bytes, _) = read_record_at(self.data.as_slice(), self.entries[pos].1, &self.rec_path)?;
        Ok(bytes)
    }

    /// The decoded image record with `key`.
    pub fn read(&self, key: u64) -> Result<IrRecord<'_>> {
        let raw = self.read_raw(key)?;
        unpack_record(raw, &self.rec_path, key)
    }
}

/// Parses `train.idx`: one `key<TAB>offset` line per record (any ASCII whitespace separates).
fn parse_index(text: &[u8], path: &Path, rec_len: u64) -> Result<Vec<(u64, u64)>> {
    let mut entries = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = n + 1;
        let err = |m: String| DataError::format(path, Location::Line(line_no), m);
        let line = std::str::from_utf8(line).map_err(|_| err("line is not UTF-8".into()))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(k), Some(o), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err(format!("expected `key<TAB>offset`, found {line:?}")));
        };
        let key: u64 = k
            .parse()
            .map_err(|_| err(format!("key {k:?} is not a non-negative integer")))?;
        let offset: u64 = o
            .parse()
            .map_err(|_| err(format!("offset {o:?} is not a non-negative integer")))?;
        if offset >= rec_len {
            return Err(err(format!(
                "offset {offset} is past the end of the .rec file ({rec_len} bytes)"
            )));
        }
        entries.push((key, offset));
    }
    Ok(entries)
}

/// Reads the record whose first part starts at `offset`; returns its payload and the offset
/// just past it.
pub(crate) fn read_record_at<'a>(
    data: &'a [u8],
    offset: u64,
    path: &Path,
) -> Result<(Cow<'a, [u8]>, u64)> {
    let mut pos = offset;
    let mut joined: Option<Vec<u8>> = None;
    let mut first = true;
    loop {
        let (cflag, part, next) = read_part(data, pos, path)?;
        let bad = |m: &str| DataError::format(path, Location::Offset(pos), m.to_string());
        match (first, cflag) {
            (true, 0) => return Ok((Cow::Borrowed(part), next)),
            (true, 1) => joined = Some(part.to_vec()),
            (true, _) => {
                return Err(bad(&format!(
                    "record starts with continuation flag {cflag}, expected 0 or 1"
                )));
            }
            (false, 2 | 3) => {
                let buf = joined.as_mut().expect("set by the first part");
                buf.extend_from_slice(&MAGIC.to_le_bytes());
                buf.extend_from_slice(part);
                if cflag == 3 {
                    return Ok((Cow::Owned(joined.take().expect("set")), next));
                }
            }
            (false, _) => {
                return Err(bad(&format!(
                    "continuation flag {cflag} inside a split record, expected 2 or 3"
                )));
            }
        }
        first = false;
        pos = next;
    }
}

/// Reads one part at `pos`: `(cflag, bytes, offset of the next part)`.
fn read_part<'a>(data: &'a [u8], pos: u64, path: &Path) -> Result<(u32, &'a [u8], u64)> {
    let len = data.len() as u64;
    let err = |m: String| DataError::format(path, Location::Offset(pos), m);
    if pos.checked_add(8).is_none_or(|end| end > len) {
        return Err(err(format!(
            "truncated: a record header needs 8 bytes but the file ends at {len}"
        )));
    }
    let p = pos as usize;
    let magic = u32::from_le_bytes(data[p..p + 4].try_into().expect("4 bytes"));
    if magic != MAGIC {
        return Err(err(format!(
            "bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}"
        )));
    }
    let lrec = u32::from_le_bytes(data[p + 4..p + 8].try_into().expect("4 bytes"));
    let cflag = lrec >> 29;
    let part_len = (lrec & ((1 << 29) - 1)) as u64;
    let start = pos + 8;
    if start + part_len > len {
        return Err(err(format!(
            "truncated: record part declares {part_len} bytes but only {} remain",
            len - start
        )));
    }
    let padded = part_len.div_ceil(4) * 4;
    let next = (start + padded).min(len);
    Ok((
        cflag,
        &data[start as usize..(start + part_len) as usize],
        next,
    ))
}

/// Writes a RecordIO file and its index, as dmlc-core's `RecordIOWriter` does.
///
/// Output goes to `<path>.partial` files renamed into place by [`RecordIoWriter::finish`], so
/// an interrupted write never leaves a truncated file under the final name.
pub struct RecordIoWriter {
    rec_path: PathBuf,
    idx_path: PathBuf,
    rec: BufWriter<File>,
    idx: BufWriter<File>,
    offset: u64,
}

fn partial(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

impl RecordIoWriter {
    /// Creates `rec_path` and `idx_path` (written on [`finish`](Self::finish)).
    pub fn create(rec_path: impl AsRef<Path>, idx_path: impl AsRef<Path>) -> Result<Self> {
        let rec_path = rec_path.as_ref().to_path_buf();
        let idx_path = idx_path.as_ref().to_path_buf();
        let open = |p: &Path| -> Result<BufWriter<File>> {
            let p = partial(p);
            File::create(&p)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(|e| DataError::io(&p, e))
        };
        Ok(Self {
            rec: open(&rec_path)?,
            idx: open(&idx_path)?,
            rec_path,
            idx_path,
            offset: 0,
        })
    }

    /// Appends a record with `key` holding `payload` (an already packed IR record).
    pub fn write_raw(&mut self, key: u64, payload: &[u8]) -> Result<()> {
        if payload.len() > MAX_PART_LEN {
            return Err(DataError::Invalid(format!(
                "record {key} has {} bytes; RecordIO records must be under 2^29 bytes",
                payload.len()
            )));
        }
        let rec_partial = partial(&self.rec_path);
        let io = |e| DataError::io(&rec_partial, e);
        writeln!(self.idx, "{key}\t{}", self.offset)
            .map_err(|e| DataError::io(partial(&self.idx_path), e))?;
        let magic = MAGIC.to_le_bytes();
        let aligned = payload.len() / 4 * 4;
        let mut start = 0usize;
        let mut written = 0u64;
        let part = |cflag: u32, bytes: &[u8], w: &mut BufWriter<File>| -> std::io::Result<u64> {
            w.write_all(&magic)?;
            w.write_all(&((cflag << 29) | bytes.len() as u32).to_le_bytes())?;
            w.write_all(bytes)?;
            let pad = bytes.len().next_multiple_of(4) - bytes.len();
            w.write_all(&[0u8; 3][..pad])?;
            Ok(8 + (bytes.len() + pad) as u64)
        };
        for i in (0..aligned).step_by(4) {
            if payload[i..i + 4] == magic {
                let cflag = if start == 0 { 1 } else { 2 };
                written += part(cflag, &payload[start..i], &mut self.rec).map_err(io)?;
                start = i + 4;
            }
        }
        let cflag = if start == 0 { 0 } else { 3 };
        written += part(cflag, &payload[start..], &mut self.rec).map_err(io)?;
        self.offset += written;
        Ok(())
    }

    /// Appends an image record built from a header, extra labels and image bytes.
    pub fn write(
        &mut self,
        key: u64,
        header: &IrHeader,
        labels: &[f32],
        image: &[u8],
    ) -> Result<()> {
        self.write_raw(key, &pack_record(header, labels, image))
    }

    /// Flushes, syncs and renames both files into place.
    pub fn finish(self) -> Result<()> {
        for (w, path) in [(self.rec, &self.rec_path), (self.idx, &self.idx_path)] {
            let tmp = partial(path);
            let file = w
                .into_inner()
                .map_err(|e| DataError::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| DataError::io(&tmp, e))?;
            std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let (rec, idx) = (dir.path().join("a.rec"), dir.path().join("a.idx"));
        let mut w = RecordIoWriter::create(&rec, &idx).unwrap();
        for (k, p) in payloads.iter().enumerate() {
            w.write_raw(k as u64, p).unwrap();
        }
        w.finish().unwrap();
        let r = RecordIoReader::open(&rec, &idx).unwrap();
        let scanned = RecordIoReader::open_scan(&rec).unwrap();
        assert_eq!(scanned.len(), payloads.len());
        (0..payloads.len() as u64)
            .map(|k| {
                assert_eq!(r.read_raw(k).unwrap(), scanned.read_raw(k).unwrap());
                r.read_raw(k).unwrap().into_owned()
            })
            .collect()
    }

    #[test]
    fn payloads_with_embedded_magic_round_trip() {
        let m = MAGIC.to_le_bytes();
        let payloads = vec![
            vec![],
            vec![1, 2, 3],
            m.to_vec(),
            [m, m].concat(),
            [&[9, 9, 9, 9][..], &m, &[5][..], &m, &m].concat(),
            // Magic at an unaligned offset is not split.
            [&[1][..], &m, &[0, 0, 0][..]].concat(),
        ];
        assert_eq!(roundtrip(&payloads), payloads);
    }

    #[test]
    fn split_record_layout_matches_dmlc() {
        // payload = AAAA MAGIC BB: parts (cflag 1, "AAAA"), (cflag 3, "BB" + 2 pad bytes).
        let m = MAGIC.to_le_bytes();
        let payload = [&b"AAAA"[..], &m, &b"BB"[..]].concat();
        let dir = tempfile::tempdir().unwrap();
        let (rec, idx) = (dir.path().join("a.rec"), dir.path().join("a.idx"));
        let mut w = RecordIoWriter::create(&rec, &idx).unwrap();
        w.write_raw(0, &payload).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&rec).unwrap();
        let expected = [
            &m[..],
            &((1u32 << 29) | 4).to_le_bytes(),
            b"AAAA",
            &m,
            &((3u32 << 29) | 2).to_le_bytes(),
            b"BB\0\0",
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(std::fs::read_to_string(&idx).unwrap(), "0\t0\n");
    }

    #[test]
    fn header_pack_unpack() {
        let h = IrHeader {
            flag: 0,
            label: 7.0,
            id: 3,
            id2: 0,
        };
        let packed = pack_record(&h, &[], b"img");
        let r = unpack_record(Cow::Owned(packed), Path::new("x"), 3).unwrap();
        assert_eq!(r.header, h);
        assert_eq!(r.primary_label(), 7.0);
        let packed = pack_record(&h, &[4.0, 0.5], b"img");
        let r = unpack_record(Cow::Borrowed(&packed), Path::new("x"), 3).unwrap();
        assert_eq!((r.header.flag, r.header.label), (2, 0.0));
        assert_eq!(
            (r.labels.as_slice(), r.primary_label()),
            (&[4.0, 0.5][..], 4.0)
        );
        assert_eq!(&*r.payload, b"img");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let p = Path::new("t.rec");
        let mut data = MAGIC.to_le_bytes().to_vec();
        data.extend_from_slice(&100u32.to_le_bytes());
        let e = read_record_at(&data, 0, p).unwrap_err().to_string();
        assert!(
            e.contains("t.rec at byte offset 0") && e.contains("declares 100 bytes"),
            "{e}"
        );
        data[0] ^= 1;
        let e = read_record_at(&data, 0, p).unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        let e = unpack_record(Cow::Owned(vec![0; 10]), p, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("record 4") && e.contains("shorter"), "{e}");
        let mut big_flag = pack_record(&IrHeader::default(), &[], b"");
        big_flag[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = unpack_record(Cow::Owned(big_flag), p, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("announces"), "{e}");
    }
}
