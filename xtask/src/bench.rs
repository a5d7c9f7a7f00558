//! `cargo xtask bench`: runs the criterion suites and their Python peers on this machine,
//! then writes `target/bench/*.json` and `docs/BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;

/// Arguments of `cargo xtask bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Shorter measurement (a few seconds per suite).
    #[arg(long)]
    quick: bool,
    /// Install PyTorch (torch 2.9.0 from PyPI, about 7 GB) into `target/torch-venv` for the
    /// backbone peer when it is not there yet.
    #[arg(long)]
    install_torch: bool,
    /// Run one suite only and replace its section of the existing `docs/BENCHMARKS.md`.
    #[arg(long, value_enum)]
    only: Option<Suite>,
    /// Where the backbone suite runs: `cpu` (default: every suite), or `cuda[:N]`, `wgpu`,
    /// `vulkan`, `tch`, `tch-cuda[:N]`: the backbone suite alone on that device, `poseface`
    /// built with its feature, beside PyTorch on the same device (on a GPU in float32, with
    /// AMP and through torch.compile); its own section of `docs/BENCHMARKS.md` is added or
    /// replaced.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Measure this prebuilt `poseface` binary instead of building one (on a GPU host without
    /// a Rust toolchain, with a prebuilt `xtask` too; see docs/BENCHMARKS.md).
    #[arg(long)]
    poseface: Option<PathBuf>,
}

/// A suite that `--only` can run alone.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Suite {
    /// Synthetic rendering (`poseface-synth`).
    Synth,
    /// Evaluation protocols (`poseface-eval`) and their NumPy peer.
    Eval,
    /// Backbone forward and training step (`poseface-model`) and the PyTorch peer.
    Backbone,
}

/// Runs the suites.
pub fn run(args: BenchArgs) -> Result<()> {
    let root = crate::workspace_root();
    for needed in ["docs/BENCHMARKS.md", "scripts/backbone_bench.py"] {
        anyhow::ensure!(
            root.join(needed).is_file(),
            "{}: no {needed}; run the bench from the workspace root",
            root.display()
        );
    }
    let backbone = |quick: bool| {
        backbone_section(
            &root,
            quick,
            args.install_torch,
            &args.device,
            args.poseface.as_deref(),
        )
    };
    let on_cpu = device_feature(&args.device)?.is_none();
    if args.only.is_some() || !on_cpu {
        let section = match args.only {
            Some(Suite::Synth) => synth_section(&root, args.quick)?,
            Some(Suite::Eval) => eval_section(&root, args.quick)?,
            Some(Suite::Backbone) | None => backbone(args.quick)?,
        };
        let path = root.join("docs/BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let note = if on_cpu {
            format!(
                "Measured alone with `cargo xtask bench --only`, on {}.",
                cpu_model()
            )
        } else {
            format!(
                "Measured with `cargo xtask bench --device {}`.",
                args.device
            )
        };
        let doc = match replace_section(&doc, &section, &note) {
            Some(doc) => doc,
            // A device's section the first time it is measured.
            None if !on_cpu => {
                let (heading, rest) = section.split_once('\n').unwrap_or((&section, ""));
                format!("{}\n\n{heading}\n\n*{note}*\n{rest}", doc.trim_end())
            }
            None => anyhow::bail!("{}: no section to replace", path.display()),
        };
        std::fs::write(&path, doc)?;
        println!("{section}");
        return Ok(());
    }
    run_suite("poseface-data", "pipeline", args.quick, "test")?;
    let synth = synth_section(&root, args.quick)?;
    let eval = eval_section(&root, args.quick)?;
    let backbone = backbone(args.quick)?;
    let ours = criterion_rate(
        &root.join("target/criterion/pipeline/decode_align_flip_normalise_1thread/new"),
    )?;
    let peer = python_peer(&root, args.quick);
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let json = format!(
        "{{\"suite\":\"data_pipeline\",\"ours_images_per_s_per_core\":{ours:.1},\"peer\":{}}}\n",
        peer.as_ref().map_or("null".to_string(), |p| p.to_string())
    );
    std::fs::write(out_dir.join("pipeline.json"), &json)?;
    let peer_rate = peer
        .as_ref()
        .and_then(|p| p["images_per_s_per_core"].as_f64());
    let row = match peer_rate {
        Some(p) => format!(
            "| data pipeline (decode + align + flip + normalise), images/s per core | {ours:.0} | {p:.0} (Python cv2 + skimage) | {:.2}× |",
            ours / p
        ),
        None => format!(
            "| data pipeline (decode + align + flip + normalise), images/s per core | {ours:.0} | skipped: Python peer unavailable | – |"
        ),
    };
    let report = format!(
        "# Benchmarks\n\nGenerated by `cargo xtask bench{}` on {} ({} cores), {}.\n\
         Each row: our figure, the peer's on the same machine in the same run, and the ratio.\n\n\
         | suite | ours | peer | ratio |\n|---|---|---|---|\n{row}\n\n\
         Faces: the 43 annotated faces of `../shared/golden/dlib_faces` (photos ≤ 500 px), one thread each side.\n\n\
         ## Where the time goes\n\n\
         The Python peer times its own stages (`target/bench/pipeline_python.json`, `stage_us`): JPEG decoding of the \
         whole ~0.18 MP photo is about three quarters of its time, in libjpeg-turbo. Our pipeline uses the pure-Rust \
         `image`/zune-jpeg decoder; with decoding dominating both sides, the ratio is the decoders' ratio, far from \
         the 10× goal. Next steps: a per-stage split of our side, a suite on 112×112 aligned JPEGs (what RecordIO \
         training decodes), and decoding with DCT scaling when the face is much smaller than the photo.\n\n{backbone}\n{synth}\n{eval}",
        if args.quick { " --quick" } else { "" },
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
    );
    std::fs::write(root.join("docs/BENCHMARKS.md"), report)?;
    println!("{json}");
    Ok(())
}

