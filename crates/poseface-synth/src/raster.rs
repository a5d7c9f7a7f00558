//! A z-buffer triangle rasteriser with Gouraud colour interpolation.
//!
//! Written here because the renderer needs exact control of sampling (pixel centres,
//! supersampling, region ids) and determinism to the byte, and the work is small:
//! edge functions over each triangle's bounding box.

/// Colour, inverse-depth and region buffers of one frame.
#[derive(Debug, Clone, Default)]
pub struct Raster {
    width: usize,
    height: usize,
    /// `1/z` of the nearest surface per sample (0 where empty).
    pub inv_depth: Vec<f32>,
    /// Colour per sample.
    pub color: Vec<[f32; 3]>,
    /// Region code per sample.
    pub region: Vec<u8>,
}

/// A vertex in screen space: pixel `x`, `y` and `1/z`.
pub type ScreenVertex = [f32; 3];

fn edge(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

impl Raster {
    /// Resizes (if needed) and empties the buffers: `width × height` samples, no depth.
    pub fn reset(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        let n = width * height;
        self.inv_depth.clear();
        self.inv_depth.resize(n, 0.0);
        // Colour and region are only read where a depth was written, so stale values from
        // the previous frame are never seen; only a size change reallocates them.
        self.color.resize(n, [0.0; 3]);
        self.region.resize(n, 0);
    }

    /// Buffer width in samples.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Buffer height in samples.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Draws one triangle; triangles with a non-positive signed area (facing away) are
    /// skipped. A sample is covered when its centre is inside or on an edge.
    pub fn triangle(&mut self, v: [ScreenVertex; 3], c: [[f32; 3]; 3], regions: [u8; 3]) {
        let (a, b, d) = ([v[0][0], v[0][1]], [v[1][0], v[1][1]], [v[2][0], v[2][1]]);
        let area = edge(a, b, d);
        // Back-facing, degenerate or NaN.
        if area.is_nan() || area <= 0.0 {
            return;
        }
        // Sample centres are at `i + 0.5`: the covered range is `ceil(min − 0.5) ..= floor(max − 0.5)`.
        // Truncating casts stand in for floor/ceil (slow library calls here); the clamps
        // make negative values harmless.
        let (lo_x, hi_x) = (a[0].min(b[0]).min(d[0]), a[0].max(b[0]).max(d[0]));
        let (lo_y, hi_y) = (a[1].min(b[1]).min(d[1]), a[1].max(b[1]).max(d[1]));
        if hi_x < 0.5 || hi_y < 0.5 || lo_x > self.width as f32 || lo_y > self.height as f32 {
            return;
        }
        let min_x = (lo_x - 0.5).max(0.0) as isize;
        let min_y = (lo_y - 0.5).max(0.0) as isize;
        let max_x = ((hi_x - 0.5) as isize).min(self.width as isize - 1);
        let max_y = ((hi_y - 0.5) as isize).min(self.height as isize - 1);
        let inv_area = 1.0 / area;
        let region = if regions[0] == regions[1] || regions[0] == regions[2] {
            regions[0]
        } else {
            regions[1]
        };
        // Edge functions step linearly in x and y.
        let p0 = [min_x as f32 + 0.5, min_y as f32 + 0.5];
        let (mut r0, mut r1, mut r2) = (edge(b, d, p0), edge(d, a, p0), edge(a, b, p0));
        let (dx0, dx1, dx2) = (-(d[1] - b[1]), -(a[1] - d[1]), -(b[1] - a[1]));
        let (dy0, dy1, dy2) = (d[0] - b[0], a[0] - d[0], b[0] - a[0]);
        for y in min_y..=max_y {
            let (mut w0, mut w1, mut w2) = (r0, r1, r2);
            let row = y as usize * self.width;
            for x in min_x..=max_x {
                // Inside when no edge function is negative: one test on the OR of the sign
                // bits instead of three unpredictable branches (−0.0 counts as outside).
                if (w0.to_bits() | w1.to_bits() | w2.to_bits()) >> 31 == 0 {
                    let (l0, l1, l2) = (w0 * inv_area, w1 * inv_area, w2 * inv_area);
                    let iz = l0 * v[0][2] + l1 * v[1][2] + l2 * v[2][2];
                    let i = row + x as usize;
                    if iz > self.inv_depth[i] {
                        self.inv_depth[i] = iz;
                        self.color[i] = [
                            l0 * c[0][0] + l1 * c[1][0] + l2 * c[2][0],
                            l0 * c[0][1] + l1 * c[1][1] + l2 * c[2][1],
                            l0 * c[0][2] + l1 * c[1][2] + l2 * c[2][2],
                        ];
                        self.region[i] = region;
                    }
                }
                w0 += dx0;
                w1 += dx1;
                w2 += dx2;
            }
            r0 += dy0;
            r1 += dy1;
            r2 += dy2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_inside_keeps_the_nearer_surface_and_culls_back_faces() {
        let mut r = Raster::default();
        r.reset(10, 10);
        // A right triangle with legs of 8 samples: 8·9/2 = 36 sample centres inside or on it.
        let red = [[1.0, 0.0, 0.0]; 3];
        r.triangle(
            [[1.0, 1.0, 0.5], [9.0, 1.0, 0.5], [1.0, 9.0, 0.5]],
            red,
            [1; 3],
        );
        assert_eq!(r.inv_depth.iter().filter(|&&d| d > 0.0).count(), 36);
        // A farther triangle over it changes nothing; a nearer one wins.
        let blue = [[0.0, 0.0, 1.0]; 3];
        r.triangle(
            [[0.0, 0.0, 0.1], [10.0, 0.0, 0.1], [0.0, 10.0, 0.1]],
            blue,
            [2; 3],
        );
        assert_eq!(r.color[2 * 10 + 2], [1.0, 0.0, 0.0]);
        r.triangle(
            [[0.0, 0.0, 0.9], [10.0, 0.0, 0.9], [0.0, 10.0, 0.9]],
            blue,
            [2; 3],
        );
        assert_eq!(r.color[2 * 10 + 2], [0.0, 0.0, 1.0]);
        assert_eq!(r.region[2 * 10 + 2], 2);
        // Reversed winding (facing away) draws nothing.
        r.reset(10, 10);
        r.triangle(
            [[1.0, 1.0, 0.5], [1.0, 9.0, 0.5], [9.0, 1.0, 0.5]],
            red,
            [1; 3],
        );
        assert!(r.inv_depth.iter().all(|&d| d == 0.0));
    }

    #[test]
    fn interpolates_colour_linearly() {
        let mut r = Raster::default();
        r.reset(4, 4);
        let c = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        r.triangle(
            [[0.0, 0.0, 1.0], [4.0, 0.0, 1.0], [0.0, 4.0, 1.0]],
            c,
            [1; 3],
        );
        // Sample (1, 0) has its centre at (1.5, 0.5): red = 1.5/4, green = 0.5/4.
        let s = r.color[1];
        assert!((s[0] - 0.375).abs() < 1e-6 && (s[1] - 0.125).abs() < 1e-6);
    }
}
