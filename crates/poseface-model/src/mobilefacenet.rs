//! MobileFaceNet as its paper defines it (Chen et al., *MobileFaceNets: Efficient CNNs for
//! Accurate Real-Time Face Verification on Mobile Devices*, 2018, Table 1):
//!
//! | input | operator | t | c | n | s |
//! |---|---|---|---|---|---|
//! | 112²×3 | conv3×3 | – | 64 | 1 | 2 |
//! | 56²×64 | depthwise conv3×3 | – | 64 | 1 | 1 |
//! | 56²×64 | bottleneck | 2 | 64 | 5 | 2 |
//! | 28²×64 | bottleneck | 4 | 128 | 1 | 2 |
//! | 14²×128 | bottleneck | 2 | 128 | 6 | 1 |
//! | 14²×128 | bottleneck | 4 | 128 | 1 | 2 |
//! | 7²×128 | bottleneck | 2 | 128 | 2 | 1 |
//! | 7²×128 | conv1×1 | – | 512 | 1 | 1 |
//! | 7²×512 | linear GDConv7×7 | – | 512 | 1 | 1 |
//! | 1²×512 | linear conv1×1 | – | 128 | 1 | 1 |
//!
//! Every convolution is followed by batch norm; non-linear ones by PReLU. A bottleneck is
//! MobileNetV2's inverted residual (1×1 expand by `t` → depthwise 3×3 with stride `s` →
//! linear 1×1 project), with the shortcut when the stride is 1 and the channels agree. The
//! global depthwise convolution's kernel is the last feature map's side (7 at 112×112), so
//! other input sizes work; a width multiplier scales every channel count but the embedding.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PRelu, PReluConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use crate::batch_norm::batch_norm;
use crate::conv::conv2d;
use crate::iresnet::scaled_channels;
use crate::prelu::prelu;

/// The bottleneck stages of Table 1: `(t, c, n, s)`.
pub const STAGES: [(usize, usize, usize, usize); 5] = [
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
];

/// Configuration of a [`MobileFaceNet`].
#[derive(Config, Debug)]
pub struct MobileFaceNetConfig {
    /// Width multiplier of every channel count except the embedding.
    #[config(default = 1.0)]
    pub width: f64,
    /// Side of the square input image.
    #[config(default = 112)]
    pub input_size: usize,
    /// Embedding size (the paper: 128).
    #[config(default = 128)]
    pub embedding_size: usize,
    /// Batch-norm epsilon.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
}

/// A convolution, its batch norm and, unless linear, a PReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The convolution.
    pub conv: Conv2d,
    /// Batch norm.
    pub bn: BatchNorm,
    /// PReLU (absent for linear blocks).
    pub prelu: Option<PRelu>,
}

impl ConvBlock {
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]`; output `[batch, c_out, h', w']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = batch_norm(&self.bn, conv2d(&self.conv, x));
        match &self.prelu {
            Some(p) => prelu(x, p.alpha.val()),
            None => x,
        }
    }
}

struct ConvSpec {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    linear: bool,
}

fn conv_block(spec: ConvSpec, bn_epsilon: f64, device: &Device) -> ConvBlock {
    let pad = if spec.kernel == 3 { 1 } else { 0 };
    ConvBlock {
        conv: Conv2dConfig::new([spec.input, spec.output], [spec.kernel, spec.kernel])
            .with_stride([spec.stride, spec.stride])
            .with_groups(spec.groups)
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device),
        bn: BatchNormConfig::new(spec.output)
            .with_epsilon(bn_epsilon)
            .init(device),
        prelu: (!spec.linear).then(|| {
            PReluConfig::new()
                .with_num_parameters(spec.output)
                .init(device)
        }),
    }
}

/// MobileNetV2's inverted residual block.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1 expansion with PReLU.
    pub expand: ConvBlock,
    /// Depthwise 3×3 carrying the stride, with PReLU.
    pub depthwise: ConvBlock,
    /// Linear 1×1 projection.
    pub project: ConvBlock,
    /// Whether the input is added to the output.
    pub residual: bool,
}

impl Bottleneck {
    /// # Shapes
    /// - `x`: `[batch, c_in, h, w]`; output `[batch, c_out, ⌈h/s⌉, ⌈w/s⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self
            .project
            .forward(self.depthwise.forward(self.expand.forward(x.clone())));
        if self.residual { out + x } else { out }
    }
}