/// `doc` with the `## ` section that has `section`'s heading replaced by `section`, with
/// `note` (how it was measured) in italics under the heading; `None` when `doc` has no such
/// heading.
fn replace_section(doc: &str, section: &str, note: &str) -> Option<String> {
    let heading = section.lines().next()?;
    // The heading as a whole line: at the start of the document or after a newline.
    let start = if doc.starts_with(&format!("{heading}\n")) {
        0
    } else {
        doc.find(&format!("\n{heading}\n"))? + 1
    };
    let end = doc[start + heading.len()..]
        .find("\n## ")
        .map_or(doc.len(), |k| start + heading.len() + k + 1);
    let (first, rest) = section.split_once('\n')?;
    let gap = if end < doc.len() { "\n\n" } else { "\n" };
    Some(format!(
        "{}{first}\n\n*{note}*\n{}{gap}{}",
        &doc[..start],
        rest.trim_end(),
        &doc[end..]
    ))
}

/// The NumPy peer's seconds per 10-fold run and (not with `quick`) per IJB-C 1:1
/// evaluation, when the benchmark venv is there.
fn eval_peer(root: &Path, quick: bool) -> Option<(f64, Option<f64>)> {
    let py = bench_venv(root)?;
    let out = root.join("target/bench/eval_python.json");
    let _ = std::fs::create_dir_all(root.join("target/bench"));
    let status = Command::new(&py)
        .current_dir(root)
        .env("OMP_NUM_THREADS", "1")
        .args([
            "scripts/eval_bench.py",
            "--min-seconds",
            if quick { "3" } else { "10" },
            "--json-out",
        ])
        .arg(&out)
        .args(if quick { None } else { Some("--ijbc") })
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("skipping the evaluation peer: scripts/eval_bench.py failed");
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).ok()?).ok()?;
    Some((
        v["ten_fold_6000_seconds"].as_f64()?,
        v["ijbc_1to1_seconds"].as_f64(),
    ))
}

