//! End-to-end checks of the synthetic data: determinism, ground truth, structure, hardness.

use std::collections::BTreeMap;
use std::path::Path;

use poseface_data::face_rec::FaceRecordSet;
use poseface_data::ijb::{IjbMeta, IjbTarget};
use poseface_data::inspect::inspect;
use poseface_data::pose::{EulerAngles, estimate_pose};
use poseface_data::sidecar::{PoseSidecar, SIDECAR_FILE};
use poseface_data::verification_bin::VerificationBin;
use poseface_synth::config::{Preset, SynthConfig};
use poseface_synth::face::{FaceShape, Region};
use poseface_synth::generate::{EVAL_BASE, Generator, IJB_BASE, identity_code};
use poseface_synth::identity::Expression;
use poseface_synth::ijb::plan_ijb;
use poseface_synth::mesh::{FaceMesh, MeshResolution};
use poseface_synth::pairs::{PairKind, fold_identities, plan_pairs};
use poseface_synth::render::{Renderer, Scene};
use poseface_synth::scene::{FRONTAL_HEAVY_BINS, stream_rng};
use poseface_synth::writer::write_dataset;
use rand::Rng;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn quiet(_: &str, _: u64, _: u64) {}

#[test]
fn tiny_dataset_is_byte_identical_for_a_seed_whatever_the_thread_count() {
    let cfg = SynthConfig::preset(Preset::Tiny, 11);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| write_dataset(&cfg, a.path(), &quiet).unwrap());
    write_dataset(&cfg, b.path(), &quiet).unwrap();
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        // synth.json names the output directory, which differs; everything else is equal.
        if name != "synth.json" {
            assert!(bytes == &fb[name], "{name} differs");
        }
    }
    // Another seed gives other pictures.
    let c = tempfile::tempdir().unwrap();
    write_dataset(&SynthConfig::preset(Preset::Tiny, 12), c.path(), &quiet).unwrap();
    assert_ne!(fa["train.rec"], files(c.path())["train.rec"]);
}

#[test]
fn tiny_dataset_has_the_documented_structure_and_reads_back() {
    let cfg = SynthConfig::preset(Preset::Tiny, 3);
    let dir = tempfile::tempdir().unwrap();
    let report = write_dataset(&cfg, dir.path(), &quiet).unwrap();
    // Training RecordIO: 24 identities × 6 aligned faces, one sidecar record each.
    let set = FaceRecordSet::open(dir.path()).unwrap();
    assert_eq!(set.len(), 144);
    assert_eq!(set.identity_ranges().unwrap().len(), 24);
    let sidecar = PoseSidecar::open(dir.path().join(SIDECAR_FILE)).unwrap();
    assert_eq!((sidecar.len(), sidecar.points_per_record()), (144, 68));
    let mut shares = [0f32; 3];
    for i in 0..sidecar.len() {
        let r = sidecar.record(i).unwrap();
        let yaw = r.angles.unwrap().yaw.abs();
        shares[((yaw / 30.0) as usize).min(2)] += 1.0 / 144.0;
        // The aligned landmarks put the eyes where the ArcFace template has them.
        let lm = r.landmarks.unwrap();
        if yaw < 20.0 {
            let eye = |a: usize| lm[a..a + 6].iter().map(|p| p[0]).sum::<f32>() / 6.0;
            assert!((eye(36) - 38.3).abs() < 6.0 && (eye(42) - 73.5).abs() < 6.0);
        }
    }
    for (k, &(_, _, share)) in FRONTAL_HEAVY_BINS.iter().enumerate() {
        assert!(
            (shares[k] - share).abs() <= 0.02,
            "bin {k}: {} vs {share}",
            shares[k]
        );
    }
    assert_eq!(report.train_yaw_shares, shares);
    let inspected = inspect(dir.path(), &|_, _| {}).unwrap();
    assert_eq!((inspected.images, inspected.identities), (144, Some(24)));
    assert!(inspected.corrupt.is_empty());
    // Pair sets: 10 folds of 20, positives first in each fold, readable by inspect.
    for name in ["synth_cplfw.bin", "synth_lfw.bin"] {
        let path = dir.path().join(name);
        let bin = VerificationBin::read(&path).unwrap();
        assert_eq!(bin.pairs(), 200);
        for fold in bin.issame.chunks(20) {
            assert!(fold[..10].iter().all(|&s| s) && fold[10..].iter().all(|&s| !s));
        }
        let r = inspect(&path, &|_, _| {}).unwrap();
        assert_eq!((r.pairs, r.positives), (Some(200), Some(100)));
        assert!(r.corrupt.is_empty());
    }
    // IJB-style set: meta files parse, every image exists, templates are identity-pure.
    let meta = IjbMeta::open(dir.path().join("ijb"), IjbTarget::IjbC).unwrap();
    assert_eq!(meta.faces.names.len(), report.ijb[0]);
    assert_eq!(meta.pairs.labels.len(), report.ijb[2]);
    for n in &meta.faces.names {
        assert!(dir.path().join("ijb/loose_crop").join(n).is_file());
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("synth.json")).unwrap()).unwrap();
    assert_eq!(summary["config"]["seed"], 3);
}

