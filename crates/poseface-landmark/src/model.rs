//! The landmark autoencoder: normalised 68×2 landmarks → MLP encoder → latent code →
//! MLP decoder → landmarks.
//!
//! Both halves are two hidden layers of `hidden` units with GELU between them. A smooth
//! activation keeps the code a smooth function of the landmarks, which is what PoseFace's
//! pose target needs: nearby landmark configurations get nearby codes.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Gelu, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::normalise::normalise_tensor;

/// Size of the autoencoder.
#[derive(Config, Debug, PartialEq)]
pub struct LandmarkAutoencoderConfig {
    /// Landmarks per shape.
    #[config(default = 68)]
    pub points: usize,
    /// Units in each hidden layer.
    #[config(default = 256)]
    pub hidden: usize,
    /// Size of the latent code.
    #[config(default = 16)]
    pub latent: usize,
}

impl LandmarkAutoencoderConfig {
    /// Range checks: at least 3 points and a non-empty hidden layer and code, all within
    /// sizes an MLP on landmarks could sensibly have.
    pub fn validate(&self) -> Result<(), crate::LandmarkError> {
        let ok = (3..=10_000).contains(&self.points)
            && (1..=65_536).contains(&self.hidden)
            && (1..=4_096).contains(&self.latent);
        if ok {
            Ok(())
        } else {
            Err(crate::LandmarkError::Config(format!(
                "points {} (3–10000), hidden {} (1–65536), latent {} (1–4096)",
                self.points, self.hidden, self.latent
            )))
        }
    }

    /// Builds the network with PyTorch's default `Linear` initialisation.
    pub fn init(&self, device: &Device) -> LandmarkAutoencoder {
        let d = 2 * self.points;
        let h = self.hidden;
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        LandmarkAutoencoder {
            enc1: linear(d, h),
            enc2: linear(h, h),
            enc3: linear(h, self.latent),
            dec1: linear(self.latent, h),
            dec2: linear(h, h),
            dec3: linear(h, d),
            activation: Gelu::new(),
        }
    }
}

/// Encoder and decoder.
#[derive(Module, Debug)]
pub struct LandmarkAutoencoder {
    /// Encoder input layer.
    pub enc1: Linear,
    /// Encoder hidden layer.
    pub enc2: Linear,
    /// Encoder output layer (the code).
    pub enc3: Linear,
    /// Decoder input layer.
    pub dec1: Linear,
    /// Decoder hidden layer.
    pub dec2: Linear,
    /// Decoder output layer (the landmarks).
    pub dec3: Linear,
    /// Activation between layers.
    pub activation: Gelu,
}

impl LandmarkAutoencoder {
    /// The configuration this network was built with, read back from its weights.
    pub fn config(&self) -> LandmarkAutoencoderConfig {
        let [d, h] = self.enc1.weight.dims();
        let [_, latent] = self.enc3.weight.dims();
        LandmarkAutoencoderConfig {
            points: d / 2,
            hidden: h,
            latent,
        }
    }

    /// Latent code of normalised landmarks.
    ///
    /// # Shapes
    /// - `normalised`: `[batch, 2P]` (see [`crate::normalise`](mod@crate::normalise))
    /// - output: `[batch, latent]`
    pub fn encode(&self, normalised: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.enc1.forward(normalised));
        let x = self.activation.forward(self.enc2.forward(x));
        self.enc3.forward(x)
    }

    /// Normalised landmarks of a latent code.
    ///
    /// # Shapes
    /// - `code`: `[batch, latent]`
    /// - output: `[batch, 2P]`
    pub fn decode(&self, code: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.dec1.forward(code));
        let x = self.activation.forward(self.dec2.forward(x));
        self.dec3.forward(x)
    }

    /// Normalises landmarks in pixels and encodes them.
    ///
    /// # Shapes
    /// - `points`: `[batch, P, 2]`
    /// - output: `[batch, latent]`
    pub fn encode_points(&self, points: Tensor<3>) -> Tensor<2> {
        self.encode(normalise_tensor(points))
    }

    /// Encodes and decodes normalised landmarks.
    ///
    /// # Shapes
    /// - `normalised`: `[batch, 2P]`
    /// - output: `[batch, 2P]`
    pub fn reconstruct(&self, normalised: Tensor<2>) -> Tensor<2> {
        self.decode(self.encode(normalised))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_config_round_trip() {
        let device = Device::default();
        let config = LandmarkAutoencoderConfig::new()
            .with_hidden(32)
            .with_latent(6);
        let ae = config.init(&device);
        assert_eq!(ae.config(), config);
        let x = Tensor::<3>::random(
            [4, 68, 2],
            burn::tensor::Distribution::Uniform(0.0, 112.0),
            &device,
        );
        let z = ae.encode_points(x.clone());
        assert_eq!(z.dims(), [4, 6]);
        assert_eq!(ae.decode(z).dims(), [4, 136]);
        assert_eq!(ae.reconstruct(normalise_tensor(x)).dims(), [4, 136]);
    }
}
