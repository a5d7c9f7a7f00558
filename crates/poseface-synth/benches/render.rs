//! Throughput of the synthetic face generator on the CPU.
//!
//! `cargo bench -p poseface-synth --bench render`; `cargo xtask bench` runs it and writes
//! the figures into `docs/BENCHMARKS.md`. Single-image rows run on one thread; the
//! `*_all_cores` rows render a batch on all cores the way `poseface data synth` does (each
//! identity's mesh built once for 16 pictures, random scenes and degradations);
//! `dataset_*` aligns each picture to 112×112 as well.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poseface_data::pose::EulerAngles;
use poseface_synth::config::{Preset, SynthConfig};
use poseface_synth::face::FaceShape;
use poseface_synth::generate::{Generator, ImagePlan};
use poseface_synth::identity::{Expression, Identity, IdentityCode};
use poseface_synth::landmark_sampler::LandmarkSampler;
use poseface_synth::mesh::{FaceMesh, MeshResolution};
use poseface_synth::render::{Antialias, Renderer, Scene};
use rand::SeedableRng;

fn bench(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let id = Identity::new(&IdentityCode::sample(&mut rng), 1.0);
    let shape = FaceShape::new(&id);
    let mesh = FaceMesh::build(&shape, MeshResolution::default());
    let mut g = c.benchmark_group("synth");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("mesh_build", |b| {
        b.iter(|| FaceMesh::build(black_box(&shape), MeshResolution::default()))
    });
    let mut renderer = Renderer::default();
    let scene = Scene::clean(EulerAngles {
        yaw: 30.0,
        pitch: 5.0,
        roll: 0.0,
    });
    g.bench_function("render_160_ss2", |b| {
        b.iter(|| renderer.render(&shape, &mesh, &Expression::default(), black_box(&scene)))
    });
    let mut full = scene;
    full.antialias = Antialias::Full;
    g.bench_function("render_160_ss2_full", |b| {
        b.iter(|| renderer.render(&shape, &mesh, &Expression::default(), black_box(&full)))
    });
    let mut ss1 = scene;
    ss1.supersample = 1;
    g.bench_function("render_160_ss1", |b| {
        b.iter(|| renderer.render(&shape, &mesh, &Expression::default(), black_box(&ss1)))
    });
    let sampler = LandmarkSampler::default();
    let mut i = 0u64;
    g.bench_function("landmark_sample", |b| {
        b.iter(|| {
            i += 1;
            sampler.sample(black_box(i))
        })
    });
    let generator = Generator::new(SynthConfig::preset(Preset::Tiny, 1)).expect("valid preset");
    let plans: Vec<ImagePlan> = (0..64u64)
        .map(|k| ImagePlan {
            identity: k / 16,
            pose: EulerAngles {
                yaw: -80.0 + 2.5 * k as f32,
                pitch: 0.0,
                roll: 0.0,
            },
            stream: 2,
            index: k,
        })
        .collect();
    g.throughput(Throughput::Elements(plans.len() as u64));
    // The pictures alone: random scenes and degradations, no alignment.
    g.bench_function("render_64_all_cores", |b| {
        b.iter(|| {
            generator
                .render_map(&plans, |_, s| Ok(s.image), &|| {})
                .expect("renders")
        })
    });
    g.bench_function("dataset_64_all_cores", |b| {
        b.iter(|| {
            generator
                .render_map(&plans, |_, s| Ok(s.aligned()?.0), &|| {})
                .expect("renders")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