/// The Python of `target/bench-venv`, created and given `scripts/requirements-reference.txt`
/// when needed; `None` (with the reason printed) when that fails.
fn bench_venv(root: &Path) -> Option<PathBuf> {
    let venv = root.join("target/bench-venv");
    let py: PathBuf = venv.join("bin/python");
    let ok = |c: &mut Command| c.current_dir(root).status().is_ok_and(|s| s.success());
    if !py.exists() && !ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)) {
        eprintln!("skipping the Python peer: cannot create a venv with python3");
        return None;
    }
    if !ok(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "-q",
        "-r",
        "scripts/requirements-reference.txt",
    ])) {
        eprintln!(
            "skipping the Python peer: pip could not install scripts/requirements-reference.txt"
        );
        return None;
    }
    Some(py)
}

/// Runs one criterion suite (shorter with `quick`) under `profile`: `test` (opt-level 3 with
/// dependencies shared with `cargo test`, which avoids a second full optimised build of burn,
/// but with debug assertions) or `bench` (release: what users run; cheap for crates without
/// burn).
fn run_suite(package: &str, bench: &str, quick: bool, profile: &str) -> Result<()> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "bench",
        "--profile",
        profile,
        "-p",
        package,
        "--bench",
        bench,
        "--",
    ]);
    if quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "3"]);
    }
    crate::run_cmd(&mut cmd)
}

/// Runs the synthetic-face suite and formats its section of the report.
fn synth_section(root: &Path, quick: bool) -> Result<String> {
    run_suite("poseface-synth", "render", quick, "test")?;
    let rate =
        |name: &str| criterion_rate(&root.join(format!("target/criterion/synth/{name}/new")));
    let (build, ss2, ss1, lm, all) = (
        rate("mesh_build")?,
        rate("render_160_ss2")?,
        rate("render_160_ss1")?,
        rate("landmark_sample")?,
        rate("dataset_64_all_cores")?,
    );
    Ok(format!(
        "## Synthetic faces (`poseface-synth`)\n\n\
         No established peer renders these faces, so the rows are ours alone, against the goal of \
         2,000 rendered 160×160 images/s on 2 cores.\n\n\
         | what | rate |\n|---|---|\n\
         | render one 160×160 loose crop, 2×2 supersampling, one core | {ss2:.0} images/s ({:.2} ms) |\n\
         | the same without supersampling, one core | {ss1:.0} images/s |\n\
         | dataset rendering on all cores (random scenes, degradations, alignment to 112×112; a mesh per 16 images) | {all:.0} images/s |\n\
         | mesh build (one identity, 10,368 vertices, blend shapes) | {build:.0} /s ({:.1} ms) |\n\
         | landmark-only samples (68 points + pose, no rasterising), one core | {lm:.0} /s |\n\n\
         Rendering is bound by triangle setup (about 20,500 triangles, half of them back-facing, \
         most covering a few samples): `perf` puts 55–60% of a render in the rasteriser and 20% in \
         per-vertex transform, shading and compositing. The goal is not met yet; the next steps are \
         a coarser mesh on the back of the head and neck, and rasterising 2×2 quads of samples at once.\n",
        1e3 / ss2,
        1e3 / build,
    ))
}

