//! The `poseface` command line as a user runs it.

use std::process::{Command, Output};

use poseface::data::{EulerAngles, mean_face::mean_face_68, pose::project};

fn poseface(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poseface"))
        .args(args)
        .output()
        .unwrap()
}

fn points_arg(points: &[[f32; 2]]) -> String {
    points
        .iter()
        .flat_map(|p| [p[0].to_string(), p[1].to_string()])
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn pose_json_recovers_a_known_pose() {
    let truth = EulerAngles {
        yaw: -48.0,
        pitch: 9.0,
        roll: 4.0,
    };
    let pts = project(&mean_face_68(), truth, 0.6, [60.0, 58.0]);
    let out = poseface(&["pose", "--points", &points_arg(&pts), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((v["yaw"].as_f64().unwrap() + 48.0).abs() < 0.1, "{v}");
    assert!((v["pitch"].as_f64().unwrap() - 9.0).abs() < 0.1, "{v}");
    assert!((v["roll"].as_f64().unwrap() - 4.0).abs() < 0.1, "{v}");
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    for args in [
        vec!["pose", "--points", "1,2,3"],
        vec!["pose", "--points", "1,2,3,4,5,6,7,8,9,x"],
        vec!["data", "inspect", "/no/such/path"],
        vec!["data", "synth", "--preset", "huge", "--out", "/tmp/never"],
        vec!["data", "synth", "--preset", "tiny"],
        vec![
            "data",
            "synth",
            "--preset",
            "tiny",
            "--pose",
            "sideways",
            "--out",
            "/tmp/never",
        ],
        vec![
            "align",
            "--image",
            "/no/such.png",
            "--points",
            "1,2,3,4,5,6,7,8,9,10",
            "--out",
            "/tmp/x.png",
        ],
    ] {
        let out = poseface(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
}

#[test]
fn pack_then_inspect_an_image_folder_with_a_corrupt_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("faces");
    for (id, n) in [("alice", 3u8), ("bob", 2)] {
        std::fs::create_dir_all(root.join(id)).unwrap();
        for k in 0..n {
            let img =
                image::RgbImage::from_fn(20, 24, |x, y| image::Rgb([x as u8 * k, y as u8, 9]));
            img.save(root.join(id).join(format!("{k}.png"))).unwrap();
        }
    }
    std::fs::write(
        root.join("bob/broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    let out = poseface(&["data", "inspect", root.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["images"].as_u64(), v["identities"].as_u64()),
        (Some(5), Some(2))
    );
    let corrupt = v["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1);
    assert!(
        corrupt[0]["entry"]
            .as_str()
            .unwrap()
            .ends_with("broken.jpg")
    );

    let rec = dir.path().join("rec");
    let out = poseface(&[
        "data",
        "pack",
        "--images",
        root.to_str().unwrap(),
        "--out",
        rec.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["images"].as_u64(), v["identities"].as_u64()),
        (Some(5), Some(2))
    );
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
    let out = poseface(&["data", "inspect", rec.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["kind"].as_str(),
            v["images"].as_u64(),
            v["identities"].as_u64()
        ),
        (Some("recordio"), Some(5), Some(2))
    );
    assert_eq!(v["image_sizes"]["20x24"].as_u64(), Some(5));
}

#[test]
fn align_writes_the_template_crop() {
    // Points already on the template give the identity transform: the crop is the image.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("face.png");
    let face = image::RgbImage::from_fn(112, 112, |x, y| {
        image::Rgb([2 * x as u8, y as u8, (x ^ y) as u8])
    });
    face.save(&src).unwrap();
    let out_path = dir.path().join("crop.png");
    let pts = points_arg(&poseface::data::ARCFACE_TEMPLATE);
    let out = poseface(&[
        "align",
        "--image",
        src.to_str().unwrap(),
        "--points",
        &pts,
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crop = image::open(&out_path).unwrap().into_rgb8();
    assert_eq!(crop.dimensions(), (112, 112));
    assert_eq!(crop, face);
}

#[test]
fn synth_writes_a_dataset_that_inspect_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let montage = dir.path().join("montage.png");
    let run = poseface(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--montage",
        montage.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["train_images"], 144);
    assert_eq!(report["pair_sets"][0]["pairs"], 200);
    let sheet = image::open(&montage).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (9 * 128, 8 * 128));
    let inspected = poseface(&[
        "data",
        "inspect",
        out.join("synth_cplfw.bin").to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(
        (v["pairs"].as_u64(), v["positives"].as_u64()),
        (Some(200), Some(100))
    );
    let rec = poseface(&["data", "inspect", out.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&rec.stdout).unwrap();
    assert_eq!(
        (v["images"].as_u64(), v["identities"].as_u64()),
        (Some(144), Some(24))
    );
}

#[test]
fn synth_reuse_keeps_a_current_dataset_and_replaces_another_versions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("synth");
    let o = out.to_str().unwrap();
    let synth = |extra: &[&str]| {
        let mut args = vec![
            "data", "synth", "--preset", "tiny", "--seed", "2", "--out", o,
        ];
        args.extend_from_slice(extra);
        let run = poseface(&args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let rec = |p: &std::path::Path| std::fs::read(p.join("train.rec")).unwrap();
    synth(&["--reuse"]);
    let first = rec(&out);
    let json = std::fs::read_to_string(out.join("synth.json")).unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        recorded["generator_version"].as_u64(),
        Some(poseface::synth::writer::GENERATOR_VERSION.into())
    );
    assert!(synth(&["--reuse"]).contains("already holds this dataset"));
    let report: serde_json::Value = serde_json::from_str(&synth(&["--reuse", "--json"])).unwrap();
    assert_eq!(report["train_images"], 144);
    assert_eq!(report["out"], o);
    // Moved elsewhere, it is still the same dataset, and reported where it now is.
    let moved = dir.path().join("moved");
    std::fs::rename(&out, &moved).unwrap();
    let m = moved.to_str().unwrap();
    let run = poseface(&[
        "data", "synth", "--preset", "tiny", "--seed", "2", "--out", m, "--reuse", "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["out"], m);
    std::fs::rename(&moved, &out).unwrap();
    // Another seed is another dataset: regenerated in place of the first. What was the old
    // dataset's goes (a crop of a larger IJB set); what is not a dataset's stays.
    let stale = out.join("ijb/loose_crop/99999.jpg");
    std::fs::write(&stale, b"left by an older dataset").unwrap();
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let mut other = recorded.clone();
    other["config"]["seed"] = 9.into();
    std::fs::write(out.join("synth.json"), other.to_string()).unwrap();
    assert!(synth(&["--reuse"]).contains("regenerating"));
    assert_eq!(
        rec(&out),
        first,
        "the same configuration gives the same bytes"
    );
    assert!(!stale.exists(), "the old dataset is gone");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    // A dataset from before versions were recorded is regenerated too.
    let mut old = recorded;
    old.as_object_mut().unwrap().remove("generator_version");
    std::fs::write(out.join("synth.json"), old.to_string()).unwrap();
    assert!(synth(&["--reuse"]).contains("regenerating"));
    assert!(synth(&["--reuse"]).contains("already holds this dataset"));
}

/// A float32 `.npy` file (format version 1.0), written by hand.
fn write_npy(path: &std::path::Path, rows: usize, cols: usize, values: &[f32]) {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn verify_reproduces_the_reference_protocol_from_npy() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../poseface-eval/tests/fixtures"
    );
    let raw = std::fs::read(format!("{fixtures}/eval_random.f32")).unwrap();
    let values: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/eval_reference.json")).unwrap(),
    )
    .unwrap();
    let case = &reference["random"];
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("e.npy");
    write_npy(&npy, values.len() / 16, 16, &values);
    let labels: Vec<&str> = case["issame"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| if b.as_bool().unwrap() { "1" } else { "0" })
        .collect();
    let issame = dir.path().join("issame.txt");
    std::fs::write(&issame, labels.join("\n")).unwrap();
    let out = poseface(&[
        "verify",
        "--embeddings",
        npy.to_str().unwrap(),
        "--issame",
        issame.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = case["ten_fold"]["accuracy_mean"].as_f64().unwrap();
    assert!(
        (v["accuracy_mean"].as_f64().unwrap() - want).abs() < 1e-12,
        "{v}"
    );
    assert!(v["val_at_far_1e-3"].is_number() && v["threshold_mean"].is_number());
    // A label file one pair short is a one-line error.
    std::fs::write(&issame, labels[1..].join("\n")).unwrap();
    let out = poseface(&[
        "verify",
        "--embeddings",
        npy.to_str().unwrap(),
        "--issame",
        issame.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rows"));
}

#[test]
fn verify_runs_the_ijb_protocol_on_the_synthetic_ijb_set() {
    // Raw-pixel "embeddings" of the aligned loose crops (plus their mirror images) of the
    // tiny synthetic IJB-style set, scored through the command line.
    use poseface::data::{IjbMeta, IjbTarget, align_face, decode_rgb};
    let dir = tempfile::tempdir().unwrap();
    let out = synth_tiny(dir.path());
    let root = out.join("ijb");
    let meta = IjbMeta::open(&root, IjbTarget::IjbC).unwrap();
    let mut values = Vec::new();
    for (name, five) in meta.landmarks.names.iter().zip(&meta.landmarks.points) {
        let bytes = std::fs::read(root.join("loose_crop").join(name)).unwrap();
        let (face, _) = align_face(&decode_rgb(&bytes, name).unwrap(), five).unwrap();
        let flipped = image::imageops::flip_horizontal(&face);
        values.extend(
            face.as_raw()
                .iter()
                .zip(flipped.as_raw())
                .map(|(a, b)| (*a as f32 + *b as f32) / 255.0),
        );
    }
    let dim = 112 * 112 * 3;
    let npy = dir.path().join("ijb.npy");
    write_npy(&npy, values.len() / dim, dim, &values);
    let res = poseface(&[
        "verify",
        "--ijb",
        root.to_str().unwrap(),
        "--target",
        "IJBC",
        "--embeddings",
        npy.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(
        v["images"].as_u64().unwrap() as usize,
        meta.faces.names.len()
    );
    for far in ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"] {
        let t = v["tar_at_far"][far].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t), "{far}: {t}");
    }
    // Too few rows is a one-line error naming both sides.
    write_npy(&npy, 2, 3, &[0.0; 6]);
    let res = poseface(&[
        "verify",
        "--ijb",
        root.to_str().unwrap(),
        "--embeddings",
        npy.to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&res.stderr).contains("rows"));
}

#[test]
fn verify_splits_the_synthetic_cross_pose_pairs_by_pose() {
    use poseface::data::decode_rgb;
    use poseface::data::verification_bin::VerificationBin;
    let dir = tempfile::tempdir().unwrap();
    let out = synth_tiny(dir.path());
    let bin = VerificationBin::read(out.join("synth_cplfw.bin")).unwrap();
    let mut values = Vec::new();
    for (k, bytes) in bin.images.iter().enumerate() {
        let img = decode_rgb(bytes, &format!("image {k}")).unwrap();
        values.extend(img.as_raw().iter().map(|v| *v as f32 / 255.0 - 0.5));
    }
    let dim = 112 * 112 * 3;
    let npy = dir.path().join("cplfw.npy");
    write_npy(&npy, bin.images.len(), dim, &values);
    let issame = dir.path().join("issame.txt");
    let labels: Vec<&str> = bin
        .issame
        .iter()
        .map(|&s| if s { "1" } else { "0" })
        .collect();
    std::fs::write(&issame, labels.join("\n")).unwrap();
    let yaws = out.join("synth_cplfw.yaws.txt");
    let res = poseface(&[
        "verify",
        "--embeddings",
        npy.to_str().unwrap(),
        "--issame",
        issame.to_str().unwrap(),
        "--pair-yaws",
        yaws.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    let by_pose = v["by_pose"].as_array().unwrap();
    let total: u64 = by_pose.iter().map(|b| b["pairs"].as_u64().unwrap()).sum();
    assert_eq!(total, 200);
    // Cross-pose pairs are mostly frontal–profile.
    assert!(by_pose[1]["pairs"].as_u64().unwrap() > 100, "{v}");
    let by_delta: u64 = v["by_yaw_difference"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["pairs"].as_u64().unwrap())
        .sum();
    assert_eq!(by_delta, 200);
}

/// Writes the tiny synthetic dataset under `dir` through the command line.
fn synth_tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("synth");
    let run = poseface(&[
        "data",
        "synth",
        "--preset",
        "tiny",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// Writes `<dir>/<name>.toml`: run `name` under `<dir>/runs` on the tiny synthetic `data`
/// (validated on its cross-pose pairs) with a 1/16-width IResNet-18, then `rest` (head,
/// method, optimiser, eval and checkpoint sections).
fn tiny_config(
    dir: &std::path::Path,
    name: &str,
    data: &std::path::Path,
    rest: &str,
) -> std::path::PathBuf {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "name = \"{name}\"\nruns_dir = \"{}\"\n[data]\ntrain = \"{}\"\nval = [\"{}\"]\ninput_size = 56\n\
             [model]\nbackbone = \"r18\"\nwidth = 0.0625\nembedding_size = 32\n{rest}",
            dir.join("runs").display(),
            data.display(),
            data.join("synth_cplfw.bin").display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn train_then_embed_then_verify_a_tiny_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_tiny(tmp.path());
    let runs = tmp.path().join("runs");
    let config = tiny_config(
        tmp.path(),
        "cli",
        &data,
        "[head]\nkind = \"paa\"\nscale = 16.0\n[optim]\nbatch_size = 16\nsteps = 6\n\
         [eval]\nevery_steps = 3\n[checkpoint]\nevery_steps = 3\n",
    );
    let cfg = config.to_str().unwrap();
    let out = poseface(&["train", "--config", cfg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("finished at step 6"), "{stdout}");
    assert!(
        stdout.contains("synth_cplfw") && stdout.contains("frontal-profile"),
        "{stdout}"
    );
    assert!(
        stderr.contains("[synth_cplfw][3]Accuracy-Flip:"),
        "{stderr}"
    );
    assert!(stderr.contains("checkpoint at step 6"), "{stderr}");

    // Again without --resume: refused, nothing lost.
    let again = poseface(&["train", "--config", cfg]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("pass --resume"));
    // With --resume, a finished run is reported, not retrained, and claims no speed.
    let resumed = poseface(&["train", "--config", cfg, "--resume"]);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(
        stdout.contains("finished at step 6") && stdout.contains("no step left to train"),
        "{stdout}"
    );
    // An unknown key names the nearest valid one.
    let typo = poseface(&["train", "--config", cfg, "--set", "optim.warmup_step=3"]);
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("did you mean `warmup_steps`?"),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );

    // Embed the pair set with the run's weights and verify it from the files.
    let run_dir = runs.join("cli");
    let emb = tmp.path().join("cplfw.npy");
    let out = poseface(&[
        "embed",
        "--run",
        run_dir.to_str().unwrap(),
        "--bin",
        data.join("synth_cplfw.bin").to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
        "--flip",
        "--float64",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Double-precision rows: the mirror sum as insightface's test() holds it.
    let header = std::fs::read(&emb).unwrap();
    assert!(
        String::from_utf8_lossy(&header[..128]).contains("'descr': '<f8'"),
        "{}",
        String::from_utf8_lossy(&header[..128])
    );
    let issame = tmp.path().join("cplfw.issame.txt");
    let v = poseface(&[
        "verify",
        "--embeddings",
        emb.to_str().unwrap(),
        "--issame",
        issame.to_str().unwrap(),
        "--json",
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    // The same protocol on the same weights as the run's own final verification.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("summary.json")).unwrap()).unwrap();
    let ours = v["accuracy_mean"].as_f64().unwrap();
    let run = summary["verification"][0]["accuracy"].as_f64().unwrap();
    assert!((ours - run).abs() < 1e-9, "{ours} vs {run}");
    // The run's own report, with its JSON beside it.
    let own: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(own["sets"][0]["accuracy"].as_f64(), Some(run));
    assert!(run_dir.join("report.md").is_file() && run_dir.join("roc.png").is_file());

    // `eval` gives the same figure and writes the report with its plots.
    let report = tmp.path().join("report");
    let e = poseface(&[
        "eval",
        "--run",
        run_dir.to_str().unwrap(),
        "--bin",
        data.join("synth_cplfw.bin").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--json",
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let e: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    let acc = e["sets"][0]["accuracy"].as_f64().unwrap();
    assert!((acc - run).abs() < 1e-9, "{acc} vs {run}");
    for file in ["report.md", "roc.svg", "pose_accuracy.svg"] {
        assert!(report.join(file).is_file(), "{file}");
    }

    // `probe` on the same faces repeats the run's closing pose probe.
    let p = poseface(&[
        "probe",
        "--run",
        run_dir.to_str().unwrap(),
        "--data",
        data.join("synth_cplfw.bin").to_str().unwrap(),
        "--limit",
        "4000",
        "--json",
    ]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    for key in ["yaw_r2", "abs_yaw_r2"] {
        let cli = p[key].as_f64().unwrap();
        let run = summary["probe"][key].as_f64().unwrap();
        assert!((cli - run).abs() < 1e-9, "{key}: {cli} vs {run}");
    }
    assert!(p["orthogonality"].is_null(), "{p}");

    // `eval --ijb` equals aligning the loose crops, embedding them with their mirror images
    // and scoring the embeddings with `verify --ijb` (whose protocol the reference checks).
    use poseface::data::{IjbMeta, IjbTarget, align_face, decode_rgb};
    let ijb_root = data.join("ijb");
    let meta = IjbMeta::open(&ijb_root, IjbTarget::IjbC).unwrap();
    let faces: Vec<_> = meta
        .landmarks
        .names
        .iter()
        .zip(&meta.landmarks.points)
        .map(|(name, five)| {
            let bytes = std::fs::read(ijb_root.join("loose_crop").join(name)).unwrap();
            align_face(&decode_rgb(&bytes, name).unwrap(), five)
                .unwrap()
                .0
        })
        .collect();
    let device = burn::tensor::Device::default();
    let embedder = poseface::train::Embedder::from_run(&run_dir, &device).unwrap();
    let values = embedder.embed_images(&faces, true, 64).unwrap();
    let npy = tmp.path().join("ijb.npy");
    write_npy(&npy, faces.len(), embedder.dim(), &values);
    let v = poseface(&[
        "verify",
        "--ijb",
        ijb_root.to_str().unwrap(),
        "--target",
        "IJBC",
        "--embeddings",
        npy.to_str().unwrap(),
        "--json",
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let eval_ijb = |extra: &[&str], report: &std::path::Path| {
        let mut args = vec![
            "eval",
            "--run",
            run_dir.to_str().unwrap(),
            "--ijb",
            ijb_root.to_str().unwrap(),
            "--target",
            "IJBC",
            "--report",
            report.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let e = poseface(&args);
        assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
        let e: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
        e["ijb"].clone()
    };
    let listed = eval_ijb(&[], &tmp.path().join("ijb-listed"));
    for (k, far) in ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"]
        .iter()
        .enumerate()
    {
        let want = v["tar_at_far"][far].as_f64().unwrap();
        let got = listed["tar_at_far"][k]["tar"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "TAR@{far}: {got} vs {want}");
    }
    // Every template pair: the listed genuine pairs stay genuine, all the rest are impostors.
    let ijb_report = run_dir.join("ijb");
    let all = eval_ijb(&["--all-pairs"], &ijb_report);
    let t = all["templates"].as_u64().unwrap();
    let listed_genuine = meta.pairs.labels.iter().filter(|&&l| l == 1).count() as u64;
    assert_eq!(all["genuine"].as_u64().unwrap(), listed_genuine);
    assert_eq!(
        all["genuine"].as_u64().unwrap() + all["impostors"].as_u64().unwrap(),
        t * (t - 1) / 2
    );
    for file in ["report.json", "ijb_roc.svg", "ijb_roc.png"] {
        assert!(ijb_report.join(file).is_file(), "{file}");
    }
    let md = std::fs::read_to_string(ijb_report.join("report.md")).unwrap();
    assert!(
        md.contains("| FAR | 1e-6 | 1e-5 |") && md.contains("ijb_roc.svg"),
        "{md}"
    );

    // `report` reads the run and the evaluation written under it.
    let results = tmp.path().join("compare/RESULTS.md");
    let r = poseface(&[
        "report",
        run_dir.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let md = std::fs::read_to_string(&results).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| cli | – |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(row.contains(&format!("| {:.2} |", 100.0 * run)), "{row}");
    let tar3 = all["tar_at_far"][3]["tar"].as_f64().unwrap();
    assert!(md.contains(&format!("| {:.2} |", 100.0 * tar3)), "{md}");
    for plot in ["accuracy_by_pose.svg", "ijb_roc.svg"] {
        assert!(
            tmp.path().join("compare/RESULTS").join(plot).is_file(),
            "{plot}"
        );
    }
}

#[test]
fn lae_train_then_eval_report_the_same_nme() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("lae.safetensors");
    let f = file.to_str().unwrap();
    let small = ["--held-out", "200", "--json"];
    let mut args = vec![
        "lae", "train", "--out", f, "--steps", "30", "--hidden", "16", "--latent", "4",
    ];
    args.extend(small);
    let t = poseface(&args);
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let t: serde_json::Value = serde_json::from_slice(&t.stdout).unwrap();
    assert_eq!(
        (t["latent"].as_u64(), t["hidden"].as_u64()),
        (Some(4), Some(16))
    );
    let nme = t["synthetic"]["iod_mean"].as_f64().unwrap();
    assert!(nme > 0.0 && nme.is_finite(), "{t}");
    assert_eq!(t["synthetic_by_yaw"].as_array().unwrap().len(), 3);
    assert_eq!(
        t["weighting"], "uniform",
        "the loss's weighting is recorded"
    );
    assert_eq!(t["mirror"], false, "so is whether mirror images were added");
    let mut args = vec!["lae", "eval", "--lae", f];
    args.extend(small);
    let e = poseface(&args);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let e: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(e["synthetic"]["iod_mean"].as_f64(), Some(nme));
    assert!(e.get("weighting").is_none(), "unknown for a loaded model");
    assert!(e.get("mirror").is_none(), "unknown for a loaded model");

    // Two landmark files: one NME per file, whose shape-weighted mean is the overall one.
    let dir = tmp.path().join("shapes");
    std::fs::create_dir_all(&dir).unwrap();
    let sampler = poseface::synth::landmark_sampler::LandmarkSampler::default();
    let mut files = Vec::new();
    for (k, count) in [(0u64, 1usize), (1, 1)] {
        let shape = sampler.sample(100 + k).landmarks;
        let body: String = shape
            .iter()
            .map(|p| format!("{} {}\n", p[0] + 200.0, p[1] + 50.0))
            .collect();
        let path = dir.join(format!("face{k}.pts"));
        std::fs::write(&path, format!("version: 1\nn_points: 68\n{{\n{body}}}\n")).unwrap();
        files.push((path, count));
    }
    let mut args = vec!["lae", "eval", "--lae", f, "--held-out", "0", "--json"];
    for (path, _) in &files {
        args.extend(["--test-landmarks", path.to_str().unwrap()]);
    }
    let e = poseface(&args);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let e: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    let by_file = e["real_by_file"].as_array().unwrap();
    assert_eq!(by_file.len(), 2, "{e}");
    let (mut sum, mut shapes) = (0.0, 0u64);
    for (row, (path, count)) in by_file.iter().zip(&files) {
        assert_eq!(row[0].as_str(), path.to_str());
        assert_eq!(row[2].as_u64(), Some(*count as u64));
        sum += row[1].as_f64().unwrap() * *count as f64;
        shapes += *count as u64;
    }
    let overall = e["real"]["iod_mean"].as_f64().unwrap();
    assert!((sum / shapes as f64 - overall).abs() < 1e-12, "{e}");
    assert!(by_file[0][1] != by_file[1][1], "two different shapes: {e}");
    // Each row is what the file alone gives.
    for (row, (path, _)) in by_file.iter().zip(&files) {
        let alone = poseface(&[
            "lae",
            "eval",
            "--lae",
            f,
            "--held-out",
            "0",
            "--json",
            "--test-landmarks",
            path.to_str().unwrap(),
        ]);
        let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
        let (a, b) = (
            alone["real"]["iod_mean"].as_f64().unwrap(),
            row[1].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-12, "{a} alone, {b} in the pair of files");
    }

    // Mirror images of no real shapes: refused before anything is trained.
    let out = poseface(&["lae", "train", "--out", f, "--mirror"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--landmarks"));

    // A missing landmark file and a file that is not an autoencoder: one line, status 2.
    for args in [
        vec![
            "lae",
            "eval",
            "--lae",
            f,
            "--test-landmarks",
            "/no/such.pts",
        ],
        vec!["lae", "eval", "--lae", "/no/such.safetensors"],
    ] {
        let out = poseface(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("/no/such"), "{err}");
    }
}

#[test]
fn embed_loads_insightface_weights_and_devices_name_their_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_tiny(tmp.path());
    let weights = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../poseface-model/tests/fixtures/iresnet_r18_w0625_s56/backbone.pth");
    let emb = tmp.path().join("lfw.npy");
    let out = poseface(&[
        "embed",
        "--weights",
        weights.to_str().unwrap(),
        "--arch",
        "r18",
        "--width",
        "0.0625",
        "--input-size",
        "56",
        "--embedding-size",
        "64",
        "--bin",
        data.join("synth_lfw.bin").to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&emb).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape(), &[400, 64]);
    // The wrong architecture for the file is one line naming the mismatch.
    let bad = poseface(&[
        "embed",
        "--weights",
        weights.to_str().unwrap(),
        "--arch",
        "r34",
        "--bin",
        data.join("synth_lfw.bin").to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("does not match") && err.lines().count() == 1,
        "{err}"
    );
    #[cfg(not(feature = "cuda"))]
    {
        let gpu = poseface(&["train", "--config", "no-such.toml", "--device", "cuda:0"]);
        let err = String::from_utf8_lossy(&gpu.stderr);
        assert!(err.contains("--features cuda"), "{err}");
    }
}

#[test]
fn bench_backbone_writes_its_three_timings() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = poseface(&[
        "bench",
        "backbone",
        "--model",
        "r18-w0.0625-s28",
        "--batch",
        "2",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["batch"], 2, "{v}");
    for key in ["forward_s", "embed_flip_s", "train_step_s"] {
        let t = v[key].as_f64().unwrap();
        assert!(t > 0.0, "{key}: {v}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(" img/s)").count(), 3, "{stdout}");
    let bad = poseface(&["bench", "backbone", "--model", "r18-s50"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must divide 112"));
}

/// The float types of the tensors in a safetensors file (its JSON header).
fn safetensors_dtypes(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_bf16_run_trains_in_bf16_and_its_files_load_in_float32() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_tiny(tmp.path());
    let runs = tmp.path().join("runs");
    let config = tiny_config(
        tmp.path(),
        "bf16",
        &data,
        "[method]\nkind = \"multitask\"\n[head]\nkind = \"arcface\"\nscale = 16.0\n\
         [optim]\nbatch_size = 16\nsteps = 4\nprecision = \"bf16\"\n\
         [eval]\nevery_steps = 100\n[checkpoint]\nevery_steps = 2\n",
    );
    let out = poseface(&["train", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = runs.join("bf16");
    // The loss is computed on the device in bfloat16: every logged value has a zero low half
    // as a float32 (a float32 computation would leave those bits set almost always).
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 4, "{metrics}");
    for loss in &losses {
        assert_eq!(
            (*loss as f32).to_bits() & 0xFFFF,
            0,
            "{loss} is not a bfloat16"
        );
    }
    // Files are written in float32 ...
    let f32_only = std::collections::BTreeSet::from(["F32".to_string()]);
    assert_eq!(safetensors_dtypes(&run.join("model.safetensors")), f32_only);
    let latest = run.join("checkpoints/step-00000004");
    for file in ["backbone.safetensors", "pose_head.safetensors"] {
        assert_eq!(safetensors_dtypes(&latest.join(file)), f32_only, "{file}");
    }
    // ... and a float32 process embeds with them.
    let emb = tmp.path().join("bf16.npy");
    let e = poseface(&[
        "embed",
        "--run",
        run.to_str().unwrap(),
        "--bin",
        data.join("synth_cplfw.bin").to_str().unwrap(),
        "--out",
        emb.to_str().unwrap(),
    ]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let bytes = std::fs::read(&emb).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    assert_eq!(npy.shape()[1], 32);
    let values: Vec<f32> = npy.into_vec().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
}

#[test]
fn a_device_list_trains_data_parallel() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_tiny(tmp.path());
    let config = tiny_config(
        tmp.path(),
        "two",
        &data,
        "[head]\nkind = \"arcface\"\nscale = 16.0\n[optim]\nbatch_size = 16\nsteps = 3\n\
         [eval]\nevery_steps = 100\n[checkpoint]\nevery_steps = 3\n",
    );
    let cfg = config.to_str().unwrap();
    let out = poseface(&["train", "--config", cfg, "--device", "cpu,cpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("data-parallel over 2 devices"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("finished at step 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Every name in the list is checked before anything trains.
    let bad = poseface(&["train", "--config", cfg, "--device", "cpu,tpu", "--resume"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--device tpu: expected cpu"), "{stderr}");
}
