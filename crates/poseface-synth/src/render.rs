//! Rendering one posed, lit face into a loose crop with its 68 landmarks and visibility.
//!
//! Perspective camera at the origin looking along `+z` (`x` right, `y` down). The face's
//! centre (between the eyes and the mouth) sits on the optical axis at `distance_mm`; the
//! head is rotated by the pose with [`poseface_data::pose::rotation`], so the angles are
//! those that `poseface pose` estimates. Shading is Lambert plus ambient per vertex;
//! anti-aliasing is `supersample²` samples per pixel, composited over the background.

use image::RgbImage;
use poseface_data::landmarks::Point;
use poseface_data::pose::{EulerAngles, rotation};
use serde::{Deserialize, Serialize};

use crate::face::FaceShape;
use crate::identity::{Expression, lerp3};
use crate::mesh::FaceMesh;
use crate::noise::fbm;
use crate::raster::Raster;

/// The model-frame point placed on the optical axis: between the eyes and the mouth.
pub const FACE_CENTRE: [f32; 3] = [0.0, 36.0, -10.0];

/// Camera and framing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    /// Output width and height in pixels.
    pub size: u32,
    /// Focal length in pixels.
    pub focal_px: f32,
    /// Distance from the camera to the face centre (mm).
    pub distance_mm: f32,
    /// Where the face centre lands in the image (pixels).
    pub centre: [f32; 2],
}

impl Camera {
    /// A loose crop of `size` pixels with `eye_distance_px` between the eyes of a frontal
    /// face, centred.
    pub fn loose_crop(size: u32, eye_distance_px: f32) -> Self {
        let distance_mm = 600.0;
        Self {
            size,
            focal_px: eye_distance_px * distance_mm / 63.0,
            distance_mm,
            centre: [size as f32 * 0.5, size as f32 * 0.5],
        }
    }
}

/// A directional light plus ambient light.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Light {
    /// Unit vector towards the light, camera frame (`-z` points at the camera).
    pub direction: [f32; 3],
    /// Ambient intensity.
    pub ambient: f32,
    /// Directional intensity.
    pub diffuse: f32,
    /// Light colour (multiplies albedo).
    pub color: [f32; 3],
}

impl Default for Light {
    /// Frontal, slightly from above.
    fn default() -> Self {
        let d = [0.0f32, -0.3, -1.0];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        Self {
            direction: d.map(|v| v / n),
            ambient: 0.45,
            diffuse: 0.6,
            color: [1.0; 3],
        }
    }
}

/// What is behind the head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Background {
    /// One colour.
    Flat([f32; 3]),
    /// A linear gradient between two colours along `angle` (radians).
    Gradient {
        /// Colour at one side.
        from: [f32; 3],
        /// Colour at the other.
        to: [f32; 3],
        /// Direction of the gradient.
        angle: f32,
    },
    /// Fractal noise between two colours.
    Noise {
        /// First colour.
        a: [f32; 3],
        /// Second colour.
        b: [f32; 3],
        /// Pixels per noise cell.
        scale: f32,
        /// Noise seed.
        seed: u64,
    },
}

/// A background ready to sample: noise is evaluated on a grid of every other pixel and
/// interpolated bilinearly (its cells span 6–40 pixels, so nothing visible is lost and it
/// costs a quarter of the noise evaluations).
struct BackgroundSampler {
    background: Background,
    size: f32,
    grid: Vec<f32>,
    side: usize,
}

impl BackgroundSampler {
    fn new(background: Background, size: usize) -> Self {
        let side = size / 2 + 2;
        let grid = match background {
            Background::Noise { scale, seed, .. } => (0..side * side)
                .map(|i| {
                    let (gx, gy) = ((i % side) as f32 * 2.0, (i / side) as f32 * 2.0);
                    0.5 + 0.5 * fbm(seed, gx / scale, gy / scale, 3)
                })
                .collect(),
            _ => Vec::new(),
        };
        Self {
            background,
            size: size as f32,
            grid,
            side,
        }
    }