/// Runs the evaluation-protocol suite and formats its section of the report.
fn eval_section(root: &Path, quick: bool) -> Result<String> {
    // Figures of an earlier run must not pass for this one's.
    for stale in ["eval_memory.json", "eval_python.json"] {
        let _ = std::fs::remove_file(root.join("target/bench").join(stale));
    }
    // Release: the debug assertions of the test profile slow the vectorised dot products
    // (1.33 s against 0.93 s for IJB-C), and this crate has no burn to rebuild.
    run_suite("poseface-eval", "metrics", quick, "bench")?;
    let secs = |name: &str| -> Result<f64> {
        let p = root.join(format!("target/criterion/eval/{name}/new/estimates.json"));
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        Ok(v["mean"]["point_estimate"]
            .as_f64()
            .context("mean estimate")?
            * 1e-9)
    };
    let (ten, ijb) = (secs("ten_fold_6000")?, secs("ijbc_1to1")?);
    let peer = eval_peer(root, quick);
    let peer_cell = match peer {
        Some((p, _)) => format!(
            "{:.0} ms (NumPy, insightface's loop) | {:.0}×",
            p * 1e3,
            p / ten
        ),
        None => "skipped: Python peer unavailable | –".to_string(),
    };
    let peak = |file: &str| -> Option<f64> {
        let text = std::fs::read_to_string(root.join("target/bench").join(file)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(v["peak_resident_bytes"].as_f64()? / 1e6)
    };
    let memory = match (peak("eval_memory.json"), peak("eval_python.json")) {
        (Some(ours), peer) => format!(
            "Peak resident memory of the whole process, the 466 MB of IJB-C image features included: \
             ours {ours:.0} MB{}.\n\n",
            peer.filter(|_| !quick)
                .map_or(String::new(), |p| format!(", the NumPy peer {p:.0} MB"))
        ),
        _ => String::new(),
    };
    let ijb_cell = match peer.and_then(|(_, i)| i) {
        Some(p) => format!("{p:.1} s (NumPy + scikit-learn) | {:.0}×", p / ijb),
        None if quick => "not run with `--quick` | –".to_string(),
        None => "skipped: Python peer unavailable | –".to_string(),
    };
    Ok(format!(
        "## Evaluation protocols (`poseface-eval`)\n\n\
         Random data at the real sizes, built in release mode. The 10-fold protocol runs on one thread on both sides; the IJB-C row uses all cores on \
         our side (NumPy's element-wise work is single-threaded). The peer (`scripts/eval_bench.py`) \
         runs insightface's 10-fold loop on the same sizes, and IJB-C 1:1 as insightface's IJB evaluation does \
         (a loop over templates, pair scores in batches of 100,000, scikit-learn's `roc_curve`), with a faster \
         per-template lookup than insightface's scan of all images and single- instead of double-precision \
         template features, both of which favour the peer.\n\n\
         | what | goal | ours | peer | ratio |\n|---|---|---|---|---|\n\
         | 10-fold verification + VAL@FAR, 6,000 pairs of 512-d embeddings | ≤ 50 ms, ≥ 30× | {:.1} ms | {peer_cell} |\n\
         | IJB-C 1:1: 227,630 image features → 23,124 templates, 15,658,489 pair scores, ROC, TAR@FAR | ≤ 1 s, ≥ 30× | {:.2} s | {ijb_cell} |\n\n\
         {memory}\
         Where the IJB-C time goes (phases timed one by one, about 0.5 s in all): template aggregation 25 ms, \
         sorting the pairs into buckets 100 ms, scoring 220 ms, the ROC's radix sort 75 ms and reading the \
         curve off the sorted keys 45 ms. The 47 MB of template features do not fit in cache, so the pairs \
         are counting-sorted (in parallel) into buckets by the blocks of templates they join, 4 MB each, and \
         by the 256 KB sub-block of their second template: a bucket is scored while its second templates stay \
         in the core's own cache and its first templates, in list order, stream by. Pair lists come grouped \
         by their first template, so two consecutive pairs usually share one and are scored in one pass that \
         loads it once, on AVX-512 (else AVX) registers chosen at run time, bit-identical to the portable \
         code. Each score goes straight into a 33-bit key (score order, label in the low bit) that a \
         three-pass radix sort of 11-bit digits orders through the bucketed pair list, dead by then; the \
         curve is then read in parallel spans cut where the score changes, keeping only the points where the \
         ROC bends. The large buffers are asked for on 2 MB pages (`madvise`; this machine's kernel grants \
         them on request only), which cut page faults and the TLB misses of the random feature reads: 13% \
         of the time by themselves. With every feature in the first-level cache (a diagnostic run, all pairs \
         pointed at eight templates) scoring takes 135 ms instead of 220 ms, so the rest of it is the second \
         template's 2 KB coming from the second-level cache; a four-pair kernel sharing the first template \
         across four products did not change it and was dropped, as was software prefetching, which made it \
         slower. `perf` of the whole process: about 33% in the dot products, 13% in the radix sort's \
         scatter, 5% in the kernel zeroing fresh pages.\n",
        ten * 1e3,
        ijb
    ))
}

/// Models and batch sizes of the backbone suite.
fn backbone_plan(quick: bool) -> (&'static [&'static str], &'static [usize]) {
    if quick {
        (&["r18-w0.25-s56"], &[32])
    } else {
        (&["r18-w0.25-s56", "r18", "r50"], &[32, 128])
    }
}

