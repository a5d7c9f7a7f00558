//! ImageFolder datasets (`root/<identity>/<image>`), as torchvision lays them out.
//!
//! Identities are the sub-directories of `root` in byte order of their names, labelled
//! `0, 1, …`; images are the files with a known image extension inside each, in name order.
//! That order is the dataset's canonical order (the pose sidecar's keys refer to it).

use std::path::{Path, PathBuf};

use crate::decode::decode_rgb;
use crate::error::{DataError, Result};

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "pgm", "ppm", "pnm", "bmp"];

/// One image of an ImageFolder dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderImage {
    /// The image's path.
    pub path: PathBuf,
    /// The identity label (position of its directory among the identities).
    pub label: u32,
}

/// An ImageFolder dataset listing.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    identities: Vec<String>,
    images: Vec<FolderImage>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| DataError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

impl ImageFolder {
    /// Lists `root`. Directory names must be UTF-8 (they become identity names); files without
    /// an image extension and hidden entries are ignored.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let mut identities = Vec::new();
        let mut images = Vec::new();
        for entry in sorted_entries(&root)? {
            let path = entry.path();
            let name = entry.file_name();
            if name.as_encoded_bytes().first() == Some(&b'.') || !path.is_dir() {
                continue;
            }
            let name = name.to_str().ok_or_else(|| {
                DataError::Invalid(format!(
                    "{}: identity directory name is not UTF-8",
                    path.display()
                ))
            })?;
            let label = u32::try_from(identities.len())
                .map_err(|_| DataError::Invalid("more than 2^32 identities".into()))?;
            identities.push(name.to_string());
            for file in sorted_entries(&path)? {
                let p = file.path();
                let hidden = file.file_name().as_encoded_bytes().first() == Some(&b'.');
                if !hidden && p.is_file() && has_image_extension(&p) {
                    images.push(FolderImage { path: p, label });
                }
            }
        }
        Ok(Self {
            root,
            identities,
            images,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Identity names, indexed by label.
    pub fn identities(&self) -> &[String] {
        &self.identities
    }

    /// All images in canonical order.
    pub fn images(&self) -> &[FolderImage] {
        &self.images
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Reads and decodes the `i`-th image to RGB.
    pub fn load(&self, i: usize) -> Result<(u32, image::RgbImage)> {
        let item = self.images.get(i).ok_or_else(|| {
            DataError::Invalid(format!(
                "image {i} out of range ({} images)",
                self.images.len()
            ))
        })?;
        let bytes = std::fs::read(&item.path).map_err(|e| DataError::io(&item.path, e))?;
        let img = decode_rgb(&bytes, &item.path.display().to_string())?;
        Ok((item.label, img))
    }
}
