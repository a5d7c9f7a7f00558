//! The procedural 3D face: a closed head-and-neck surface with facial features, its albedo
//! and semantic regions, and the 68 iBUG landmarks defined on it.
//!
//! # Geometry
//!
//! The surface is parametrised like a cylinder around a vertical axis through
//! `(x = 0, z = AXIS_Z)`: a point is `(r·sin φ, y, AXIS_Z − r·cos φ)` for the angle `φ`
//! (`0` faces the camera, positive towards the image's right) and the height `y` (mm, down;
//! `0` is the eye line). The radius `r(φ, y)` is the smooth union of a head and a neck,
//! each a stack of super-ellipse slices, plus displacements for the nose, brows, cheeks,
//! mouth, chin, ears and hair. Facial features are placed in the frontal-plane coordinates
//! `(x, y)` of the model frame of [`poseface_data::mean_face`], which the mean identity
//! reproduces, so the 68 landmarks of a synthetic face and the mean face that pose fitting
//! uses share one frame.
//!
//! # Landmarks
//!
//! Every landmark is a point on the surface. Brows, eyes, nose and lips are placed in the
//! frontal plane from the identity's parameters, moved by the expression, and projected onto
//! the surface along `z`. The jaw contour (0–16) is different from hand-annotated 2D data: its
//! points are fixed points on the surface, at the angles around the head axis where the mean
//! face's jaw points lie. In a profile they do not slide along the visible silhouette;
//! the far half simply becomes hidden (see [`crate::render::Rendered::visible`]), as in
//! 3D-consistent annotations (300W-LP, AFLW2000-3D).

use poseface_data::pose::EulerAngles;

use crate::identity::{Expression, Identity, lerp3};
use crate::noise::fbm;

/// `z` of the head's vertical axis in the model frame (mm).
pub const AXIS_Z: f32 = 85.0;
/// Lowest `y` of the neck (mm).
pub const NECK_BOTTOM: f32 = 210.0;

/// What a surface point is, for tests and masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Region {
    /// Not the face (only in rendered maps).
    Background = 0,
    /// Skin of the face, head or neck.
    Skin = 1,
    /// Hair.
    Hair = 2,
    /// The visible eye (sclera, iris, pupil).
    Eye = 3,
    /// Eyebrow.
    Brow = 4,
    /// Lips and mouth opening.
    Lips = 5,
    /// The nose.
    Nose = 6,
    /// An ear.
    Ear = 7,
}

impl Region {
    /// The region with this code (unknown codes give `Background`).
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::Skin,
            2 => Self::Hair,
            3 => Self::Eye,
            4 => Self::Brow,
            5 => Self::Lips,
            6 => Self::Nose,
            7 => Self::Ear,
            _ => Self::Background,
        }
    }
}

/// One evaluated surface point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurfacePoint {
    /// Position in the model frame (mm).
    pub position: [f32; 3],
    /// Albedo (linear RGB).
    pub albedo: [f32; 3],
    /// Semantic region.
    pub region: Region,
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// `e^x` for `x ≤ 0`, flushed to 0 below −87, where `e^x` nears the smallest normal `f32`
/// (and the library's `expf` takes a slow path: the face's bumps are evaluated over the
/// whole head, mostly far out in their tails).
fn exp_decay(x: f32) -> f32 {
    if x < -87.0 { 0.0 } else { x.exp() }
}

fn gauss(dx: f32, sx: f32, dy: f32, sy: f32) -> f32 {
    exp_decay(-0.5 * ((dx / sx) * (dx / sx) + (dy / sy) * (dy / sy)))
}

/// Radius of a super-ellipse slice with half-width `a`, front reach `cf`, back reach `cb`.
fn superellipse(s: f32, c: f32, a: f32, cf: f32, cb: f32, n: f32) -> f32 {
    if a <= 1e-3 {
        return 0.0;
    }
    let depth = if c >= 0.0 { cf } else { cb };
    if depth <= 1e-3 {
        return 0.0;
    }
    let v = (s.abs() / a).powf(n) + (c.abs() / depth).powf(n);
    v.powf(-1.0 / n)
}

/// A smooth maximum (log-sum-exp with softness `k` mm).
fn smax(a: f32, b: f32, k: f32) -> f32 {
    let m = a.max(b);
    m + k * exp_decay(-(a - b).abs() / k).ln_1p()
}