/// The cargo feature that compiles `device` into `poseface` (`None`: the default `flex`).
fn device_feature(device: &str) -> Result<Option<&'static str>> {
    let kind = device.split(':').next().unwrap_or_default();
    Ok(match kind {
        "cpu" | "flex" => None,
        "cuda" => Some("cuda"),
        "wgpu" => Some("wgpu"),
        "vulkan" => Some("vulkan"),
        "tch" | "tch-cuda" => Some("tch"),
        other => anyhow::bail!(
            "--device {other}: expected cpu, cuda[:N], wgpu, vulkan, tch or tch-cuda[:N]"
        ),
    })
}

/// The PyTorch device that is the peer of our `device` on the same machine: the CPU for
/// `cpu` and `tch`, else the CUDA card.
fn torch_device(device: &str) -> String {
    match device.split_once(':') {
        _ if device == "cpu" || device == "flex" || device == "tch" => "cpu".into(),
        Some(("cuda" | "tch-cuda", n)) => format!("cuda:{n}"),
        _ => "cuda".into(),
    }
}

/// The `poseface` binary to measure: `prebuilt`, or a release build with `device`'s feature.
fn poseface_binary(root: &Path, device: &str, prebuilt: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = prebuilt {
        anyhow::ensure!(p.is_file(), "--poseface {}: no such file", p.display());
        return Ok(p.to_path_buf());
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "-p", "poseface"]);
    if let Some(feature) = device_feature(device)? {
        cmd.args(["--features", feature]);
    }
    crate::run_cmd(&mut cmd)?;
    Ok(root.join("target/release/poseface"))
}

/// Reads a JSON file a benchmark wrote.
fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// One measurement cell: `72 ms (446.0 img/s)`, with more digits below 10 ms.
fn time_cell(secs: f64, batch: usize) -> String {
    let ms = secs * 1e3;
    let digits = if ms < 10.0 { 2 } else { 0 };
    format!("{ms:.digits$} ms ({:.1} img/s)", batch as f64 / secs)
}

/// `poseface bench backbone` of one model and batch size in its own process; its JSON.
fn ours_once(
    bin: &Path,
    out: &Path,
    (device, model, batch): (&str, &str, usize),
    (warmup, iters): (&str, &str),
    precision: &str,
) -> Result<serde_json::Value> {
    let file = out.join(format!("ours-{model}-b{batch}-{precision}.json"));
    crate::run_cmd(
        Command::new(bin)
            .args(["bench", "backbone", "--model", model, "--device", device])
            .args(["--batch", &batch.to_string(), "--precision", precision])
            .args(["--warmup", warmup, "--iters", iters])
            .arg("--json")
            .arg(&file),
    )?;
    read_json(&file)
}

