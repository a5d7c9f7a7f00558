//! Facial landmarks: the iBUG 68-point scheme, its 5-point reduction, the left/right
//! permutations used by horizontal flips, and the `.pts` (iBUG/menpo) and dlib XML readers.

use std::path::Path;

use quick_xml::events::Event;

use crate::error::{DataError, Location, Result};

/// A 2D point `(x, y)` in pixels; `x` grows to the right, `y` downwards, and integer
/// coordinates are pixel centres.
pub type Point = [f32; 2];

/// The ArcFace 112×112 template: left eye, right eye (in the image), nose tip, left and right
/// mouth corners.
pub const ARCFACE_TEMPLATE: [Point; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// iBUG 68-point left/right mirror: point `i` of a flipped face is point `FLIP_68[i]` of the
/// original, mirrored.
pub const FLIP_68: [usize; 68] = [
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, // jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17, // brows
    27, 28, 29, 30, // nose bridge
    35, 34, 33, 32, 31, // nostrils
    45, 44, 43, 42, 47, 46, // right eye ← left eye
    39, 38, 37, 36, 41, 40, // left eye ← right eye
    54, 53, 52, 51, 50, 49, 48, // outer upper lip
    59, 58, 57, 56, 55, // outer lower lip
    64, 63, 62, 61, 60, // inner upper lip
    67, 66, 65, // inner lower lip
];

/// 5-point left/right mirror (eyes swap, mouth corners swap).
pub const FLIP_5: [usize; 5] = [1, 0, 2, 4, 3];

/// Reduces 68 iBUG points to the 5 alignment points: eye centres (means of 36–41 and 42–47),
/// nose tip 30, mouth corners 48 and 54.
pub fn five_from_68(p: &[Point]) -> Result<[Point; 5]> {
    if p.len() != 68 {
        return Err(DataError::Invalid(format!(
            "expected 68 landmarks, got {}",
            p.len()
        )));
    }
    let mean = |r: std::ops::Range<usize>| {
        let n = r.len() as f64;
        let (sx, sy) = p[r]
            .iter()
            .fold((0f64, 0f64), |(x, y), q| (x + q[0] as f64, y + q[1] as f64));
        [(sx / n) as f32, (sy / n) as f32]
    };
    Ok([mean(36..42), mean(42..48), p[30], p[48], p[54]])
}

/// The 5 alignment points from 5 or 68 points.
pub fn five_points(p: &[Point]) -> Result<[Point; 5]> {
    match p.len() {
        5 => Ok([p[0], p[1], p[2], p[3], p[4]]),
        68 => five_from_68(p),
        n => Err(DataError::Invalid(format!(
            "expected 5 or 68 landmarks, got {n}"
        ))),
    }
}

/// Mirrors points horizontally in an image `width` pixels wide and permutes them so that
/// semantic indices stay correct (68 or 5 points; other counts are only mirrored).
pub fn flip_points(p: &[Point], width: u32) -> Vec<Point> {
    let w = width as f32 - 1.0;
    let mirror = |q: Point| [w - q[0], q[1]];
    match p.len() {
        68 => FLIP_68.iter().map(|&i| mirror(p[i])).collect(),
        5 => FLIP_5.iter().map(|&i| mirror(p[i])).collect(),
        _ => p.iter().copied().map(mirror).collect(),
    }
}

/// Reads an iBUG/menpo `.pts` file (`version: 1`, `n_points: N`, `{`, N lines of `x y`, `}`).
///
/// `.pts` coordinates are 1-based (the top-left pixel centre is `(1, 1)`); they are returned
/// unchanged, so subtract 1 to get this crate's 0-based pixel-centre convention.
pub fn read_pts(path: impl AsRef<Path>) -> Result<Vec<Point>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_pts(&text, path)
}

