//! The `poseface` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Pose-robust face recognition: datasets, alignment and head pose, training, embedding and
/// evaluation.
#[derive(Parser)]
#[command(name = "poseface", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dataset tools: inspect, pack, pairs and the synthetic generator.
    Data {
        #[command(subcommand)]
        command: cmd::data::DataCommand,
    },
    /// Align a face to the ArcFace 112×112 template from 5 or 68 landmarks.
    Align(cmd::align::AlignArgs),
    /// Estimate yaw, pitch and roll (degrees) from 5 or 68 landmarks.
    Pose(cmd::pose::PoseArgs),
    /// Verification on given embeddings: insightface's 10-fold protocol or IJB-B/C 1:1.
    Verify(cmd::verify::VerifyArgs),
    /// Train a model from an experiment config.
    Train(cmd::train::TrainArgs),
    /// Embed aligned faces with a trained run or insightface weights.
    Embed(cmd::embed::EmbedArgs),
    /// Evaluate a trained run on verification sets, with a report and plots.
    Eval(cmd::eval::EvalArgs),
    /// Pose left in a run's identity embedding (ridge probes to yaw and pitch).
    Probe(cmd::probe::ProbeArgs),
    /// Runs side by side: tables grouped by method across seeds, and plots.
    Report(cmd::report::ReportArgs),
    /// Speed of the building blocks on a device: `poseface bench backbone --model r50`.
    Bench {
        #[command(subcommand)]
        command: cmd::bench::BenchCommand,
    },
    /// Landmark autoencoder: `poseface lae train --out FILE`.
    Lae {
        #[command(subcommand)]
        command: cmd::lae::LaeCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data { command } => cmd::data::run(command),
        Command::Align(args) => cmd::align::run(args),
        Command::Pose(args) => cmd::pose::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Embed(args) => cmd::embed::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Lae { command } => cmd::lae::run(command),
        Command::Bench { command } => cmd::bench::run(command),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Report(args) => cmd::report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