/// Backbone forward, embedding with flip and training step, ours (`poseface bench
/// backbone`, one process per model and batch) beside PyTorch on the same device.
fn backbone_section(
    root: &Path,
    quick: bool,
    install_torch: bool,
    device: &str,
    prebuilt: Option<&Path>,
) -> Result<String> {
    let flex = device_feature(device)?.is_none();
    let torch_dev = torch_device(device);
    let gpu = torch_dev != "cpu";
    let (models, batches) = backbone_plan(quick);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    let bin = poseface_binary(root, device, prebuilt)?;
    let out = root.join("target/bench/backbone");
    std::fs::create_dir_all(&out)?;
    let py = torch_python(root, install_torch);
    let mut rows = String::new();
    let mut memory = String::new();
    let mut results = Vec::new();
    let mut torch_version = None;
    let mut card = None;
    for model in models {
        // More repetitions where one takes milliseconds.
        let (warmup, iters) = match (gpu, *model == models[0]) {
            (true, _) => ("5", "20"),
            (false, true) => ("1", "10"),
            (false, false) => ("1", "3"),
        };
        for &batch in batches {
            let tag = format!("{model}-b{batch}");
            let what = (device, *model, batch);
            // A size that fails on this machine (say, out of memory) is a row that says so,
            // not the end of the suite.
            let ours = match ours_once(&bin, &out, what, (warmup, iters), "f32") {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("{tag}: {e:#}");
                    // The default model's first size must run: a failure there is a broken
                    // build, not a size this machine cannot hold.
                    anyhow::ensure!(
                        !results.is_empty(),
                        "{tag}: our benchmark failed on the first size: {e:#}"
                    );
                    rows.push_str(&format!(
                        "| {model} | {batch} | all | failed here (likely out of memory; see the bench log) |\n"
                    ));
                    results.push(serde_json::json!({
                        "model": model, "batch": batch, "failed": format!("{e:#}"),
                    }));
                    continue;
                }
            };
            let ours_half = if gpu {
                ours_once(&bin, &out, what, (warmup, iters), "bf16")
                    .inspect_err(|e| eprintln!("{tag} in bf16: {e:#}"))
                    .ok()
            } else {
                None
            };
            let peer = |flag: Option<&str>| -> Option<serde_json::Value> {
                let py = py.as_ref()?;
                let file = out.join(format!("torch-{tag}{}.json", flag.unwrap_or("")));
                let mut cmd = Command::new(py);
                cmd.current_dir(root)
                    .args(["scripts/backbone_bench.py", "--models", model])
                    .args(["--batch", &batch.to_string(), "--threads", &threads])
                    .args(["--device", &torch_dev, "--warmup", warmup, "--iters", iters])
                    .arg("--out")
                    .arg(&file)
                    .args(flag);
                if !cmd.status().is_ok_and(|s| s.success()) {
                    eprintln!(
                        "skipping the PyTorch peer for {tag}{}: scripts/backbone_bench.py failed",
                        flag.map_or(String::new(), |f| format!(" {f}"))
                    );
                    return None;
                }
                read_json(&file).ok()
            };
            let fp32 = peer(None);
            let amp = if gpu { peer(Some("--amp")) } else { None };
            // torch.compile takes minutes per graph on a CPU: there, the default model only,
            // and not with `--quick`.
            let compiled = if !quick && (gpu || *model == models[0]) {
                peer(Some("--compile"))
            } else {
                None
            };
            if let Some(p) = &fp32 {
                torch_version = p["torch"].as_str().map(str::to_string);
                card = p["device"].as_str().map(str::to_string);
            }
            for what in ["forward", "embed_flip", "train_step"] {
                let key = format!("{what}_s");
                let mine = ours[&key].as_f64().context("our timing")?;
                let mine_half = ours_half.as_ref().and_then(|o| o[&key].as_f64());
                let mut row = format!(
                    "| {model} | {batch} | {what} | {} |",
                    time_cell(mine, batch)
                );
                if gpu {
                    row.push_str(&format!(
                        " {} |",
                        mine_half.map_or("–".into(), |t| time_cell(t, batch))
                    ));
                }
                // Each peer against ours in the same precision: AMP against our bf16.
                let mut peers = vec![(&fp32, Some(mine))];
                if gpu {
                    peers.push((&amp, mine_half));
                }
                peers.push((&compiled, Some(mine)));
                for (p, against) in peers {
                    let theirs = p.as_ref().and_then(|p| p["models"][*model][&key].as_f64());
                    match (theirs, against) {
                        (Some(t), Some(m)) => {
                            row.push_str(&format!(" {} | {:.2}× |", time_cell(t, batch), t / m))
                        }
                        (Some(t), None) => row.push_str(&format!(" {} | – |", time_cell(t, batch))),
                        (None, _) if py.is_none() => row.push_str(" skipped: no PyTorch | – |"),
                        (None, _) => row.push_str(" – | – |"),
                    }
                }
                rows.push_str(&row);
                rows.push('\n');
            }
            let mb =
                |v: Option<u64>| v.map_or("–".to_string(), |b| format!("{} MB", b / 1_000_000));
            memory.push_str(&format!(
                "| {model} | {batch} | {} | {} |\n",
                mb(ours["peak_rss_bytes"].as_u64()),
                mb(fp32.as_ref().and_then(|p| p["peak_rss_bytes"].as_u64()))
            ));
            results.push(serde_json::json!({
                "model": model, "batch": batch, "ours": ours, "ours_bf16": ours_half,
                "torch": fp32, "torch_amp": amp, "torch_compile": compiled,
            }));
        }
    }
    let file = format!("target/bench/backbone-{}.json", device.replace(':', "-"));
    std::fs::write(
        root.join(file),
        serde_json::to_string_pretty(&serde_json::json!({ "device": device, "runs": results }))?,
    )?;
    let peer_words = match &torch_version {
        Some(v) => format!("PyTorch {v}"),
        None => "PyTorch (not run here: no torch)".into(),
    };
    if !flex {
        let on = if gpu {
            card.unwrap_or_else(|| "a GPU PyTorch could not name".into())
        } else {
            "the CPU".into()
        };
        let (header, peers) = if gpu {
            (
                "| model | batch | what | ours fp32 | ours bf16 | PyTorch fp32 | ratio | PyTorch AMP | ratio | torch.compile | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|",
                "in float32 (TF32 off), with float16 autocast (AMP, a gradient scaler in the \
                 training step, as arcface_torch trains; its ratio is against ours in bf16, \
                 `poseface bench backbone --precision bf16`) and in float32 through `torch.compile`",
            )
        } else {
            (
                "| model | batch | what | ours | PyTorch | ratio | torch.compile | ratio |\n|---|---|---|---|---|---|---|---|",
                "eager and through `torch.compile`",
            )
        };
        let warmup = if gpu { 5 } else { 1 };
        return Ok(format!(
            "## Backbones on `--device {device}`\n\n\
             `cargo xtask bench --device {device}` on {on}: IResNet on burn 0.22.1's `{device}` backend \
             (`poseface` built with `--features {feature}`) beside {peer_words} on the same device, \
             {peers}. Median of 20 repetitions ({cpu_iters} on a CPU) after {warmup} untimed (compilation and \
             autotuning happen there). Ratio = PyTorch time / ours (above 1: we are faster).\n\n\
             {header}\n{rows}",
            feature = device_feature(device)?.unwrap_or("flex"),
            cpu_iters = "10 for the default model, 3 for the others",
        ));
    }
    let compile_words = if quick {
        "`torch.compile` is not measured with `--quick`."
    } else {
        "`torch.compile` (inductor, compiled during the warm-up) is measured for the default model \
         only: compiling the full-width graphs takes minutes each on this CPU."
    };
    Ok(format!(
        "## Backbones (`poseface-model`)\n\n\
         IResNet on the pure-Rust `flex` backend (burn 0.22.1, `poseface bench backbone`) beside {peer_words} \
         eager (`scripts/backbone_bench.py`), both on {threads} threads, same network, shapes and loss \
         (mean squared error to a fixed target), SGD with momentum 0.9 and weight decay 5e-4; each process \
         measures one model at one batch size, the median of 10 repetitions for the default model and 3 for \
         the others, after 1 untimed. \
         `forward` is inference on a batch already in memory (running batch-norm statistics, no autodiff); \
         `embed_flip` is what `poseface embed --flip` does per batch: 112×112 faces from host memory, \
         pooled to the network's input side, embedded with their mirror images, summed and read back; \
         `train_step` is forward + backward + optimiser step. `r18-w0.25-s56` is the CPU-sized default \
         of the synthetic runs (¼ width, 56×56 input). Ratio = PyTorch time / ours (above 1: we are faster). \
         {compile_words}\n\n\
         | model | batch | what | ours | PyTorch | ratio | torch.compile | ratio |\n|---|---|---|---|---|---|---|---|\n{rows}\n\
         Peak resident memory of each process (the whole measurement of one model at one batch size):\n\n\
         | model | batch | ours | PyTorch |\n|---|---|---|---|\n{memory}\n\
         Where the time goes (`perf record` of the `r18-w0.25-s56` training step at batch 32 on `flex`, \
         self time): 28% in the f32 GEMM micro-kernels of the convolutions; 12% in \
         `copy_2d_tiled`, the layout copies `flex`'s convolution makes around its GEMM \
         (im2col and transposes); 13% in `mask_where`, through which burn implements PReLU's \
         forward and both of its backward passes (three full-tensor passes per PReLU, where \
         PyTorch fuses one kernel); 10% in element-wise closures (batch norm, residual adds, \
         scalar ops); 13% in the convolution backward, which `flex` runs through its generic 3-D \
         (transposed) convolution; 4% zeroing buffers. Autodiff bookkeeping itself does not \
         show. At full width (`r18` training step) the GEMM micro-kernels take 44%, the \
         kernel's zeroing of freshly mapped pages 9% (large temporaries are allocated and \
         returned to the system every step), PReLU's masks 6%, layout copies 5% and \
         element-wise work 5%: the GEMMs dominate, while at ¼ width the fixed per-op costs \
         (PReLU via masks, layout copies) weigh more. Next fixes, in order of payoff: a fused PReLU \
         (forward and backward) as a custom op, reusing activation buffers across steps, and a \
         2-D convolution backward that reuses the forward's GEMM layout.\n\n\
         GPUs: `cargo xtask bench --device cuda` (or `wgpu`, `tch-cuda`) builds `poseface` with that \
         backend and runs this suite on the card beside PyTorch (float32, AMP, torch.compile) and \
         with our network in bf16 too; `--poseface PATH` measures a prebuilt binary instead. On a GPU \
         host without a Rust toolchain, build `poseface` (`--features cuda`) and `xtask` in release \
         mode elsewhere, copy both binaries into a checkout there and run `./xtask bench --device \
         cuda --poseface ./poseface` from its root (any Python there with torch is the peer).\n"
    ))
}

