//! Speed of the evaluation protocols on realistic sizes (random data).
//!
//! - `ten_fold_6000`: the 10-fold protocol with VAL@FAR on 6,000 pairs of 512-d embeddings
//!   (the size of LFW / CFP-FP / AgeDB-30 / CPLFW), from embeddings to the result.
//! - `ijbc_1to1`: IJB-C 1:1 at full size: 227,630 image features of 512-d aggregated into
//!   23,124 templates (3 images per media, 3 media per template on average), then 15,658,489
//!   template pairs scored and the ROC read at six FARs. All cores.
//!
//! `cargo xtask bench` runs this beside `scripts/eval_bench.py` (the NumPy peer). At the end
//! the process's peak resident memory (inputs included) is written to
//! `target/bench/eval_memory.json`, the peer's beside it.

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use poseface_eval::ijb::aggregate;
use poseface_eval::roc::IJB_FARS;
use poseface_eval::verification::verify;

/// SplitMix64-based uniform floats in [-1, 1), fast enough to fill 466 MB.
fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dim = 512;
    let mut g = c.benchmark_group("eval");
    g.sample_size(10);
    let mut emb = fill(12_000 * dim, 1);
    for row in emb.chunks_exact_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    let issame: Vec<bool> = (0..6000).map(|k| (k / 300) % 2 == 0).collect();
    g.bench_function("ten_fold_6000", |b| {
        b.iter(|| verify(black_box(&emb), dim, &issame).unwrap())
    });

    let (images, templates_n, pairs_n) = (227_630usize, 23_124usize, 15_658_489usize);
    let feats = fill(images * dim, 2);
    let scores = vec![0.9f32; images];
    let templates: Vec<u64> = (0..images)
        .map(|i| (i * templates_n / images) as u64 + 1)
        .collect();
    let medias: Vec<u64> = (0..images).map(|i| (i / 3) as u64).collect();
    let mut s = 3u64;
    let mut next = || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (s >> 33) % templates_n as u64 + 1
    };
    // Like the real pair list, pairs come grouped by their first template.
    let mut pairs: Vec<(u64, u64)> = (0..pairs_n).map(|_| (next(), next())).collect();
    pairs.sort_unstable();
    let (t1, t2): (Vec<u64>, Vec<u64>) = pairs.into_iter().unzip();
    let labels: Vec<bool> = (0..pairs_n).map(|k| k % 80 == 0).collect();
    g.bench_function("ijbc_1to1", |b| {
        b.iter(|| {
            let t = aggregate(black_box(&feats), dim, &scores, &templates, &medias).unwrap();
            t.roc(&t1, &t2, &labels).unwrap().tar_at_far(&IJB_FARS)
        })
    });
    g.finish();
}

/// Peak resident set of this process in bytes (`VmHWM`; Linux), if known.
fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if let Some(peak) = peak_resident_bytes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
        let _ = std::fs::create_dir_all(&dir);
        let json = format!("{{\"peak_resident_bytes\":{peak}}}\n");
        if let Err(e) = std::fs::write(dir.join("eval_memory.json"), json) {
            eprintln!("cannot write eval_memory.json: {e}");
        }
    }
}
