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
    /// `[x0, y0, x1, y1]`: a box (inclusive) holding every covered sample, if any.
    reached: Option<[usize; 4]>,
}

/// A vertex in screen space: pixel `x`, `y` and `1/z`.
pub type ScreenVertex = [f32; 3];

fn edge(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// `ceil(v)` for `v ≥ 0`, 0 for negative `v` (a truncating cast and a compare: `ceil` is a
/// library call on baseline x86-64).
fn ceil_non_negative(v: f32) -> isize {
    let v = v.max(0.0);
    let t = v as isize;
    t + ((t as f32) < v) as isize
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
        self.reached = None;
    }

    /// A box `[x0, y0, x1, y1]` (inclusive) holding every sample drawn since the last
    /// reset, if any was.
    pub fn reached(&self) -> Option<[usize; 4]> {
        self.reached
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
        let (min_x, min_y) = (ceil_non_negative(lo_x - 0.5), ceil_non_negative(lo_y - 0.5));
        let max_x = ((hi_x - 0.5) as isize).min(self.width as isize - 1);
        let max_y = ((hi_y - 0.5) as isize).min(self.height as isize - 1);
        // Most triangles of a fine mesh cover no sample at all: stop before the set-up.
        if min_x > max_x || min_y > max_y {
            return;
        }
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
        let (min_x, max_x) = (min_x as usize, max_x as usize);
        let (min_y, max_y) = (min_y as usize, max_y as usize);
        let r = self.reached.get_or_insert([min_x, min_y, max_x, max_y]);
        *r = [
            r[0].min(min_x),
            r[1].min(min_y),
            r[2].max(max_x),
            r[3].max(max_y),
        ];
        for y in min_y..max_y + 1 {
            let (mut w0, mut w1, mut w2) = (r0, r1, r2);
            // The row's span as slices, so that the loop needs no bounds checks.
            let span = y * self.width + min_x..y * self.width + max_x + 1;
            let depth = &mut self.inv_depth[span.clone()];
            let color = &mut self.color[span.clone()];
            let regions = &mut self.region[span];
            for ((dep, col), reg) in depth.iter_mut().zip(color).zip(regions) {
                // Inside when no edge function is negative: one test on the OR of the sign
                // bits instead of three unpredictable branches (−0.0 counts as outside).
                if (w0.to_bits() | w1.to_bits() | w2.to_bits()) >> 31 == 0 {
                    let (l0, l1, l2) = (w0 * inv_area, w1 * inv_area, w2 * inv_area);
                    let iz = l0 * v[0][2] + l1 * v[1][2] + l2 * v[2][2];
                    if iz > *dep {
                        *dep = iz;
                        *col = [
                            l0 * c[0][0] + l1 * c[1][0] + l2 * c[2][0],
                            l0 * c[0][1] + l1 * c[1][1] + l2 * c[2][1],
                            l0 * c[0][2] + l1 * c[1][2] + l2 * c[2][2],
                        ];
                        *reg = region;
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

/// Whether a span `lo..=hi` holds a sample centre `k + 0.5`, that is whether
/// `floor(hi − 0.5) ≥ lo − 0.5`, in float arithmetic only (so that a loop of these
/// vectorises): adding and taking away 1.5 · 2²³ rounds to the nearest integer, exactly for
/// `|v| < 2²²`. Spans of a pixel or more always hold one, huge ones included (where the
/// rounding trick does not apply); NaN holds none.
#[inline(always)]
fn holds_centre(lo: f32, hi: f32) -> bool {
    const ROUND: f32 = 12_582_912.0;
    let v = hi - 0.5;
    let nearest = (v + ROUND) - ROUND;
    let floor = nearest - if nearest > v { 1.0 } else { 0.0 };
    (hi - lo >= 1.0) | (floor >= lo - 0.5)
}

/// Sorts one row of a grid mesh's triangles before drawing, many at a time in vector lanes
/// (most triangles of a fine mesh face away, fall outside or cover no sample, and testing
/// them one by one in [`Raster::triangle`] was most of its time).
///
/// `top` and `bottom` are the screen `x` and `y` of two consecutive vertex rows, `cols + 1`
/// each (the first vertex repeated at the end, where the grid closes). Grid cell `c` holds
/// triangle 0, `(top c, top c+1, bottom c)`, and triangle 1, `(top c+1, bottom c+1,
/// bottom c)`; see [`RowClasses`] for what is found.
pub fn sort_grid_row(
    top: (&[f32], &[f32]),
    bottom: (&[f32], &[f32]),
    width: usize,
    height: usize,
    out: &mut RowClasses,
) {
    let cols = top.0.len() - 1;
    let (tx, ty) = (&top.0[..cols + 1], &top.1[..cols + 1]);
    let (bx, by) = (&bottom.0[..cols + 1], &bottom.1[..cols + 1]);
    for k in 0..2 {
        out.class[k].resize(cols, 0);
        out.bounds[k].resize(cols, [0.0; 4]);
    }
    let [first, second] = &mut out.class;
    let [first_bounds, second_bounds] = &mut out.bounds;
    let (second, first_bounds, second_bounds) = (
        &mut second[..cols],
        &mut first_bounds[..cols],
        &mut second_bounds[..cols],
    );
    let (w, h) = (width as f32, height as f32);
    let class = |a: [f32; 2], b: [f32; 2], d: [f32; 2]| {
        let area = edge(a, b, d);
        let (lo_x, hi_x) = (a[0].min(b[0]).min(d[0]), a[0].max(b[0]).max(d[0]));
        let (lo_y, hi_y) = (a[1].min(b[1]).min(d[1]), a[1].max(b[1]).max(d[1]));
        let shown = (area > 0.0) & (hi_x >= 0.0) & (hi_y >= 0.0) & (lo_x < w) & (lo_y < h);
        let covers = shown & holds_centre(lo_x, hi_x) & holds_centre(lo_y, hi_y);
        (shown as u8 | (covers as u8) << 1, [lo_x, lo_y, hi_x, hi_y])
    };
    for c in 0..cols {
        let (t0, t1) = ([tx[c], ty[c]], [tx[c + 1], ty[c + 1]]);
        let (b0, b1) = ([bx[c], by[c]], [bx[c + 1], by[c + 1]]);
        (first[c], first_bounds[c]) = class(t0, t1, b0);
        (second[c], second_bounds[c]) = class(t1, b1, b0);
    }
}

/// What [`sort_grid_row`] finds about the two triangles of each cell of a grid row.
#[derive(Debug, Clone, Default)]
pub struct RowClasses {
    /// Per triangle (0 and 1) and cell: bit 0 when the triangle faces the camera (positive
    /// signed area, as [`Raster::triangle`] computes it) and its box meets the picture, and
    /// bit 1 when, besides, its box holds a sample centre. Only triangles with bit 1 can
    /// cover a sample; both kinds can reach a pixel's area.
    pub class: [Vec<u8>; 2],
    /// Per triangle and cell: its bounding box `[lo_x, lo_y, hi_x, hi_y]`.
    pub bounds: [Vec<[f32; 4]>; 2],
}

/// Supersamples only chosen pixels (those at an edge of the one-sample picture): each
/// chosen pixel gets `ss × ss` samples at `((k + 0.5) / ss)` within it, drawn with the
/// same coverage rule, depth test and interpolation as [`Raster`].
///
/// A summed-area table of the chosen pixels lets a triangle that reaches none of them be
/// skipped after one look-up, and a bit mask per row walks the others straight to the
/// chosen pixels in their box.
#[derive(Debug, Clone, Default)]
pub struct EdgeSamples {
    width: usize,
    height: usize,
    ss: usize,
    /// Refined pixels as bits, `words` 64-bit words per row.
    bits: Vec<u64>,
    words: usize,
    /// Per 64-pixel word: the number of refined pixels before it (its first slot).
    before: Vec<u32>,
    /// `(width + 1) × (height + 1)` summed-area table of the refined pixels.
    table: Vec<u32>,
    /// Pixel index of each slot, in row order.
    pub pixels: Vec<u32>,
    /// `1/z` per sample (`slot · ss² + k`, 0 where empty).
    pub inv_depth: Vec<f32>,
    /// Colour per sample.
    pub color: Vec<[f32; 3]>,
    /// Region code per sample.
    pub region: Vec<u8>,
}

impl EdgeSamples {
    /// Chooses the pixels of a `width × height` picture where `chosen[i]` is not 0, with
    /// `ss` samples per axis each, all empty.
    pub fn reset(&mut self, width: usize, height: usize, ss: usize, chosen: &[u8]) {
        assert_eq!(chosen.len(), width * height, "one flag per pixel");
        self.width = width;
        self.height = height;
        self.ss = ss.max(1);
        self.words = width.div_ceil(64);
        self.bits.clear();
        self.before.clear();
        self.pixels.clear();
        let w1 = width + 1;
        self.table.clear();
        self.table.resize(w1 * (height + 1), 0);
        for (y, row) in chosen.chunks_exact(width).enumerate() {
            if !row.iter().any(|&c| c != 0) {
                // A row without a chosen pixel (above and below the head): the table
                // repeats the row above.
                self.table.copy_within(y * w1..(y + 1) * w1, (y + 1) * w1);
                for _ in 0..self.words {
                    self.before.push(self.pixels.len() as u32);
                    self.bits.push(0);
                }
                continue;
            }
            let mut run = 0u32;
            for (x, &c) in row.iter().enumerate() {
                run += (c != 0) as u32;
                self.table[(y + 1) * w1 + x + 1] = self.table[y * w1 + x + 1] + run;
            }
            for (w, part) in row.chunks(64).enumerate() {
                let word = part
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (b, &c)| acc | ((c != 0) as u64) << b);
                self.before.push(self.pixels.len() as u32);
                let mut set = word;
                while set != 0 {
                    let x = w * 64 + set.trailing_zeros() as usize;
                    self.pixels.push((y * width + x) as u32);
                    set &= set - 1;
                }
                self.bits.push(word);
            }
        }
        let n = self.pixels.len() * self.ss * self.ss;
        self.inv_depth.clear();
        self.inv_depth.resize(n, 0.0);
        self.color.resize(n, [0.0; 3]);
        self.region.resize(n, 0);
    }

    /// Samples per axis.
    pub fn samples_per_axis(&self) -> usize {
        self.ss
    }

    /// The bits of row `y`'s word `w` between columns `x0` and `x1` (inclusive).
    fn span(&self, y: usize, w: usize, x0: usize, x1: usize) -> u64 {
        let (from, to) = (x0.max(w * 64) - w * 64, x1.min(w * 64 + 63) - w * 64);
        self.bits[y * self.words + w] & (u64::MAX >> (63 - to)) & (u64::MAX << from)
    }

    /// Whether any refined pixel lies in the inclusive box (one look-up in the
    /// summed-area table).
    fn any_in(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> bool {
        let w1 = self.width + 1;
        let t = |x: usize, y: usize| self.table[y * w1 + x];
        t(x1 + 1, y1 + 1) + t(x0, y0) != t(x0, y1 + 1) + t(x1 + 1, y0)
    }

    /// Draws one triangle (vertices in pixel units) into the refined pixels' samples, by
    /// the same rules as [`Raster::triangle`]. Its colours and regions are asked of
    /// `attributes` only when it reaches a refined pixel.
    pub fn triangle(
        &mut self,
        v: [ScreenVertex; 3],
        attributes: impl FnOnce() -> ([[f32; 3]; 3], [u8; 3]),
    ) {
        let (a, b, d) = ([v[0][0], v[0][1]], [v[1][0], v[1][1]], [v[2][0], v[2][1]]);
        let area = edge(a, b, d);
        let bounds = [
            a[0].min(b[0]).min(d[0]),
            a[1].min(b[1]).min(d[1]),
            a[0].max(b[0]).max(d[0]),
            a[1].max(b[1]).max(d[1]),
        ];
        if area > 0.0 {
            self.triangle_within(bounds, || {
                let (c, regions) = attributes();
                (v, c, regions)
            });
        }
    }

    /// [`EdgeSamples::triangle`] for a triangle known to face the camera, given its
    /// bounding box `[lo_x, lo_y, hi_x, hi_y]` (as [`sort_grid_row`] finds it): when the box
    /// reaches no refined pixel, `triangle` (vertices, colours, regions) is not even asked
    /// for.
    pub fn triangle_within(
        &mut self,
        [lo_x, lo_y, hi_x, hi_y]: [f32; 4],
        triangle: impl FnOnce() -> ([ScreenVertex; 3], [[f32; 3]; 3], [u8; 3]),
    ) {
        if self.pixels.is_empty()
            || !(hi_x >= 0.0 && hi_y >= 0.0)
            || !(lo_x < self.width as f32 && lo_y < self.height as f32)
        {
            return;
        }
        // Pixels the triangle can reach: `floor(lo) ..= floor(hi)`, clamped.
        let (min_x, min_y) = (lo_x.max(0.0) as usize, lo_y.max(0.0) as usize);
        let max_x = (hi_x as usize).min(self.width - 1);
        let max_y = (hi_y as usize).min(self.height - 1);
        if !self.any_in(min_x, min_y, max_x, max_y) {
            return;
        }
        let (v, c, regions) = triangle();
        let (a, b, d) = ([v[0][0], v[0][1]], [v[1][0], v[1][1]], [v[2][0], v[2][1]]);
        let area = edge(a, b, d);
        let region = if regions[0] == regions[1] || regions[0] == regions[2] {
            regions[0]
        } else {
            regions[1]
        };
        let corners = [min_x, min_y, max_x, max_y];
        // The sample loops unrolled for the common sizes.
        match self.ss {
            2 => self.draw(v, c, region, 1.0 / area, corners, 2),
            3 => self.draw(v, c, region, 1.0 / area, corners, 3),
            4 => self.draw(v, c, region, 1.0 / area, corners, 4),
            ss => self.draw(v, c, region, 1.0 / area, corners, ss),
        }
    }

    #[inline(always)]
    fn draw(
        &mut self,
        v: [ScreenVertex; 3],
        c: [[f32; 3]; 3],
        region: u8,
        inv_area: f32,
        [min_x, min_y, max_x, max_y]: [usize; 4],
        ss: usize,
    ) {
        let (a, b, d) = ([v[0][0], v[0][1]], [v[1][0], v[1][1]], [v[2][0], v[2][1]]);
        // Edge functions at the first sample of pixel (0, 0) and their steps per pixel;
        // the samples within a pixel are `(k + 0.5) / ss` from its corner.
        let o = 0.5 / ss as f32;
        let (e0, e1, e2) = (edge(b, d, [o, o]), edge(d, a, [o, o]), edge(a, b, [o, o]));
        let (dx0, dx1, dx2) = (-(d[1] - b[1]), -(a[1] - d[1]), -(b[1] - a[1]));
        let (dy0, dy1, dy2) = (d[0] - b[0], a[0] - d[0], b[0] - a[0]);
        let step = 1.0 / ss as f32;
        for y in min_y..max_y + 1 {
            // The chosen pixels of this row within the box, a 64-pixel word at a time; a
            // pixel's slot is the word's first plus the chosen pixels before it in the word.
            for w in min_x / 64..max_x / 64 + 1 {
                let word = y * self.words + w;
                let mut set = self.span(y, w, min_x, max_x);
                while set != 0 {
                    let b = set.trailing_zeros();
                    set &= set - 1;
                    let x = w * 64 + b as usize;
                    let below = self.bits[word] & ((1u64 << b) - 1);
                    let slot = self.before[word] as usize + below.count_ones() as usize;
                    let base = slot * ss * ss;
                    let (fx, fy) = (x as f32, y as f32);
                    let p0 = e0 + dx0 * fx + dy0 * fy;
                    let p1 = e1 + dx1 * fx + dy1 * fy;
                    let p2 = e2 + dx2 * fx + dy2 * fy;
                    // All of the pixel's samples without branches: each is written back
                    // unchanged where it is outside the triangle or farther.
                    let depth = &mut self.inv_depth[base..base + ss * ss];
                    let color = &mut self.color[base..base + ss * ss];
                    let regions = &mut self.region[base..base + ss * ss];
                    for k in 0..ss * ss {
                        let (t, u) = ((k / ss) as f32 * step, (k % ss) as f32 * step);
                        let w0 = p0 + dy0 * t + dx0 * u;
                        let w1 = p1 + dy1 * t + dx1 * u;
                        let w2 = p2 + dy2 * t + dx2 * u;
                        let (l0, l1, l2) = (w0 * inv_area, w1 * inv_area, w2 * inv_area);
                        let iz = l0 * v[0][2] + l1 * v[1][2] + l2 * v[2][2];
                        let inside = (w0.to_bits() | w1.to_bits() | w2.to_bits()) >> 31 == 0;
                        let nearer = inside & (iz > depth[k]);
                        let new = [
                            l0 * c[0][0] + l1 * c[1][0] + l2 * c[2][0],
                            l0 * c[0][1] + l1 * c[1][1] + l2 * c[2][1],
                            l0 * c[0][2] + l1 * c[1][2] + l2 * c[2][2],
                        ];
                        depth[k] = if nearer { iz } else { depth[k] };
                        color[k] = if nearer { new } else { color[k] };
                        regions[k] = if nearer { region } else { regions[k] };
                    }
                }
            }
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

    /// Random triangles over a `size`-pixel picture, mostly small as a mesh's are.
    fn random_triangles(seed: u64, size: f32, count: usize) -> Vec<[ScreenVertex; 3]> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                let (cx, cy) = (
                    rng.random_range(-2.0..size + 2.0),
                    rng.random_range(-2.0..size + 2.0),
                );
                let r = if rng.random_bool(0.8) {
                    2.0
                } else {
                    size * 0.5
                };
                let mut p = || {
                    [
                        cx + rng.random_range(-r..r),
                        cy + rng.random_range(-r..r),
                        rng.random_range(0.5..1.0),
                    ]
                };
                [p(), p(), p()]
            })
            .collect()
    }

    #[test]
    fn edge_samples_draw_what_a_supersampled_raster_draws() {
        let (size, ss) = (12usize, 2usize);
        for seed in 0..20 {
            let triangles = random_triangles(seed, size as f32, 60);
            // Every other pixel refined, by a pattern that is neither rows nor columns.
            let chosen: Vec<u8> = (0..size * size).map(|i| ((i * 7 / 3) % 2) as u8).collect();
            let mut edges = EdgeSamples::default();
            edges.reset(size, size, ss, &chosen);
            let mut full = Raster::default();
            full.reset(size * ss, size * ss);
            for (k, v) in triangles.iter().enumerate() {
                let c = [
                    [k as f32, 0.0, 1.0],
                    [0.0, k as f32, 1.0],
                    [1.0, 1.0, k as f32],
                ];
                edges.triangle(*v, || (c, [1, 2, 2]));
                let scaled = v.map(|p| [p[0] * ss as f32, p[1] * ss as f32, p[2]]);
                full.triangle(scaled, c, [1, 2, 2]);
            }
            for (slot, &pixel) in edges.pixels.iter().enumerate() {
                let (x, y) = (pixel as usize % size, pixel as usize / size);
                assert!(chosen[pixel as usize] != 0);
                for k in 0..ss * ss {
                    let (sx, sy) = (x * ss + k % ss, y * ss + k / ss);
                    let (a, b) = (
                        edges.inv_depth[slot * ss * ss + k],
                        full.inv_depth[sy * size * ss + sx],
                    );
                    assert!(
                        (a - b).abs() <= 1e-4 * b.max(1e-3),
                        "seed {seed} pixel ({x}, {y}) sample {k}: {a} vs {b}"
                    );
                    if b > 0.0 {
                        let (ca, cb) = (
                            edges.color[slot * ss * ss + k],
                            full.color[sy * size * ss + sx],
                        );
                        assert!(
                            (0..3).all(|j| (ca[j] - cb[j]).abs() < 0.01),
                            "{ca:?} vs {cb:?}"
                        );
                    }
                }
            }
            assert_eq!(
                edges.pixels.len(),
                chosen.iter().filter(|&&c| c != 0).count()
            );
        }
    }

    #[test]
    fn sorting_a_grid_row_keeps_every_triangle_that_covers_a_sample() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (cols, size) = (40usize, 30usize);
        let (mut kept, mut covering, mut shown) = (0, 0, 0);
        for _ in 0..200 {
            // Two rows of a jittered grid, partly off the picture, some cells folded over.
            let y0 = rng.random_range(-5.0..35.0);
            let mut row = |y: f32| -> (Vec<f32>, Vec<f32>) {
                let xs: Vec<f32> = (0..cols)
                    .map(|c| c as f32 * 0.9 - 3.0 + rng.random_range(-1.0..1.0))
                    .collect();
                let ys: Vec<f32> = (0..cols).map(|_| y + rng.random_range(-1.0..1.0)).collect();
                (
                    xs.iter().chain(&xs[..1]).copied().collect(),
                    ys.iter().chain(&ys[..1]).copied().collect(),
                )
            };
            let (top, bottom) = (row(y0), row(y0 + 1.2));
            let mut classes = RowClasses::default();
            sort_grid_row(
                (&top.0, &top.1),
                (&bottom.0, &bottom.1),
                size,
                size,
                &mut classes,
            );
            let [first, second] = &classes.class;
            for c in 0..cols {
                let t = |x: &(Vec<f32>, Vec<f32>), i: usize| [x.0[i], x.1[i], 1.0];
                let tris = [
                    [t(&top, c), t(&top, c + 1), t(&bottom, c)],
                    [t(&top, c + 1), t(&bottom, c + 1), t(&bottom, c)],
                ];
                let bounds = [classes.bounds[0][c], classes.bounds[1][c]];
                for ((v, class), bounds) in tris.into_iter().zip([first[c], second[c]]).zip(bounds)
                {
                    let (xs, ys) = (v.map(|p| p[0]), v.map(|p| p[1]));
                    let box_of = |a: [f32; 3]| {
                        (
                            a.into_iter().fold(f32::MAX, f32::min),
                            a.into_iter().fold(f32::MIN, f32::max),
                        )
                    };
                    let ((lo_x, hi_x), (lo_y, hi_y)) = (box_of(xs), box_of(ys));
                    assert_eq!(bounds, [lo_x, lo_y, hi_x, hi_y]);
                    let mut r = Raster::default();
                    r.reset(size, size);
                    r.triangle(v, [[1.0; 3]; 3], [1; 3]);
                    let covers = r.inv_depth.iter().any(|&d| d > 0.0);
                    let faces =
                        edge([v[0][0], v[0][1]], [v[1][0], v[1][1]], [v[2][0], v[2][1]]) > 0.0;
                    assert!(
                        !covers || class & 2 != 0,
                        "a covering triangle was dropped: {v:?}"
                    );
                    assert!(class & 2 == 0 || class & 1 != 0);
                    assert_eq!(
                        class != 0,
                        faces
                            && hi_x >= 0.0
                            && hi_y >= 0.0
                            && lo_x < size as f32
                            && lo_y < size as f32
                    );
                    kept += (class & 2 != 0) as usize;
                    shown += (class != 0) as usize;
                    covering += covers as usize;
                }
            }
        }
        // Not vacuous: many triangles cover samples, and some that face the camera in the
        // picture are dropped for covering none.
        assert!(
            covering > 1000 && kept < shown,
            "{covering} covering, {kept} kept of {shown}"
        );
    }
}
