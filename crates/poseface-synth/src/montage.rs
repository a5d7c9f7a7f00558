//! A contact sheet of identities across yaw, for looking at what the generator makes.

use image::RgbImage;
use poseface_data::pose::EulerAngles;

use crate::face::FaceShape;
use crate::identity::{Expression, Identity};
use crate::mesh::{FaceMesh, MeshResolution};
use crate::render::{Renderer, Scene};

/// Renders each identity (rows) at each yaw in degrees (columns), neutral expression,
/// frontal light, `tile`-pixel loose crops.
pub fn montage(identities: &[Identity], yaws: &[f32], tile: u32) -> RgbImage {
    let mut sheet = RgbImage::from_pixel(
        tile * yaws.len() as u32,
        tile * identities.len() as u32,
        image::Rgb([255, 255, 255]),
    );
    let mut renderer = Renderer::default();
    for (row, id) in identities.iter().enumerate() {
        let shape = FaceShape::new(id);
        let mesh = FaceMesh::build(&shape, MeshResolution::default());
        for (col, &yaw) in yaws.iter().enumerate() {
            let mut scene = Scene::clean(EulerAngles {
                yaw,
                pitch: 0.0,
                roll: 0.0,
            });
            scene.camera = crate::render::Camera::loose_crop(tile, tile as f32 * 0.26);
            let r = renderer.render(&shape, &mesh, &Expression::default(), &scene);
            image::imageops::replace(
                &mut sheet,
                &r.image,
                (col as u32 * tile) as i64,
                (row as u32 * tile) as i64,
            );
        }
    }
    sheet
}

/// The yaws of the standard montage: −90° to +90° in 9 steps.
pub fn montage_yaws() -> Vec<f32> {
    (0..9).map(|i| -90.0 + 22.5 * i as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityCode;
    use rand::SeedableRng;

    #[test]
    fn montage_has_one_tile_per_identity_and_yaw() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let ids: Vec<Identity> = (0..8)
            .map(|_| Identity::new(&IdentityCode::sample(&mut rng), 1.0))
            .collect();
        let sheet = montage(&ids, &montage_yaws(), 96);
        assert_eq!(sheet.dimensions(), (96 * 9, 96 * 8));
        if let Ok(p) = std::env::var("SYNTH_MONTAGE") {
            sheet.save(&p).unwrap();
        }
    }
}
