//! Configurations of the margin heads: one serde struct per head with the field defaults
//! of its paper or of insightface, and [`MarginHeadConfig`], the `kind`-tagged choice among
//! them that experiment files hold. Each rejects unknown fields; [`MarginHeadConfig::validate`]
//! names the first parameter out of range.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::LossError;
use crate::pose_margin::PoseMapping;

/// Whether the margin's own derivative takes part in back-propagation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarginGradient {
    /// Differentiate the margin formula (e.g. `∂cos(θ+m)/∂cos θ = sin(θ+m)/sin θ`), with the
    /// monotone fallback past `θ + m = π`: the ArcFace paper, and the `ArcFace` class of
    /// insightface's `arcface_torch` before its `CombinedMarginLoss`.
    #[default]
    Full,
    /// Forward with the margin, backward as if the target were the plain cosine:
    /// `target = cos θ + stop_gradient(f(cos θ) − cos θ)`, where `f` is the margin formula
    /// itself (`cos(acos(cos θ) + m)`, no fallback past π): `arcface_torch`'s current
    /// `CombinedMarginLoss`, which adds the margin under `torch.no_grad()`.
    StraightThrough,
}

macro_rules! head_config {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty = $default:expr),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }
    };
}

head_config!(
    /// Normalised softmax: `s·cos θ` for every class.
    SoftmaxConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
    }
);
head_config!(
    /// SphereFace's multiplicative angular margin on normalised features.
    SphereFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angle multiplier `m` (SphereFace-R's 1.5 by default).
        m: f64 = 1.5,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
    }
);
head_config!(
    /// CosFace (large-margin cosine loss).
    CosFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Cosine margin `m`.
        m: f64 = 0.4,
        /// Inter-class filtering (`arcface_torch`'s `interclass_filtering_threshold`): a
        /// non-target cosine above it counts as 0 (and passes no gradient), for noisy labels
        /// whose true class shows as a very close "negative". 0 (the default): off.
        interclass_filtering_threshold: f64 = 0.0,
    }
);
head_config!(
    /// ArcFace (additive angular margin).
    ArcFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angular margin `m` in radians.
        m: f64 = 0.5,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
        /// Inter-class filtering (`arcface_torch`'s `interclass_filtering_threshold`): a
        /// non-target cosine above it counts as 0 (and passes no gradient), for noisy labels
        /// whose true class shows as a very close "negative". 0 (the default): off.
        interclass_filtering_threshold: f64 = 0.0,
    }
);
head_config!(
    /// The combined margin `cos(m1·θ + m2) − m3` of the ArcFace paper and insightface's MXNet
    /// training code (`arcface_torch`'s `CombinedMarginLoss` does not combine them: with
    /// `m3 > 0` it applies `m3` alone).
    CombinedConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Multiplicative angular margin.
        m1: f64 = 1.0,
        /// Additive angular margin (radians).
        m2: f64 = 0.3,
        /// Additive cosine margin.
        m3: f64 = 0.2,
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
        /// Inter-class filtering (`arcface_torch`'s `interclass_filtering_threshold`): a
        /// non-target cosine above it counts as 0 (and passes no gradient), for noisy labels
        /// whose true class shows as a very close "negative". 0 (the default): off.
        interclass_filtering_threshold: f64 = 0.0,
    }
);
head_config!(
    /// CurricularFace: ArcFace target, hard negatives re-weighted by the running `t`.
    CurricularFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Angular margin `m`.
        m: f64 = 0.5,
        /// Weight of the current batch in `t`'s moving average.
        momentum: f64 = 0.01,
    }
);
head_config!(
    /// MagFace: the margin grows with the embedding norm, which a regulariser pulls up.
    MagFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Lower norm bound `l_a`.
        l_a: f64 = 10.0,
        /// Upper norm bound `u_a`.
        u_a: f64 = 110.0,
        /// Margin at `l_a`.
        l_m: f64 = 0.45,
        /// Margin at `u_a`.
        u_m: f64 = 0.8,
        /// Weight `λ_g` of the regulariser `g(a) = a/u_a² + 1/a`.
        lambda_g: f64 = 35.0,
    }
);
head_config!(
    /// AdaFace: angular and additive margins steered by the norm's batch z-score.
    AdaFaceConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Margin `m`.
        m: f64 = 0.4,
        /// Concentration `h` of the norm z-score.
        h: f64 = 0.333,
        /// Weight of the current batch in the norm statistics' moving average.
        t_alpha: f64 = 0.01,
    }
);
head_config!(
    /// PoseFace's Pose-Adaptive ArcFace: `m_i = base_margin + r_i·delta_margin`.
    PaaConfig {
        /// Logit scale `s`.
        scale: f64 = 64.0,
        /// Margin `m_b` of the easiest pose (radians).
        base_margin: f64 = 0.5,
        /// Extra margin `δm` at `r = 1` (radians). The paper gives no value; 0.2 is our
        /// starting point, measured in the ablation study.
        delta_margin: f64 = 0.2,
        /// How Euler angles become `r`.
        mapping: PoseMapping = PoseMapping::default(),
        /// Margin gradient.
        gradient: MarginGradient = MarginGradient::Full,
        /// Inter-class filtering (`arcface_torch`'s `interclass_filtering_threshold`): a
        /// non-target cosine above it counts as 0 (and passes no gradient), for noisy labels
        /// whose true class shows as a very close "negative". 0 (the default): off.
        interclass_filtering_threshold: f64 = 0.0,
    }
);