/// MobileFaceNet: `[B, 3, S, S]` images to `[B, E]` embeddings.
#[derive(Module, Debug)]
pub struct MobileFaceNet {
    /// conv3×3, stride 2.
    pub conv1: ConvBlock,
    /// Depthwise conv3×3.
    pub dw_conv1: ConvBlock,
    /// The bottleneck stages, flattened.
    pub blocks: Vec<Bottleneck>,
    /// conv1×1 to 512·width channels.
    pub conv2: ConvBlock,
    /// Linear global depthwise convolution (kernel = last feature-map side).
    pub gdconv: ConvBlock,
    /// Linear conv1×1 to the embedding.
    pub embedding: ConvBlock,
}

impl MobileFaceNetConfig {
    /// Initialises the network (burn's default Kaiming-uniform convolutions).
    pub fn init(&self, device: &Device) -> MobileFaceNet {
        let c = |base: usize| scaled_channels(base, self.width);
        let eps = self.bn_epsilon;
        let c64 = c(64);
        let conv1 = conv_block(
            ConvSpec {
                input: 3,
                output: c64,
                kernel: 3,
                stride: 2,
                groups: 1,
                linear: false,
            },
            eps,
            device,
        );
        let dw_conv1 = conv_block(
            ConvSpec {
                input: c64,
                output: c64,
                kernel: 3,
                stride: 1,
                groups: c64,
                linear: false,
            },
            eps,
            device,
        );
        let mut blocks = Vec::new();
        let mut input = c64;
        for (t, channels, n, s) in STAGES {
            let output = c(channels);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = input * t;
                let spec = |input, output, kernel, stride, groups, linear| ConvSpec {
                    input,
                    output,
                    kernel,
                    stride,
                    groups,
                    linear,
                };
                blocks.push(Bottleneck {
                    expand: conv_block(spec(input, hidden, 1, 1, 1, false), eps, device),
                    depthwise: conv_block(
                        spec(hidden, hidden, 3, stride, hidden, false),
                        eps,
                        device,
                    ),
                    project: conv_block(spec(hidden, output, 1, 1, 1, true), eps, device),
                    residual: stride == 1 && input == output,
                });
                input = output;
            }
        }
        let c512 = c(512);
        let side = (0..4).fold(self.input_size, |s, _| s.div_ceil(2));
        let spec = |input, output, kernel, groups, linear| ConvSpec {
            input,
            output,
            kernel,
            stride: 1,
            groups,
            linear,
        };
        MobileFaceNet {
            conv1,
            dw_conv1,
            blocks,
            conv2: conv_block(spec(input, c512, 1, 1, false), eps, device),
            gdconv: conv_block(spec(c512, c512, side, c512, true), eps, device),
            embedding: conv_block(spec(c512, self.embedding_size, 1, 1, true), eps, device),
        }
    }
}

impl MobileFaceNet {
    /// Embeds aligned faces normalised as `(pixel / 255 − 0.5) / 0.5`.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, S, S]`
    /// - output: `[batch, embedding_size]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.dw_conv1.forward(self.conv1.forward(images)); // [B, 64, S/2, S/2]
        let x = self.blocks.iter().fold(x, |x, b| b.forward(x)); // [B, 128, S/16, S/16]
        let x = self.gdconv.forward(self.conv2.forward(x)); // [B, 512, 1, 1]
        self.embedding.forward(x).flatten(1, 3) // [B, E]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn paper_sized_network_has_its_published_size_and_shapes() {
        let device = Device::default();
        let model = MobileFaceNetConfig::new().init(&device);
        // The paper reports 0.99 M parameters: convolution weights plus batch-norm scales
        // and shifts (995,584 here); its count leaves out the 7,552 PReLU slopes. burn's
        // count also includes the running mean and variance, two per normalised channel.
        let mut bn_channels = 64 + 64;
        let mut prelu = 64 + 64;
        let mut input = 64;
        for (t, c, count, _) in STAGES {
            for _ in 0..count {
                bn_channels += 2 * input * t + c;
                prelu += 2 * input * t;
                input = c;
            }
        }
        bn_channels += 512 + 512 + 128;
        prelu += 512;
        let params = model.num_params() - 2 * bn_channels - prelu;
        assert!(
            (990_000..1_000_000).contains(&params),
            "{params} parameters, the paper says 0.99 M"
        );
        assert_eq!(model.blocks.len(), 15);
        let x = Tensor::<4>::random([2, 3, 112, 112], Distribution::Uniform(-1.0, 1.0), &device);
        assert_eq!(model.forward(x).dims(), [2, 128]);
    }

    #[test]
    fn other_input_sizes_and_widths_work() {
        let device = Device::default();
        let model = MobileFaceNetConfig::new()
            .with_width(0.25)
            .with_input_size(56)
            .with_embedding_size(32)
            .init(&device);
        let x = Tensor::<4>::random([1, 3, 56, 56], Distribution::Uniform(-1.0, 1.0), &device);
        assert_eq!(model.forward(x).dims(), [1, 32]);
    }
}
