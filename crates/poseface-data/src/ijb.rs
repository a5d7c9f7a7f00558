//! IJB-B / IJB-C 1:1 verification meta files, as insightface's evaluation reads them:
//! `meta/ijbX_face_tid_mid.txt` (`image template media`),
//! `meta/ijbX_template_pair_label.txt` (`template1 template2 label`) and
//! `meta/ijbX_name_5pts_score.txt` (`image x1 y1 … x5 y5 score`), with images in `loose_crop/`.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Location, Result};

/// Which benchmark a root holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IjbTarget {
    /// IJB-B.
    IjbB,
    /// IJB-C.
    IjbC,
}

impl IjbTarget {
    /// The lower-case prefix of the meta files (`ijbb` / `ijbc`).
    pub fn prefix(self) -> &'static str {
        match self {
            IjbTarget::IjbB => "ijbb",
            IjbTarget::IjbC => "ijbc",
        }
    }
}

impl std::str::FromStr for IjbTarget {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().replace('-', "").as_str() {
            "IJBB" => Ok(IjbTarget::IjbB),
            "IJBC" => Ok(IjbTarget::IjbC),
            _ => Err(DataError::Invalid(format!(
                "unknown IJB target {s:?}: expected IJBB or IJBC"
            ))),
        }
    }
}

/// Per image: its template and media ids (`ijbX_face_tid_mid.txt`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IjbFaces {
    /// Image file names, relative to `loose_crop/`.
    pub names: Vec<String>,
    /// Template id per image.
    pub templates: Vec<u64>,
    /// Media id per image.
    pub medias: Vec<u64>,
}

/// The template pairs to score (`ijbX_template_pair_label.txt`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IjbPairs {
    /// First template of each pair.
    pub t1: Vec<u64>,
    /// Second template of each pair.
    pub t2: Vec<u64>,
    /// 1 for a genuine pair, 0 for an impostor pair.
    pub labels: Vec<u8>,
}

/// Per image: five landmarks in the loose crop and the detector's face score
/// (`ijbX_name_5pts_score.txt`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IjbLandmarks {
    /// Image file names.
    pub names: Vec<String>,
    /// Five `(x, y)` points per image: eyes, nose, mouth corners.
    pub points: Vec<[[f32; 2]; 5]>,
    /// Face detection score per image.
    pub scores: Vec<f32>,
}

/// All meta files of one IJB root.
#[derive(Debug, Clone)]
pub struct IjbMeta {
    /// The root directory (holding `meta/` and `loose_crop/`).
    pub root: PathBuf,
    /// Which benchmark.
    pub target: IjbTarget,
    /// Image → template, media.
    pub faces: IjbFaces,
    /// Template pairs.
    pub pairs: IjbPairs,
    /// Landmarks and face scores.
    pub landmarks: IjbLandmarks,
}

impl IjbMeta {
    /// Paths of the three meta files under `root/meta/`.
    pub fn paths(root: &Path, target: IjbTarget) -> [PathBuf; 3] {
        let p = target.prefix();
        let meta = root.join("meta");
        [
            meta.join(format!("{p}_face_tid_mid.txt")),
            meta.join(format!("{p}_template_pair_label.txt")),
            meta.join(format!("{p}_name_5pts_score.txt")),
        ]
    }

    /// Reads all three files and checks that the landmark file lists the same images.
    pub fn open(root: impl AsRef<Path>, target: IjbTarget) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let [faces, pairs, landmarks] = Self::paths(&root, target);
        let faces_v = read_faces(&faces)?;
        let pairs = read_pairs(&pairs)?;
        let lm = read_landmarks(&landmarks)?;
        if lm.names.len() != faces_v.names.len() {
            return Err(DataError::format(
                &landmarks,
                Location::File,
                format!(
                    "{} images, but {} lists {}",
                    lm.names.len(),
                    faces.display(),
                    faces_v.names.len()
                ),
            ));
        }
        if let Some(i) = (0..lm.names.len()).find(|&i| lm.names[i] != faces_v.names[i]) {
            return Err(DataError::format(
                &landmarks,
                Location::Line(i + 1),
                format!(
                    "image {:?} where {} has {:?}",
                    lm.names[i],
                    faces.display(),
                    faces_v.names[i]
                ),
            ));
        }
        Ok(Self {
            root,
            target,
            faces: faces_v,
            pairs,
            landmarks: lm,
        })
    }
}

fn lines(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        DataError::format(path, Location::Line(line), "not UTF-8 text")
    })
}

/// Splits `line` into exactly `n` whitespace-separated fields.
fn fields<'a>(
    path: &Path,
    line_no: usize,
    line: &'a str,
    n: usize,
    what: &str,
) -> Result<Vec<&'a str>> {
    let f: Vec<&str> = line.split_ascii_whitespace().collect();
    if f.len() != n {
        return Err(DataError::format(
            path,
            Location::Line(line_no),
            format!("expected {n} fields ({what}), found {}", f.len()),
        ));
    }
    Ok(f)
}

