//! IResNet, the "improved residual network" of ArcFace, laid out exactly as insightface's
//! `arcface_torch` defines it so that its released `backbone.pth` checkpoints load by name.
//!
//! Stem `conv1`(3×3, 64) → `bn1` → `prelu`; four stages `layer1..layer4` of
//! [`IBasicBlock`]s with 64/128/256/512 channels, each stage starting with stride 2; head
//! `bn2` → flatten → dropout → `fc` (512·7·7 → 512) → `features` (BatchNorm1d whose scale is
//! fixed at 1). A width multiplier scales every channel count and the input size may be any
//! square size, which gives the CPU-sized variants the synthetic runs use.

use crate::batch_norm::batch_norm;
use crate::conv::conv2d;
use crate::prelu::prelu;
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PRelu, PReluConfig,
    PaddingConfig2d,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The IResNet depths insightface releases, with their blocks per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IResNetDepth {
    /// IResNet-18: `[2, 2, 2, 2]`.
    R18,
    /// IResNet-34: `[3, 4, 6, 3]`.
    R34,
    /// IResNet-50: `[3, 4, 14, 3]`.
    R50,
    /// IResNet-100: `[3, 13, 30, 3]`.
    R100,
    /// IResNet-200: `[6, 26, 60, 6]`.
    R200,
}

impl IResNetDepth {
    /// Blocks per stage, as in `arcface_torch`'s `iresnet18` … `iresnet200`.
    pub fn layers(self) -> [usize; 4] {
        match self {
            Self::R18 => [2, 2, 2, 2],
            Self::R34 => [3, 4, 6, 3],
            Self::R50 => [3, 4, 14, 3],
            Self::R100 => [3, 13, 30, 3],
            Self::R200 => [6, 26, 60, 6],
        }
    }

    /// The insightface name: `r18`, `r34`, `r50`, `r100`, `r200`.
    pub fn name(self) -> &'static str {
        match self {
            Self::R18 => "r18",
            Self::R34 => "r34",
            Self::R50 => "r50",
            Self::R100 => "r100",
            Self::R200 => "r200",
        }
    }

    /// Parses `r18` … `r200` (also `iresnet50`-style names).
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.strip_prefix("iresnet").map_or(name, |d| d);
        let short = short.strip_prefix('r').unwrap_or(short);
        match short {
            "18" => Some(Self::R18),
            "34" => Some(Self::R34),
            "50" => Some(Self::R50),
            "100" => Some(Self::R100),
            "200" => Some(Self::R200),
            _ => None,
        }
    }
}

/// Channel count of a stage whose full-width count is `base`, at width multiplier `width`:
/// `max(1, round(base · width))`.
pub fn scaled_channels(base: usize, width: f64) -> usize {
    ((base as f64 * width).round() as usize).max(1)
}

/// Spatial side after the four stride-2 stages: `s → ⌈s/2⌉` four times (112 → 7, 56 → 4).
pub fn final_side(input_size: usize) -> usize {
    (0..4).fold(input_size, |s, _| s.div_ceil(2))
}