fn render_one(
    seed: u64,
    index: u64,
    pose: EulerAngles,
    e: Expression,
) -> (FaceShape, poseface_synth::render::Rendered) {
    let g = Generator::new(SynthConfig::preset(Preset::Tiny, seed)).unwrap();
    let shape = FaceShape::new(&g.identity(index));
    let mesh = FaceMesh::build(&shape, MeshResolution::default());
    let r = Renderer::default().render(&shape, &mesh, &e, &Scene::clean(pose));
    (shape, r)
}

fn region_near(
    r: &poseface_synth::render::Rendered,
    p: [f32; 2],
    reach: i32,
    want: impl Fn(Region) -> bool,
) -> bool {
    let size = r.image.width() as i32;
    (-reach..=reach).any(|dy| {
        (-reach..=reach).any(|dx| {
            let (x, y) = (p[0] as i32 + dx, p[1] as i32 + dy);
            x >= 0
                && y >= 0
                && x < size
                && y < size
                && want(Region::from_code(r.regions[(y * size + x) as usize]))
        })
    })
}

#[test]
fn landmarks_land_on_the_rendered_face() {
    for id in 0..6 {
        let frontal = EulerAngles::default();
        let (_, r) = render_one(5, id, frontal, Expression::default());
        assert!(
            r.visible.iter().all(|&v| v),
            "identity {id}: a frontal landmark is hidden"
        );
        // The nose tip is on the nose; eye landmarks touch the eye opening (within 3
        // pixels: regions are drawn per mesh vertex, about 2.5 pixels apart at the eyes).
        assert!(
            region_near(&r, r.landmarks[30], 0, |g| g == Region::Nose),
            "nose tip of {id}"
        );
        for k in 36..48 {
            assert!(
                region_near(&r, r.landmarks[k], 3, |g| g == Region::Eye),
                "eye landmark {k} of {id}"
            );
        }
        for k in 48..68 {
            assert!(
                region_near(&r, r.landmarks[k], 2, |g| g == Region::Lips),
                "lip landmark {k} of {id}"
            );
        }
        // Turned 70° towards the image's right: the near (image-left) eye stays visible and
        // the far side of the face is hidden; every visible landmark is on the head.
        let (_, r) = render_one(
            5,
            id,
            EulerAngles {
                yaw: 70.0,
                pitch: 0.0,
                roll: 0.0,
            },
            Expression::default(),
        );
        assert!(
            r.visible[36..42].iter().all(|&v| v),
            "near eye of {id}: {:?}",
            &r.visible[36..42]
        );
        assert!(
            !r.visible[45] && !r.visible[16] && !r.visible[15],
            "far side of {id}"
        );
        for (k, p) in r.landmarks.iter().enumerate() {
            if r.visible[k] {
                assert!(
                    region_near(&r, *p, 1, |g| g != Region::Background),
                    "landmark {k} of {id} off the head"
                );
            }
        }
    }
}

#[test]
fn pose_fitting_recovers_the_rendered_yaw() {
    // `poseface pose` (estimate_pose on 68 points) on the rendered ground-truth landmarks.
    let g = Generator::new(SynthConfig::preset(Preset::Tiny, 9)).unwrap();
    let mut rng = stream_rng(9, 99, 0);
    let mut renderer = Renderer::default();
    let (mut sum, mut worst, n) = (0.0f32, 0.0f32, 60);
    for i in 0..n {
        let shape = FaceShape::new(&g.identity(i));
        let mesh = FaceMesh::build(&shape, MeshResolution::default());
        let pose = EulerAngles {
            yaw: rng.random_range(-75.0..=75.0),
            pitch: rng.random_range(-15.0..=15.0),
            roll: rng.random_range(-10.0..=10.0),
        };
        let e = Expression::sample(&mut rng, 0.5);
        let r = renderer.render(&shape, &mesh, &e, &Scene::clean(pose));
        let est = estimate_pose(&r.landmarks).unwrap();
        let err = (est.yaw - pose.yaw).abs();
        sum += err;
        worst = worst.max(err);
    }
    let mae = sum / n as f32;
    eprintln!("yaw MAE {mae:.2}°, worst {worst:.2}°");
    assert!(mae <= 3.0, "yaw MAE {mae:.2}° (worst {worst:.2}°)");
}

#[test]
fn training_and_evaluation_identities_are_disjoint() {
    let cfg = SynthConfig::preset(Preset::Small, 1);
    let train: Vec<Vec<f32>> = (0..cfg.identities as u64)
        .map(|i| identity_code(1, i).z)
        .collect();
    let mut eval = Vec::new();
    for f in 0..cfg.pairs.folds {
        for id in fold_identities(&cfg, f) {
            assert!((EVAL_BASE..IJB_BASE).contains(&id));
            eval.push(identity_code(1, id).z);
        }
    }
    for p in plan_pairs(&cfg, PairKind::CrossPose) {
        assert!(p.a.identity >= EVAL_BASE && p.b.identity >= EVAL_BASE);
    }
    let ijb = plan_ijb(&cfg);
    assert!(ijb.images.iter().all(|i| i.plan.identity >= IJB_BASE));
    for e in &eval {
        assert!(!train.contains(e));
    }
}

