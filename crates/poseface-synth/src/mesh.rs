//! The triangle mesh of one identity: a grid over the surface parameters `(φ, y)` of
//! [`FaceShape`], with per-vertex albedo and region, and linear expression blend shapes.

use crate::face::{FaceShape, NECK_BOTTOM};
use crate::identity::Expression;

/// How finely the surface is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeshResolution {
    /// Vertices around the head (denser at the front).
    pub columns: usize,
    /// Vertex rows from the top of the head to the bottom of the neck.
    pub rows: usize,
}

impl Default for MeshResolution {
    /// 64 × 72 vertices: about 3 mm between vertices on the face, 9,100 triangles.
    fn default() -> Self {
        Self {
            columns: 64,
            rows: 72,
        }
    }
}

/// Per-vertex changes of one expression at full strength.
#[derive(Debug, Clone, Default)]
struct BlendShape {
    index: Vec<u32>,
    position: Vec<[f32; 3]>,
    albedo: Vec<[f32; 3]>,
}

/// One identity's mesh: neutral geometry and albedo plus four expression blend shapes
/// (mouth open, smile, brow raise, eyes closed).
#[derive(Debug, Clone)]
pub struct FaceMesh {
    columns: usize,
    rows: usize,
    position: Vec<[f32; 3]>,
    albedo: Vec<[f32; 3]>,
    region: Vec<u8>,
    shapes: [BlendShape; 4],
}

