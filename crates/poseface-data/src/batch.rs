//! burn integration: [`FaceDataset`] as a burn `Dataset` and a `Batcher` producing
//! `[B, 3, 112, 112]` tensors normalised as `(x − 127.5) / 127.5`.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::augment::{FaceSample, normalise_chw};
use crate::dataset::FaceDataset;

impl Dataset<FaceSample> for FaceDataset {
    fn get(&self, index: usize) -> Result<FaceSample, DatasetError> {
        assert!(
            index < self.len(),
            "index {index} out of bounds for {} faces",
            self.len()
        );
        self.sample(index).map_err(DatasetError::new)
    }

    fn get_many(&self, indexes: Vec<usize>) -> Result<Vec<FaceSample>, DatasetError> {
        self.samples(&indexes).map_err(DatasetError::new)
    }

    fn len(&self) -> usize {
        FaceDataset::len(self)
    }
}

/// A batch of faces on a device.
#[derive(Debug, Clone)]
pub struct FaceBatch {
    /// `[B, 3, H, W]` RGB in `[-1, 1]`.
    pub images: Tensor<4>,
    /// `[B]` identity labels.
    pub labels: Tensor<1, Int>,
    /// `[B, P, 2]` landmarks in pixels (zeros where unknown).
    pub landmarks: Tensor<3>,
    /// `[B]` whether `landmarks` holds real values.
    pub has_landmarks: Tensor<1, Bool>,
    /// `[B, 3]` yaw, pitch, roll in degrees (zeros where unknown).
    pub angles: Tensor<2>,
    /// `[B]` whether `angles` holds real values.
    pub has_angles: Tensor<1, Bool>,
}

/// Stacks [`FaceSample`]s into a [`FaceBatch`]; all images must share one size.
#[derive(Debug, Clone, Copy)]
pub struct FaceBatcher {
    /// Landmarks per face in the batch (68 or 5); samples with another count are marked unknown.
    pub landmark_points: usize,
}

impl Default for FaceBatcher {
    fn default() -> Self {
        Self {
            landmark_points: 68,
        }
    }
}

impl Batcher<FaceSample, FaceBatch> for FaceBatcher {
    /// # Panics
    /// When `items` is empty or the images differ in size: batches are built from aligned
    /// faces, so either is a bug in the caller.
    fn batch(&self, items: Vec<FaceSample>, device: &Device) -> FaceBatch {
        let b = items.len();
        assert!(b > 0, "cannot batch zero faces");
        let (w, h) = items[0].image.dimensions();
        let per = 3 * (w * h) as usize;
        let mut pixels = vec![0f32; b * per];
        let p = self.landmark_points;
        let mut lm = vec![0f32; b * p * 2];
        let mut has_lm = vec![false; b];
        let mut ang = vec![0f32; b * 3];
        let mut has_ang = vec![false; b];
        let mut labels = Vec::with_capacity(b);
        for (i, s) in items.iter().enumerate() {
            assert_eq!(
                s.image.dimensions(),
                (w, h),
                "faces in one batch must share a size"
            );
            normalise_chw(&s.image, &mut pixels[i * per..(i + 1) * per]);
            labels.push(s.label as i64);
            if let Some(l) = s.landmarks.as_ref().filter(|l| l.len() == p) {
                for (k, q) in l.iter().enumerate() {
                    lm[(i * p + k) * 2] = q[0];
                    lm[(i * p + k) * 2 + 1] = q[1];
                }
                has_lm[i] = true;
            }
            if let Some(a) = s.angles {
                ang[i * 3..i * 3 + 3].copy_from_slice(&[a.yaw, a.pitch, a.roll]);
                has_ang[i] = true;
            }
        }
        FaceBatch {
            images: Tensor::from_data(
                TensorData::new(pixels, [b, 3, h as usize, w as usize]),
                device,
            ),
            labels: Tensor::from_data(TensorData::new(labels, [b]), device),
            landmarks: Tensor::from_data(TensorData::new(lm, [b, p, 2]), device),
            has_landmarks: Tensor::from_data(TensorData::new(has_lm, [b]), device),
            angles: Tensor::from_data(TensorData::new(ang, [b, 3]), device),
            has_angles: Tensor::from_data(TensorData::new(has_ang, [b]), device),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::EulerAngles;

    #[test]
    fn batch_shapes_values_and_masks() {
        let face = |v: u8, pose: bool| FaceSample {
            image: image::RgbImage::from_pixel(112, 112, image::Rgb([v, 0, 255])),
            label: v as u32,
            landmarks: pose.then(|| vec![[1.0, 2.0]; 68]),
            angles: pose.then_some(EulerAngles {
                yaw: 30.0,
                pitch: 0.0,
                roll: -5.0,
            }),
        };
        let device = Device::default();
        let b = FaceBatcher::default().batch(vec![face(0, true), face(51, false)], &device);
        assert_eq!(b.images.dims(), [2, 3, 112, 112]);
        assert_eq!(b.landmarks.dims(), [2, 68, 2]);
        let px = b
            .images
            .clone()
            .slice([1..2, 0..3, 5..6, 7..8])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(px, vec![(51.0 - 127.5) / 127.5, -1.0, 1.0]);
        assert_eq!(
            b.labels
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap(),
            vec![0, 51]
        );
        assert_eq!(
            b.has_angles.into_data().try_to_vec::<bool>().unwrap(),
            vec![true, false]
        );
        assert_eq!(
            b.angles.into_data().try_to_vec::<f32>().unwrap(),
            vec![30.0, 0.0, -5.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            b.has_landmarks.into_data().try_to_vec::<bool>().unwrap(),
            vec![true, false]
        );
    }
}
