//! The `flex` kernels of [`conv2d`](super::conv2d): im2col, col2im and the `gemm` products.

use std::ops::Range;

use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::tensor::TensorData;
use rayon::prelude::*;

use super::{ConvBackwardKernel, ConvGeometry, FusedConvBackend};
use crate::flex_blocks::values;

/// Patch values built at a time (1 MB): output rows are taken in bands of about this many
/// patch values, so a band's patches stay in the core's cache between being built and used.
const BAND_VALUES: usize = 256 * 1024;

/// The weight gradient is summed over at most this many fixed groups of images (each group's
/// images in order, then the groups in order), so it does not depend on the thread count.
const WEIGHT_GRADIENT_GROUPS: usize = 8;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Dims {
    images: usize,
    channels: usize,
    h: usize,
    w: usize,
    channels_out: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    geometry: ConvGeometry,
}

impl Dims {
    fn new(x: &FlexTensor, weight: &FlexTensor, geometry: ConvGeometry) -> Self {
        let (xs, ws) = (x.shape(), weight.shape());
        let (h, w, kh, kw) = (xs[2], xs[3], ws[2], ws[3]);
        let [oh, ow] = geometry
            .output_size([h, w], [kh, kw])
            .expect("a kernel that fits the padded input (checked by `conv2d`)");
        Self {
            images: xs[0],
            channels: xs[1],
            h,
            w,
            channels_out: ws[0],
            kh,
            kw,
            oh,
            ow,
            geometry,
        }
    }

    /// Rows of an image's patch matrix: one per (channel, kernel row, kernel column).
    fn patch_rows(&self) -> usize {
        self.channels * self.kh * self.kw
    }

    /// Output pixels per image: the patch matrix's columns.
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    fn image_len(&self) -> usize {
        self.channels * self.h * self.w
    }

    fn output_len(&self) -> usize {
        self.channels_out * self.pixels()
    }

    /// Whether the patch matrix is the image itself (1×1 kernel, stride 1, no padding).
    fn patches_are_the_image(&self) -> bool {
        let g = &self.geometry;
        self.kh == 1
            && self.kw == 1
            && g.stride == [1, 1]
            && g.padding_begin == [0, 0]
            && g.padding_end == [0, 0]
    }

    /// Whether [`im2col_same_width`] applies: stride 1, output rows as wide as input rows,
    /// and neither side's padding wider than a row (so a shifted row overlaps the plane).
    fn same_width(&self) -> bool {
        let g = &self.geometry;
        g.stride == [1, 1]
            && self.ow == self.w
            && g.padding_begin[1] <= self.w
            && g.padding_end[1] <= self.w
    }

    fn is_empty(&self) -> bool {
        self.images == 0 || self.output_len() == 0 || self.image_len() == 0
    }

    /// For output row `oh` and kernel row `i`, the input row, if inside the image.
    fn input_row(&self, oh: usize, i: usize) -> Option<usize> {
        (oh * self.geometry.stride[0] + i)
            .checked_sub(self.geometry.padding_begin[0])
            .filter(|&h| h < self.h)
    }

    /// For kernel column `j`, the output columns whose input column is inside the image
    /// (`ow·stride + j − pad ∈ [0, w)`), as a range.
    fn valid_columns(&self, j: usize) -> Range<usize> {
        let (stride, pad) = (self.geometry.stride[1], self.geometry.padding_begin[1]);
        let first = pad.saturating_sub(j).div_ceil(stride).min(self.ow);
        let end = (self.w + pad)
            .saturating_sub(j)
            .div_ceil(stride)
            .min(self.ow);
        first..end.max(first)
    }

    /// The output rows in bands of about [`BAND_VALUES`] patch values (the whole image when
    /// its patches are the image itself).
    fn bands(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        let per_row = (self.patch_rows() * self.ow).max(1);
        let band = if self.patches_are_the_image() {
            self.oh
        } else {
            (BAND_VALUES / per_row).clamp(1, self.oh.max(1))
        };
        let oh = self.oh;
        (0..oh)
            .step_by(band)
            .map(move |start| start..(start + band).min(oh))
    }

    /// Calls `f(patch row, kernel column, output row within the band, input row, valid
    /// output columns)` for every output row of `band` of every patch row; the input row is
    /// `None` where the window row lies outside the image.
    fn for_each_row(
        &self,
        band: Range<usize>,
        mut f: impl FnMut(usize, usize, usize, Option<usize>, Range<usize>),
    ) {
        for c in 0..self.channels {
            for i in 0..self.kh {
                for j in 0..self.kw {
                    let row = (c * self.kh + i) * self.kw + j;
                    let columns = self.valid_columns(j);
                    for oh in band.clone() {
                        let input_row = self.input_row(oh, i).map(|h| c * self.h + h);
                        f(row, j, oh - band.start, input_row, columns.clone());
                    }
                }
            }
        }
    }