fn num<T: std::str::FromStr>(path: &Path, line_no: usize, s: &str, what: &str) -> Result<T> {
    s.parse().map_err(|_| {
        DataError::format(
            path,
            Location::Line(line_no),
            format!("{what} {s:?} is not a valid number"),
        )
    })
}

/// Reads `ijbX_face_tid_mid.txt`.
pub fn read_faces(path: &Path) -> Result<IjbFaces> {
    let text = lines(path)?;
    let mut out = IjbFaces::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f = fields(path, i + 1, line, 3, "image template media")?;
        out.names.push(f[0].to_string());
        out.templates.push(num(path, i + 1, f[1], "template id")?);
        out.medias.push(num(path, i + 1, f[2], "media id")?);
    }
    Ok(out)
}

/// Reads `ijbX_template_pair_label.txt`.
pub fn read_pairs(path: &Path) -> Result<IjbPairs> {
    let text = lines(path)?;
    let mut out = IjbPairs::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f = fields(path, i + 1, line, 3, "template1 template2 label")?;
        out.t1.push(num(path, i + 1, f[0], "template id")?);
        out.t2.push(num(path, i + 1, f[1], "template id")?);
        let label: u8 = num(path, i + 1, f[2], "label")?;
        if label > 1 {
            return Err(DataError::format(
                path,
                Location::Line(i + 1),
                format!("label {label} is not 0 or 1"),
            ));
        }
        out.labels.push(label);
    }
    Ok(out)
}

/// Reads `ijbX_name_5pts_score.txt`.
pub fn read_landmarks(path: &Path) -> Result<IjbLandmarks> {
    let text = lines(path)?;
    let mut out = IjbLandmarks::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let f = fields(path, i + 1, line, 12, "image, 5 x/y pairs, score")?;
        let mut pts = [[0f32; 2]; 5];
        for (k, p) in pts.iter_mut().enumerate() {
            *p = [
                num(path, i + 1, f[1 + 2 * k], "x")?,
                num(path, i + 1, f[2 + 2 * k], "y")?,
            ];
        }
        let score: f32 = num(path, i + 1, f[11], "score")?;
        if !score.is_finite() || pts.iter().flatten().any(|v| !v.is_finite()) {
            return Err(DataError::format(
                path,
                Location::Line(i + 1),
                "non-finite landmark or score",
            ));
        }
        out.names.push(f[0].to_string());
        out.points.push(pts);
        out.scores.push(score);
    }
    Ok(out)
}

/// Writes the three meta files under `root/meta/` (used by the synthetic IJB-style set).
pub fn write_meta(
    root: &Path,
    target: IjbTarget,
    faces: &IjbFaces,
    pairs: &IjbPairs,
    lm: &IjbLandmarks,
) -> Result<()> {
    use std::fmt::Write;
    let [fp, pp, lp] = IjbMeta::paths(root, target);
    let meta = root.join("meta");
    std::fs::create_dir_all(&meta).map_err(|e| DataError::io(&meta, e))?;
    let mut s = String::new();
    for i in 0..faces.names.len() {
        let _ = writeln!(
            s,
            "{} {} {}",
            faces.names[i], faces.templates[i], faces.medias[i]
        );
    }
    crate::fsutil::write_atomic(&fp, s.as_bytes())?;
    s.clear();
    for i in 0..pairs.labels.len() {
        let _ = writeln!(s, "{} {} {}", pairs.t1[i], pairs.t2[i], pairs.labels[i]);
    }
    crate::fsutil::write_atomic(&pp, s.as_bytes())?;
    s.clear();
    for i in 0..lm.names.len() {
        let _ = write!(s, "{}", lm.names[i]);
        for p in &lm.points[i] {
            let _ = write!(s, " {} {}", p[0], p[1]);
        }
        let _ = writeln!(s, " {}", lm.scores[i]);
    }
    crate::fsutil::write_atomic(&lp, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let faces = IjbFaces {
            names: vec!["1.jpg".into(), "2.jpg".into()],
            templates: vec![1, 2],
            medias: vec![10, 11],
        };
        let pairs = IjbPairs {
            t1: vec![1],
            t2: vec![2],
            labels: vec![0],
        };
        let lm = IjbLandmarks {
            names: faces.names.clone(),
            points: vec![[[1.5, 2.0]; 5], [[3.25, 4.0]; 5]],
            scores: vec![0.99, 0.5],
        };
        write_meta(dir.path(), IjbTarget::IjbC, &faces, &pairs, &lm).unwrap();
        let m = IjbMeta::open(dir.path(), "IJBC".parse().unwrap()).unwrap();
        assert_eq!((m.faces, m.pairs, m.landmarks), (faces, pairs, lm));
        let [_, pp, _] = IjbMeta::paths(dir.path(), IjbTarget::IjbC);
        std::fs::write(&pp, "1 2 1\n1 2 x\n").unwrap();
        let e = read_pairs(&pp).unwrap_err().to_string();
        assert!(
            e.ends_with("at line 2: label \"x\" is not a valid number"),
            "{e}"
        );
        std::fs::write(&pp, "1 2\n").unwrap();
        let e = read_pairs(&pp).unwrap_err().to_string();
        assert!(e.contains("line 1: expected 3 fields"), "{e}");
    }
}