/// Configuration of an [`IResNet`].
#[derive(Config, Debug)]
pub struct IResNetConfig {
    /// Blocks per stage (see [`IResNetDepth::layers`]).
    pub layers: [usize; 4],
    /// Width multiplier applied to the 64/128/256/512 channel counts.
    #[config(default = 1.0)]
    pub width: f64,
    /// Side of the square input image in pixels.
    #[config(default = 112)]
    pub input_size: usize,
    /// Embedding size (output of `fc` and `features`).
    #[config(default = 512)]
    pub embedding_size: usize,
    /// Dropout probability before `fc` (insightface: 0).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Batch-norm epsilon (insightface: 1e-5).
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// Batch-norm momentum, PyTorch's convention (insightface: 0.1).
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl IResNetConfig {
    /// The configuration of a released depth at full width, 112×112 input, 512-d embedding.
    pub fn depth(depth: IResNetDepth) -> Self {
        Self::new(depth.layers())
    }

    /// Channel counts of the four stages at this width.
    pub fn stage_channels(&self) -> [usize; 4] {
        [64, 128, 256, 512].map(|c| scaled_channels(c, self.width))
    }

    /// Initialises the network with insightface's scheme: convolutions `N(0, 0.1)`, batch-norm
    /// scale 1 and shift 0, PReLU slopes 0.25, `fc` PyTorch's default uniform.
    pub fn init(&self, device: &Device) -> IResNet {
        let [c1, c2, c3, c4] = self.stage_channels();
        let bn = |n: usize| {
            BatchNormConfig::new(n)
                .with_epsilon(self.bn_epsilon)
                .with_momentum(self.bn_momentum)
                .init(device)
        };
        let mut inplanes = c1;
        let mut stage = |planes: usize, blocks: usize| {
            let stage: Vec<IBasicBlock> = (0..blocks)
                .map(|i| {
                    let block = IBasicBlockConfig::new(inplanes, planes)
                        .with_stride(if i == 0 { 2 } else { 1 })
                        .with_bn_epsilon(self.bn_epsilon)
                        .with_bn_momentum(self.bn_momentum)
                        .init(device);
                    inplanes = planes;
                    block
                })
                .collect();
            stage
        };
        let layer1 = stage(c1, self.layers[0]);
        let layer2 = stage(c2, self.layers[1]);
        let layer3 = stage(c3, self.layers[2]);
        let layer4 = stage(c4, self.layers[3]);
        let side = final_side(self.input_size);
        let mut features = bn(self.embedding_size);
        // insightface fixes the embedding batch norm's scale at 1 and never trains it.
        features.gamma = features.gamma.set_require_grad(false);
        IResNet {
            conv1: conv3x3(3, c1, 1, device),
            bn1: bn(c1),
            prelu: PReluConfig::new().with_num_parameters(c1).init(device),
            layer1,
            layer2,
            layer3,
            layer4,
            bn2: bn(c4),
            dropout: DropoutConfig::new(self.dropout).init(),
            fc: LinearConfig::new(c4 * side * side, self.embedding_size).init(device),
            features,
        }
    }
}

/// insightface's convolution initialisation, `N(0, 0.1)`.
const CONV_INIT: Initializer = Initializer::Normal {
    mean: 0.0,
    std: 0.1,
};

fn conv3x3(input: usize, output: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(CONV_INIT)
        .init(device)
}

/// The IResNet: `[B, 3, S, S]` images to `[B, E]` embeddings.
#[derive(Module, Debug)]
pub struct IResNet {
    /// Stem convolution, 3×3, stride 1.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// Stem PReLU, one slope per channel.
    pub prelu: PRelu,
    /// Stage 1 (64·width channels).
    pub layer1: Vec<IBasicBlock>,
    /// Stage 2 (128·width channels).
    pub layer2: Vec<IBasicBlock>,
    /// Stage 3 (256·width channels).
    pub layer3: Vec<IBasicBlock>,
    /// Stage 4 (512·width channels).
    pub layer4: Vec<IBasicBlock>,
    /// Batch norm on the last feature map.
    pub bn2: BatchNorm,
    /// Dropout before the embedding layer.
    pub dropout: Dropout,
    /// Embedding layer, `C·s·s → E`.
    pub fc: Linear,
    /// Embedding batch norm (scale fixed at 1).
    pub features: BatchNorm,
}

impl IResNet {
    /// Embeds a batch of aligned faces, normalised as `(pixel / 255 − 0.5) / 0.5`.
    ///
    /// Batch norms use batch statistics when the input lives on an autodiff device and
    /// running statistics otherwise.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, S, S]` with `S` the configured input size
    /// - output: `[batch, embedding_size]` (not L2-normalised)
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.feature_map(images); // [B, C4, s, s]
        let x = batch_norm(&self.bn2, x);
        let x: Tensor<2> = x.flatten(1, 3); // [B, C4·s·s]
        let x = self.dropout.forward(x);
        let x = self.fc.forward(x); // [B, E]
        batch_norm(&self.features, x)
    }

    /// The last feature map, before the head.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, S, S]`
    /// - output: `[batch, 512·width, ⌈S/16⌉, ⌈S/16⌉]`
    pub fn feature_map(&self, images: Tensor<4>) -> Tensor<4> {
        let x = prelu(
            batch_norm(&self.bn1, conv2d(&self.conv1, images)),
            self.prelu.alpha.val(),
        );
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .flatten()
            .fold(x, |x, block| block.forward(x))
    }

    /// Size of the embedding this network outputs.
    pub fn embedding_size(&self) -> usize {
        self.features.beta.shape().dims::<1>()[0]
    }
}

/// Configuration of an [`IBasicBlock`].
#[derive(Config, Debug)]
pub struct IBasicBlockConfig {
    /// Input channels.
    pub inplanes: usize,
    /// Output channels.
    pub planes: usize,
    /// Stride of the second convolution (2 at the start of a stage).
    #[config(default = 1)]
    pub stride: usize,
    /// Batch-norm epsilon.
    #[config(default = 1e-5)]
    pub bn_epsilon: f64,
    /// Batch-norm momentum.
    #[config(default = 0.1)]
    pub bn_momentum: f64,
}

