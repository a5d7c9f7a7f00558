//! Identity and expression parameters of the procedural face.
//!
//! An identity is a vector of standard-normal scores ([`IdentityCode`]), one per named
//! parameter of [`IDENTITY_PARAMS`], plus a texture seed. [`Identity::new`] turns the scores
//! into millimetres, scale factors and colours as `mean + spread · sd · z`, so `spread` is the
//! difficulty knob: smaller spreads put identities closer together. Distances between
//! identities ([`IdentityCode::distance`]) are taken on the scores, which is what "nearest
//! identities in parameter space" means for hard negative pairs.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How one identity parameter is distributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParamSpec {
    /// The field name in [`Identity`].
    pub name: &'static str,
    /// Population mean.
    pub mean: f32,
    /// Population standard deviation at `spread = 1`.
    pub sd: f32,
    /// Lowest allowed value.
    pub min: f32,
    /// Highest allowed value.
    pub max: f32,
}

macro_rules! identity_params {
    ($( #[doc = $doc:literal] $name:ident: $mean:expr, $sd:expr, $lo:expr, $hi:expr; )*) => {
        /// The shape, colour and texture of one synthetic person (lengths in millimetres in the
        /// model frame of [`poseface_data::mean_face`]: `x` right, `y` down, `z` away).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Identity {
            $( #[doc = $doc] pub $name: f32, )*
            /// Seed of the skin and hair texture pattern.
            pub texture_seed: u64,
        }

        /// Every identity parameter, in the order of [`IdentityCode::z`].
        pub const IDENTITY_PARAMS: &[ParamSpec] = &[
            $( ParamSpec { name: stringify!($name), mean: $mean, sd: $sd, min: $lo, max: $hi }, )*
        ];

        impl Identity {
            fn from_values(v: &[f32], texture_seed: u64) -> Self {
                let mut it = v.iter().copied();
                Self {
                    $( $name: it.next().expect("one value per parameter"), )*
                    texture_seed,
                }
            }
        }
    };
}

identity_params! {
    /// Head width scale.
    head_width: 1.0, 0.05, 0.85, 1.15;
    /// Head height scale (skull above the eyes).
    head_height: 1.0, 0.05, 0.85, 1.15;
    /// Head depth scale (back of the skull).
    head_depth: 1.0, 0.05, 0.85, 1.15;
    /// Jaw width at the jaw angle, as a fraction of the head width.
    jaw_width: 0.78, 0.06, 0.6, 0.95;
    /// Cheekbone fullness (mm outwards).
    cheek: 5.0, 2.0, 0.0, 11.0;
    /// Chin height change (mm, positive = longer face).
    chin_length: 0.0, 5.0, -12.0, 12.0;
    /// Chin prominence (mm forwards).
    chin_protrusion: 5.0, 2.5, -2.0, 12.0;
    /// Brow ridge prominence (mm).
    brow_ridge: 6.5, 1.5, 2.0, 11.0;
    /// Eyebrow height change (mm, positive = higher).
    brow_height: 0.0, 2.5, -6.0, 6.0;
    /// Eyebrow thickness (mm).
    brow_thickness: 4.0, 1.0, 1.5, 7.0;
    /// Eyebrow darkness relative to the hair (0 = skin-coloured, 1 = hair-coloured).
    brow_tone: 0.75, 0.15, 0.3, 1.0;
    /// Half the distance between the eye centres (mm).
    eye_spacing: 31.5, 2.2, 26.0, 37.0;
    /// Half the eye-opening width (mm).
    eye_width: 13.0, 1.2, 10.0, 16.0;
    /// Half the eye-opening height (mm).
    eye_height: 4.6, 0.8, 2.5, 7.0;
    /// Eye tilt (radians, positive = outer corners up).
    eye_tilt: 0.0, 0.07, -0.2, 0.2;
    /// Nose length: eye line to nose tip (mm).
    nose_length: 36.0, 3.5, 27.0, 45.0;
    /// Half the width of the nostril wings (mm).
    nose_width: 17.0, 2.0, 12.0, 23.0;
    /// Nose bridge height at the eye line (mm out of the face).
    nose_bridge: 8.0, 2.5, 3.0, 15.0;
    /// Nose tip height (mm out of the face).
    nose_tip: 27.0, 3.5, 18.0, 36.0;
    /// Half the mouth width (mm).
    mouth_width: 26.0, 2.5, 20.0, 33.0;
    /// Lip thickness (mm).
    lip_thickness: 5.5, 1.2, 3.0, 9.0;
    /// Mouth line below the eye line (mm).
    mouth_y: 72.0, 3.5, 63.0, 82.0;
    /// Ear size scale.
    ear_size: 1.0, 0.1, 0.75, 1.3;
    /// How far the ears stand out (mm).
    ear_protrusion: 13.0, 3.5, 5.0, 22.0;
    /// Ear height change (mm, positive = lower).
    ear_y: 0.0, 4.0, -10.0, 10.0;
    /// Skin tone (0 = light, 1 = dark).
    skin_tone: 0.45, 0.25, 0.0, 1.0;
    /// Skin redness (negative = more yellow).
    skin_red: 0.0, 0.5, -1.0, 1.0;
    /// Strength of the skin texture pattern.
    texture: 0.5, 0.25, 0.05, 1.0;
    /// Hair tone (0 = black, 0.5 = brown, 1 = blond).
    hair_tone: 0.3, 0.3, 0.0, 1.0;
    /// Front hairline height (mm above the eye line, negative y).
    hairline: -58.0, 8.0, -85.0, -40.0;
    /// Hair volume (mm above the skull).
    hair_volume: 7.0, 4.0, 0.0, 16.0;
    /// Hair length at the back and sides (0 = short, 1 = to the neck).
    hair_length: 0.3, 0.3, 0.0, 1.0;
    /// Iris tone (0 = dark brown, 1 = blue).
    iris_tone: 0.3, 0.35, 0.0, 1.0;
    /// Beard shadow (0 = none).
    beard: 0.0, 0.5, 0.0, 1.0;
}

/// An identity as standard-normal scores, one per [`IDENTITY_PARAMS`] entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityCode {
    /// The scores, clamped to `[-2.5, 2.5]`.
    pub z: Vec<f32>,
    /// Texture seed.
    pub texture_seed: u64,
}