fn add(a: [f32; 3], b: [f32; 3], w: f32) -> [f32; 3] {
    [a[0] + w * b[0], a[1] + w * b[1], a[2] + w * b[2]]
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Where the grid's columns go on each side of the head: `(u, φ°)` knots of a
/// piecewise-linear map from the fraction `u` of a side's columns to the angle from the
/// front. Of 32 columns a side: 15 over the eyes, nose and mouth (0–40°, 2.7° apart), 6
/// over the cheek (40–80°), 7 over the ear (80–115°, 5° apart, so that it stands out in
/// profile) and 4 over the back of the head (115–180°), which is only ever seen as a
/// silhouette.
const COLUMN_KNOTS: [(f32, f32); 5] = [
    (0.0, 0.0),
    (15.0 / 32.0, 40.0),
    (21.0 / 32.0, 80.0),
    (28.0 / 32.0, 115.0),
    (1.0, 180.0),
];

/// The grid's angles: `columns` values over `[-π, π)`, symmetric about the front, spaced
/// as [`COLUMN_KNOTS`] say.
fn column_angles(columns: usize) -> Vec<f32> {
    (0..columns)
        .map(|j| {
            let t = -1.0 + 2.0 * j as f32 / columns as f32;
            let u = t.abs();
            let k = COLUMN_KNOTS
                .windows(2)
                .position(|w| u <= w[1].0)
                .unwrap_or(COLUMN_KNOTS.len() - 2);
            let ((u0, a0), (u1, a1)) = (COLUMN_KNOTS[k], COLUMN_KNOTS[k + 1]);
            let degrees = a0 + (a1 - a0) * (u - u0) / (u1 - u0);
            degrees.copysign(t).to_radians()
        })
        .collect()
}

/// The grid's heights: a dome from the top, the face and jaw evenly, then the neck.
fn row_heights(top: f32, rows: usize) -> Vec<f32> {
    let dome = (rows / 9).max(3);
    let neck = (rows / 12).max(2);
    let face = rows.saturating_sub(dome + neck).max(2);
    let (face_top, face_bottom) = (-45.0, 130.0);
    let mut ys = Vec::with_capacity(rows);
    for i in 0..dome {
        let t = i as f32 / dome as f32;
        ys.push(top + (face_top - top) * (1.0 - (std::f32::consts::FRAC_PI_2 * t).cos()));
    }
    for i in 0..face {
        ys.push(face_top + (face_bottom - face_top) * i as f32 / face as f32);
    }
    for i in 0..neck {
        ys.push(face_bottom + (NECK_BOTTOM - face_bottom) * i as f32 / (neck - 1).max(1) as f32);
    }
    ys.truncate(rows);
    ys
}

impl FaceMesh {
    /// Samples `shape` on a grid of `resolution`.
    pub fn build(shape: &FaceShape, resolution: MeshResolution) -> Self {
        let columns = resolution.columns.max(8);
        let rows = resolution.rows.max(8);
        let phis = column_angles(columns);
        let ys = row_heights(shape.top(), rows);
        let n = rows * columns;
        let mut position = Vec::with_capacity(n);
        let mut albedo = Vec::with_capacity(n);
        let mut region = Vec::with_capacity(n);
        let neutral = Expression::default();
        let variants = [
            Expression {
                mouth_open: 1.0,
                ..neutral
            },
            Expression {
                smile: 1.0,
                ..neutral
            },
            Expression {
                brow_raise: 1.0,
                ..neutral
            },
            Expression {
                eyes_closed: true,
                ..neutral
            },
        ];
        let mut shapes: [BlendShape; 4] = Default::default();
        let chin = shape.landmarks(&neutral)[8][1];
        for &y in &ys {
            for &phi in &phis {
                let base = shape.base(phi, y);
                let texture = shape.texture(&base);
                let p = shape.point_from(&base, &texture, &neutral);
                let i = position.len() as u32;
                // Expressions only move the front of the face between the brows and the chin.
                if phi.cos() > 0.0 && y > -50.0 && y < chin + 20.0 {
                    // Where each expression can change anything (mouth, smile, brows,
                    // eyelids), with margins over the displacement fields of `FaceShape`.
                    let reach = [y > 50.0, y > -5.0, y < 2.0, y.abs() < 16.0];
                    for ((bs, e), _) in shapes
                        .iter_mut()
                        .zip(&variants)
                        .zip(reach)
                        .filter(|(_, r)| *r)
                    {
                        let q = shape.point_from(&base, &texture, e);
                        let dp = sub(q.position, p.position);
                        let da = sub(q.albedo, p.albedo);
                        if dp.iter().chain(&da).any(|v| v.abs() > 1e-5) {
                            bs.index.push(i);
                            bs.position.push(dp);
                            bs.albedo.push(da);
                        }
                    }
                }
                position.push(p.position);
                albedo.push(p.albedo);
                region.push(p.region as u8);
            }
        }
        Self {
            columns,
            rows,
            position,
            albedo,
            region,
            shapes,
        }
    }

    /// Number of vertices.
    pub fn vertex_count(&self) -> usize {
        self.position.len()
    }

    /// Number of triangles (two per grid cell, degenerate ones at the top included).
    pub fn triangle_count(&self) -> usize {
        2 * (self.rows - 1) * self.columns
    }

    /// Grid size `(rows, columns)`.
    pub fn grid(&self) -> (usize, usize) {
        (self.rows, self.columns)
    }

    /// Per-vertex region codes ([`crate::face::Region`] as `u8`) of the neutral face.
    pub fn regions(&self) -> &[u8] {
        &self.region
    }

    /// Writes the vertex positions and albedo under expression `e` into the buffers.
    pub fn pose_expression(
        &self,
        e: &Expression,
        position: &mut Vec<[f32; 3]>,
        albedo: &mut Vec<[f32; 3]>,
    ) {
        position.clear();
        position.extend_from_slice(&self.position);
        albedo.clear();
        albedo.extend_from_slice(&self.albedo);
        let weights = [
            e.mouth_open,
            e.smile,
            e.brow_raise,
            if e.eyes_closed { 1.0 } else { 0.0 },
        ];
        for (bs, &w) in self.shapes.iter().zip(&weights) {
            if w == 0.0 {
                continue;
            }
            for k in 0..bs.index.len() {
                let i = bs.index[k] as usize;
                position[i] = add(position[i], bs.position[k], w);
                albedo[i] = add(albedo[i], bs.albedo[k], w);
            }
        }
    }

    /// Outward unit normals of the vertex positions `position` (from grid neighbours).
    pub fn normals(&self, position: &[[f32; 3]], out: &mut Vec<[f32; 3]>) {
        let (rows, cols) = (self.rows, self.columns);
        out.clear();
        out.reserve(position.len());
        for r in 0..rows {
            let (up, down) = (r.saturating_sub(1), (r + 1).min(rows - 1));
            for c in 0..cols {
                let (left, right) = ((c + cols - 1) % cols, (c + 1) % cols);
                let tphi = sub(position[r * cols + right], position[r * cols + left]);
                let ty = sub(position[down * cols + c], position[up * cols + c]);
                let n = cross(ty, tphi);
                let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
                out.push(if len > 1e-9 {
                    [n[0] / len, n[1] / len, n[2] / len]
                } else if r == 0 {
                    [0.0, -1.0, 0.0]
                } else {
                    [0.0, 1.0, 0.0]
                });
            }
        }
    }

    /// Calls `f` with the vertex indices of every triangle, wound so that triangles facing
    /// the camera have a positive signed area in image coordinates (`x` right, `y` down).
    pub fn for_each_triangle(&self, mut f: impl FnMut([usize; 3])) {
        for r in 0..self.rows - 1 {
            for c in 0..self.columns {
                let [first, second] = self.cell(r, c);
                f(first);
                f(second);
            }
        }
    }

    /// The two triangles of grid cell `(r, c)` (between vertex rows `r` and `r + 1` and
    /// columns `c` and `c + 1`, the last column joining the first), in drawing order:
    /// `(r c, r c+1, r+1 c)` and `(r c+1, r+1 c+1, r+1 c)`.
    pub fn cell(&self, r: usize, c: usize) -> [[usize; 3]; 2] {
        let cols = self.columns;
        let c1 = (c + 1) % cols;
        let (a, b) = (r * cols + c, r * cols + c1);
        let (d, e) = ((r + 1) * cols + c, (r + 1) * cols + c1);
        [[a, b, d], [b, e, d]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, IdentityCode};

    #[test]
    fn grid_has_the_documented_size_and_blend_shapes_move_the_mouth() {
        let shape = FaceShape::new(&Identity::new(&IdentityCode::mean(), 1.0));
        let mesh = FaceMesh::build(&shape, MeshResolution::default());
        assert_eq!(mesh.vertex_count(), 64 * 72);
        assert_eq!(mesh.triangle_count(), 2 * 71 * 64);
        assert!(mesh.triangle_count() >= 2000);
        let (mut p0, mut a0) = (Vec::new(), Vec::new());
        let (mut p1, mut a1) = (Vec::new(), Vec::new());
        mesh.pose_expression(&Expression::default(), &mut p0, &mut a0);
        let open = Expression {
            mouth_open: 1.0,
            ..Default::default()
        };
        mesh.pose_expression(&open, &mut p1, &mut a1);
        // The surface is sampled at fixed (φ, y): features move across it, so vertices
        // change depth and colour, not height.
        let changed: Vec<usize> = (0..p0.len())
            .filter(|&i| (p0[i][2] - p1[i][2]).abs() > 1.0 || (a0[i][1] - a1[i][1]).abs() > 0.1)
            .collect();
        assert!(
            changed.len() > 50,
            "only {} vertices changed",
            changed.len()
        );
        assert!(
            changed.iter().all(|&i| p0[i][1] > 60.0),
            "only the lower face changes"
        );
        // Normals at the front point at the camera (−z).
        let mut n = Vec::new();
        mesh.normals(&p0, &mut n);
        let front = n
            .iter()
            .zip(&p0)
            .filter(|(_, p)| p[0].abs() < 3.0 && (p[1] - 10.0).abs() < 3.0 && p[2] < 40.0)
            .map(|(n, _)| n[2])
            .collect::<Vec<_>>();
        assert!(
            !front.is_empty() && front.iter().all(|&z| z < -0.5),
            "{front:?}"
        );
    }
}
