//! insightface's verification `.bin` files (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW, …): a pickle
//! of `(list of encoded images, list of bool)`, pair `k` being images `2k` and `2k + 1`.
//!
//! Files written by Python 2 (`str` images, protocols 0–2) and Python 3 (`bytes`, protocols
//! 2–5, including protocol 2's `_codecs.encode` spelling of bytes) are read through
//! `serde-pickle`, which builds plain values and never executes anything: a pickle that asks
//! for any other global (`os.system`, numpy, …) is rejected.

use std::path::Path;

use serde_pickle::{DeOptions, SerOptions, Value};

use crate::error::{DataError, Location, Result};

/// The contents of a verification `.bin`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerificationBin {
    /// Encoded images; pair `k` is `images[2k]`, `images[2k + 1]`.
    pub images: Vec<Vec<u8>>,
    /// Whether pair `k` shows the same identity.
    pub issame: Vec<bool>,
}

impl VerificationBin {
    /// Number of pairs.
    pub fn pairs(&self) -> usize {
        self.issame.len()
    }

    /// Number of positive (same-identity) pairs.
    pub fn positives(&self) -> usize {
        self.issame.iter().filter(|&&s| s).count()
    }

    /// Reads and validates a `.bin` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        Self::from_bytes(&data, path)
    }

    /// Parses the bytes of a `.bin` file; `path` names it in errors.
    pub fn from_bytes(data: &[u8], path: &Path) -> Result<Self> {
        let err = |m: String| DataError::format(path, Location::File, m);
        let data = escape_protocol0_quotes(data);
        let value = serde_pickle::value_from_slice(&data, DeOptions::new()).map_err(|e| {
            let mut m = e.to_string();
            if m.len() > 200 {
                let cut = (0..=200)
                    .rev()
                    .find(|&i| m.is_char_boundary(i))
                    .unwrap_or(0);
                m.truncate(cut);
                m.push('…');
            }
            err(format!("not a readable pickle: {m}"))
        })?;
        let Value::Tuple(items) = value else {
            return Err(err(format!(
                "expected a tuple (images, issame), found {}",
                kind(&value)
            )));
        };
        let [Value::List(images), Value::List(issame)] = items.as_slice() else {
            let kinds: Vec<_> = items.iter().map(kind).collect();
            return Err(err(format!(
                "expected a tuple of two lists (images, issame), found a tuple of {kinds:?}"
            )));
        };
        let images = images
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Bytes(b) => Ok(b.clone()),
                other => Err(DataError::format(
                    path,
                    Location::Record(i as u64),
                    format!("image {i} is {}, expected bytes", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        let issame = issame
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Bool(b) => Ok(*b),
                Value::I64(0) => Ok(false),
                Value::I64(1) => Ok(true),
                other => Err(DataError::format(
                    path,
                    Location::Record(i as u64),
                    format!("issame[{i}] is {}, expected a bool", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        if images.len() != 2 * issame.len() {
            return Err(err(format!(
                "{} images for {} pairs: expected exactly two images per pair",
                images.len(),
                issame.len()
            )));
        }
        Ok(Self { images, issame })
    }

    /// Serialises as a protocol-3 pickle, which Python 3 reads with `pickle.load(f, encoding='bytes')`
    /// exactly as insightface's evaluation does.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.images.len() != 2 * self.issame.len() {
            return Err(DataError::Invalid(format!(
                "{} images for {} pairs: expected exactly two images per pair",
                self.images.len(),
                self.issame.len()
            )));
        }
        let value = Value::Tuple(vec![
            Value::List(self.images.iter().cloned().map(Value::Bytes).collect()),
            Value::List(self.issame.iter().copied().map(Value::Bool).collect()),
        ]);
        serde_pickle::value_to_vec(&value, SerOptions::new())
            .map_err(|e| DataError::Invalid(format!("cannot pickle: {e}")))
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsutil::write_atomic(path.as_ref(), &self.to_bytes()?)
    }
}

/// Python 2 writes protocol-0 strings as `S'…'` lines in `repr` form, escaping a quote as
/// `\'`; serde-pickle's decoder rejects that escape. This pass rewrites it as the
/// equivalent `\x27` inside `S` lines only. It walks the opcode stream of protocol 0 (whose
/// opcodes are all listed below) and returns the input untouched at the first opcode it does
/// not know, leaving binary protocols entirely to serde-pickle.
fn escape_protocol0_quotes(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if data.first() == Some(&0x80) || !data.windows(2).any(|w| w == b"\\'") {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut pos = 0;
    while pos < data.len() {
        let op = data[pos];
        let lines = match op {
            b'S' | b'V' | b'I' | b'L' | b'F' | b'p' | b'g' => 1,
            b'c' | b'i' => 2,
            b'(' | b'l' | b'd' | b't' | b'a' | b's' | b'N' | b'R' | b'b' | b'0' | b'2' | b'o' => 0,
            b'.' => {
                out.extend_from_slice(&data[pos..]);
                return Cow::Owned(out);
            }
            _ => return Cow::Borrowed(data),
        };
        out.push(op);
        pos += 1;
        for _ in 0..lines {
            let Some(len) = data[pos..].iter().position(|&b| b == b'\n') else {
                return Cow::Borrowed(data);
            };
            let line = &data[pos..pos + len + 1];
            if op == b'S' {
                let mut i = 0;
                while i < line.len() {
                    if line[i] == b'\\' && i + 1 < line.len() {
                        if line[i + 1] == b'\'' {
                            out.extend_from_slice(b"\\x27");
                        } else {
                            out.extend_from_slice(&line[i..i + 2]);
                        }
                        i += 2;
                    } else {
                        out.push(line[i]);
                        i += 1;
                    }
                }
            } else {
                out.extend_from_slice(line);
            }
            pos += len + 1;
        }
    }
    Cow::Owned(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a str",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_counts() {
        let bin = VerificationBin {
            images: (0..6u8).map(|i| vec![i; 300 * i as usize]).collect(),
            issame: vec![true, false, true],
        };
        let back =
            VerificationBin::from_bytes(&bin.to_bytes().unwrap(), Path::new("m.bin")).unwrap();
        assert_eq!(back, bin);
        assert_eq!((back.pairs(), back.positives()), (3, 2));
    }

    #[test]
    fn wrong_shapes_are_named() {
        let v = Value::Tuple(vec![
            Value::List(vec![Value::Bytes(vec![1])]),
            Value::List(vec![Value::Bool(true)]),
        ]);
        let data = serde_pickle::value_to_vec(&v, SerOptions::new()).unwrap();
        let e = VerificationBin::from_bytes(&data, Path::new("m.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.bin") && e.contains("1 images for 1 pairs"),
            "{e}"
        );
        let v = Value::Tuple(vec![
            Value::List(vec![Value::String("x".into()); 2]),
            Value::List(vec![Value::Bool(true)]),
        ]);
        let data = serde_pickle::value_to_vec(&v, SerOptions::new()).unwrap();
        let e = VerificationBin::from_bytes(&data, Path::new("m.bin"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 0 is a str, expected bytes"), "{e}");
    }
}