    fn at(&self, x: f32, y: f32) -> [f32; 3] {
        match self.background {
            Background::Noise { a, b, .. } => {
                let (gx, gy) = (x * 0.5, y * 0.5);
                let (ix, iy) = (gx as usize, gy as usize);
                let (fx, fy) = (gx - ix as f32, gy - iy as f32);
                let last = self.side - 1;
                let g = |i: usize, j: usize| self.grid[j.min(last) * self.side + i.min(last)];
                let top = g(ix, iy) + (g(ix + 1, iy) - g(ix, iy)) * fx;
                let bottom = g(ix, iy + 1) + (g(ix + 1, iy + 1) - g(ix, iy + 1)) * fx;
                lerp3(a, b, top + (bottom - top) * fy)
            }
            other => other.at(x, y, self.size),
        }
    }
}

impl Background {
    /// The colour at pixel position `(x, y)` of a `size`-pixel image.
    pub fn at(&self, x: f32, y: f32, size: f32) -> [f32; 3] {
        match *self {
            Background::Flat(c) => c,
            Background::Gradient { from, to, angle } => {
                let (s, c) = angle.sin_cos();
                let t = ((x / size - 0.5) * c + (y / size - 0.5) * s + 0.5).clamp(0.0, 1.0);
                lerp3(from, to, t)
            }
            Background::Noise { a, b, scale, seed } => {
                let t = 0.5 + 0.5 * fbm(seed, x / scale, y / scale, 3);
                lerp3(a, b, t)
            }
        }
    }
}

/// Image degradations applied after rendering.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Degradation {
    /// Gaussian blur sigma in pixels (0: none).
    pub blur_sigma: f32,
    /// Sensor noise standard deviation in grey levels (0: none).
    pub noise_sigma: f32,
    /// JPEG round trip at this quality (compression artefacts), if any.
    pub jpeg_quality: Option<u8>,
    /// Seed of the sensor noise.
    pub seed: u64,
}

/// Everything about one picture except the face itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Head pose (degrees, the [`poseface_data::pose`] convention).
    pub pose: EulerAngles,
    /// Camera and framing.
    pub camera: Camera,
    /// Lighting.
    pub light: Light,
    /// Background.
    pub background: Background,
    /// Degradations.
    pub degradation: Degradation,
    /// Samples per pixel along each axis (1 = no anti-aliasing).
    pub supersample: u32,
}

impl Scene {
    /// A clean frontal-light scene of `pose` in a 160-pixel loose crop (42 px between the eyes).
    pub fn clean(pose: EulerAngles) -> Self {
        Self {
            pose,
            camera: Camera::loose_crop(160, 42.0),
            light: Light::default(),
            background: Background::Flat([0.55, 0.58, 0.62]),
            degradation: Degradation::default(),
            supersample: 2,
        }
    }
}

/// A rendered picture with its ground truth.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The image.
    pub image: RgbImage,
    /// The 68 landmarks in image pixels (iBUG order), hidden ones included.
    pub landmarks: Vec<Point>,
    /// Whether each landmark is visible (in the image and not occluded by the head).
    pub visible: Vec<bool>,
    /// Region code per pixel (see [`crate::face::Region`]), the first covered sample's.
    pub regions: Vec<u8>,
}

/// Reusable buffers for rendering; one per thread.
#[derive(Debug, Default)]
pub struct Renderer {
    raster: Raster,
    position: Vec<[f32; 3]>,
    albedo: Vec<[f32; 3]>,
    normal: Vec<[f32; 3]>,
    screen: Vec<[f32; 3]>,
    shade: Vec<[f32; 3]>,
}

