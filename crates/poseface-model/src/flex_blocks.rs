//! Per-channel loops over `flex` tensors, shared by the fused PReLU and batch norm kernels
//! (and the device test all three CPU kernels use).
//!
//! A `[n, c, …]` tensor in row-major order is `n·c` blocks of `inner` contiguous values,
//! block `b` belonging to channel `b % c`. The kernels run blocks in parallel (rayon) and
//! reduce per-channel sums block by block, so their results do not depend on the thread
//! count. burn's own `flex` kernels are not reachable from outside it, which is why these
//! few loops are written here.

use std::borrow::Cow;

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use rayon::prelude::*;

/// Whether tensors on `device` live on `flex` (with or without autodiff).
pub(crate) fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        burn::backend::DispatchDevice::Flex(_)
    )
}

/// Blocks holding fewer values than this in all are handed to one thread together.
const MIN_VALUES_PER_TASK: usize = 16 * 1024;

/// How a `[n, c, …]` tensor splits into per-channel blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocks {
    /// Channels (dimension 1).
    pub channels: usize,
    /// Values per block: the product of the dimensions after the channel.
    pub inner: usize,
    /// Values in the whole tensor.
    pub len: usize,
}

impl Blocks {
    /// The blocks of `x`, which has at least two dimensions.
    pub fn of(x: &FlexTensor) -> Self {
        let shape = x.shape();
        Self {
            channels: shape[1],
            inner: shape.iter().skip(2).product::<usize>().max(1),
            len: shape.num_elements(),
        }
    }

    /// Values per channel over the whole batch.
    pub fn per_channel(&self) -> usize {
        self.len / self.channels.max(1)
    }

    fn min_blocks_per_task(&self) -> usize {
        MIN_VALUES_PER_TASK.div_ceil(self.inner)
    }

    /// `f(channel, a block, b block)` summed per channel: blocks in parallel, then over the
    /// batch in f64. `a` and `b` have this geometry (pass one slice twice to read one).
    pub fn channel_sums<const K: usize>(
        &self,
        a: &[f32],
        b: &[f32],
        f: impl Fn(usize, &[f32], &[f32]) -> [f32; K] + Sync,
    ) -> [Vec<f64>; K] {
        let channels = self.channels;
        let partial: Vec<[f32; K]> = a
            .par_chunks(self.inner)
            .zip(b.par_chunks(self.inner))
            .with_min_len(self.min_blocks_per_task())
            .enumerate()
            .map(|(block, (a, b))| f(block % channels, a, b))
            .collect();
        self.reduce(&partial)
    }

    /// Per-block partial sums added up per channel, block by block, in f64.
    fn reduce<const K: usize>(&self, partial: &[[f32; K]]) -> [Vec<f64>; K] {
        let mut sums: [Vec<f64>; K] = std::array::from_fn(|_| vec![0f64; self.channels]);
        for (block, partial) in partial.iter().enumerate() {
            for (sum, p) in sums.iter_mut().zip(partial) {
                sum[block % self.channels] += f64::from(*p);
            }
        }
        sums
    }

    /// Same-shaped output `f(channel, input block, output block)`, in a new tensor.
    pub fn map(
        &self,
        input: &[f32],
        shape: burn::tensor::Shape,
        f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
    ) -> FlexTensor {
        let channels = self.channels;
        let mut out = vec![0f32; self.len];
        out.par_chunks_mut(self.inner)
            .zip(input.par_chunks(self.inner))
            .with_min_len(self.min_blocks_per_task())
            .enumerate()
            .for_each(|(block, (out, input))| f(block % channels, input, out));
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    /// `f(channel, block of t, block of other)` run over the values of `t` in place when
    /// nothing else holds its buffer (no allocation, no fresh pages), else over a copy; what
    /// `f` returns is summed per channel as in [`channel_sums`](Self::channel_sums). `other`
    /// has this geometry, or is empty (then `f` sees empty blocks).
    pub fn update<const K: usize>(
        &self,
        t: FlexTensor,
        other: &[f32],
        f: impl Fn(usize, &mut [f32], &[f32]) -> [f32; K] + Sync,
    ) -> (FlexTensor, [Vec<f64>; K]) {
        let mut t = if t.is_unique() && matches!(t.layout().contiguous_offsets(), Some((0, _))) {
            t
        } else {
            let shape = t.shape();
            FlexTensor::from_data(TensorData::new(values(&t).into_owned(), shape))
        };
        let (channels, inner) = (self.channels, self.inner);
        let min_len = self.min_blocks_per_task();
        let target = &mut t.storage_mut::<f32>()[..self.len];
        let blocks = target.par_chunks_mut(inner);
        let partial: Vec<[f32; K]> = if other.is_empty() {
            let n = blocks.len();
            blocks
                .zip(rayon::iter::repeat_n(&[][..], n))
                .with_min_len(min_len)
                .enumerate()
                .map(|(block, (t, o))| f(block % channels, t, o))
                .collect()
        } else {
            blocks
                .zip(other.par_chunks(inner))
                .with_min_len(min_len)
                .enumerate()
                .map(|(block, (t, o))| f(block % channels, t, o))
                .collect()
        };
        let sums = self.reduce(&partial);
        (t, sums)
    }
}

/// The values of an `f32` tensor in row-major order (copied first if it is a strided view).
pub(crate) fn values(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => values.into(),
        None => t
            .to_contiguous()
            .as_slice::<f32>()
            .expect("an f32 tensor (the dtype is checked before dispatch)")
            .to_vec()
            .into(),
    }
}

/// A `[c]` tensor of the given per-channel values.
pub(crate) fn channel_tensor(values: Vec<f32>) -> FlexTensor {
    let len = values.len();
    FlexTensor::from_data(TensorData::new(values, [len]))
}

/// `Σ f(a_i, b_i)` over two blocks of one length, in eight running sums so that it vectorises.
#[inline]
pub(crate) fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (a_rest, b_rest) = (a8.remainder(), b8.remainder());
    for (a, b) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += f(a[k], b[k]);
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(&a, &b)| f(a, b)).sum();
    sums.iter().sum::<f32>() + tail
}

/// `Σ f(v)` over a block, in eight running sums so that it vectorises.
#[inline]
pub(crate) fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    lane_sum2(values, values, |v, _| f(v))
}
