//! Rendering throughput of the synthetic face generator (CPU, one thread per measurement).
//!
//! `cargo bench -p poseface-synth --bench render`; `cargo xtask bench` runs it and writes
//! the per-image times and the 2-core images/s into `docs/BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use poseface_data::pose::EulerAngles;
use poseface_synth::face::FaceShape;
use poseface_synth::identity::{Expression, Identity, IdentityCode};
use poseface_synth::mesh::{FaceMesh, MeshResolution};
use poseface_synth::render::{Renderer, Scene};
use rand::SeedableRng;

fn bench(c: &mut Criterion) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let id = Identity::new(&IdentityCode::sample(&mut rng), 1.0);
    let shape = FaceShape::new(&id);
    let mesh = FaceMesh::build(&shape, MeshResolution::default());
    let mut g = c.benchmark_group("synth");
    g.sample_size(20);
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
    let mut ss1 = scene;
    ss1.supersample = 1;
    g.bench_function("render_160_ss1", |b| {
        b.iter(|| renderer.render(&shape, &mesh, &Expression::default(), black_box(&ss1)))
    });
    g.bench_function("landmarks_68", |b| {
        b.iter(|| shape.landmarks(black_box(&Expression::default())))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
