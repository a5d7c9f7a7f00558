//! The data-pipeline section of `docs/BENCHMARKS.md`: the criterion suite, its Python peer
//! and the libjpeg-turbo decoding bound.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::{bench_venv, criterion_rate, run_suite};

/// Runs the data-pipeline suite, its Python peer and the decoding bound, writes
/// `target/bench/pipeline.json` and formats the section of the report.
pub(super) fn pipeline_section(root: &Path, quick: bool) -> Result<String> {
    // Release, as users run it (the test profile's overflow checks and debug assertions cost
    // the renderer about a quarter of its speed; the pipeline hardly notices).
    run_suite("poseface-data", "pipeline", quick, "release")?;
    let ours = criterion_rate(
        &root.join("target/criterion/pipeline/decode_align_flip_normalise_1thread/new"),
    )?;
    let peer = python_peer(root, quick);
    // The least decoding a per-face pipeline can do on these photos (libjpeg-turbo, only
    // the rows up to and the columns of the box a face's warp reads), as a rate bound.
    let least = decode_bound(root, quick);
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let json = serde_json::json!({
        "suite": "data_pipeline",
        "ours_images_per_s_per_core": ours,
        "peer": peer,
        "decode_bound": least,
    });
    std::fs::write(out_dir.join("pipeline.json"), format!("{json}\n"))?;
    let peer_rate = peer
        .as_ref()
        .and_then(|p| p["images_per_s_per_core"].as_f64());
    let row = match peer_rate {
        Some(p) => format!(
            "| decode + align + flip + normalise, images/s per core | ≥ 10× | {ours:.0} | {p:.0} (Python cv2 + skimage) | {:.2}× |",
            ours / p
        ),
        None => format!(
            "| decode + align + flip + normalise, images/s per core | ≥ 10× | {ours:.0} | skipped: Python peer unavailable | – |"
        ),
    };
    let records = criterion_rate(
        &root.join("target/criterion/pipeline_records/read_decode_flip_normalise_112/new"),
    )?;
    let records_row = match peer
        .as_ref()
        .and_then(|p| p["records_images_per_s_per_core"].as_f64())
    {
        Some(p) => format!(
            "| RecordIO of 112×112 aligned JPEGs (what training reads): read + decode + flip + normalise, images/s per core | – | {records:.0} | {p:.0} (Python cv2, our reference reader) | {:.2}× |",
            records / p
        ),
        None => format!(
            "| RecordIO of 112×112 aligned JPEGs (what training reads): read + decode + flip + normalise, images/s per core | – | {records:.0} | skipped: Python peer unavailable | – |"
        ),
    };
    let least_us = least.as_ref().and_then(|b| b["roi_decode_us"].as_f64());
    let bound_row = match (least_us, peer_rate) {
        (Some(us), Some(p)) => format!(
            "| bound: decoding only what the warp reads, and nothing else, images/s per core | – | {:.0} (libjpeg-turbo, not ours) | {p:.0} (the peer's whole pipeline) | {:.2}× |",
            1e6 / us,
            1e6 / us / p
        ),
        _ => "| bound: decoding only what the warp reads, and nothing else | – | skipped: gcc, libjpeg-turbo or the Python peer unavailable | – | – |".to_string(),
    };
    let (stages, times) = pipeline_stages(root, peer.as_ref())?;
    // Stage times in the table's order: decode, fit, warp, flip, normalise.
    let total: f64 = times.iter().sum();
    let (decode, warp) = (times[0], times[2]);
    let warp_share = 100.0 * warp / total;
    let peer_us = |key: &str| peer.as_ref().and_then(|p| p["stage_us"][key].as_f64());
    let decode_speed = match (peer_us("imdecode"), peer_us("bgr2rgb")) {
        (Some(a), Some(b)) => format!("at {:.2}× its speed", (a + b) / decode),
        _ => "(the peer's figures are missing)".to_string(),
    };
    let bound = match peer
        .as_ref()
        .and_then(|p| p["images_per_s_per_core"].as_f64())
    {
        Some(rate) => format!("{:.2}× the peer", 1e6 / decode / rate),
        None => "the decoder's speed".to_string(),
    };
    let warp_speed = match peer_us("warp_affine") {
        Some(p) => format!("{:.1}× the time", warp / p),
        None => "more time than".to_string(),
    };
    let least_text = match (least.as_ref(), least_us, peer_rate) {
        (Some(b), Some(us), Some(p)) => {
            let num = |key: &str| b[key].as_f64().unwrap_or(f64::NAN);
            let diff = b["roi_max_abs_diff"].as_u64().unwrap_or(u64::MAX);
            let equal = if diff == 0 {
                "equal a whole decode's".to_string()
            } else {
                format!("differ from a whole decode's by up to {diff} levels")
            };
            format!(
                "Nor is it in reach of a per-face pipeline that decodes as little as possible. The third row \
                 measures that bound (`scripts/jpeg_roi_bound.py`, which builds `scripts/jpeg_roi_bound.c` \
                 against the system's libjpeg-turbo): per face, libjpeg-turbo decodes only the columns of \
                 the box of photo pixels that the face's 112×112 warp reads (`jpeg_crop_scanline`), skips \
                 the rows above it (`jpeg_skip_scanlines`) and stops after its last row. The boxes hold \
                 {:.1}% of the photos' pixels, and the pixels decoded in them {equal}. It takes {us:.0} µs \
                 per face against {:.0} µs for the whole photo. These photos are baseline JPEGs without \
                 restart markers, which cannot be entered in the middle, so every Huffman code up to the \
                 box's last row ({:.0}% of the rows on average) must still be decoded: skipping through \
                 that row without producing a pixel takes {:.0} µs of them ({:.0}%). With libjpeg-turbo's \
                 entropy decoder and every stage after decoding free, a per-face pipeline would run at the \
                 ratio in that row; the 10× goal needs {:.0} µs per face for everything. Decoding each \
                 photo once for all its faces ({:.1} a photo here) is another workload, which the peer could \
                 run as well; this benchmark, like a training pipeline that reads faces one at a time, \
                 decodes per face. What would bring ours closer to the bound: decoding only the box's rows \
                 and columns in our decoder (it decodes the whole photo), then the warp ({warp_share:.0}% \
                 of our time).",
                100.0 * num("box_pixel_share"),
                num("full_decode_us"),
                100.0 * num("rows_through_box_share"),
                num("entropy_through_box_us"),
                100.0 * num("entropy_through_box_us") / us,
                1e6 / p / 10.0,
                num("faces") / num("photos"),
            )
        }
        _ => format!(
            "What would move it: decoding only the rows and columns the warp reads; then the warp \
             ({warp_share:.0}% of our time)."
        ),
    };
    Ok(format!(
        "## Data pipeline (`poseface-data`)\n\n\
         | what | goal | ours | peer | ratio |\n|---|---|---|---|---|\n{row}\n{records_row}\n{bound_row}\n\n\
         Faces: the 43 annotated faces of `../shared/golden/dlib_faces` (photos ≤ 500 px), one thread each side, \
         built in release mode. The second row reads the same faces aligned, as a RecordIO dataset of 112×112 \
         JPEGs (quality 95, written by the benchmark to `target/bench/aligned_rec/`), as insightface's training \
         sets store them: no photo to decode and no warp, so the per-call overheads weigh more.\n\n\
         Each stage alone, per image (criterion's `pipeline_stages/*` on our side; the Python peer times its own \
         stages, `stage_us` in `target/bench/pipeline_python.json`):\n\n{stages}\n\
         Decoding the whole ~0.18 MP photo is nearly all of both sides' time: libjpeg-turbo's SIMD decoder on \
         the peer's side, the pure-Rust `image`/zune-jpeg decoder on ours, {decode_speed}. Of the other stages, \
         the warp takes {warp_speed} of cv2's: its floating-point bilinear sampling, kept so that aligned crops \
         and the synthetic datasets stay byte-identical, runs eight pixels at a time but gathers their source \
         pixels one by one, where cv2 interpolates in fixed point with SIMD throughout. Since both sides must \
         decode the photo, the 10× goal is out of reach of any pipeline that decodes it whole: with every stage \
         after decoding free, ours would run at {bound}. {least_text}\n"
    ))
}

