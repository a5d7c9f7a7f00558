//! Data-pipeline benchmark (flex-free: pure CPU, one thread): JPEG decode → 5-point
//! similarity → 112×112 warp → horizontal flip → `(x − 127.5)/127.5` CHW floats, per face;
//! then each stage alone (`pipeline_stages/*`), as the Python peer times its stages; then
//! what RecordIO training does per face (`pipeline_records/*`): read a 112×112 aligned JPEG
//! record (the faces' own crops, quality 95), decode, flip, normalise. Those records are also
//! written to `target/bench/aligned_rec/` for the Python peer to read the same bytes.
//!
//! Faces are dlib's annotated photos from `../shared/golden/dlib_faces` (the same set the
//! Python peer `scripts/pipeline_bench.py` times); without them, a generated 480×380 JPEG.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use poseface_data::recordio::{IrHeader, RecordIoReader, RecordIoWriter};
use poseface_data::{
    Point, arcface_transform, decode_rgb, flip, normalise_chw, read_dlib_xml, warp_affine,
};

fn faces() -> Vec<(Vec<u8>, Vec<Point>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/dlib_faces");
    let mut out = Vec::new();
    for xml in [
        "training_with_face_landmarks.xml",
        "testing_with_face_landmarks.xml",
    ] {
        let Ok(list) = read_dlib_xml(dir.join(xml)) else {
            continue;
        };
        for f in list.into_iter().filter(|f| f.points.len() == 68) {
            let bytes = std::fs::read(dir.join(&f.image)).expect("image named by the xml");
            let five = poseface_data::five_points(&f.points)
                .expect("68 points")
                .to_vec();
            out.push((bytes, five));
        }
    }
    if out.is_empty() {
        eprintln!("../shared/golden/dlib_faces not found: benchmarking a generated 480x380 JPEG");
        let img = image::RgbImage::from_fn(480, 380, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 251) as u8])
        });
        let pts: Vec<Point> = poseface_data::ARCFACE_TEMPLATE
            .iter()
            .map(|p| [p[0] * 2.0 + 100.0, p[1] * 2.0 + 60.0])
            .collect();
        out.push((poseface_data::decode::encode_jpeg(&img, 90), pts));
    }
    out
}

fn process(bytes: &[u8], five: &[Point], out: &mut [f32]) {
    let img = decode_rgb(bytes, "bench").expect("decodable");
    let m = arcface_transform(five).expect("valid points");
    let crop = warp_affine(&img, &m, 112, 112).expect("invertible");
    let sample = poseface_data::FaceSample {
        image: crop,
        label: 0,
        landmarks: None,
        angles: None,
    };
    let flipped = flip(&sample);
    normalise_chw(&flipped.image, out);
}

fn bench(c: &mut Criterion) {
    let faces = faces();
    let mut buf = vec![0f32; 3 * 112 * 112];
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(faces.len() as u64));
    group.sample_size(20);
    group.bench_function("decode_align_flip_normalise_1thread", |b| {
        b.iter(|| {
            for (bytes, five) in &faces {
                process(black_box(bytes), five, &mut buf);
            }
            black_box(&buf);
        })
    });
    group.finish();

    // Each stage alone, over every face, on the previous stage's output.
    let decoded: Vec<_> = faces
        .iter()
        .map(|(bytes, _)| decode_rgb(bytes, "bench").expect("decodable"))
        .collect();
    let transforms: Vec<_> = faces
        .iter()
        .map(|(_, five)| arcface_transform(five).expect("valid points"))
        .collect();
    let samples: Vec<_> = decoded
        .iter()
        .zip(&transforms)
        .map(|(img, m)| poseface_data::FaceSample {
            image: warp_affine(img, m, 112, 112).expect("invertible"),
            label: 0,
            landmarks: None,
            angles: None,
        })
        .collect();
    let mut stages = c.benchmark_group("pipeline_stages");
    stages.throughput(Throughput::Elements(faces.len() as u64));
    stages.sample_size(20);
    stages.bench_function("decode", |b| {
        b.iter(|| {
            for (bytes, _) in &faces {
                black_box(decode_rgb(black_box(bytes), "bench").expect("decodable"));
            }
        })
    });
    stages.bench_function("similarity_fit", |b| {
        b.iter(|| {
            for (_, five) in &faces {
                black_box(arcface_transform(black_box(five)).expect("valid points"));
            }
        })
    });
    stages.bench_function("warp_affine", |b| {
        b.iter(|| {
            for (img, m) in decoded.iter().zip(&transforms) {
                black_box(warp_affine(black_box(img), m, 112, 112).expect("invertible"));
            }
        })
    });
    stages.bench_function("flip", |b| {
        b.iter(|| {
            for s in &samples {
                black_box(flip(black_box(s)));
            }
        })
    });
    stages.bench_function("normalise_chw", |b| {
        b.iter(|| {
            for s in &samples {
                normalise_chw(black_box(&s.image), &mut buf);
            }
            black_box(&buf);
        })
    });
    stages.finish();

    // The aligned crops as a RecordIO dataset, as insightface's training sets store faces.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/aligned_rec");
    std::fs::create_dir_all(&dir).expect("target/bench is writable");
    let (rec, idx) = (dir.join("train.rec"), dir.join("train.idx"));
    let mut writer = RecordIoWriter::create(&rec, &idx).expect("create the records");
    for (k, s) in samples.iter().enumerate() {
        let header = IrHeader {
            flag: 0,
            label: k as f32,
            id: k as u64,
            id2: 0,
        };
        let jpeg = poseface_data::decode::encode_jpeg(&s.image, 95);
        writer
            .write(k as u64, &header, &[], &jpeg)
            .expect("write a record");
    }
    writer.finish().expect("finish the records");
    let reader = RecordIoReader::open(&rec, &idx).expect("read the records back");
    let mut records = c.benchmark_group("pipeline_records");
    records.throughput(Throughput::Elements(reader.len() as u64));
    records.sample_size(20);
    records.bench_function("read_decode_flip_normalise_112", |b| {
        b.iter(|| {
            for key in reader.keys() {
                let record = reader.read(key).expect("a record");
                let sample = poseface_data::FaceSample {
                    image: decode_rgb(&record.payload, "bench").expect("decodable"),
                    label: record.primary_label() as u32,
                    landmarks: None,
                    angles: None,
                };
                normalise_chw(&flip(&sample).image, &mut buf);
            }
            black_box(&buf);
        })
    });
    records.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