impl IBasicBlockConfig {
    /// Initialises the block; a shortcut projection is created when the stride or the
    /// channel count changes.
    pub fn init(&self, device: &Device) -> IBasicBlock {
        let bn = |n: usize| {
            BatchNormConfig::new(n)
                .with_epsilon(self.bn_epsilon)
                .with_momentum(self.bn_momentum)
                .init(device)
        };
        let downsample = (self.stride != 1 || self.inplanes != self.planes).then(|| Downsample {
            conv: Conv2dConfig::new([self.inplanes, self.planes], [1, 1])
                .with_stride([self.stride, self.stride])
                .with_bias(false)
                .with_initializer(CONV_INIT)
                .init(device),
            bn: bn(self.planes),
        });
        IBasicBlock {
            bn1: bn(self.inplanes),
            conv1: conv3x3(self.inplanes, self.planes, 1, device),
            bn2: bn(self.planes),
            prelu: PReluConfig::new()
                .with_num_parameters(self.planes)
                .init(device),
            conv2: conv3x3(self.planes, self.planes, self.stride, device),
            bn3: bn(self.planes),
            downsample,
        }
    }
}

/// The pre-activation residual block of IResNet:
/// `bn1 → conv1 → bn2 → prelu → conv2(stride) → bn3`, plus the shortcut, with no activation
/// after the sum.
#[derive(Module, Debug)]
pub struct IBasicBlock {
    /// Batch norm on the block input.
    pub bn1: BatchNorm,
    /// First 3×3 convolution, stride 1.
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn2: BatchNorm,
    /// PReLU after `bn2`.
    pub prelu: PRelu,
    /// Second 3×3 convolution, carrying the block's stride.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn3: BatchNorm,
    /// Shortcut projection (insightface's `downsample.0` / `downsample.1`).
    pub downsample: Option<Downsample>,
}

impl IBasicBlock {
    /// # Shapes
    /// - `x`: `[batch, inplanes, h, w]`
    /// - output: `[batch, planes, ⌈h/stride⌉, ⌈w/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(down) => down.forward(x.clone()),
            None => x.clone(),
        };
        let out = conv2d(&self.conv1, batch_norm(&self.bn1, x));
        let out = prelu(batch_norm(&self.bn2, out), self.prelu.alpha.val());
        let out = batch_norm(&self.bn3, conv2d(&self.conv2, out));
        out + identity
    }
}

/// The shortcut projection: 1×1 convolution with the block's stride, then batch norm.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 convolution.
    pub conv: Conv2d,
    /// Batch norm.
    pub bn: BatchNorm,
}

impl Downsample {
    /// # Shapes
    /// - `x`: `[batch, inplanes, h, w]`
    /// - output: `[batch, planes, ⌈h/stride⌉, ⌈w/stride⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_names_round_trip() {
        for d in [
            IResNetDepth::R18,
            IResNetDepth::R34,
            IResNetDepth::R50,
            IResNetDepth::R100,
            IResNetDepth::R200,
        ] {
            assert_eq!(IResNetDepth::parse(d.name()), Some(d));
        }
        assert_eq!(IResNetDepth::parse("iresnet100"), Some(IResNetDepth::R100));
        assert_eq!(IResNetDepth::parse("r101"), None);
    }

    #[test]
    fn final_side_matches_stride_two_convolutions() {
        // floor((s + 2·1 − 3) / 2) + 1 = ⌈s/2⌉, four times.
        assert_eq!(final_side(112), 7);
        assert_eq!(final_side(56), 4);
        assert_eq!(final_side(64), 4);
        assert_eq!(final_side(96), 6);
    }

    #[test]
    fn channels_scale_and_never_vanish() {
        assert_eq!(scaled_channels(64, 0.25), 16);
        assert_eq!(scaled_channels(512, 0.125), 64);
        assert_eq!(scaled_channels(64, 0.001), 1);
    }

    #[test]
    fn parameter_count_of_full_width_r50_matches_insightface() {
        // 43,590,848 is the number of weights (running statistics and counters excluded) in
        // the state dict of `scripts/iresnet_reference.py --arch r50`; the sum below counts
        // the same layers by hand. burn's `num_params` also counts the batch norms' running
        // mean and variance: two values per normalised channel.
        let config = IResNetConfig::depth(IResNetDepth::R50);
        let [c1, c2, c3, c4] = config.stage_channels();
        let bn = |c: usize| 2 * c;
        let mut weights = 3 * 9 * c1 + bn(c1) + c1;
        let mut bn_channels = c1;
        let mut inplanes = c1;
        for (planes, blocks) in [(c1, 3), (c2, 4), (c3, 14), (c4, 3)] {
            for i in 0..blocks {
                weights += bn(inplanes) + inplanes * planes * 9 + bn(planes) + planes;
                weights += planes * planes * 9 + bn(planes);
                bn_channels += inplanes + 2 * planes;
                if i == 0 {
                    weights += inplanes * planes + bn(planes);
                    bn_channels += planes;
                }
                inplanes = planes;
            }
        }
        weights += bn(c4) + c4 * 49 * 512 + 512 + bn(512);
        bn_channels += c4 + 512;
        assert_eq!(weights, 43_590_848);
        let model = config.init(&Device::default());
        assert_eq!(model.num_params(), weights + 2 * bn_channels);
    }
}