fn mat_vec(m: &[[f32; 3]; 3], v: [f32; 3]) -> [f32; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// The pose's rotation as an `f32` row-major matrix.
pub fn rotation_f32(pose: EulerAngles) -> [[f32; 3]; 3] {
    let r = rotation(
        (pose.yaw as f64).to_radians(),
        (pose.pitch as f64).to_radians(),
        (pose.roll as f64).to_radians(),
    );
    let mut m = [[0.0f32; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = r[(i, j)] as f32;
        }
    }
    m
}

/// Projects model-frame points through `camera` at `pose`: pixel `x`, `y` and camera `z`.
pub fn project_points(points: &[[f32; 3]], pose: EulerAngles, camera: &Camera) -> Vec<[f32; 3]> {
    let r = rotation_f32(pose);
    let c = mat_vec(&r, FACE_CENTRE);
    points
        .iter()
        .map(|p| {
            let q = mat_vec(&r, *p);
            let (x, y, z) = (q[0] - c[0], q[1] - c[1], q[2] - c[2] + camera.distance_mm);
            [
                camera.centre[0] + camera.focal_px * x / z,
                camera.centre[1] + camera.focal_px * y / z,
                z,
            ]
        })
        .collect()
}

impl Renderer {
    /// Renders `mesh` (whose shape is `shape`) with expression `e` into `scene`.
    pub fn render(
        &mut self,
        shape: &FaceShape,
        mesh: &FaceMesh,
        e: &Expression,
        scene: &Scene,
    ) -> Rendered {
        let ss = scene.supersample.max(1) as usize;
        let size = scene.camera.size as usize;
        let n = size * ss;
        self.raster.reset(n, n);
        mesh.pose_expression(e, &mut self.position, &mut self.albedo);
        mesh.normals(&self.position, &mut self.normal);
        let r = rotation_f32(scene.pose);
        let cam = scene.camera;
        let c = mat_vec(&r, FACE_CENTRE);
        let f = cam.focal_px * ss as f32;
        let (cx, cy) = (cam.centre[0] * ss as f32, cam.centre[1] * ss as f32);
        let light = scene.light;
        self.screen.clear();
        self.shade.clear();
        for ((p, a), nrm) in self.position.iter().zip(&self.albedo).zip(&self.normal) {
            let q = mat_vec(&r, *p);
            let z = q[2] - c[2] + cam.distance_mm;
            self.screen.push([
                cx + f * (q[0] - c[0]) / z,
                cy + f * (q[1] - c[1]) / z,
                1.0 / z,
            ]);
            let nc = mat_vec(&r, *nrm);
            let lambert = (nc[0] * light.direction[0]
                + nc[1] * light.direction[1]
                + nc[2] * light.direction[2])
                .max(0.0);
            // Surfaces seen edge-on darken a little, which reads as roundness.
            let facing = 0.8 + 0.2 * (-nc[2]).clamp(0.0, 1.0);
            let s = (light.ambient + light.diffuse * lambert) * facing;
            self.shade.push([
                a[0] * s * light.color[0],
                a[1] * s * light.color[1],
                a[2] * s * light.color[2],
            ]);
        }
        let regions = mesh.regions();
        let (screen, shade, raster) = (&self.screen, &self.shade, &mut self.raster);
        mesh.for_each_triangle(|t| {
            raster.triangle(
                [screen[t[0]], screen[t[1]], screen[t[2]]],
                [shade[t[0]], shade[t[1]], shade[t[2]]],
                [regions[t[0]], regions[t[1]], regions[t[2]]],
            );
        });
        let background = BackgroundSampler::new(scene.background, size);
        let mut pixels = vec![[0.0f32; 3]; size * size];
        let mut region_map = vec![0u8; size * size];
        let inv = 1.0 / (ss * ss) as f32;
        for y in 0..size {
            for x in 0..size {
                let mut bg = None;
                let mut acc = [0.0f32; 3];
                let mut reg = 0u8;
                for sy in 0..ss {
                    for sx in 0..ss {
                        let i = (y * ss + sy) * n + x * ss + sx;
                        let col = if self.raster.inv_depth[i] > 0.0 {
                            if reg == 0 {
                                reg = self.raster.region[i];
                            }
                            self.raster.color[i]
                        } else {
                            // The background is only evaluated where it shows.
                            *bg.get_or_insert_with(|| background.at(x as f32 + 0.5, y as f32 + 0.5))
                        };
                        acc = [acc[0] + col[0], acc[1] + col[1], acc[2] + col[2]];
                    }
                }
                pixels[y * size + x] = acc.map(|v| v * inv);
                region_map[y * size + x] = reg;
            }
        }
        let image = degrade(pixels, size, &scene.degradation);
        // Landmarks: projected, then checked against the depth buffer.
        let lm3 = shape.landmarks(e);
        let projected = project_points(&lm3, scene.pose, &cam);
        let mut landmarks = Vec::with_capacity(68);
        let mut visible = Vec::with_capacity(68);
        for p in &projected {
            landmarks.push([p[0], p[1]]);
            visible.push(self.landmark_visible(p, ss));
        }
        Rendered {
            image,
            landmarks,
            visible,
            regions: region_map,
        }
    }

    /// A landmark is visible when it is inside the image and no surface within a sample or
    /// two of it is more than 4 mm nearer the camera.
    fn landmark_visible(&self, p: &[f32; 3], ss: usize) -> bool {
        let n = self.raster.width() as isize;
        let (x, y) = ((p[0] * ss as f32) as isize, (p[1] * ss as f32) as isize);
        if p[0] < 0.0 || p[1] < 0.0 || x >= n || y >= n {
            return false;
        }
        let reach = ss as isize;
        let mut farthest_near = 0.0f32;
        for dy in -reach..=reach {
            for dx in -reach..=reach {
                let (xx, yy) = (x + dx, y + dy);
                if xx < 0 || yy < 0 || xx >= n || yy >= n {
                    continue;
                }
                let iz = self.raster.inv_depth[(yy * n + xx) as usize];
                if iz <= 0.0 {
                    return true; // at the silhouette: nothing covers it
                }
                farthest_near = farthest_near.max(1.0 / iz);
            }
        }
        p[2] <= farthest_near + 4.0
    }
}

/// Blur, sensor noise and compression, then quantisation to 8 bits.
fn degrade(mut pixels: Vec<[f32; 3]>, size: usize, d: &Degradation) -> RgbImage {
    if d.blur_sigma > 0.05 {
        pixels = gaussian_blur(&pixels, size, d.blur_sigma);
    }
    if d.noise_sigma > 0.0 {
        // Sensor noise: an Irwin–Hall approximation of a Gaussian (sum of four uniforms,
        // variance matched), four 16-bit uniforms per 64-bit draw; exact normality does
        // not matter here and this is several times cheaper than a normal sampler.
        // SplitMix64: statistically fine for pixel noise and much cheaper than ChaCha.
        let mut state = d.seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let scale = d.noise_sigma / 255.0 * 3.0f32.sqrt() / 65535.0;
        for p in pixels.iter_mut() {
            for v in p.iter_mut() {
                let r = next();
                let sum = (r & 0xFFFF) + (r >> 16 & 0xFFFF) + (r >> 32 & 0xFFFF) + (r >> 48);
                *v += (sum as f32 - 2.0 * 65535.0) * scale;
            }
        }
    }
    let mut img = RgbImage::new(size as u32, size as u32);
    for (o, p) in img.pixels_mut().zip(&pixels) {
        // Round half up via a truncating cast (the value is clamped to be non-negative).
        o.0 = p.map(|v| (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8);
    }
    if let Some(q) = d.jpeg_quality {
        let bytes = poseface_data::decode::encode_jpeg(&img, q);
        img = poseface_data::decode_rgb(&bytes, "jpeg round trip").expect("our own JPEG decodes");
    }
    img
}

fn gaussian_blur(src: &[[f32; 3]], size: usize, sigma: f32) -> Vec<[f32; 3]> {
    let radius = (2.5 * sigma).ceil() as isize;
    let k: Vec<f32> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let pass = |src: &[[f32; 3]], horizontal: bool| {
        let mut out = vec![[0.0f32; 3]; src.len()];
        for y in 0..size {
            for x in 0..size {
                let mut acc = [0.0f32; 3];
                for (j, w) in k.iter().enumerate() {
                    let o = j as isize - radius;
                    let (sx, sy) = if horizontal {
                        ((x as isize + o).clamp(0, size as isize - 1) as usize, y)
                    } else {
                        (x, (y as isize + o).clamp(0, size as isize - 1) as usize)
                    };
                    let s = src[sy * size + sx];
                    acc = [acc[0] + w * s[0], acc[1] + w * s[1], acc[2] + w * s[2]];
                }
                out[y * size + x] = acc;
            }
        }
        out
    };
    let h = pass(src, true);
    pass(&h, false)
}