/// 10-fold verification accuracy with the threshold chosen on the other nine folds.
fn ten_fold_accuracy(scores: &[f32], same: &[bool], folds: usize) -> f32 {
    let n = scores.len() / folds;
    let acc = |idx: &[usize], t: f32| {
        idx.iter().filter(|&&i| (scores[i] >= t) == same[i]).count() as f32 / idx.len() as f32
    };
    let mut total = 0.0;
    for k in 0..folds {
        let test: Vec<usize> = (k * n..(k + 1) * n).collect();
        let train: Vec<usize> = (0..scores.len()).filter(|i| i / n != k).collect();
        let best = train
            .iter()
            .map(|&i| scores[i])
            .max_by(|&a, &b| acc(&train, a).total_cmp(&acc(&train, b)))
            .unwrap();
        total += acc(&test, best);
    }
    total / folds as f32
}

fn raw_pixel_accuracy(kind: PairKind) -> f32 {
    let mut cfg = SynthConfig::preset(Preset::Tiny, 21);
    cfg.pairs.pairs_per_fold = 60;
    cfg.pairs.identities = 200;
    let g = Generator::new(cfg.clone()).unwrap();
    let pairs = plan_pairs(&cfg, kind);
    let plans: Vec<_> = pairs.iter().flat_map(|p| [p.a, p.b]).collect();
    let faces = g
        .render_map(
            &plans,
            |_, s| {
                let (face, _) = s.aligned()?;
                Ok(face
                    .into_raw()
                    .into_iter()
                    .map(|v| v as f32)
                    .collect::<Vec<f32>>())
            },
            &|| {},
        )
        .unwrap();
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (na * nb)
    };
    let scores: Vec<f32> = faces.chunks(2).map(|p| cos(&p[0], &p[1])).collect();
    let same: Vec<bool> = pairs.iter().map(|p| p.same).collect();
    ten_fold_accuracy(&scores, &same, cfg.pairs.folds)
}

#[test]
fn raw_pixels_cannot_verify_the_cross_pose_pairs() {
    let cross = raw_pixel_accuracy(PairKind::CrossPose);
    eprintln!("raw-pixel cosine 10-fold accuracy: cross-pose {cross:.3}");
    assert!(
        cross <= 0.70,
        "cross-pose pairs are too easy for raw pixels: {cross:.3}"
    );
}

#[test]
fn edge_antialiasing_matches_full_supersampling_where_it_matters() {
    use poseface_synth::render::Antialias;
    let g = Generator::new(SynthConfig::preset(Preset::Tiny, 2)).unwrap();
    let mut renderer = Renderer::default();
    let (mut ss1_err, mut edges_err, mut edge_px) = (0.0f64, 0.0f64, 0usize);
    for (id, yaw) in [(0u64, 0.0f32), (1, 35.0), (2, -70.0), (3, 90.0)] {
        let shape = FaceShape::new(&g.identity(id));
        let mesh = FaceMesh::build(&shape, MeshResolution::default());
        let pose = EulerAngles {
            yaw,
            pitch: 8.0,
            roll: 0.0,
        };
        let draw = |renderer: &mut Renderer, supersample: u32, antialias: Antialias| {
            let scene = Scene {
                supersample,
                antialias,
                ..Scene::clean(pose)
            };
            renderer
                .render(&shape, &mesh, &Expression::default(), &scene)
                .image
        };
        let full = draw(&mut renderer, 2, Antialias::Full);
        let edges = draw(&mut renderer, 2, Antialias::Edges);
        let one = draw(&mut renderer, 1, Antialias::Full);
        for ((f, e), o) in full.as_raw().iter().zip(edges.as_raw()).zip(one.as_raw()) {
            let (f, e, o) = (*f as f64, *e as f64, *o as f64);
            // Where one sample per pixel is visibly off (the silhouette and occlusion
            // edges), the edge pass must agree with full supersampling.
            if (o - f).abs() >= 8.0 {
                edge_px += 1;
                ss1_err += (o - f).abs();
                edges_err += (e - f).abs();
            }
        }
        // Everywhere else they differ by the smooth shading between sample positions.
        let mean: f64 = full
            .as_raw()
            .iter()
            .zip(edges.as_raw())
            .map(|(f, e)| (*f as f64 - *e as f64).abs())
            .sum::<f64>()
            / full.as_raw().len() as f64;
        assert!(mean < 0.25, "yaw {yaw}: mean |full − edges| {mean}");
    }
    assert!(edge_px > 500, "{edge_px} aliased values");
    assert!(
        edges_err < 0.05 * ss1_err,
        "at {edge_px} aliased values: edges off by {edges_err}, one sample by {ss1_err}"
    );
}
