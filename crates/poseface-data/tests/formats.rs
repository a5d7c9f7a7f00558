//! Format compatibility against fixtures and readers written independently in Python
//! (`scripts/recordio_reference.py`, `scripts/make_bin_fixtures.py`).

use std::path::{Path, PathBuf};
use std::process::Command;

use poseface_data::recordio::MAGIC;
use poseface_data::{
    FaceRecordSet, IrHeader, RecordIoReader, RecordIoWriter, VerificationBin, decode_rgb,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn python3() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping: python3 is not installed");
    }
    ok.then_some("python3")
}

/// Runs a Python command to success and returns its stdout.
fn run_python(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A JSON array of numbers as `f64`s.
fn json_floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// `f32` labels widened exactly, as Python's `struct.unpack('<f')` does.
fn widen(labels: &[f32]) -> Vec<f64> {
    labels.iter().map(|&v| v as f64).collect()
}

/// Compares every record of `reader` with the Python reader's JSON description.
fn assert_matches_reference(reader: &RecordIoReader, expected: &Value) {
    let records = expected["records"].as_array().unwrap();
    assert_eq!(reader.len(), records.len());
    for r in records {
        let key = r["key"].as_u64().unwrap();
        let raw = reader.read_raw(key).unwrap();
        let rec = reader.read(key).unwrap();
        assert_eq!(reader.offset(key), r["offset"].as_u64(), "offset of {key}");
        assert_eq!(
            rec.header.flag as u64,
            r["flag"].as_u64().unwrap(),
            "flag of {key}"
        );
        assert_eq!(
            rec.header.label as f64,
            r["label"].as_f64().unwrap(),
            "label of {key}"
        );
        assert_eq!(
            widen(&rec.labels),
            json_floats(&r["extra_labels"]),
            "labels of {key}"
        );
        assert_eq!(rec.header.id, r["id"].as_u64().unwrap(), "id of {key}");
        assert_eq!(rec.header.id2, r["id2"].as_u64().unwrap(), "id2 of {key}");
        assert_eq!(
            raw.len() as u64,
            r["payload_len"].as_u64().unwrap(),
            "length of {key}"
        );
        assert_eq!(
            sha256(&rec.payload),
            r["payload_sha256"].as_str().unwrap(),
            "payload of {key}"
        );
    }
}

#[test]
fn reads_recordio_written_by_the_python_reference() {
    let dir = fixtures().join("recordio");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let reader = RecordIoReader::open(dir.join("train.rec"), dir.join("train.idx")).unwrap();
    assert_matches_reference(&reader, &expected);
    // Scanning without the index finds the same records.
    let scanned = RecordIoReader::open_scan(dir.join("train.rec")).unwrap();
    assert_eq!(scanned.len(), reader.len());

    // insightface's layout: record 0 = [9, 12] → 8 images, 3 identities.
    let set = FaceRecordSet::open(&dir).unwrap();
    assert_eq!(set.len(), 8);
    assert_eq!(set.identity_ranges().unwrap(), &[(0, 3), (3, 6), (6, 8)]);
    assert_eq!(set.property().unwrap().num_classes, 3);
    let labels: Vec<u32> = (0..8).map(|i| set.image(i).unwrap().0).collect();
    assert_eq!(labels, [0, 0, 0, 1, 1, 1, 2, 2]);
    for i in 0..8 {
        let (_, bytes) = set.image(i).unwrap();
        decode_rgb(&bytes, "fixture").unwrap();
    }
    let groups = set.group_by_label().unwrap();
    assert_eq!(groups[&1], vec![3, 4, 5]);
}

#[test]
fn python_reference_reads_what_we_write() {
    let Some(py) = python3() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = MAGIC.to_le_bytes();
    let images: Vec<Vec<u8>> = vec![
        vec![],
        b"abc".to_vec(),
        [&m[..], &m, b"x"].concat(),
        [&b"1234"[..], &m, b"5678", &m].concat(),
        (0..1000u32).map(|i| (i * 7 % 251) as u8).collect(),
    ];
    let mut w =
        RecordIoWriter::create(dir.path().join("train.rec"), dir.path().join("train.idx")).unwrap();
    let mut expected = Vec::new();
    for (k, img) in images.iter().enumerate() {
        let labels: Vec<f32> = if k % 2 == 1 {
            vec![k as f32, 0.25, -1.5]
        } else {
            vec![]
        };
        let header = IrHeader {
            flag: 0,
            label: k as f32 * 1.5,
            id: (1u64 << 40) + k as u64,
            id2: 3,
        };
        w.write(k as u64, &header, &labels, img).unwrap();
        expected.push((header, labels));
    }
    w.finish().unwrap();
    let script = repo_root().join("scripts/recordio_reference.py");
    let stdout = run_python(Command::new(py).arg(script).arg("read").arg(dir.path()));
    let json: Value = serde_json::from_slice(&stdout).unwrap();
    let records = json["records"].as_array().unwrap();
    assert_eq!(records.len(), images.len());
    for (k, r) in records.iter().enumerate() {
        let (h, labels) = &expected[k];
        assert_eq!(r["flag"].as_u64().unwrap(), labels.len() as u64);
        let label = if labels.is_empty() {
            h.label as f64
        } else {
            0.0
        };
        assert_eq!(r["label"].as_f64().unwrap(), label);
        assert_eq!(json_floats(&r["extra_labels"]), widen(labels));
        assert_eq!(
            (r["id"].as_u64().unwrap(), r["id2"].as_u64().unwrap()),
            (h.id, h.id2)
        );
        assert_eq!(r["payload_sha256"].as_str().unwrap(), sha256(&images[k]));
    }
    // And the Python reader's view of our file equals ours.
    let reader =
        RecordIoReader::open(dir.path().join("train.rec"), dir.path().join("train.idx")).unwrap();
    assert_matches_reference(&reader, &json);
}

#[test]
fn reads_bins_from_python_2_and_3_all_protocols() {
    let dir = fixtures().join("bin");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let hashes: Vec<&str> = expected["images_sha256"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let issame: Vec<bool> = expected["issame"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    let files = expected["files"].as_array().unwrap();
    assert!(files.len() >= 6);
    for f in files {
        let bin = VerificationBin::read(dir.join(f.as_str().unwrap())).unwrap();
        assert_eq!(
            bin.images.iter().map(|i| sha256(i)).collect::<Vec<_>>(),
            hashes,
            "{f}"
        );
        assert_eq!(bin.issame, issame, "{f}");
        for img in &bin.images {
            decode_rgb(img, "bin image").unwrap();
        }
    }
}

#[test]
fn hostile_pickles_are_rejected_without_side_effects() {
    let dir = fixtures().join("bin/hostile");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            let e = VerificationBin::read(&path).unwrap_err().to_string();
            assert!(
                e.contains(path.file_name().unwrap().to_str().unwrap()),
                "{e}"
            );
            n += 1;
        }
    }
    assert!(n >= 6);
    let e = VerificationBin::read(dir.join("global_os_system_reduce.bin"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable pickle"), "{e}");
}

#[test]
fn python_unpickles_what_we_write() {
    let Some(py) = python3() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bin = VerificationBin {
        images: (0..4u8).map(|i| vec![i; 100 + 200 * i as usize]).collect(),
        issame: vec![false, true],
    };
    let path = dir.path().join("x.bin");
    bin.write(&path).unwrap();
    let script = "import pickle,sys,hashlib\n\
        b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes')\n\
        print(' '.join(hashlib.sha256(x).hexdigest() for x in b)); print(s)";
    let text =
        String::from_utf8(run_python(Command::new(py).args(["-c", script]).arg(&path))).unwrap();
    let hashes: Vec<String> = bin.images.iter().map(|i| sha256(i)).collect();
    assert_eq!(text, format!("{}\n[False, True]\n", hashes.join(" ")));
}