    /// The input column of output column `ow` at kernel column `j` (inside the image).
    fn input_column(&self, ow: usize, j: usize) -> usize {
        ow * self.geometry.stride[1] + j - self.geometry.padding_begin[1]
    }
}

/// Lays the patches of a band of output rows out as rows: `patches[(c·kh + i)·kw + j]
/// [(oh − band start)·ow_n + ow]` is the input at channel `c`, row `oh·s + i − pad`, column
/// `ow·s + j − pad` (zero outside).
fn im2col(d: &Dims, image: &[f32], band: Range<usize>, patches: &mut [f32]) {
    if d.same_width() {
        return im2col_same_width(d, image, band, patches);
    }
    let (pixels, ow_n, stride) = (band.len() * d.ow, d.ow, d.geometry.stride[1]);
    d.for_each_row(band, |row, j, oh, input_row, columns| {
        let dst = &mut patches[row * pixels + oh * ow_n..][..ow_n];
        let Some(input_row) = input_row else {
            dst.fill(0.0);
            return;
        };
        let src = &image[input_row * d.w..][..d.w];
        dst[..columns.start].fill(0.0);
        dst[columns.end..].fill(0.0);
        if columns.is_empty() {
            return;
        }
        let first_input = d.input_column(columns.start, j);
        let (dst, src) = (&mut dst[columns], &src[first_input..]);
        // Strides 1 and 2 (all of an IResNet's) in forms the compiler vectorises.
        match stride {
            1 => dst.copy_from_slice(&src[..dst.len()]),
            2 => dst
                .iter_mut()
                .zip(src.chunks(2))
                .for_each(|(v, s)| *v = s[0]),
            _ => dst
                .iter_mut()
                .zip(src.iter().step_by(stride))
                .for_each(|(v, s)| *v = *s),
        }
    });
}

