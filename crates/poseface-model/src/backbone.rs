//! One type for "a backbone chosen by name": `r18` … `r200` (IResNet) or `mbf`
//! (MobileFaceNet), so training and embedding code need not be generic over the network.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::iresnet::{IResNet, IResNetConfig, IResNetDepth};
use crate::mobilefacenet::{MobileFaceNet, MobileFaceNetConfig};

/// A backbone by name and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneConfig {
    /// `r18`, `r34`, `r50`, `r100`, `r200` or `mbf`.
    pub name: String,
    /// Width multiplier.
    pub width: f64,
    /// Side of the square input.
    pub input_size: usize,
    /// Embedding size.
    pub embedding_size: usize,
    /// Dropout before the embedding layer (IResNet only).
    pub dropout: f64,
}

/// Why a backbone name was not understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown backbone `{0}` (expected r18, r34, r50, r100, r200 or mbf)")]
pub struct UnknownBackbone(pub String);

impl BackboneConfig {
    /// A full-width network at 112×112 with a 512-d embedding (128-d for `mbf`).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            width: 1.0,
            input_size: 112,
            embedding_size: if name == "mbf" { 128 } else { 512 },
            dropout: 0.0,
        }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> Result<Backbone, UnknownBackbone> {
        if self.name == "mbf" || self.name == "mobilefacenet" {
            return Ok(Backbone::MobileFaceNet(
                MobileFaceNetConfig::new()
                    .with_width(self.width)
                    .with_input_size(self.input_size)
                    .with_embedding_size(self.embedding_size)
                    .init(device),
            ));
        }
        let depth =
            IResNetDepth::parse(&self.name).ok_or_else(|| UnknownBackbone(self.name.clone()))?;
        Ok(Backbone::IResNet(
            IResNetConfig::depth(depth)
                .with_width(self.width)
                .with_input_size(self.input_size)
                .with_embedding_size(self.embedding_size)
                .with_dropout(self.dropout)
                .init(device),
        ))
    }

    /// A short description for messages, e.g. `r18 ×0.25 @56`.
    pub fn describe(&self) -> String {
        format!("{} ×{} @{}", self.name, self.width, self.input_size)
    }
}

/// Either backbone.
// Built once per run and moved rarely: the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    /// IResNet.
    IResNet(IResNet),
    /// MobileFaceNet.
    MobileFaceNet(MobileFaceNet),
}

impl Backbone {
    /// # Shapes
    /// - `images`: `[batch, 3, S, S]`
    /// - output: `[batch, embedding_size]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::IResNet(m) => m.forward(images),
            Self::MobileFaceNet(m) => m.forward(images),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_build_their_networks() {
        let device = Device::default();
        let mut c = BackboneConfig::named("r18");
        c.width = 0.0625;
        c.input_size = 32;
        c.embedding_size = 8;
        assert!(matches!(c.init(&device), Ok(Backbone::IResNet(_))));
        c.name = "mbf".into();
        assert!(matches!(c.init(&device), Ok(Backbone::MobileFaceNet(_))));
        c.name = "r101".into();
        assert_eq!(
            c.init(&device).unwrap_err().to_string(),
            "unknown backbone `r101` (expected r18, r34, r50, r100, r200 or mbf)"
        );
    }
}
