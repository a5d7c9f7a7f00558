//! `--device` parsing: only binaries choose devices, among the backends compiled in.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// Parses `cpu`, `cuda[:N]`, `wgpu`, `vulkan`, `tch` or `tch-cuda[:N]`; a backend that was
/// not compiled in is an error naming the cargo feature to build with.
pub fn parse_device(name: &str) -> Result<Device> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => match i.parse::<usize>() {
            Ok(i) => (k, i),
            Err(_) => bail!("--device {name}: `{i}` is not a device index"),
        },
        None => (name, 0),
    };
    let missing = |feature: &str| {
        anyhow::anyhow!(
            "--device {name}: this build has no {feature} backend; rebuild with `cargo build --release -p poseface --features {feature}`"
        )
    };
    match kind {
        "cpu" | "flex" => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[allow(unreachable_code)]
            Err(missing("flex"))
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(index));
            #[allow(unreachable_code)]
            {
                let _ = index;
                Err(missing("cuda"))
            }
        }
        "wgpu" => {
            #[cfg(feature = "wgpu")]
            return Ok(Device::wgpu(Default::default()));
            #[allow(unreachable_code)]
            Err(missing("wgpu"))
        }
        "vulkan" => {
            #[cfg(feature = "vulkan")]
            return Ok(Device::vulkan(Default::default()));
            #[allow(unreachable_code)]
            Err(missing("vulkan"))
        }
        "tch" => {
            #[cfg(feature = "tch")]
            return Ok(Device::libtorch());
            #[allow(unreachable_code)]
            Err(missing("tch"))
        }
        "tch-cuda" => {
            #[cfg(feature = "tch")]
            return Ok(Device::libtorch_cuda(index));
            #[allow(unreachable_code)]
            Err(missing("tch"))
        }
        other => {
            bail!("--device {other}: expected cpu, cuda[:N], wgpu, vulkan, tch or tch-cuda[:N]")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_missing_devices_are_named() {
        assert!(parse_device("cpu").is_ok());
        let e = parse_device("tpu").unwrap_err().to_string();
        assert!(e.starts_with("--device tpu: expected cpu"), "{e}");
        #[cfg(not(feature = "cuda"))]
        {
            let e = parse_device("cuda:1").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
        assert!(
            parse_device("cuda:x")
                .unwrap_err()
                .to_string()
                .contains("not a device index")
        );
    }
}