/// The expression-independent part of one surface evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PointBase {
    phi: f32,
    y: f32,
    s: f32,
    c: f32,
    /// Radius of the undisplaced head and neck.
    radius: f32,
    /// Weight of the facial features (1 on the face, 0 at the sides and back).
    front: f32,
    /// Ear and hair displacement.
    outer: f32,
    /// Normalised distance from the ear's centre (< 1 on the ear).
    ear_rho: f32,
    /// Hair coverage.
    hair: f32,
}

/// An identity's face with everything derived from its parameters.
#[derive(Debug, Clone)]
pub struct FaceShape {
    id: Identity,
    skin: [f32; 3],
    hair: [f32; 3],
    iris: [f32; 3],
    /// Top of the skull (hair included), mm.
    top: f32,
    /// Lowest point of the chin, mm.
    chin: f32,
}

impl FaceShape {
    /// Derives the shape of `identity`.
    pub fn new(identity: &Identity) -> Self {
        Self {
            skin: identity.skin_rgb(),
            hair: identity.hair_rgb(),
            iris: identity.iris_rgb(),
            top: -122.0 * identity.head_height - identity.hair_volume,
            chin: 124.0 + identity.chin_length,
            id: identity.clone(),
        }
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// The `y` of the top of the head (mm).
    pub fn top(&self) -> f32 {
        self.top
    }

    /// Radius of the undisplaced head-and-neck surface.
    fn base_radius(&self, s: f32, c: f32, y: f32) -> f32 {
        let id = &self.id;
        let w0 = 75.0 * id.head_width;
        let cb0 = 95.0 * id.head_depth;
        let (a, cf, cb, n) = if y < -40.0 {
            // The dome of the skull closes at the top.
            let t = ((y + 40.0) / (self.top + 40.0)).clamp(0.0, 1.0);
            let k = (1.0 - t * t).max(0.0).sqrt();
            (w0 * 0.97 * k, 88.0 * k.powf(0.8), cb0 * k, 2.6)
        } else if y <= 30.0 {
            let t = smoothstep(-40.0, -10.0, y);
            (w0 * (0.97 + 0.03 * t), 88.0 + t, cb0, 2.6)
        } else {
            // Lower face: the jaw narrows to the chin, which turns under.
            let jaw = w0 * id.jaw_width;
            let a = if y < 85.0 {
                w0 + (jaw - w0) * smoothstep(30.0, 85.0, y)
            } else {
                jaw + (20.0 - jaw) * ((y - 85.0) / (self.chin - 85.0)).clamp(0.0, 1.0).powi(2)
            };
            let close = ((self.chin - y) / 8.0).clamp(0.0, 1.0);
            let close = (1.0 - (1.0 - close) * (1.0 - close)).sqrt();
            let cb = cb0 * (1.0 - smoothstep(30.0, self.chin, y) * 0.8);
            let n = 2.6 + 0.3 * smoothstep(30.0, 90.0, y);
            (a * close, 89.0 * close, cb * close, n)
        };
        let head = superellipse(s, c, a, cf, cb, n);
        if y < 40.0 {
            return head;
        }
        // The neck: a slightly flattened cylinder behind the jaw.
        let grow = smoothstep(40.0, 70.0, y);
        let neck = superellipse(
            s,
            c,
            52.0 * id.head_width.sqrt() * grow,
            36.0 * grow,
            66.0 * grow,
            2.2,
        );
        smax(head, neck, 4.0)
    }

    /// Frontal-plane displacement `[mm]` of the facial features at neutral coordinates.
    fn features(&self, x: f32, y: f32, smile: f32) -> f32 {
        let id = &self.id;
        let ax = x.abs();
        let mut d = 0.0;
        // Nose: a ridge from the bridge to the tip, widening towards the nostrils.
        let (yb, yt) = (-6.0, id.nose_length);
        let t = ((y - yb) / (yt - yb)).clamp(0.0, 1.0);
        let h = if y < yb {
            id.nose_bridge * exp_decay(-((y - yb) / 10.0).powi(2))
        } else if y <= yt {
            id.nose_bridge + (id.nose_tip - id.nose_bridge) * t.powf(1.6)
        } else {
            id.nose_tip * exp_decay(-((y - yt) / 9.0).powi(2))
        };
        let sigma = 4.5 + (id.nose_width * 0.5 - 4.5) * t * t;
        d += h * exp_decay(-0.5 * (x / sigma).powi(2));
        d += 8.0 * gauss(ax - id.nose_width * 0.78, 5.0, y - (yt + 1.0), 5.0);
        // Eye sockets with the eyeballs in them.
        let ex = ax - id.eye_spacing;
        d -= 3.0 * gauss(ex, 14.0, y, 9.0);
        d += 1.5 * gauss(ex, id.eye_width * 0.6, y, id.eye_height * 0.9);
        // Brow ridge and glabella.
        d += id.brow_ridge * gauss(ax - 27.0, 16.0, y + 16.0, 7.0);
        d += id.brow_ridge * 0.8 * gauss(x, 9.0, y + 10.0, 8.0);
        // Cheekbones (raised by a smile).
        d += (id.cheek + 2.5 * smile) * gauss(ax - 40.0, 13.0, y - 22.0 + 3.0 * smile, 12.0);
        // The mouth area, the lips, the groove between them and below the lower lip.
        let my = id.mouth_y;
        let lt = id.lip_thickness;
        d += 9.0 * gauss(x, 24.0, y - (my - 5.0), 16.0);
        let across = exp_decay(-(x / id.mouth_width).powi(4));
        d += 3.5 * across * gauss(0.0, 1.0, y - (my - lt * 0.55), lt * 0.55);
        d += 3.5 * across * gauss(0.0, 1.0, y - (my + lt * 0.65), lt * 0.6);
        d -= 2.0 * across * gauss(0.0, 1.0, y - my, 0.8);
        d -= 2.0 * gauss(x, 14.0, y - (my + lt + 9.0), 3.0);
        // Chin.
        d += id.chin_protrusion * gauss(x, 13.0, y - (self.chin - 16.0), 9.0);
        d
    }

    /// Ear displacement at angle `phi` and height `y` (mm), with the ear's local coordinate.
    fn ear(&self, phi: f32, y: f32) -> (f32, f32) {
        let id = &self.id;
        let centre = std::f32::consts::FRAC_PI_2 + 0.12;
        let du = (phi.abs() - centre) * 75.0 * id.head_width;
        let dv = y - (22.0 + id.ear_y);
        let rho =
            ((du / (15.0 * id.ear_size)).powi(2) + (dv / (30.0 * id.ear_size)).powi(2)).sqrt();
        let shape = smoothstep(1.0, 0.8, rho) * (0.55 + 0.45 * smoothstep(0.35, 0.85, rho));
        (id.ear_protrusion * shape, rho)
    }

    /// Hair coverage in `[0, 1]` at angle `phi` and height `y`.
    fn hair_mask(&self, phi: f32, y: f32) -> f32 {
        let id = &self.id;
        let s = phi.abs();
        let side = -14.0;
        let back = 40.0 + 80.0 * id.hair_length;
        let limit = if s < 1.75 {
            id.hairline + (side - id.hairline) * smoothstep(0.35, 1.0, s)
        } else {
            side + (back - side) * smoothstep(1.75, 2.6, s)
        };
        smoothstep(limit + 2.5, limit - 2.5, y)
    }

    /// Expression displacement field: where the neutral point `(x, y)` moves to.
    fn expression_offset(&self, x: f32, y: f32, e: &Expression) -> (f32, f32) {
        let id = &self.id;
        let my = id.mouth_y;
        let (mut dx, mut dy) = (0.0, 0.0);
        if e.mouth_open > 0.0 {
            let gap = 14.0 * e.mouth_open;
            let across = 0.6 * exp_decay(-(x / (id.mouth_width * 1.1)).powi(2))
                + 0.4 * exp_decay(-(x / 60.0).powi(4));
            dy += gap * smoothstep(my - 0.3, my + 0.3, y) * across;
        }
        if e.smile > 0.0 {
            let g = gauss(x.abs() - id.mouth_width, 10.0, y - my, 10.0);
            dx += x.signum() * 3.5 * e.smile * g;
            dy -= 4.0 * e.smile * g;
        }
        if e.brow_raise > 0.0 {
            let g = gauss(x.abs() - 28.0, 22.0, y + 16.0, 9.0) * smoothstep(-2.0, -8.0, y);
            dy -= 6.0 * e.brow_raise * g;
        }
        (dx, dy)
    }

    /// The neutral coordinates whose features appear at `(x, y)` under expression `e`.
    fn unwarp(&self, x: f32, y: f32, e: &Expression) -> (f32, f32) {
        let (mut nx, mut ny) = (x, y);
        for _ in 0..3 {
            let (dx, dy) = self.expression_offset(nx, ny, e);
            nx = x - dx;
            ny = y - dy;
        }
        (nx, ny)
    }

    /// The surface point at angle `phi` (radians) and height `y` (mm) under expression `e`.
    pub fn point(&self, phi: f32, y: f32, e: &Expression) -> SurfacePoint {
        let base = self.base(phi, y);
        let texture = self.texture(&base);
        self.point_from(&base, &texture, e)
    }

    /// Only the position of [`FaceShape::point`] (no albedo: cheaper).
    pub fn position(&self, phi: f32, y: f32, e: &Expression) -> [f32; 3] {
        self.surface(&self.base(phi, y), e).0
    }

    /// The expression-independent part of a surface evaluation.
    pub(crate) fn base(&self, phi: f32, y: f32) -> PointBase {
        let (s, c) = phi.sin_cos();
        let radius = self.base_radius(s, c, y);
        let front = smoothstep(0.05, 0.45, c) * smoothstep(self.chin + 6.0, self.chin - 4.0, y);
        let (ear, ear_rho) = self.ear(phi, y);
        let hair = self.hair_mask(phi, y);
        let hair_lift = hair * self.id.hair_volume * smoothstep(self.top, self.top + 20.0, y);
        PointBase {
            phi,
            y,
            s,
            c,
            radius,
            front,
            outer: ear + hair_lift,
            ear_rho,
            hair,
        }
    }

    /// Position and neutral frontal coordinates under expression `e`.
    fn surface(&self, b: &PointBase, e: &Expression) -> ([f32; 3], f32, f32) {
        let bx = b.radius * b.s;
        let (nx, ny) = if b.front > 0.0 {
            self.unwarp(bx, b.y, e)
        } else {
            (bx, b.y)
        };
        let mut r = b.radius + b.outer;
        if b.front > 0.0 {
            r += b.front * self.features(nx, ny, e.smile);
        }
        ([r * b.s, b.y, AXIS_Z - r * b.c], nx, ny)
    }

    /// Skin and hair colour with their texture patterns (expression-independent).
    pub(crate) fn texture(&self, b: &PointBase) -> [[f32; 3]; 2] {
        let id = &self.id;
        // Skin with a blotchy texture and a finer pore-scale pattern. Lattice axes are turned
        // away from φ and y so that no seam lines up with the head.
        let (u, v) = (b.phi * 80.0, b.y);
        let (ru, rv) = (0.8 * u + 0.6 * v, -0.6 * u + 0.8 * v);
        let n1 = fbm(id.texture_seed, ru / 11.0, rv / 11.0, 3);
        let n2 = fbm(id.texture_seed ^ 0xA5A5, ru / 2.5, rv / 2.5, 2);
        let tex = 1.0 + id.texture * (0.10 * n1 + 0.05 * n2);
        let hair = if b.hair > 0.0 {
            let strands = 1.0 + 0.25 * fbm(id.texture_seed ^ 0x4A17, b.phi * 60.0, b.y / 25.0, 2);
            self.hair.map(|v| (v * strands).min(1.0))
        } else {
            self.hair
        };
        [self.skin.map(|v| v * tex), hair]
    }

    /// A full surface point from its expression-independent parts.
    pub(crate) fn point_from(
        &self,
        b: &PointBase,
        texture: &[[f32; 3]; 2],
        e: &Expression,
    ) -> SurfacePoint {
        let (position, nx, ny) = self.surface(b, e);
        let (albedo, region) = self.albedo(b, texture, nx, ny, e);
        SurfacePoint {
            position,
            albedo,
            region,
        }
    }

    fn albedo(
        &self,
        b: &PointBase,
        texture: &[[f32; 3]; 2],
        nx: f32,
        ny: f32,
        e: &Expression,
    ) -> ([f32; 3], Region) {
        let (y, front, ear_rho, hair) = (b.y, b.front, b.ear_rho, b.hair);
        let mut col = texture[0];
        let mut region = Region::Skin;
        if y > self.chin - 5.0 && front < 0.5 {
            col = col.map(|v| v * 0.92);
        }
        if ear_rho < 1.0 {
            region = Region::Ear;
            let shade = 0.75 + 0.25 * smoothstep(0.2, 0.7, ear_rho);
            col = [col[0] * shade, col[1] * shade * 0.93, col[2] * shade * 0.92];
        }
        if front > 0.0 {
            // Facial features fade out towards the sides with the front weight.
            let (c, r) = self.face_albedo(col, nx, ny, e);
            col = lerp3(col, c, smoothstep(0.0, 0.6, front));
            if r != Region::Skin && front > 0.3 {
                region = r;
            }
        }
        if hair > 0.0 {
            col = lerp3(col, texture[1], hair);
            if hair > 0.5 {
                region = Region::Hair;
            }
        }
        (col.map(|v| v.clamp(0.0, 1.0)), region)
    }

    /// Albedo of the face's features at neutral coordinates `(x, y)`.
    fn face_albedo(&self, skin: [f32; 3], x: f32, y: f32, e: &Expression) -> ([f32; 3], Region) {
        let id = &self.id;
        let ax = x.abs();
        let mut col = skin;
        // Cheek colour and beard shadow.
        let blush = gauss(ax - 38.0, 14.0, y - 32.0, 12.0);
        col = lerp3(
            col,
            [col[0] * 1.05, col[1] * 0.9, col[2] * 0.9],
            blush * 0.6,
        );
        if id.beard > 0.0 {
            // Chin, jaw and upper lip, rising along the jaw towards the sideburns.
            let edge = id.mouth_y - 14.0 - 0.9 * (ax - 22.0).max(0.0);
            let lower = smoothstep(edge - 4.0, edge + 4.0, y) * smoothstep(68.0, 45.0, ax);
            // Fair hair makes a faint beard.
            let lower = lower * (1.0 - 0.8 * smoothstep(0.35, 0.8, id.hair_tone));
            let lips = gauss(x, id.mouth_width, y - id.mouth_y, id.lip_thickness * 1.2);
            col = lerp3(col, self.hair, 0.55 * id.beard * lower * (1.0 - lips));
        }
        // Nose region (for masks) and nostrils.
        let mut region = Region::Skin;
        if ax < id.nose_width * 0.9 && y > -4.0 && y < id.nose_length + 8.0 {
            region = Region::Nose;
        }
        let nostril = ((ax - 5.5) / 3.2).powi(2) + ((y - (id.nose_length + 6.5)) / 1.8).powi(2);
        if nostril < 1.0 {
            col = [0.16, 0.08, 0.07];
        }
        // Lips and the mouth line (a stretched dark gap when the mouth opens).
        let my = id.mouth_y;
        let lt = id.lip_thickness;
        let width = id.mouth_width * (1.0 - ((y - my) / (2.6 * lt)).powi(2)).max(0.0).sqrt();
        if ax < width && y > my - lt * 1.3 && y < my + lt * 1.5 {
            col = lerp3(col, [col[0] * 0.8, col[1] * 0.52, col[2] * 0.55], 0.85);
            region = Region::Lips;
            if (y - my).abs() < 0.6 && ax < id.mouth_width * 0.95 {
                col = [0.2, 0.07, 0.07];
            }
        }
        // Eyebrows along an arched centre line.
        for side in [-1.0f32, 1.0] {
            let b = self.brow_points(side);
            let along = (x - b[0][0]) / (b[4][0] - b[0][0]);
            if (0.0..=1.0).contains(&along) {
                let k = (along * 4.0).min(3.999);
                let (i, f) = (k as usize, k.fract());
                let cy = b[i][1] + (b[i + 1][1] - b[i][1]) * f;
                let half = id.brow_thickness * 0.5 * (0.6 + 0.5 * along);
                let taper = smoothstep(0.0, 0.12, along);
                if (y - cy).abs() < half * taper {
                    col = lerp3(col, self.hair, id.brow_tone * 0.9);
                    region = Region::Brow;
                }
            }
        }
        // Eyes: an almond opening with sclera, iris and pupil, or a closed lid.
        for side in [-1.0f32, 1.0] {
            let cx = side * id.eye_spacing;
            let dx = x - cx;
            let dy = y - self.eye_tilt_offset(side, dx);
            let u = dx / id.eye_width;
            if u.abs() >= 1.0 {
                continue;
            }
            let lid = id.eye_height * (1.0 - u * u).powf(0.8);
            if dy.abs() < lid {
                if e.eyes_closed {
                    col = skin.map(|v| v * 0.88);
                    if (dy - lid * 0.3).abs() < 0.6 {
                        col = [0.12, 0.08, 0.07];
                    }
                } else {
                    region = Region::Eye;
                    let r = (dx * dx + dy * dy).sqrt();
                    col = if r < 2.0 {
                        [0.03, 0.03, 0.03]
                    } else if r < 5.3 {
                        self.iris.map(|v| v * (1.1 - 0.4 * (r - 2.0) / 3.3))
                    } else {
                        [0.86, 0.83, 0.8]
                    };
                    if dy < -lid + 0.9 {
                        col = col.map(|v| v * 0.45);
                    }
                }
            } else if dy < -lid && dy > -lid - 1.1 {
                col = col.map(|v| v * 0.45);
            }
        }
        (col, region)
    }

    /// `y` of the eye's centre line at offset `dx` from the eye centre (tilt: outer corner up).
    fn eye_tilt_offset(&self, side: f32, dx: f32) -> f32 {
        -self.id.eye_tilt * dx * side
    }

    /// Five brow centre-line points of one side (`-1`: image left, the subject's right),
    /// outer end first.
    fn brow_points(&self, side: f32) -> [[f32; 2]; 5] {
        let id = &self.id;
        let scale = id.eye_width / 13.0;
        let y0 = -20.0 - id.brow_height;
        let dxs = [-23.5, -13.5, -1.5, 10.5, 21.5];
        let arch = [8.0, 0.0, -3.0, -2.0, 2.0];
        let mut p = [[0.0; 2]; 5];
        for k in 0..5 {
            p[k] = [side * (id.eye_spacing - dxs[k] * scale), y0 + arch[k]];
        }
        p
    }

    /// `x` of the undisplaced surface at angle `phi` and height `y`.
    fn base_x(&self, phi: f32, y: f32) -> f32 {
        let (s, c) = phi.sin_cos();
        self.base_radius(s, c, y) * s
    }

    /// The front-half angle whose undisplaced surface point has frontal coordinate `x` at
    /// height `y` (Newton steps from a spherical guess, then bisection if needed).
    fn phi_at(&self, x: f32, y: f32) -> f32 {
        let half = std::f32::consts::FRAC_PI_2 - 0.05;
        let mut phi = (x / 85.0).clamp(-0.95, 0.95).asin();
        for _ in 0..6 {
            let f = self.base_x(phi, y) - x;
            if f.abs() < 1e-3 {
                return phi;
            }
            let h = 1e-3;
            let df = (self.base_x(phi + h, y) - self.base_x(phi - h, y)) / (2.0 * h);
            if df <= 1e-3 {
                break;
            }
            phi = (phi - f / df).clamp(-half, half);
        }
        // Fallback: bisection on the monotonic front half.
        let (mut lo, mut hi) = (-half, half);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            if self.base_x(mid, y) < x {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }

    /// The neutral frontal-plane positions of landmarks 17–67 (entries 0–16 are unused).
    fn feature_landmarks(&self, e: &Expression) -> [[f32; 2]; 68] {
        let id = &self.id;
        let mut p = [[0.0f32; 2]; 68];
        let right = self.brow_points(-1.0);
        let left = self.brow_points(1.0);
        for k in 0..5 {
            p[17 + k] = right[k];
            p[26 - k] = left[k];
        }
        let nl = id.nose_length;
        for k in 0..4 {
            p[27 + k] = [0.0, nl * k as f32 / 3.0];
        }
        let nw = id.nose_width;
        p[31] = [-0.82 * nw, nl + 6.0];
        p[32] = [-0.41 * nw, nl + 8.0];
        p[33] = [0.0, nl + 9.0];
        p[34] = [0.41 * nw, nl + 8.0];
        p[35] = [0.82 * nw, nl + 6.0];
        // Eyes: corners, then the lids at ±0.42 of the half-width.
        let lid = |u: f32| {
            if e.eyes_closed {
                None
            } else {
                Some(id.eye_height * (1.0 - u * u).powf(0.8))
            }
        };
        let eye = |side: f32, u: f32, upper: bool| -> [f32; 2] {
            let dx = u * id.eye_width;
            let dy = match lid(u) {
                Some(h) if upper => -h,
                Some(h) => h,
                None => id.eye_height * 0.3,
            };
            let dy = if u.abs() == 1.0 { 0.0 } else { dy };
            [
                side * id.eye_spacing + dx,
                dy + self.eye_tilt_offset(side, dx),
            ]
        };
        // Right eye (image left): outer, upper outer, upper inner, inner, lower inner, lower outer.
        p[36] = eye(-1.0, -1.0, true);
        p[37] = eye(-1.0, -0.42, true);
        p[38] = eye(-1.0, 0.42, true);
        p[39] = eye(-1.0, 1.0, true);
        p[40] = eye(-1.0, 0.42, false);
        p[41] = eye(-1.0, -0.42, false);
        // Left eye: inner, upper inner, upper outer, outer, lower outer, lower inner.
        p[42] = eye(1.0, -1.0, true);
        p[43] = eye(1.0, -0.42, true);
        p[44] = eye(1.0, 0.42, true);
        p[45] = eye(1.0, 1.0, true);
        p[46] = eye(1.0, 0.42, false);
        p[47] = eye(1.0, -0.42, false);
        // Lips: outer contour from the right corner, then the inner contour.
        let (mw, my, lt) = (id.mouth_width, id.mouth_y, id.lip_thickness);
        let outer = [
            (-1.0, 0.0),
            (-0.65, -0.8),
            (-0.27, -1.35),
            (0.0, -1.2),
            (0.27, -1.35),
            (0.65, -0.8),
            (1.0, 0.0),
            (0.65, 0.9),
            (0.27, 1.35),
            (0.0, 1.45),
            (-0.27, 1.35),
            (-0.65, 0.9),
        ];
        for (k, (u, v)) in outer.iter().enumerate() {
            p[48 + k] = [u * mw, my + v * lt];
        }
        let inner = [
            (-0.85, 0.0),
            (-0.32, -0.5),
            (0.0, -0.5),
            (0.32, -0.5),
            (0.85, 0.0),
            (0.32, 0.5),
            (0.0, 0.5),
            (-0.32, 0.5),
        ];
        for (k, (u, v)) in inner.iter().enumerate() {
            p[60 + k] = [u * mw, my + v];
        }
        p
    }

    /// The angle around the head axis and the height of jaw-contour landmark `k` (0–16),
    /// taken from the mean face and stretched to this face's chin.
    fn jaw_anchor(&self, k: usize) -> (f32, f32) {
        let m = poseface_data::mean_face::mean_face_68()[k];
        let phi = (m[0] as f32).atan2(AXIS_Z - m[2] as f32);
        let y = 10.0 + (m[1] as f32 - 10.0) * (self.chin - 9.0 - 10.0) / 105.0;
        (phi, y)
    }

    /// The surface parameters `(φ, y)` of the 68 landmarks under expression `e`.
    fn landmark_params(&self, e: &Expression) -> [(f32, f32); 68] {
        let plane = self.feature_landmarks(e);
        let mut out = [(0.0f32, 0.0f32); 68];
        for (k, o) in out.iter_mut().enumerate() {
            *o = if k < 17 {
                let (phi, y) = self.jaw_anchor(k);
                let x = self.base_x(phi, y);
                let (_, dy) = self.expression_offset(x, y, e);
                (phi, y + dy)
            } else {
                let [x, y] = plane[k];
                let (dx, dy) = self.expression_offset(x, y, e);
                (self.phi_at(x + dx, y + dy), y + dy)
            };
        }
        out
    }

    /// The 68 landmarks (iBUG order) on the surface under expression `e`, in the model frame.
    pub fn landmarks(&self, e: &Expression) -> [[f32; 3]; 68] {
        self.landmark_params(e)
            .map(|(phi, y)| self.position(phi, y, e))
    }

    /// Whether each landmark's surface faces the camera when the head is at `pose`: a
    /// back-face test on the surface normal, without rasterising. Occlusion by another part
    /// of the face (the nose hiding the far cheek) is not modelled here; the renderer's
    /// depth-buffer test ([`crate::render::Rendered::visible`]) covers it.
    pub fn landmark_visibility(&self, e: &Expression, pose: EulerAngles) -> Vec<bool> {
        let r = crate::render::rotation_f32(pose);
        let h = 0.01f32;
        self.landmark_params(e)
            .iter()
            .map(|&(phi, y)| {
                let p = |a: f32, b: f32| self.position(a, b, e);
                let (l, rr) = (p(phi - h, y), p(phi + h, y));
                let (u, d) = (p(phi, y - 1.0), p(phi, y + 1.0));
                let tphi = [rr[0] - l[0], rr[1] - l[1], rr[2] - l[2]];
                let ty = [d[0] - u[0], d[1] - u[1], d[2] - u[2]];
                let n = [
                    ty[1] * tphi[2] - ty[2] * tphi[1],
                    ty[2] * tphi[0] - ty[0] * tphi[2],
                    ty[0] * tphi[1] - ty[1] * tphi[0],
                ];
                let nz = r[2][0] * n[0] + r[2][1] * n[1] + r[2][2] * n[2];
                let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-9);
                nz / len < -0.05
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityCode;

    fn mean_shape() -> FaceShape {
        FaceShape::new(&Identity::new(&IdentityCode::mean(), 1.0))
    }

    #[test]
    fn mean_identity_landmarks_match_the_mean_face() {
        // After removing translation, the mean identity's landmarks lie within a few
        // millimetres of the mean face that pose fitting uses.
        let shape = mean_shape();
        let lm = shape.landmarks(&Expression::default());
        let mf = poseface_data::mean_face::mean_face_68();
        let mut centre = [0.0f64; 3];
        for k in 0..68 {
            for d in 0..3 {
                centre[d] += (lm[k][d] as f64 - mf[k][d]) / 68.0;
            }
        }
        let mut worst = (0.0f64, 0usize);
        let mut sum = 0.0;
        for k in 0..68 {
            let err: f64 = (0..3)
                .map(|d| (lm[k][d] as f64 - centre[d] - mf[k][d]).powi(2))
                .sum::<f64>()
                .sqrt();
            if std::env::var("SYNTH_DEBUG").is_ok() {
                eprintln!("{k:2} synth {:?} mean {:?} err {err:.1}", lm[k], mf[k]);
            }
            sum += err;
            if err > worst.0 {
                worst = (err, k);
            }
        }
        let mean = sum / 68.0;
        assert!(mean < 6.0, "mean landmark distance {mean:.1} mm");
        assert!(
            worst.0 < 16.0,
            "landmark {} is {:.1} mm off",
            worst.1,
            worst.0
        );
    }

    #[test]
    fn surface_is_closed_at_the_top_and_the_nose_points_at_the_camera() {
        let shape = mean_shape();
        let e = Expression::default();
        let top = shape.point(0.0, shape.top(), &e).position;
        assert!(top[0].abs() < 1e-3 && (top[2] - AXIS_Z).abs() < 1e-3);
        let tip = shape.point(0.0, 36.0, &e).position;
        let cheek = shape.point(0.45, 36.0, &e).position;
        assert!(tip[2] < cheek[2] - 15.0, "tip {tip:?} cheek {cheek:?}");
        // The ear stands out from the side of the head.
        let ear = shape
            .point(std::f32::consts::FRAC_PI_2 + 0.12, 22.0, &e)
            .position;
        let above = shape
            .point(std::f32::consts::FRAC_PI_2 + 0.12, -40.0, &e)
            .position;
        assert!(ear[0] > 80.0 && ear[0] > above[0], "ear {ear:?}");
    }

    #[test]
    fn opening_the_mouth_moves_the_lower_lip_and_chin_down() {
        let shape = mean_shape();
        let neutral = shape.landmarks(&Expression::default());
        let open = shape.landmarks(&Expression {
            mouth_open: 1.0,
            ..Default::default()
        });
        assert!((open[66][1] - neutral[66][1] - 14.0).abs() < 1.0);
        assert!((open[62][1] - neutral[62][1]).abs() < 0.5);
        assert!(open[8][1] > neutral[8][1] + 7.0);
    }
}
