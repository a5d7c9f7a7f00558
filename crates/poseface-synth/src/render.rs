//! Rendering one posed, lit face into a loose crop with its 68 landmarks and visibility.
//!
//! Perspective camera at the origin looking along `+z` (`x` right, `y` down). The face's
//! centre (between the eyes and the mouth) sits on the optical axis at `distance_mm`; the
//! head is rotated by the pose with [`poseface_data::pose::rotation`], so the angles are
//! those that `poseface pose` estimates. Shading is Lambert plus ambient per vertex.
//! Anti-aliasing takes `supersample²` samples per pixel, composited over the background:
//! in every pixel ([`Antialias::Full`]) or, by default, only in the pixels at an edge of
//! the one-sample picture ([`Antialias::Edges`]), where aliasing shows.

use image::RgbImage;
use poseface_data::landmarks::Point;
use poseface_data::pose::{EulerAngles, rotation};
use serde::{Deserialize, Serialize};

use crate::face::FaceShape;
use crate::identity::{Expression, lerp3};
use crate::mesh::FaceMesh;
use crate::noise::{fbm, fbm_row};
use crate::raster::{EdgeSamples, Raster, RowClasses, sort_grid_row};

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
    /// `sin_cos` of a gradient's angle, once per picture.
    sin_cos: (f32, f32),
}

impl BackgroundSampler {
    fn new(background: Background, size: usize) -> Self {
        let side = size / 2 + 2;
        let grid = match background {
            Background::Noise { scale, seed, .. } => {
                let xs: Vec<f32> = (0..side).map(|i| i as f32 * 2.0 / scale).collect();
                let mut grid = vec![0.0; side * side];
                for (j, row) in grid.chunks_exact_mut(side).enumerate() {
                    fbm_row(seed, &xs, j as f32 * 2.0 / scale, 3, row);
                    row.iter_mut().for_each(|v| *v = 0.5 + 0.5 * *v);
                }
                grid
            }
            _ => Vec::new(),
        };
        let sin_cos = match background {
            Background::Gradient { angle, .. } => angle.sin_cos(),
            _ => (0.0, 1.0),
        };
        Self {
            background,
            size: size as f32,
            grid,
            side,
            sin_cos,
        }
    }

    #[inline]
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
            Background::Gradient { from, to, .. } => {
                gradient(from, to, self.sin_cos, x, y, self.size)
            }
            Background::Flat(c) => c,
        }
    }
}

/// A linear gradient's colour at `(x, y)` of a `size`-pixel image, its angle given as
/// `(sin, cos)`.
fn gradient(
    from: [f32; 3],
    to: [f32; 3],
    (s, c): (f32, f32),
    x: f32,
    y: f32,
    size: f32,
) -> [f32; 3] {
    let t = ((x / size - 0.5) * c + (y / size - 0.5) * s + 0.5).clamp(0.0, 1.0);
    lerp3(from, to, t)
}

