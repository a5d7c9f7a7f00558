//! `cargo xtask ci`: the checks `.ci/run` performs.

use std::process::Command;

/// Runs `.ci/run`.
pub fn run() -> anyhow::Result<()> {
    crate::run_cmd(Command::new("bash").arg(".ci/run"))
}