/// Which head to train with, and its parameters. In TOML:
/// `[head] kind = "paa"`, `base_margin = 0.5`, `mapping = { kind = "threshold" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum MarginHeadConfig {
    /// Normalised softmax.
    #[serde(rename = "softmax")]
    Softmax(SoftmaxConfig),
    /// SphereFace.
    #[serde(rename = "sphereface")]
    SphereFace(SphereFaceConfig),
    /// CosFace.
    #[serde(rename = "cosface")]
    CosFace(CosFaceConfig),
    /// ArcFace.
    #[serde(rename = "arcface")]
    ArcFace(ArcFaceConfig),
    /// Combined margin.
    #[serde(rename = "combined")]
    Combined(CombinedConfig),
    /// CurricularFace.
    #[serde(rename = "curricularface")]
    CurricularFace(CurricularFaceConfig),
    /// MagFace.
    #[serde(rename = "magface")]
    MagFace(MagFaceConfig),
    /// AdaFace.
    #[serde(rename = "adaface")]
    AdaFace(AdaFaceConfig),
    /// Pose-Adaptive ArcFace.
    #[serde(rename = "paa")]
    Paa(PaaConfig),
}

impl Default for MarginHeadConfig {
    fn default() -> Self {
        Self::ArcFace(ArcFaceConfig::default())
    }
}