/// [`im2col`] when the stride is 1 and output rows are as wide as input rows (3×3 "same"
/// convolutions): a patch row's band is then one shifted copy of the input plane, whose
/// values that wrapped around from the neighbouring row are zeroed afterwards. One copy per
/// patch row instead of one per output row: the rows of narrow layers are a few values long.
fn im2col_same_width(d: &Dims, image: &[f32], band: Range<usize>, patches: &mut [f32]) {
    let (w, plane_len) = (d.w, d.h * d.w);
    let pixels = band.len() * w;
    let (top, left) = (d.geometry.padding_begin[0], d.geometry.padding_begin[1]);
    for c in 0..d.channels {
        let plane = &image[c * plane_len..][..plane_len];
        for i in 0..d.kh {
            // Output rows of the band whose input row (oh + i − top) is inside the image.
            let first = band.start.max(top.saturating_sub(i)).min(band.end);
            let end = band.end.min((d.h + top).saturating_sub(i)).max(first);
            let (lo, hi) = ((first - band.start) * w, (end - band.start) * w);
            for j in 0..d.kw {
                let row = (c * d.kh + i) * d.kw + j;
                let dst = &mut patches[row * pixels..][..pixels];
                dst[..lo].fill(0.0);
                dst[hi..].fill(0.0);
                if lo == hi {
                    continue;
                }
                // Plane index of dst[lo]: input row first + i − top, column j − left.
                let start = ((first + i - top) * w + j) as isize - left as isize;
                let span = &mut dst[lo..hi];
                let from = start.max(0) as usize;
                let to = ((start + span.len() as isize).min(plane_len as isize) as usize).max(from);
                let lead = (from as isize - start) as usize;
                span[..lead].fill(0.0);
                span[lead..lead + (to - from)].copy_from_slice(&plane[from..to]);
                span[lead + (to - from)..].fill(0.0);
                let columns = d.valid_columns(j);
                if columns.start > 0 || columns.end < w {
                    for values in span.chunks_mut(w) {
                        values[..columns.start].fill(0.0);
                        values[columns.end..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each patch value of a band back onto the input pixel it
/// came from. Values that came from padding are dropped (and may be zeroed in `patches`).
fn col2im(d: &Dims, patches: &mut [f32], band: Range<usize>, image: &mut [f32]) {
    if d.same_width() {
        return col2im_same_width(d, patches, band, image);
    }
    let (pixels, ow_n, stride) = (band.len() * d.ow, d.ow, d.geometry.stride[1]);
    d.for_each_row(band, |row, j, oh, input_row, columns| {
        let Some(input_row) = input_row else {
            return; // those patch values came from padding
        };
        let src = &patches[row * pixels + oh * ow_n..][..ow_n];
        let dst = &mut image[input_row * d.w..][..d.w];
        if columns.is_empty() {
            return;
        }
        let first_input = d.input_column(columns.start, j);
        let (dst, src) = (&mut dst[first_input..], &src[columns]);
        match stride {
            1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
            2 => dst.chunks_mut(2).zip(src).for_each(|(d, s)| d[0] += s),
            _ => dst
                .iter_mut()
                .step_by(stride)
                .zip(src)
                .for_each(|(d, s)| *d += s),
        }
    });
}

/// [`col2im`] for the geometry of [`im2col_same_width`]: the values that came from padding
/// columns are zeroed, then a patch row's band is added onto the plane in one shifted pass.
fn col2im_same_width(d: &Dims, patches: &mut [f32], band: Range<usize>, image: &mut [f32]) {
    let (w, plane_len) = (d.w, d.h * d.w);
    let pixels = band.len() * w;
    let (top, left) = (d.geometry.padding_begin[0], d.geometry.padding_begin[1]);
    for c in 0..d.channels {
        let plane = &mut image[c * plane_len..][..plane_len];
        for i in 0..d.kh {
            let first = band.start.max(top.saturating_sub(i)).min(band.end);
            let end = band.end.min((d.h + top).saturating_sub(i)).max(first);
            let (lo, hi) = ((first - band.start) * w, (end - band.start) * w);
            if lo == hi {
                continue;
            }
            for j in 0..d.kw {
                let row = (c * d.kh + i) * d.kw + j;
                let span = &mut patches[row * pixels..][lo..hi];
                let columns = d.valid_columns(j);
                if columns.start > 0 || columns.end < w {
                    for values in span.chunks_mut(w) {
                        values[..columns.start].fill(0.0);
                        values[columns.end..].fill(0.0);
                    }
                }
                let start = ((first + i - top) * w + j) as isize - left as isize;
                let from = start.max(0) as usize;
                let to = ((start + span.len() as isize).min(plane_len as isize) as usize).max(from);
                let lead = (from as isize - start) as usize;
                let span = &span[lead..lead + (to - from)];
                for (p, v) in plane[from..to].iter_mut().zip(span) {
                    *p += v;
                }
            }
        }
    }
}

/// A matrix operand: values and the strides between rows and between columns.
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    row_stride: usize,
    column_stride: usize,
}

impl Mat<'_> {
    /// Whether every element of a `rows × columns` matrix lies inside `data`.
    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || (rows - 1) * self.row_stride + (columns - 1) * self.column_stride < self.data.len()
    }
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]`, `dst` row-major with `dst_row_stride` between rows;
/// `accumulate` adds to what `dst` holds instead of overwriting it.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    parallel: bool,
) {
    let dst_holds = m == 0 || n == 0 || (m - 1) * dst_row_stride + n <= dst.len();
    assert!(dst_row_stride >= n && dst_holds && lhs.holds(m, k) && rhs.holds(k, n));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element gemm reads or writes inside its slice;
    // `dst` is borrowed mutably, so it overlaps neither operand. (`gemm` has no safe API;
    // it is the matrix product `flex` itself uses.)
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.column_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.column_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Few images for the cores: parallelise inside the products instead of across images.
fn parallel_products(tasks: usize) -> bool {
    tasks < rayon::current_num_threads()
}

impl FusedConvBackend for Flex {
    fn fused_conv2d(x: FlexTensor, weight: FlexTensor, geometry: ConvGeometry) -> FlexTensor {
        let d = Dims::new(&x, &weight, geometry);
        let shape = [d.images, d.channels_out, d.oh, d.ow];
        let mut out = vec![0f32; d.images * d.output_len()];
        if !d.is_empty() {
            let (xs, ws) = (values(&x), values(&weight));
            let rows = d.patch_rows();
            let weights = Mat {
                data: &ws,
                row_stride: rows,
                column_stride: 1,
            };
            let parallel = parallel_products(d.images);
            out.par_chunks_mut(d.output_len())
                .zip(xs.par_chunks(d.image_len()))
                .for_each_init(Vec::new, |buffer, (out, image)| {
                    for band in d.bands() {
                        let band_pixels = band.len() * d.ow;
                        let patches = if d.patches_are_the_image() {
                            image
                        } else {
                            buffer.resize(rows * band_pixels, 0.0);
                            im2col(&d, image, band.clone(), buffer);
                            &buffer[..]
                        };
                        let patches = Mat {
                            data: patches,
                            row_stride: band_pixels,
                            column_stride: 1,
                        };
                        // out[c_out × band] = W[c_out × rows] · patches[rows × band]
                        let out = &mut out[band.start * d.ow..];
                        let dims = [d.channels_out, band_pixels, rows];
                        sgemm(dims, out, d.pixels(), false, weights, patches, parallel);
                    }
                });
        }
        FlexTensor::from_data(TensorData::new(out, shape))
    }
}

impl ConvBackwardKernel for Flex {
    fn fused_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: ConvGeometry,
        input_grad: bool,
        weight_grad: bool,
    ) -> (Option<FlexTensor>, Option<FlexTensor>) {
        let d = Dims::new(&x, &weight, geometry);
        let (rows, pixels) = (d.patch_rows(), d.pixels());
        let mut dx = vec![
            0f32;
            if input_grad {
                d.images * d.image_len()
            } else {
                0
            }
        ];
        let mut dweight = vec![0f32; d.channels_out * rows];
        if !d.is_empty() {
            let (xs, ws, gs) = (values(&x), values(&weight), values(&grad));
            let group_size = d.images.div_ceil(WEIGHT_GRADIENT_GROUPS.min(d.images));
            let groups = d.images.div_ceil(group_size);
            let dx_groups: Vec<Option<&mut [f32]>> = if input_grad {
                dx.chunks_mut(group_size * d.image_len())
                    .map(Some)
                    .collect()
            } else {
                (0..groups).map(|_| None).collect()
            };
            let parallel = parallel_products(groups);
            let partial: Vec<Vec<f32>> = dx_groups
                .into_par_iter()
                .enumerate()
                .map(|(group, mut dx)| {
                    let mut dweight = vec![0f32; d.channels_out * rows];
                    let mut patches = Vec::new();
                    let mut patch_grads = Vec::new();
                    let images = group * group_size..((group + 1) * group_size).min(d.images);
                    for (k, image) in images.enumerate() {
                        let input = &xs[image * d.image_len()..][..d.image_len()];
                        let grad = &gs[image * d.output_len()..][..d.output_len()];
                        for (b, band) in d.bands().enumerate() {
                            let band_pixels = band.len() * d.ow;
                            let g = Mat {
                                data: &grad[band.start * d.ow..],
                                row_stride: pixels,
                                column_stride: 1,
                            };
                            if weight_grad {
                                let patch_data = if d.patches_are_the_image() {
                                    input
                                } else {
                                    patches.resize(rows * band_pixels, 0.0);
                                    im2col(&d, input, band.clone(), &mut patches);
                                    &patches[..]
                                };
                                // dW[c_out × rows] += g[c_out × band] · patchesᵀ[band × rows]
                                let patches_t = Mat {
                                    data: patch_data,
                                    row_stride: 1,
                                    column_stride: band_pixels,
                                };
                                let dims = [d.channels_out, rows, band_pixels];
                                let dw = &mut dweight;
                                let accumulate = k > 0 || b > 0;
                                sgemm(dims, dw, rows, accumulate, g, patches_t, parallel);
                            }
                            if let Some(dx) = dx.as_deref_mut() {
                                // d patches[rows × band] = Wᵀ[rows × c_out] · g[c_out × band]
                                let weights_t = Mat {
                                    data: &ws,
                                    row_stride: 1,
                                    column_stride: rows,
                                };
                                patch_grads.resize(rows * band_pixels, 0.0);
                                let dims = [rows, band_pixels, d.channels_out];
                                let dst = &mut patch_grads;
                                sgemm(dims, dst, band_pixels, false, weights_t, g, parallel);
                                // dx starts at zero; each band adds its patches' share.
                                let dx = &mut dx[k * d.image_len()..][..d.image_len()];
                                col2im(&d, &mut patch_grads, band, dx);
                            }
                        }
                    }
                    dweight
                })
                .collect();
            for part in &partial {
                for (total, p) in dweight.iter_mut().zip(part) {
                    *total += p;
                }
            }
        }
        let dx = input_grad.then(|| FlexTensor::from_data(TensorData::new(dx, x.shape())));
        let dweight =
            weight_grad.then(|| FlexTensor::from_data(TensorData::new(dweight, weight.shape())));
        (dx, dweight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dims of one image of `c×h×w` under a `kh×kw` kernel.
    fn dims(c: usize, [h, w]: [usize; 2], [kh, kw]: [usize; 2], geometry: ConvGeometry) -> Dims {
        let [oh, ow] = geometry.output_size([h, w], [kh, kw]).unwrap();
        Dims {
            images: 1,
            channels: c,
            h,
            w,
            channels_out: 1,
            kh,
            kw,
            oh,
            ow,
            geometry,
        }
    }

    /// im2col by its definition, one element at a time.
    fn im2col_by_definition(d: &Dims, image: &[f32]) -> Vec<f32> {
        let g = &d.geometry;
        let mut out = Vec::new();
        for c in 0..d.channels {
            for i in 0..d.kh {
                for j in 0..d.kw {
                    for oh in 0..d.oh {
                        for ow in 0..d.ow {
                            let h = (oh * g.stride[0] + i) as isize - g.padding_begin[0] as isize;
                            let w = (ow * g.stride[1] + j) as isize - g.padding_begin[1] as isize;
                            let inside =
                                (0..d.h as isize).contains(&h) && (0..d.w as isize).contains(&w);
                            out.push(if inside {
                                image[(c * d.h + h as usize) * d.w + w as usize]
                            } else {
                                0.0
                            });
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn patches_and_their_adjoint_follow_the_definition_for_odd_geometries() {
        let cases = [
            ([5, 7], [3, 3], [1, 1], [1, 1], [1, 1]),
            ([6, 6], [3, 3], [2, 2], [1, 1], [1, 1]),
            ([5, 4], [1, 1], [2, 2], [0, 0], [0, 0]),
            ([4, 9], [2, 3], [1, 2], [0, 2], [1, 0]),
            ([3, 3], [3, 3], [1, 1], [2, 2], [2, 2]),
            ([2, 2], [3, 3], [1, 1], [1, 1], [1, 1]),
            ([4, 6], [3, 3], [1, 1], [0, 2], [2, 0]),
            ([1, 5], [3, 3], [1, 1], [1, 1], [1, 1]),
            // A kernel larger than the image, padding taller than a band of one row.
            ([1, 1], [5, 5], [1, 1], [2, 2], [2, 2]),
            ([2, 3], [5, 5], [1, 1], [2, 2], [2, 2]),
            // Horizontal padding wider than the image (the general path).
            ([1, 1], [3, 3], [1, 1], [1, 2], [1, 0]),
            ([1, 1], [3, 3], [1, 1], [1, 0], [1, 2]),
            ([3, 7], [3, 3], [3, 3], [1, 1], [1, 1]),
        ];
        for (input, kernel, stride, padding_begin, padding_end) in cases {
            let geometry = ConvGeometry {
                stride,
                padding_begin,
                padding_end,
            };
            let d = dims(2, input, kernel, geometry);
            let image: Vec<f32> = (0..d.image_len()).map(|v| v as f32 + 1.0).collect();
            let expected = im2col_by_definition(&d, &image);
            let mut patches = vec![f32::NAN; d.patch_rows() * d.pixels()];
            im2col(&d, &image, 0..d.oh, &mut patches);
            assert_eq!(patches, expected, "{geometry:?} {input:?} {kernel:?}");
            // A band of output rows holds those rows' columns of every patch row (every
            // one-row band, and one of up to two rows from the second).
            let bands = (0..d.oh)
                .map(|oh| oh..oh + 1)
                .chain(std::iter::once(1.min(d.oh - 1)..d.oh.min(3)));
            for band in bands {
                let mut band_patches = vec![f32::NAN; d.patch_rows() * band.len() * d.ow];
                im2col(&d, &image, band.clone(), &mut band_patches);
                for (row, values) in band_patches.chunks(band.len() * d.ow).enumerate() {
                    let full = &patches[row * d.pixels() + band.start * d.ow..][..values.len()];
                    assert_eq!(
                        values, full,
                        "{geometry:?} {input:?} {kernel:?} {band:?} {row}"
                    );
                }
            }
            // ⟨im2col(x), p⟩ = ⟨x, col2im(p)⟩ for the adjoint, with p the patch indices.
            let p: Vec<f32> = (0..patches.len()).map(|v| (v % 13) as f32 - 6.0).collect();
            let mut back = vec![0.0; d.image_len()];
            col2im(&d, &mut p.clone(), 0..d.oh, &mut back);
            let lhs: f32 = patches.iter().zip(&p).map(|(a, b)| a * b).sum();
            let rhs: f32 = image.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{geometry:?} {input:?} {kernel:?}");
        }
    }
}
