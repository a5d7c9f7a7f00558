//! Image decoding into 8-bit RGB (grey expanded), JPEG/PNG/PGM/PPM/BMP.

use image::{ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;

use crate::error::{DataError, Result};

/// Largest width or height accepted, so a hostile header cannot request a huge allocation.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Largest decoded allocation accepted, in bytes.
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

fn reader<'a>(bytes: &'a [u8], source: &str) -> Result<ImageReader<Cursor<&'a [u8]>>> {
    let mut r = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DataError::image(source, e))?;
    if r.format().is_none() {
        return Err(DataError::image(
            source,
            "unknown format (expected JPEG, PNG, PNM or BMP)",
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    r.limits(limits);
    Ok(r)
}

/// Decodes an encoded image to RGB; `source` names it in errors (a path, or `FILE[record N]`).
pub fn decode_rgb(bytes: &[u8], source: &str) -> Result<RgbImage> {
    let img = reader(bytes, source)?
        .decode()
        .map_err(|e| DataError::image(source, e))?;
    Ok(img.into_rgb8())
}

/// Reads only the header: `(width, height)` and the format.
pub fn probe(bytes: &[u8], source: &str) -> Result<(u32, u32, ImageFormat)> {
    let r = reader(bytes, source)?;
    let format = r.format().expect("checked in reader()");
    let (w, h) = r
        .into_dimensions()
        .map_err(|e| DataError::image(source, e))?;
    Ok((w, h, format))
}

/// Encodes RGB pixels as PNG (lossless; what the writers of this crate store by default).
pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .expect("encoding PNG into memory cannot fail");
    out
}

/// Encodes RGB pixels as JPEG with `quality` in 1..=100 (what insightface's datasets store).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    img.write_with_encoder(enc)
        .expect("encoding JPEG into memory cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_is_expanded_and_garbage_is_an_error() {
        let grey = image::GrayImage::from_fn(3, 2, |x, y| image::Luma([(10 * x + y) as u8]));
        let mut png = Vec::new();
        grey.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let rgb = decode_rgb(&png, "g.png").unwrap();
        assert_eq!(rgb.get_pixel(2, 1).0, [21, 21, 21]);
        assert_eq!(probe(&png, "g.png").unwrap(), (3, 2, ImageFormat::Png));
        let e = decode_rgb(b"not an image", "x.bin[record 3]")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.bin[record 3]: cannot decode image"), "{e}");
        let mut truncated = encode_jpeg(&rgb, 90);
        truncated.truncate(truncated.len() / 2);
        assert!(decode_rgb(&truncated, "t.jpg").is_err());
    }
}
