//! Helpers shared by the integration tests.

use std::path::Path;

use poseface_synth::config::{Preset, SynthConfig};

/// Writes the tiny synthetic dataset (seed 5) into `dir`.
pub fn tiny_data(dir: &Path) {
    let config = SynthConfig::preset(Preset::Tiny, 5);
    poseface_synth::writer::write_dataset(&config, dir, &|_, _, _| {}).unwrap();
}

/// The tiny experiment both test files train: r18 at 1/16 width on 56×56 faces, batch 16,
/// 12 steps, checkpoints every 4. `tables` adds `[head]`, `[method]` …; `overrides` are
/// `--set`-style.
pub fn tiny_config(
    data: &Path,
    runs: &Path,
    name: &str,
    seed: u64,
    tables: &str,
    overrides: &[&str],
) -> poseface_train::ExperimentConfig {
    let text = format!(
        r#"
name = "{name}"
runs_dir = "{runs}"
seed = {seed}
[data]
train = "{data}"
val = ["{data}/synth_cplfw.bin"]
input_size = 56
[model]
backbone = "r18"
width = 0.0625
embedding_size = 32
[optim]
lr = 0.1
batch_size = 16
steps = 12
warmup_steps = 2
[eval]
every_steps = 0
[checkpoint]
every_steps = 4
keep = 1
{tables}
"#,
        runs = runs.display(),
        data = data.display()
    );
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    poseface_train::ExperimentConfig::from_toml(&text, &overrides).unwrap()
}