impl MarginHeadConfig {
    /// The head's name as written in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Softmax(_) => "softmax",
            Self::SphereFace(_) => "sphereface",
            Self::CosFace(_) => "cosface",
            Self::ArcFace(_) => "arcface",
            Self::Combined(_) => "combined",
            Self::CurricularFace(_) => "curricularface",
            Self::MagFace(_) => "magface",
            Self::AdaFace(_) => "adaface",
            Self::Paa(_) => "paa",
        }
    }

    /// The logit scale `s`.
    pub fn scale(&self) -> f64 {
        match self {
            Self::Softmax(c) => c.scale,
            Self::SphereFace(c) => c.scale,
            Self::CosFace(c) => c.scale,
            Self::ArcFace(c) => c.scale,
            Self::Combined(c) => c.scale,
            Self::CurricularFace(c) => c.scale,
            Self::MagFace(c) => c.scale,
            Self::AdaFace(c) => c.scale,
            Self::Paa(c) => c.scale,
        }
    }

    /// The inter-class filtering threshold (0: off; heads without the option).
    pub fn interclass_filtering_threshold(&self) -> f64 {
        match self {
            Self::CosFace(c) => c.interclass_filtering_threshold,
            Self::ArcFace(c) => c.interclass_filtering_threshold,
            Self::Combined(c) => c.interclass_filtering_threshold,
            Self::Paa(c) => c.interclass_filtering_threshold,
            _ => 0.0,
        }
    }

    /// Whether the head reads the embeddings' norms.
    pub fn needs_norms(&self) -> bool {
        matches!(self, Self::MagFace(_) | Self::AdaFace(_))
    }

    /// Whether the head reads the samples' Euler angles.
    pub fn needs_pose(&self) -> bool {
        matches!(self, Self::Paa(_))
    }

    /// Checks every parameter's range and names the first one out of it.
    pub fn validate(&self) -> Result<(), LossError> {
        let name = self.name();
        let check = |field: &str, value: f64, ok: bool| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(LossError::Config(format!(
                    "{name}.{field} = {value} is out of range"
                )))
            }
        };
        let s = self.scale();
        check("scale", s, s > 0.0)?;
        let filter = self.interclass_filtering_threshold();
        check(
            "interclass_filtering_threshold",
            filter,
            (0.0..=1.0).contains(&filter),
        )?;
        let margin = |field: &str, m: f64| check(field, m, (0.0..PI).contains(&m));
        match self {
            Self::Softmax(_) => Ok(()),
            Self::SphereFace(c) => check("m", c.m, c.m >= 1.0),
            Self::CosFace(c) => check("m", c.m, (0.0..2.0).contains(&c.m)),
            Self::ArcFace(c) => margin("m", c.m),
            Self::Combined(c) => {
                check("m1", c.m1, c.m1 > 0.0)?;
                margin("m2", c.m2)?;
                check("m3", c.m3, (0.0..2.0).contains(&c.m3))
            }
            Self::CurricularFace(c) => {
                margin("m", c.m)?;
                check("momentum", c.momentum, (0.0..=1.0).contains(&c.momentum))
            }
            Self::MagFace(c) => {
                check("l_a", c.l_a, c.l_a > 0.0)?;
                check("u_a", c.u_a, c.u_a > c.l_a)?;
                margin("l_m", c.l_m)?;
                margin("u_m", c.u_m)?;
                check("lambda_g", c.lambda_g, c.lambda_g >= 0.0)
            }
            Self::AdaFace(c) => {
                margin("m", c.m)?;
                check("h", c.h, c.h >= 0.0)?;
                check("t_alpha", c.t_alpha, (0.0..=1.0).contains(&c.t_alpha))
            }
            Self::Paa(c) => {
                margin("base_margin", c.base_margin)?;
                check("delta_margin", c.delta_margin, c.delta_margin >= 0.0)?;
                margin("base_margin + delta_margin", c.base_margin + c.delta_margin)?;
                c.mapping.validate()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_names_every_head_and_rejects_unknown_fields() {
        let c: MarginHeadConfig =
            toml::from_str("kind = \"paa\"\nbase_margin = 0.4\nmapping = { kind = \"linear\" }")
                .unwrap();
        let MarginHeadConfig::Paa(paa) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(paa.base_margin, 0.4);
        assert_eq!(paa.delta_margin, 0.2);
        assert_eq!(paa.mapping, PoseMapping::Linear);
        for kind in [
            "softmax",
            "sphereface",
            "cosface",
            "arcface",
            "combined",
            "curricularface",
            "magface",
            "adaface",
            "paa",
        ] {
            let c: MarginHeadConfig = toml::from_str(&format!("kind = \"{kind}\"")).unwrap();
            assert_eq!(c.name(), kind);
            c.validate().unwrap();
        }
        let e = toml::from_str::<MarginHeadConfig>("kind = \"arcface\"\nmargin = 0.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `margin`"), "{e}");
        let e = toml::from_str::<MarginHeadConfig>("kind = \"arcface\"\ngradient = \"none\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("straight-through"), "{e}");
    }

    #[test]
    fn out_of_range_parameters_are_named() {
        let c = MarginHeadConfig::ArcFace(ArcFaceConfig {
            m: 3.5,
            ..Default::default()
        });
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "invalid loss configuration: arcface.m = 3.5 is out of range"
        );
        let c = MarginHeadConfig::MagFace(MagFaceConfig {
            u_a: 5.0,
            ..Default::default()
        });
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("magface.u_a")
        );
    }
}
