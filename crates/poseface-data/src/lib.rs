//! # poseface-data
//!
//! The face-recognition data layer of PoseFace: the formats insightface users have on disk,
//! read and written bit-compatibly in pure Rust, plus alignment, head pose and batching.
//!
//! - **Formats**: MXNet RecordIO ([`recordio`], [`face_rec`]), ImageFolder
//!   ([`image_folder`]), verification `.bin` pickles ([`verification_bin`]), IJB-B/C meta
//!   files ([`ijb`]), `.pts` and dlib XML landmarks ([`landmarks`]) and the pose sidecar
//!   ([`sidecar`]).
//! - **Geometry**: 5-point similarity alignment onto the ArcFace template ([`align`]) and
//!   yaw/pitch/roll from 68 or 5 landmarks ([`pose`], sign convention documented there).
//! - **Training input**: augmentation ([`augment`](mod@augment)), a dataset joining storage and pose
//!   ([`dataset`]) and, with the default `burn` feature, a burn `Dataset` + `Batcher`
//!   yielding `[B, 3, 112, 112]` tensors ([`batch`]).
//! - **Tools**: dataset inspection ([`inspect`]) and ImageFolder → RecordIO packing ([`pack`]).
//!
//! Every reader returns a [`DataError`] naming the file, the place in it and the problem.
//!
//! ```
//! use poseface_data::{ARCFACE_TEMPLATE, arcface_transform, estimate_pose};
//!
//! // Five points already on the template map by the identity transform…
//! let m = arcface_transform(&ARCFACE_TEMPLATE).unwrap();
//! assert!((m.0[0][0] - 1.0).abs() < 1e-6 && m.0[0][2].abs() < 1e-4);
//! // …and describe a frontal face.
//! let pose = estimate_pose(&ARCFACE_TEMPLATE).unwrap();
//! assert!(pose.yaw.abs() < 5.0);
//! ```

pub mod align;
pub mod augment;
#[cfg(feature = "burn")]
pub mod batch;
pub mod dataset;
pub mod decode;
mod error;
pub mod face_rec;
pub mod folder_pairs;
pub mod fsutil;
pub mod ijb;
pub mod image_folder;
pub mod inspect;
pub mod landmarks;
pub mod mean_face;
pub mod pack;
pub mod pose;
pub mod recordio;
pub mod sidecar;
pub mod verification_bin;

pub use align::{
    ALIGNED_SIZE, Affine2, align_face, arcface_transform, similarity_transform, warp_affine,
};
pub use augment::{AugmentConfig, FaceSample, augment, flip, normalise_chw};
#[cfg(feature = "burn")]
pub use batch::{FaceBatch, FaceBatcher};
pub use dataset::{FaceDataset, FaceStorage, epoch_permutation};
pub use decode::decode_rgb;
pub use error::{DataError, Location, Result};
pub use face_rec::{FaceRecordSet, FaceRecordWriter, Property};
pub use ijb::{IjbMeta, IjbTarget};
pub use image_folder::ImageFolder;
pub use landmarks::{ARCFACE_TEMPLATE, Point, five_points, flip_points, read_dlib_xml, read_pts};
pub use pose::{EulerAngles, estimate_pose, fit_pose};
pub use recordio::{IrHeader, IrRecord, RecordIoReader, RecordIoWriter};
pub use sidecar::{PoseRecord, PoseSidecar, PoseSidecarWriter};
pub use verification_bin::VerificationBin;