impl Background {
    /// The colour at pixel position `(x, y)` of a `size`-pixel image.
    pub fn at(&self, x: f32, y: f32, size: f32) -> [f32; 3] {
        match *self {
            Background::Flat(c) => c,
            Background::Gradient { from, to, angle } => {
                gradient(from, to, angle.sin_cos(), x, y, size)
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

/// Where the renderer takes more than one sample per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Antialias {
    /// Every pixel: `supersample²` samples each.
    Full,
    /// Adaptive supersampling: the picture is drawn with one sample per pixel, then the
    /// pixels at an edge (where coverage changes or the depth steps by more than
    /// [`EDGE_DEPTH_MM`] to one of the 4 neighbours) are drawn again with `supersample²`
    /// samples each. Silhouettes and occlusion edges come out nearly as with
    /// [`Antialias::Full`]; elsewhere Gouraud shading is continuous and does not alias.
    /// What it can miss, since the search looks at pixel centres: a sliver thinner than a
    /// pixel that covers no pixel centre near it, and a fold whose depth steps by less
    /// than [`EDGE_DEPTH_MM`] (lips, eyelids); both keep one sample.
    #[default]
    Edges,
}

/// The depth step (mm) between neighbouring pixels that marks an occlusion edge for
/// [`Antialias::Edges`].
pub const EDGE_DEPTH_MM: f32 = 8.0;

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
    /// Which pixels get `supersample²` samples.
    #[serde(default)]
    pub antialias: Antialias,
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
            antialias: Antialias::default(),
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
    edges: EdgeSamples,
    chosen: Vec<u8>,
    /// Neighbour-pair steps of one row, for the edge search.
    pairs: Vec<u8>,
    drawn: Vec<([u32; 3], [f32; 4])>,
    /// Screen `x` and `y` per grid row, the first column repeated at the end.
    grid_x: Vec<f32>,
    grid_y: Vec<f32>,
    /// The picture before quantisation.
    pixels: Vec<[f32; 3]>,
    /// Per-cell classes and boxes from [`sort_grid_row`].
    classes: RowClasses,
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
        // Samples per axis of the first (or only) pass.
        let first = if scene.antialias == Antialias::Edges {
            1
        } else {
            ss
        };
        let size = scene.camera.size as usize;
        let n = size * first;
        self.raster.reset(n, n);
        mesh.pose_expression(e, &mut self.position, &mut self.albedo);
        mesh.normals(&self.position, &mut self.normal);
        let r = rotation_f32(scene.pose);
        let cam = scene.camera;
        let c = mat_vec(&r, FACE_CENTRE);
        let f = cam.focal_px * first as f32;
        let (cx, cy) = (cam.centre[0] * first as f32, cam.centre[1] * first as f32);
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
        // Screen positions as rows of the grid, for sorting the triangles a row at a time.
        let (rows, cols) = mesh.grid();
        self.grid_x.clear();
        self.grid_y.clear();
        for row in self.screen.chunks_exact(cols) {
            for p in row.iter().chain(&row[..1]) {
                self.grid_x.push(p[0]);
                self.grid_y.push(p[1]);
            }
        }
        let regions = mesh.regions();
        let (screen, shade, raster) = (&self.screen, &self.shade, &mut self.raster);
        // Triangles shown (facing the camera, in the picture), for the second pass.
        self.drawn.clear();
        let keep = first == 1 && ss > 1;
        let stride = cols + 1;
        for r in 0..rows - 1 {
            let (top, bottom) = (
                r * stride..(r + 1) * stride,
                (r + 1) * stride..(r + 2) * stride,
            );
            sort_grid_row(
                (&self.grid_x[top.clone()], &self.grid_y[top]),
                (&self.grid_x[bottom.clone()], &self.grid_y[bottom]),
                n,
                n,
                &mut self.classes,
            );
            let [first, second] = &self.classes.class;
            let [first_bounds, second_bounds] = &self.classes.bounds;
            for c in 0..cols {
                let cell = mesh.cell(r, c);
                for (t, (class, bounds)) in cell
                    .into_iter()
                    .zip([(first[c], first_bounds[c]), (second[c], second_bounds[c])])
                {
                    if class & 2 != 0 {
                        raster.triangle(
                            [screen[t[0]], screen[t[1]], screen[t[2]]],
                            [shade[t[0]], shade[t[1]], shade[t[2]]],
                            [regions[t[0]], regions[t[1]], regions[t[2]]],
                        );
                    }
                    if keep && class != 0 {
                        self.drawn.push((t.map(|i| i as u32), bounds));
                    }
                }
            }
        }
        let background = BackgroundSampler::new(scene.background, size);
        // The picture's buffer is kept between pictures: a fresh one of this size would be
        // a fresh mapping from the system, paid for in page faults each time.
        let mut pixels = std::mem::take(&mut self.pixels);
        pixels.clear();
        pixels.resize(size * size, [0.0; 3]);
        let mut region_map = vec![0u8; size * size];
        if first == 1 {
            for (i, (p, reg)) in pixels.iter_mut().zip(region_map.iter_mut()).enumerate() {
                if self.raster.inv_depth[i] > 0.0 {
                    *p = self.raster.color[i];
                    *reg = self.raster.region[i];
                } else {
                    *p = background.at((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                }
            }
        } else {
            self.composite(size, first, &background, &mut pixels, &mut region_map);
        }
        if first == 1 && ss > 1 {
            self.refine_edges(mesh, size, ss, &background, &mut pixels, &mut region_map);
        }
        let image = degrade(&mut pixels, size, &scene.degradation);
        self.pixels = pixels;
        // Landmarks: projected, then checked against the depth buffer.
        let lm3 = shape.landmarks(e);
        let projected = project_points(&lm3, scene.pose, &cam);
        let mut landmarks = Vec::with_capacity(68);
        let mut visible = Vec::with_capacity(68);
        for p in &projected {
            landmarks.push([p[0], p[1]]);
            visible.push(self.landmark_visible(p, first));
        }
        Rendered {
            image,
            landmarks,
            visible,
            regions: region_map,
        }
    }

    /// Averages the `ss × ss` samples of each pixel over the background (every pixel
    /// supersampled: [`Antialias::Full`]).
    fn composite(
        &self,
        size: usize,
        ss: usize,
        background: &BackgroundSampler,
        pixels: &mut [[f32; 3]],
        region_map: &mut [u8],
    ) {
        let n = size * ss;
        for y in 0..size {
            for x in 0..size {
                let samples = (0..ss * ss).map(|k| (y * ss + k / ss) * n + x * ss + k % ss);
                let (colour, region) = mean_of_samples(&self.raster, samples, || {
                    background.at(x as f32 + 0.5, y as f32 + 0.5)
                });
                pixels[y * size + x] = colour;
                region_map[y * size + x] = region;
            }
        }
    }

    /// The second pass of [`Antialias::Edges`]: finds the pixels at an edge of the
    /// one-sample picture in `pixels` and replaces each with the mean of `ss²` samples.
    fn refine_edges(
        &mut self,
        mesh: &FaceMesh,
        size: usize,
        ss: usize,
        background: &BackgroundSampler,
        pixels: &mut [[f32; 3]],
        region_map: &mut [u8],
    ) {
        // Aliasing only arises where the surface is discontinuous in the picture: at the
        // silhouette and where one part of the head passes in front of another (Gouraud
        // shading is continuous elsewhere). Both show as a depth step between neighbours:
        // with inverse depths `a`, `b` (0 where empty), `|1/a − 1/b| > D` is
        // `|a − b| > D·a·b`, which also holds wherever exactly one of them is empty.
        let depth = &self.raster.inv_depth;
        self.chosen.clear();
        self.chosen.resize(size * size, 0);
        // Only pixels next to a covered one can step.
        let Some([x0, y0, x1, y1]) = self.raster.reached() else {
            return;
        };
        let (x0, y0) = (x0.saturating_sub(1), y0.saturating_sub(1));
        let (x1, y1) = ((x1 + 1).min(size - 1), (y1 + 1).min(size - 1));
        mark_edges(
            depth,
            size,
            [x0, y0, x1, y1],
            &mut self.pairs,
            &mut self.chosen,
        );
        self.edges.reset(size, size, ss, &self.chosen);
        let regions = mesh.regions();
        let (screen, shade, edges) = (&self.screen, &self.shade, &mut self.edges);
        for &(t, bounds) in &self.drawn {
            let t = t.map(|i| i as usize);
            edges.triangle_within(bounds, || {
                (
                    [screen[t[0]], screen[t[1]], screen[t[2]]],
                    [shade[t[0]], shade[t[1]], shade[t[2]]],
                    [regions[t[0]], regions[t[1]], regions[t[2]]],
                )
            });
        }
        let per_pixel = ss * ss;
        for (slot, &pixel) in self.edges.pixels.iter().enumerate() {
            let i = pixel as usize;
            let (x, y) = (i % size, i / size);
            let samples = slot * per_pixel..(slot + 1) * per_pixel;
            (pixels[i], region_map[i]) = mean_of_samples(&self.edges, samples, || {
                background.at(x as f32 + 0.5, y as f32 + 0.5)
            });
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
fn degrade(pixels: &mut Vec<[f32; 3]>, size: usize, d: &Degradation) -> RgbImage {
    if d.blur_sigma > 0.05 {
        *pixels = gaussian_blur(pixels, size, d.blur_sigma);
    }
    if d.noise_sigma > 0.0 {
        // Sensor noise: an Irwin–Hall approximation of a Gaussian (the sum of the four
        // bytes of one 32-bit draw, variance matched); exact normality does not matter
        // here. The draws come from eight xorshift32 streams run side by side (seeded by
        // SplitMix64), which the compiler turns into vector code: statistically fine for
        // pixel noise and a fraction of the cost of a 64-bit generator per value.
        let mut state = d.seed;
        let mut lanes = [0u32; 8];
        for lane in lanes.iter_mut() {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *lane = ((z ^ (z >> 31)) as u32) | 1; // xorshift32 needs a non-zero state
        }
        // Four uniform bytes: mean 510, variance 4 · (256² − 1) / 12.
        let scale = d.noise_sigma / 255.0 / (4.0f32 * 65535.0 / 12.0).sqrt();
        let draw = |lanes: &mut [u32; 8]| {
            let mut out = [0.0f32; 8];
            for (x, o) in lanes.iter_mut().zip(out.iter_mut()) {
                *x ^= *x << 13;
                *x ^= *x >> 17;
                *x ^= *x << 5;
                let sum = (*x & 0xFF) + (*x >> 8 & 0xFF) + (*x >> 16 & 0xFF) + (*x >> 24);
                *o = (sum as i32 - 510) as f32 * scale;
            }
            out
        };
        let mut chunks = pixels.as_flattened_mut().chunks_exact_mut(8);
        for chunk in &mut chunks {
            for (v, n) in chunk.iter_mut().zip(draw(&mut lanes)) {
                *v += n;
            }
        }
        for (v, n) in chunks.into_remainder().iter_mut().zip(draw(&mut lanes)) {
            *v += n;
        }
    }
    let mut img = RgbImage::new(size as u32, size as u32);
    for (o, &v) in img.iter_mut().zip(pixels.as_flattened()) {
        *o = quantise(v);
    }
    if let Some(q) = d.jpeg_quality {
        // Encoded as most photos are stored: 4:2:0 chroma subsampling with each 2 × 2 block
        // averaged (libjpeg's way). `jpeg-encoder` takes about a third of the time of
        // `image`'s encoder; its scalar integer code is used (no run-time SIMD choice), so
        // the bytes do not depend on the CPU.
        let mut bytes = Vec::with_capacity(size * size);
        let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, q.clamp(1, 100));
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
        encoder
            .encode(
                img.as_raw(),
                size as u16,
                size as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .expect("an RGB picture under 65,536 pixels a side encodes into memory");
        img = poseface_data::decode_rgb(&bytes, "jpeg round trip").expect("our own JPEG decodes");
    }
    img
}

/// Sample buffers a pixel's colour is averaged from.
trait Samples {
    /// `1/z`, colour and region of sample `i` (`1/z` is 0 where nothing was drawn).
    fn sample(&self, i: usize) -> (f32, [f32; 3], u8);
}

impl Samples for Raster {
    fn sample(&self, i: usize) -> (f32, [f32; 3], u8) {
        (self.inv_depth[i], self.color[i], self.region[i])
    }
}

impl Samples for EdgeSamples {
    fn sample(&self, i: usize) -> (f32, [f32; 3], u8) {
        (self.inv_depth[i], self.color[i], self.region[i])
    }
}

/// The mean colour of `samples` of `buffer`, the background where nothing was drawn
/// (evaluated once, and only if it shows), and the region of the first covered sample.
fn mean_of_samples(
    buffer: &impl Samples,
    samples: impl ExactSizeIterator<Item = usize>,
    background: impl FnOnce() -> [f32; 3],
) -> ([f32; 3], u8) {
    let inv = 1.0 / samples.len() as f32;
    let (mut bg, mut background) = (None, Some(background));
    let mut acc = [0.0f32; 3];
    let mut region = 0u8;
    for i in samples {
        let (depth, colour, r) = buffer.sample(i);
        let col = if depth > 0.0 {
            if region == 0 {
                region = r;
            }
            colour
        } else {
            *bg.get_or_insert_with(|| background.take().expect("evaluated once")())
        };
        acc = [acc[0] + col[0], acc[1] + col[1], acc[2] + col[2]];
    }
    (acc.map(|v| v * inv), region)
}

/// Sets `chosen[i]` (to 1) for every pixel of the `size × size` inverse-depth buffer
/// `depth` that steps to one of its 4 neighbours (see [`Antialias::Edges`]), looking only
/// at the box `[x0, y0, x1, y1]` (inclusive) outside which every pixel is empty; `pairs`
/// is scratch space.
fn mark_edges(
    depth: &[f32],
    size: usize,
    [x0, y0, x1, y1]: [usize; 4],
    pairs: &mut Vec<u8>,
    chosen: &mut [u8],
) {
    let step = |a: f32, b: f32| ((a - b).abs() > EDGE_DEPTH_MM * a * b) as u8;
    // Each pair of neighbours is tested once, a row (and the row below) at a time, in
    // element-wise loops over slices that the compiler turns into vector code. With
    // `x = x0 + k`: `right[k]` is the pair (x, x+1), `down[k]` the pair (x, x below).
    let width = x1 - x0 + 1;
    pairs.clear();
    pairs.resize(2 * width, 0);
    let (right, down) = pairs.split_at_mut(width);
    let row = |y: usize| y * size + x0..y * size + x1 + 1;
    for y in y0..y1 + 1 {
        let cur = &depth[row(y)];
        for ((e, a), b) in right.iter_mut().zip(cur).zip(&cur[1..]) {
            *e = step(*a, *b);
        }
        let out = &mut chosen[row(y)];
        for (o, e) in out.iter_mut().zip(&right[..width - 1]) {
            *o |= e;
        }
        for (o, e) in out[1..].iter_mut().zip(&right[..width - 1]) {
            *o |= e;
        }
        if y == y1 {
            break;
        }
        let below = &depth[row(y + 1)];
        for ((e, a), b) in down.iter_mut().zip(cur).zip(below) {
            *e = step(*a, *b);
        }
        for (o, d) in out.iter_mut().zip(down.iter()) {
            *o |= d;
        }
        for (o, d) in chosen[row(y + 1)].iter_mut().zip(down.iter()) {
            *o |= d;
        }
    }
}

/// `v` (0–1) to 8 bits, rounding half up: `floor(255·v + 0.5)` clamped to 0..=255, NaN
/// to 0. Written with float adds and bit reads only (no float-to-int conversion, which is
/// saturating in Rust and does not vectorise on baseline x86-64): 2²³ added to a value in
/// `0..2²³` leaves it rounded to the nearest integer in the low mantissa bits.
fn quantise(v: f32) -> u8 {
    const MAGIC: f32 = 8_388_608.0;
    // `max` first sends NaN to 0, where `clamp` would keep it.
    #[allow(clippy::manual_clamp)]
    let t = (v * 255.0 + 0.5).max(0.0).min(255.0);
    let nearest = (t + MAGIC) - MAGIC;
    let floor = if nearest > t { nearest - 1.0 } else { nearest };
    (floor + MAGIC).to_bits() as u8
}

/// Separable Gaussian blur with clamped borders. Rows are blurred as flat runs of
/// interleaved channels (a tap is 3 values away), the columns by adding whole shifted rows,
/// so both passes are plain multiply-adds over contiguous memory.
fn gaussian_blur(src: &[[f32; 3]], size: usize, sigma: f32) -> Vec<[f32; 3]> {
    let radius = (2.5 * sigma).ceil() as usize;
    let k: Vec<f32> = (-(radius as isize)..=radius as isize)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let row_len = 3 * size;
    let src = src.as_flattened();
    // Horizontal: each row padded by `radius` copies of its end pixels.
    let mut h = vec![0.0f32; src.len()];
    let mut padded = vec![0.0f32; row_len + 6 * radius];
    for (row, out) in src.chunks_exact(row_len).zip(h.chunks_exact_mut(row_len)) {
        for j in 0..radius {
            padded[3 * j..3 * j + 3].copy_from_slice(&row[..3]);
            let e = 3 * (radius + size + j);
            padded[e..e + 3].copy_from_slice(&row[row_len - 3..]);
        }
        padded[3 * radius..3 * radius + row_len].copy_from_slice(row);
        for (j, &w) in k.iter().enumerate() {
            for (o, &p) in out.iter_mut().zip(&padded[3 * j..3 * j + row_len]) {
                *o += w * p;
            }
        }
    }
    // Vertical: output row y is the weighted sum of rows y − r ..= y + r, clamped.
    let mut out = vec![[0.0f32; 3]; size * size];
    for (y, o) in out.chunks_exact_mut(size).enumerate() {
        let o = o.as_flattened_mut();
        for (j, &w) in k.iter().enumerate() {
            let sy = (y + j).saturating_sub(radius).min(size - 1);
            for (o, &p) in o.iter_mut().zip(&h[sy * row_len..(sy + 1) * row_len]) {
                *o += w * p;
            }
        }
    }
    out
}

#[cfg(test)]
mod quantise_tests {
    use super::{EDGE_DEPTH_MM, mark_edges, quantise};
    use rand::{Rng, SeedableRng};

    #[test]
    fn edge_pixels_are_those_that_step_to_a_neighbour() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Both kinds of pixel occur (the comparison is not between two empty masks).
        let mut seen = [false; 2];
        for size in [1usize, 2, 5, 17] {
            for _ in 0..20 {
                // Empty pixels, near and far surfaces (steps of 3 mm, below the threshold,
                // and of 40 mm) in 3 × 3 blocks.
                let blocks: Vec<f32> = (0..36)
                    .map(|_| match rng.random_range(0..4) {
                        0 => 0.0,
                        1 => 1.0 / 600.0,
                        2 => 1.0 / 603.0,
                        _ => 1.0 / 640.0,
                    })
                    .collect();
                let depth: Vec<f32> = (0..size * size)
                    .map(|i| blocks[(i % size) / 3 + 6 * ((i / size) / 3)])
                    .collect();
                let naive: Vec<u8> = (0..size * size)
                    .map(|i| {
                        let (x, y) = ((i % size) as isize, (i / size) as isize);
                        let a = depth[i];
                        let mut e = 0;
                        for (dx, dy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                            let (u, v) = (x + dx, y + dy);
                            if u < 0 || v < 0 || u >= size as isize || v >= size as isize {
                                continue;
                            }
                            let b = depth[(v * size as isize + u) as usize];
                            e |= ((a - b).abs() > EDGE_DEPTH_MM * a * b) as u8;
                        }
                        e
                    })
                    .collect();
                let mut chosen = vec![0u8; size * size];
                mark_edges(
                    &depth,
                    size,
                    [0, 0, size - 1, size - 1],
                    &mut Vec::new(),
                    &mut chosen,
                );
                assert_eq!(chosen, naive, "size {size}");
                if size == 17 {
                    seen[0] |= naive.contains(&0);
                    seen[1] |= naive.contains(&1);
                }
            }
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn quantise_rounds_half_up_and_clamps() {
        let plain = |v: f32| (v * 255.0 + 0.5).clamp(0.0, 255.0).floor() as u8;
        // A dense sweep past both ends, and the floats around every rounding boundary.
        let sweep = (-20_000..1_020_000).map(|i| i as f32 * 1e-6);
        let boundaries = (0..=256).flat_map(|n| {
            let b = (n as f32 - 0.5) / 255.0;
            (-4i32..=4).map(move |k| f32::from_bits((b.to_bits() as i32 + k) as u32))
        });
        for v in sweep.chain(boundaries) {
            assert_eq!(quantise(v), plain(v), "{v}");
        }
        assert_eq!(quantise(f32::NAN), 0);
        assert_eq!(quantise(f32::INFINITY), 255);
        assert_eq!(quantise(f32::NEG_INFINITY), 0);
        assert_eq!(quantise(127.5 / 255.0), 128);
    }
}