/// Parses the text of a `.pts` file; `path` names it in errors.
pub fn parse_pts(text: &str, path: &Path) -> Result<Vec<Point>> {
    let mut n_points: Option<usize> = None;
    let mut points = Vec::new();
    let mut in_block = false;
    let mut closed = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |m: String| DataError::format(path, Location::Line(line_no), m);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if closed {
            return Err(err(format!("unexpected {line:?} after the closing brace")));
        }
        if let Some(v) = line.strip_prefix("n_points:") {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| err(format!("bad n_points {:?}", v.trim())))?;
            if n > 100_000 {
                return Err(err(format!("n_points {n} is implausibly large")));
            }
            n_points = Some(n);
        } else if line.starts_with("version:") {
        } else if line == "{" {
            if n_points.is_none() {
                return Err(err("`{` before `n_points:`".into()));
            }
            in_block = true;
        } else if line == "}" {
            if !in_block {
                return Err(err("`}` without `{`".into()));
            }
            in_block = false;
            closed = true;
        } else if in_block {
            let mut f = line.split_ascii_whitespace();
            let (Some(x), Some(y), None) = (f.next(), f.next(), f.next()) else {
                return Err(err(format!("expected `x y`, found {line:?}")));
            };
            let parse = |s: &str| -> Result<f32> {
                s.parse::<f32>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| err(format!("{s:?} is not a finite number")))
            };
            points.push([parse(x)?, parse(y)?]);
        } else {
            return Err(err(format!("unexpected line {line:?}")));
        }
    }
    let n =
        n_points.ok_or_else(|| DataError::format(path, Location::File, "missing `n_points:`"))?;
    if !closed {
        return Err(DataError::format(
            path,
            Location::File,
            "missing closing `}`",
        ));
    }
    if points.len() != n {
        return Err(DataError::format(
            path,
            Location::File,
            format!("n_points says {n} but {} points are listed", points.len()),
        ));
    }
    Ok(points)
}

/// One annotated face of a dlib landmark XML file.
#[derive(Debug, Clone, PartialEq)]
pub struct DlibFace {
    /// The image file, relative to the XML file's directory.
    pub image: String,
    /// Index of this box among the boxes of its image.
    pub box_index: usize,
    /// `(left, top, width, height)` of the face box.
    pub rect: [i64; 4],
    /// Whether the box is marked `ignore='1'`.
    pub ignore: bool,
    /// The points in `name` order (`00`, `01`, …).
    pub points: Vec<Point>,
}

/// Reads dlib's `*_with_face_landmarks.xml` (`<image file=…><box …><part name='00' x= y=/>`).
pub fn read_dlib_xml(path: impl AsRef<Path>) -> Result<Vec<DlibFace>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_dlib_xml(&bytes, path)
}

