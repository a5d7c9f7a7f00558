//! Machine-checkable architecture invariants (docs/ARCHITECTURE.md).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn library_crates_stay_free_of_cli_and_training_dependencies() {
    let data = std::fs::read_to_string(root().join("crates/poseface-data/Cargo.toml")).unwrap();
    // Everything after `[dependencies]`: the package's own name comes before it.
    let deps = data.split("[dependencies]").nth(1).unwrap();
    for forbidden in ["burn-train", "clap", "anyhow", "indicatif", "poseface"] {
        assert!(
            !deps.contains(forbidden),
            "poseface-data must not depend on {forbidden}"
        );
    }
    assert!(
        data.contains("burn = { workspace = true, optional = true"),
        "burn stays optional in poseface-data"
    );
}

#[test]
fn synth_stays_free_of_burn_and_cli_dependencies() {
    let synth = std::fs::read_to_string(root().join("crates/poseface-synth/Cargo.toml")).unwrap();
    for forbidden in ["burn", "clap", "anyhow", "indicatif", "poseface ="] {
        assert!(
            !synth.contains(forbidden),
            "poseface-synth must not depend on {forbidden}"
        );
    }
}

#[test]
fn eval_stays_free_of_burn_and_other_poseface_crates() {
    let eval = std::fs::read_to_string(root().join("crates/poseface-eval/Cargo.toml")).unwrap();
    for forbidden in ["burn", "poseface-", "clap", "anyhow", "indicatif"] {
        let deps = eval
            .split("[dependencies]")
            .nth(1)
            .unwrap()
            .split("[dev-dependencies]")
            .next()
            .unwrap();
        assert!(
            !deps.contains(forbidden),
            "poseface-eval must not depend on {forbidden}"
        );
    }
}

#[test]
fn every_crate_has_a_readme_and_crate_docs() {
    for dir in crates() {
        assert!(
            dir.join("README.md").exists(),
            "{} lacks README.md",
            dir.display()
        );
        let entry = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists())
            .unwrap();
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} lacks a //! crate doc",
            entry.display()
        );
    }
}

#[test]
fn lib_rs_holds_no_logic() {
    for dir in crates() {
        let lib = dir.join("src/lib.rs");
        if let Ok(text) = std::fs::read_to_string(&lib) {
            let code: String = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("//"))
                .collect::<Vec<_>>()
                .join(" ");
            for keyword in [
                "fn ", "struct ", "enum ", "impl ", "trait ", "const ", "static ",
            ] {
                assert!(
                    !code.contains(keyword),
                    "{}: lib.rs should hold mod lines and re-exports only, found `{keyword}`",
                    lib.display()
                );
            }
        }
    }
}

#[test]
fn no_unwrap_on_input_in_readers() {
    // Readers return typed errors; `.unwrap()` outside tests is reserved for values the code
    // itself constructed and is annotated with `expect("…")` instead.
    let dirs = ["crates/poseface-data/src", "crates/poseface-synth/src"];
    for entry in dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(root().join(d)).unwrap())
    {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let body = text.split("#[cfg(test)]").next().unwrap();
        let code = body.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            assert!(
                !line.contains(".unwrap()"),
                "{} calls .unwrap() outside its tests: {line}",
                path.display()
            );
        }
    }
}

/// The `[dependencies]` table of a crate manifest, as text.
fn dependencies_section(manifest: &str) -> &str {
    let start = manifest.find("\n[dependencies]").expect("[dependencies]");
    let rest = &manifest[start + 1..];
    let end = rest[1..].find("\n[").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn model_and_loss_never_choose_a_backend() {
    for name in ["poseface-model", "poseface-loss"] {
        let manifest =
            std::fs::read_to_string(root().join(format!("crates/{name}/Cargo.toml"))).unwrap();
        let deps = dependencies_section(&manifest);
        assert!(deps.contains("burn = { workspace = true"), "{name}: {deps}");
        for forbidden in [
            "\"flex\"",
            "\"cuda\"",
            "\"wgpu\"",
            "\"vulkan\"",
            "\"tch\"",
            "\"ndarray\"",
            "clap",
            "anyhow",
            "indicatif",
            "burn-train",
        ] {
            assert!(
                !deps.contains(forbidden),
                "{name} must not depend on {forbidden} outside dev-dependencies"
            );
        }
    }
}
