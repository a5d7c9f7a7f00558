//! Robustness: at least 10,000 seeded random mutations of valid files per format. Every
//! reader must return `Ok` or a typed error — never panic — and no single allocation may be
//! large (a counting allocator records the largest request).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use poseface_data::landmarks::{parse_dlib_xml, parse_pts};
use poseface_data::{
    PoseRecord, PoseSidecar, PoseSidecarWriter, RecordIoReader, VerificationBin, decode_rgb,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tracks the largest single allocation.
struct Counting;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator unchanged; only records the requested size.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MUTATIONS: usize = 10_000;
/// No input here is over 64 KiB; a reader that trusts a declared size would ask for far more.
const ALLOCATION_LIMIT: usize = 64 << 20;

fn mutate(rng: &mut ChaCha8Rng, valid: &[u8]) -> Vec<u8> {
    let mut v = valid.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let n = v.len().max(1);
        match rng.random_range(0..6) {
            0 => {
                let i = rng.random_range(0..n).min(v.len().saturating_sub(1));
                if !v.is_empty() {
                    v[i] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                let i = rng.random_range(0..n).min(v.len().saturating_sub(1));
                if !v.is_empty() {
                    v[i] = rng.random();
                }
            }
            2 => v.truncate(rng.random_range(0..n)),
            3 => {
                let i = rng.random_range(0..=v.len());
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(i..i, junk);
            }
            4 => {
                // Overwrite four bytes with an extreme little-endian length.
                if v.len() >= 4 {
                    let i = rng.random_range(0..v.len() - 3);
                    let x: u32 =
                        [u32::MAX, 0x7fff_ffff, 0x1fff_ffff, 0xffff, 0][rng.random_range(0..5)];
                    v[i..i + 4].copy_from_slice(&x.to_le_bytes());
                }
            }
            _ => {
                if v.len() > 2 {
                    let a = rng.random_range(0..v.len() - 1);
                    let b = rng.random_range(a + 1..v.len());
                    let chunk = v[a..b].to_vec();
                    let at = rng.random_range(0..=v.len());
                    v.splice(at..at, chunk);
                }
            }
        }
    }
    v
}

/// Runs `parse` on many mutations of `valid`; returns how many were rejected.
fn fuzz(name: &str, seed: u64, valid: &[u8], parse: impl Fn(&[u8]) -> bool) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rejected = 0;
    for k in 0..MUTATIONS {
        let input = mutate(&mut rng, valid);
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(&input)))
            .unwrap_or_else(|_| panic!("{name}: mutation {k} panicked (seed {seed})"));
        rejected += usize::from(!ok);
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < ALLOCATION_LIMIT,
        "{name}: an allocation of {largest} bytes"
    );
    eprintln!("{name}: {MUTATIONS} mutations, {rejected} rejected with an error, none panicked");
    rejected
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .unwrap()
}

#[test]
fn recordio_rec_and_idx() {
    let rec = fixture("recordio/train.rec");
    let idx = fixture("recordio/train.idx");
    let read_all = |r: RecordIoReader| {
        let keys: Vec<u64> = r.keys().collect();
        keys.iter().all(|&k| r.read(k).is_ok())
    };
    let r1 = fuzz("train.rec", 1, &rec, |b| {
        RecordIoReader::from_bytes("train.rec", b.to_vec(), &idx).is_ok_and(read_all)
    });
    let r2 = fuzz("train.idx", 2, &idx, |b| {
        RecordIoReader::from_bytes("train.rec", rec.clone(), b).is_ok_and(read_all)
    });
    assert!(
        r1 > MUTATIONS / 2 && r2 > MUTATIONS / 10,
        "mutations are detected ({r1}, {r2})"
    );
}

#[test]
fn verification_bins() {
    for (i, f) in [
        "bin/py2_proto0.bin",
        "bin/py2_proto2.bin",
        "bin/py3_proto2.bin",
        "bin/py3_proto5.bin",
    ]
    .iter()
    .enumerate()
    {
        let valid = fixture(f);
        fuzz(f, 10 + i as u64, &valid, |b| {
            VerificationBin::from_bytes(b, Path::new(f)).is_ok()
        });
    }
}

#[test]
fn landmark_files() {
    let pts: String = std::iter::once("version: 1\nn_points: 68\n{\n".to_string())
        .chain((0..68).map(|i| format!("{}.5 {}.25\n", 100 + i, 200 - i)))
        .chain(std::iter::once("}\n".to_string()))
        .collect();
    fuzz("landmarks.pts", 20, pts.as_bytes(), |b| {
        std::str::from_utf8(b).is_ok_and(|t| parse_pts(t, Path::new("x.pts")).is_ok())
    });
    let parts: String = (0..68)
        .map(|i| format!("<part name='{i:02}' x='{}' y='{}'/>", 10 + i, 20 + i))
        .collect();
    let xml = format!(
        "<?xml version='1.0'?><dataset><images><image file='a.jpg'><box top='1' left='2' width='30' height='40'>{parts}</box></image></images></dataset>"
    );
    fuzz("landmarks.xml", 21, xml.as_bytes(), |b| {
        parse_dlib_xml(b, Path::new("x.xml")).is_ok()
    });
}

#[test]
fn pose_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pose.sidecar");
    let mut w = PoseSidecarWriter::create(&path, 5).unwrap();
    for k in 0..20u64 {
        w.push(&PoseRecord {
            key: 3 * k,
            angles: Some(Default::default()),
            landmarks: Some(vec![[k as f32, 1.0]; 5]),
        })
        .unwrap();
    }
    w.finish().unwrap();
    let valid = std::fs::read(&path).unwrap();
    fuzz("pose.sidecar", 30, &valid, |b| {
        PoseSidecar::from_bytes("pose.sidecar", b.to_vec())
            .is_ok_and(|s| (0..s.len()).all(|i| s.record(i).is_some()))
    });
}

#[test]
fn images() {
    let png = fixture("align/crops/synthetic_1.png");
    fuzz("png", 40, &png, |b| decode_rgb(b, "m.png").is_ok());
    let img = decode_rgb(&png, "s.png").unwrap();
    let jpeg = poseface_data::decode::encode_jpeg(&img, 90);
    fuzz("jpeg", 41, &jpeg, |b| decode_rgb(b, "m.jpg").is_ok());
}