/// Parses the bytes of a dlib landmark XML file; `path` names it in errors.
pub fn parse_dlib_xml(bytes: &[u8], path: &Path) -> Result<Vec<DlibFace>> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut faces = Vec::new();
    let mut image: Option<String> = None;
    let mut current: Option<(DlibFace, Vec<(usize, Point)>)> = None;
    let mut box_index = 0usize;
    loop {
        let pos = reader.buffer_position();
        let err = |m: String| DataError::format(path, Location::Offset(pos), m);
        let event = reader
            .read_event()
            .map_err(|e| err(format!("malformed XML: {e}")))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let attr = |name: &str| -> Result<Option<String>> {
                    for a in e.attributes() {
                        let a = a.map_err(|x| err(format!("malformed attribute: {x}")))?;
                        if a.key.as_ref() == name {
                            let v = a
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .map_err(|x| err(format!("malformed attribute value: {x}")))?;
                            return Ok(Some(v.into_owned()));
                        }
                    }
                    Ok(None)
                };
                let num = |name: &str| -> Result<f64> {
                    let v = attr(name)?.ok_or_else(|| {
                        err(format!("<{}> lacks attribute {}", e.name().as_ref(), name))
                    })?;
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| err(format!("{v:?} is not a number")))
                };
                match e.name().as_ref() {
                    "image" => {
                        image =
                            Some(attr("file")?.ok_or_else(|| err("<image> lacks `file`".into()))?);
                        box_index = 0;
                        if matches!(event, Event::Empty(_)) {
                            image = None;
                        }
                    }
                    "box" => {
                        let img = image
                            .clone()
                            .ok_or_else(|| err("<box> outside <image>".into()))?;
                        let face = DlibFace {
                            image: img,
                            box_index,
                            rect: [
                                num("left")? as i64,
                                num("top")? as i64,
                                num("width")? as i64,
                                num("height")? as i64,
                            ],
                            ignore: attr("ignore")?.is_some_and(|v| v.trim() == "1"),
                            points: Vec::new(),
                        };
                        box_index += 1;
                        if matches!(event, Event::Empty(_)) {
                            faces.push(face);
                        } else {
                            current = Some((face, Vec::new()));
                        }
                    }
                    "part" => {
                        let (_, parts) = current
                            .as_mut()
                            .ok_or_else(|| err("<part> outside <box>".into()))?;
                        let name =
                            attr("name")?.ok_or_else(|| err("<part> lacks `name`".into()))?;
                        let idx: usize = name
                            .trim()
                            .parse()
                            .ok()
                            .filter(|&i| i < 1000)
                            .ok_or_else(|| err(format!("part name {name:?} is not an index")))?;
                        parts.push((idx, [num("x")? as f32, num("y")? as f32]));
                    }
                    _ => {}
                }
            }
            Event::End(ref e) => match e.name().as_ref() {
                "box" => {
                    if let Some((mut face, mut parts)) = current.take() {
                        parts.sort_by_key(|p| p.0);
                        if parts.iter().enumerate().any(|(i, p)| p.0 != i) {
                            return Err(err(format!(
                                "box {} of {} has parts that are not numbered 0..{}",
                                face.box_index,
                                face.image,
                                parts.len()
                            )));
                        }
                        face.points = parts.into_iter().map(|p| p.1).collect();
                        faces.push(face);
                    }
                }
                "image" => image = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_permutation_is_an_involution() {
        for (i, &j) in FLIP_68.iter().enumerate() {
            assert_eq!(FLIP_68[j], i);
        }
        let mut seen = FLIP_68.to_vec();
        seen.sort();
        assert_eq!(seen, (0..68).collect::<Vec<_>>());
        let pts: Vec<Point> = (0..68).map(|i| [i as f32, 2.0 * i as f32]).collect();
        assert_eq!(flip_points(&flip_points(&pts, 112), 112), pts);
        let f = flip_points(&pts, 112);
        assert_eq!(f[36], [111.0 - 45.0, 90.0]);
        assert_eq!(f[30], [111.0 - 30.0, 60.0]);
    }

    #[test]
    fn five_points_of_68() {
        let pts: Vec<Point> = (0..68).map(|i| [i as f32, 1.0]).collect();
        let f = five_from_68(&pts).unwrap();
        assert_eq!(
            f,
            [
                [38.5, 1.0],
                [44.5, 1.0],
                [30.0, 1.0],
                [48.0, 1.0],
                [54.0, 1.0]
            ]
        );
        assert!(five_points(&pts[..7]).is_err());
    }

    #[test]
    fn pts_parsing_and_errors() {
        let p = Path::new("a.pts");
        let ok = "version: 1\nn_points:  2\n{\n1.5 2\n3 4.25\n}\n";
        assert_eq!(parse_pts(ok, p).unwrap(), vec![[1.5, 2.0], [3.0, 4.25]]);
        let e = parse_pts("version: 1\nn_points: 3\n{\n1 2\n}\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("n_points says 3 but 1"), "{e}");
        let e = parse_pts("n_points: 1\n{\n1 nan\n}\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.pts at line 3"), "{e}");
    }

    #[test]
    fn dlib_xml_parsing() {
        let xml =
            b"<dataset><images><image file='a.jpg'><box top='1' left='2' width='3' height='4'>\
            <part name='01' x='5' y='6'/><part name='00' x='7' y='8'/></box>\
            <box top='1' left='2' width='3' height='4' ignore='1'/></image></images></dataset>";
        let faces = parse_dlib_xml(xml, Path::new("x.xml")).unwrap();
        assert_eq!(faces.len(), 2);
        assert_eq!(faces[0].points, vec![[7.0, 8.0], [5.0, 6.0]]);
        assert_eq!(
            (faces[0].rect, faces[1].ignore, faces[1].box_index),
            ([2, 1, 3, 4], true, 1)
        );
        let e = parse_dlib_xml(
            b"<image file='a'><box top='x' left='1' width='1' height='1'>",
            Path::new("x.xml"),
        );
        assert!(e.unwrap_err().to_string().contains("\"x\" is not a number"));
    }
}