/// Runs `scripts/jpeg_roi_bound.py` in the benchmark venv; `None` (with a message) when it
/// cannot (no Python packages, no gcc, no libjpeg-turbo development files).
fn decode_bound(root: &Path, quick: bool) -> Option<serde_json::Value> {
    let py = bench_venv(root)?;
    let secs = if quick { "1" } else { "5" };
    let out = Command::new(&py)
        .current_dir(root)
        .args([
            "scripts/jpeg_roi_bound.py",
            "--data",
            "../shared/golden/dlib_faces",
            "--min-seconds",
            secs,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "skipping the decoding bound: scripts/jpeg_roi_bound.py failed (it needs gcc and \
             libjpeg-turbo's development files, Debian's libjpeg62-turbo-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The per-stage table of the data pipeline: our `pipeline_stages/*` beside the Python
/// peer's `stage_us` (its decode and BGR→RGB conversion counted together, as our decoder
/// gives RGB).
fn pipeline_stages(root: &Path, peer: Option<&serde_json::Value>) -> Result<(String, Vec<f64>)> {
    let stages: [(&str, &str, &[&str]); 5] = [
        ("JPEG decode (to RGB)", "decode", &["imdecode", "bgr2rgb"]),
        (
            "5-point similarity fit",
            "similarity_fit",
            &["similarity_fit"],
        ),
        ("112×112 bilinear warp", "warp_affine", &["warp_affine"]),
        ("horizontal flip", "flip", &["flip"]),
        (
            "(x − 127.5)/127.5, CHW floats",
            "normalise_chw",
            &["normalise_chw"],
        ),
    ];
    let mut table =
        String::from("| stage | ours, µs/image | Python, µs/image | ratio |\n|---|---|---|---|\n");
    let mut times = Vec::new();
    for (what, ours, theirs) in stages {
        let us = 1e6
            / criterion_rate(&root.join(format!("target/criterion/pipeline_stages/{ours}/new")))?;
        times.push(us);
        let peer_us: Option<f64> = peer.and_then(|p| {
            theirs
                .iter()
                .map(|k| p["stage_us"][k].as_f64())
                .sum::<Option<f64>>()
        });
        table.push_str(&match peer_us {
            Some(p) => format!("| {what} | {us:.2} | {p:.2} | {:.2}× |\n", p / us),
            None => format!("| {what} | {us:.2} | – | – |\n"),
        });
    }
    Ok((table, times))
}

/// Runs `scripts/pipeline_bench.py` in a venv under `target/`, installing its packages;
/// `None` (with a message) when Python or the packages cannot be had.
fn python_peer(root: &Path, quick: bool) -> Option<serde_json::Value> {
    let py = bench_venv(root)?;
    let out_file = root.join("target/bench/pipeline_python.json");
    let _ = std::fs::create_dir_all(root.join("target/bench"));
    let secs = if quick { "3" } else { "10" };
    let status = Command::new(&py)
        .current_dir(root)
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .args([
            "scripts/pipeline_bench.py",
            "--data",
            "../shared/golden/dlib_faces",
            "--min-seconds",
            secs,
            // The aligned faces the criterion suite wrote as RecordIO.
            "--records",
            "target/bench/aligned_rec",
            "--json-out",
        ])
        .arg(&out_file)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipping the Python peer: scripts/pipeline_bench.py failed");
        return None;
    }
    serde_json::from_str(&std::fs::read_to_string(&out_file).ok()?).ok()
}
