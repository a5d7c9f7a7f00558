//! Helpers shared by the integration tests.

use std::path::Path;

use poseface_synth::config::{Preset, SynthConfig};

/// Writes the tiny synthetic dataset (seed 5) into `dir`.
pub fn tiny_data(dir: &Path) {
    let config = SynthConfig::preset(Preset::Tiny, 5);
    poseface_synth::writer::write_dataset(&config, dir, &|_, _, _| {}).unwrap();
}