/// A Python that imports torch: `target/torch-venv` (installed there with `install`), else
/// the system's `python3` if it has torch; `None` (with a message) otherwise.
fn torch_python(root: &Path, install: bool) -> Option<PathBuf> {
    let venv = root.join("target/torch-venv");
    let py = venv.join("bin/python");
    let has_torch = |py: &Path| {
        Command::new(py)
            .args(["-c", "import torch, numpy"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if py.exists() && has_torch(&py) {
        return Some(py);
    }
    if !install && has_torch(Path::new("python3")) {
        return Some(PathBuf::from("python3"));
    }
    if !install {
        eprintln!(
            "skipping the PyTorch peer: no torch in target/torch-venv or python3 (add --install-torch to install torch 2.9.0, about 7 GB)"
        );
        return None;
    }
    let ok = |c: &mut Command| c.current_dir(root).status().is_ok_and(|s| s.success());
    if !(ok(Command::new("python3").args(["-m", "venv"]).arg(&venv))
        && ok(Command::new(&py).args([
            "-m",
            "pip",
            "install",
            "-q",
            "torch==2.9.0",
            "numpy",
            "safetensors",
        ])))
    {
        eprintln!("skipping the PyTorch peer: could not install torch 2.9.0");
        return None;
    }
    Some(py)
}

/// Images per second from a criterion `estimates.json` + `benchmark.json` (throughput).
fn criterion_rate(dir: &Path) -> Result<f64> {
    let read = |f: &str| -> Result<serde_json::Value> {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p).with_context(|| format!("{}", p.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let ns = read("estimates.json")?["mean"]["point_estimate"]
        .as_f64()
        .context("mean estimate")?;
    let n = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .context("throughput")?;
    Ok(n / (ns * 1e-9))
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

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_section_swaps_one_section_and_keeps_the_others() {
        let doc = "# B\n\nintro\n\n## A\n\nold a\n\n## E\n\nold e\n\n## C\n\nold c\n";
        let note = "Measured alone.";
        let new = replace_section(doc, "## E\n\nnew e\n", note).unwrap();
        assert!(new.starts_with("# B\n\nintro\n\n## A\n\nold a\n\n## E\n\n*Measured alone"));
        assert!(new.ends_with("new e\n\n## C\n\nold c\n"), "{new}");
        assert!(!new.contains("old e"));
        let last = replace_section(doc, "## C\n\nnew c\n", note).unwrap();
        assert!(
            last.ends_with("new c\n") && last.contains("old e"),
            "{last}"
        );
        assert!(replace_section(doc, "## Z\n\nz\n", note).is_none());
    }
}
