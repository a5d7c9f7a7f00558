//! `poseface pose`: head pose from landmarks.

use anyhow::Result;
use clap::Args;

/// Arguments of `poseface pose`.
#[derive(Args)]
pub struct PoseArgs {
    /// Landmarks as `x1,y1,x2,y2,…`: 5 (eyes, nose, mouth corners) or 68 (iBUG) points.
    #[arg(long, allow_hyphen_values = true)]
    points: String,
    /// Print `{"yaw":…,"pitch":…,"roll":…}`.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: PoseArgs) -> Result<()> {
    let points = super::parse_points(&args.points)?;
    let fit = poseface_data::fit_pose(&points)?;
    let a = fit.angles;
    if args.json {
        println!("{}", serde_json::to_string(&a)?);
    } else {
        println!(
            "yaw {:+.1}°  pitch {:+.1}°  roll {:+.1}°  (fit residual {:.2} px; yaw > 0: face turned towards the image's right)",
            a.yaw, a.pitch, a.roll, fit.rms
        );
    }
    Ok(())
}