impl IdentityCode {
    /// Draws an identity.
    pub fn sample(rng: &mut impl Rng) -> Self {
        let z = IDENTITY_PARAMS
            .iter()
            .map(|_| {
                let v: f32 = StandardNormal.sample(rng);
                v.clamp(-2.5, 2.5)
            })
            .collect();
        Self {
            z,
            texture_seed: rng.random(),
        }
    }

    /// The mean identity (all scores zero).
    pub fn mean() -> Self {
        Self {
            z: vec![0.0; IDENTITY_PARAMS.len()],
            texture_seed: 0,
        }
    }

    /// Euclidean distance between two codes' scores.
    pub fn distance(&self, other: &Self) -> f32 {
        self.z
            .iter()
            .zip(&other.z)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt()
    }
}

impl Identity {
    /// The identity a code stands for, with deviations from the mean scaled by `spread`.
    pub fn new(code: &IdentityCode, spread: f32) -> Self {
        let values: Vec<f32> = IDENTITY_PARAMS
            .iter()
            .zip(&code.z)
            .map(|(p, z)| (p.mean + spread * p.sd * z).clamp(p.min, p.max))
            .collect();
        Self::from_values(&values, code.texture_seed)
    }

    /// Skin albedo (linear RGB in `[0, 1]`).
    pub fn skin_rgb(&self) -> [f32; 3] {
        let light = [0.94, 0.78, 0.67];
        let dark = [0.36, 0.23, 0.16];
        let t = self.skin_tone;
        let mut c = lerp3(light, dark, t);
        c[0] += 0.035 * self.skin_red;
        c[2] -= 0.03 * self.skin_red;
        c
    }

    /// Hair albedo.
    pub fn hair_rgb(&self) -> [f32; 3] {
        let black = [0.05, 0.045, 0.04];
        let brown = [0.33, 0.2, 0.11];
        let blond = [0.78, 0.63, 0.38];
        if self.hair_tone < 0.5 {
            lerp3(black, brown, self.hair_tone * 2.0)
        } else {
            lerp3(brown, blond, self.hair_tone * 2.0 - 1.0)
        }
    }

    /// Iris albedo.
    pub fn iris_rgb(&self) -> [f32; 3] {
        lerp3([0.22, 0.12, 0.06], [0.3, 0.45, 0.65], self.iris_tone)
    }
}

/// Linear interpolation of two colours.
pub(crate) fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// A facial expression; every field `0` is the neutral face.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Expression {
    /// Jaw drop, `0..=1` (1 ≈ a 14 mm gap between the lips).
    pub mouth_open: f32,
    /// Smile, `0..=1` (mouth corners out and up, cheeks raised).
    pub smile: f32,
    /// Eyebrow raise, `0..=1` (≈ 6 mm).
    pub brow_raise: f32,
    /// Eyes closed.
    pub eyes_closed: bool,
}

impl Expression {
    /// Draws an expression; `strength` (0..=1) scales how often and how strongly the face
    /// departs from neutral (0 gives the neutral face).
    pub fn sample(rng: &mut impl Rng, strength: f32) -> Self {
        let mut draw = |p: f32| {
            let on = rng.random::<f32>() < p * strength;
            let amount = rng.random::<f32>() * strength;
            if on { amount } else { 0.0 }
        };
        let mouth_open = draw(0.35);
        let smile = draw(0.45);
        let brow_raise = draw(0.3);
        let eyes_closed = rng.random::<f32>() < 0.08 * strength;
        Self {
            mouth_open,
            smile,
            brow_raise,
            eyes_closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn spread_scales_deviation_and_mean_code_gives_means() {
        let mean = Identity::new(&IdentityCode::mean(), 1.0);
        assert_eq!(mean.eye_spacing, 31.5);
        assert_eq!(mean.nose_tip, 27.0);
        let mut code = IdentityCode::mean();
        code.z[IDENTITY_PARAMS
            .iter()
            .position(|p| p.name == "nose_tip")
            .unwrap()] = 1.0;
        assert_eq!(Identity::new(&code, 1.0).nose_tip, 27.0 + 3.5);
        assert_eq!(Identity::new(&code, 0.5).nose_tip, 27.0 + 1.75);
        assert_eq!(code.distance(&IdentityCode::mean()), 1.0);
    }

    #[test]
    fn parameters_stay_in_range_and_expressions_are_neutral_at_zero() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let code = IdentityCode::sample(&mut rng);
            let id = Identity::new(&code, 2.0);
            assert!((26.0..=37.0).contains(&id.eye_spacing));
            assert!(id.skin_rgb().iter().all(|c| (0.0..=1.0).contains(c)));
            assert_eq!(Expression::sample(&mut rng, 0.0), Expression::default());
        }
        assert_eq!(IDENTITY_PARAMS.len(), 34);
    }
}
