//! Target images: decoding (PNG, JPEG, grayscale, alpha), resizing to the working size.

use std::path::{Path, PathBuf};

use super::VectorizeError;

/// Images with more pixels than this are refused before decoding (8192 × 8192: a 64-megapixel
/// photo decodes into 256 MB of RGBA).
pub const MAX_INPUT_PIXELS: u64 = 8192 * 8192;

/// Images wider or taller than this are refused before decoding.
pub const MAX_INPUT_SIDE: u32 = 16384;

/// The most one decoder may allocate (image's `Limits::max_alloc`).
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// A target image in straight (non-premultiplied) RGBA, each channel in `[0, 1]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` pixels.
    pub pixels: Vec<[f32; 4]>,
}

impl TargetImage {
    /// From straight RGBA8 bytes (`width * height * 4`).
    pub fn from_rgba8(width: usize, height: usize, data: &[u8]) -> Result<Self, VectorizeError> {
        if width == 0 || height == 0 || data.len() != width * height * 4 {
            return Err(VectorizeError::BadImage(format!(
                "{width}x{height} RGBA image needs {} bytes, got {}",
                width * height * 4,
                data.len()
            )));
        }
        let pixels = data
            .chunks_exact(4)
            .map(|p| std::array::from_fn(|c| f32::from(p[c]) / 255.0))
            .collect();
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// Straight RGBA8 bytes.
    pub fn to_rgba8(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|p| p.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
            .collect()
    }

    /// True if some pixel is not fully opaque.
    pub fn has_transparency(&self) -> bool {
        self.pixels.iter().any(|p| p[3] < 0.999)
    }

    /// Pixel at `(x, y)`.
    pub fn at(&self, x: usize, y: usize) -> [f32; 4] {
        self.pixels[y * self.width + x]
    }
}

/// A decoded file, resized so that its longer side is `size` pixels.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    /// The working image.
    pub image: TargetImage,
    /// Size of the file's image before resizing.
    pub original_size: (u32, u32),
}

impl LoadedImage {
    /// A one-line note when the image was resized (e.g. a large photo downscaled), else `None`.
    pub fn resize_note(&self) -> Option<String> {
        let (w, h) = self.original_size;
        if (w as usize, h as usize) == (self.image.width, self.image.height) {
            return None;
        }
        let verb = if w.max(h) as usize > self.image.width.max(self.image.height) {
            "downscaled"
        } else {
            "upscaled"
        };
        Some(format!(
            "{verb} {w}x{h} to {}x{} for vectorisation",
            self.image.width, self.image.height
        ))
    }
}

/// Reads a PNG or JPEG file (any colour type: grayscale, RGB, with or without alpha) and
/// resizes it so its longer side is `size` pixels, keeping the aspect ratio.
pub fn load_image(path: &Path, size: usize) -> Result<LoadedImage, VectorizeError> {
    let bytes = read_file(path)?;
    decode_image(&bytes, path, size)
}

fn read_file(path: &Path) -> Result<Vec<u8>, VectorizeError> {
    std::fs::read(path).map_err(|e| VectorizeError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a PNG or JPEG file through [`decode_limited`]: the one image loader of vecdream (the
/// vectoriser's input, reference images, the app's *Open image…*).
pub fn read_image(path: &Path) -> Result<image::DynamicImage, VectorizeError> {
    decode_limited(&read_file(path)?, path)
}

/// Decodes PNG or JPEG bytes, refusing decompression bombs before anything of their size is
/// allocated: the header's dimensions must be within [`MAX_INPUT_SIDE`] per side and
/// [`MAX_INPUT_PIXELS`] in all, and the decoder may allocate at most [`MAX_DECODE_BYTES`].
/// `path` names the source in errors (with the dimensions when they are the reason).
pub fn decode_limited(bytes: &[u8], path: &Path) -> Result<image::DynamicImage, VectorizeError> {
    let decode_err = |reason: String| VectorizeError::Decode {
        path: PathBuf::from(path),
        reason,
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| decode_err(e.to_string()))
    };
    let probe = reader()?;
    if probe.format().is_none() {
        return Err(decode_err(
            "not a PNG or JPEG image (unknown file signature)".into(),
        ));
    }
    let (w, h) = probe
        .into_dimensions()
        .map_err(|e| decode_err(e.to_string()))?;
    if w == 0 || h == 0 {
        return Err(decode_err(format!("image is {w}x{h} pixels")));
    }
    if u64::from(w) * u64::from(h) > MAX_INPUT_PIXELS || w.max(h) > MAX_INPUT_SIDE {
        return Err(decode_err(format!(
            "image is {w}x{h} pixels ({:.0} megapixels); at most {} megapixels and {MAX_INPUT_SIDE} \
             pixels per side are read (a decompression bomb, or a photo to downscale first)",
            (f64::from(w) * f64::from(h) / 1e6),
            MAX_INPUT_PIXELS / 1_000_000
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_INPUT_SIDE);
    limits.max_image_height = Some(MAX_INPUT_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut decoder = reader()?;
    decoder.limits(limits);
    decoder.decode().map_err(|e| decode_err(e.to_string()))
}

/// Decodes image bytes (see [`load_image`]); `path` names the source in errors.
pub fn decode_image(bytes: &[u8], path: &Path, size: usize) -> Result<LoadedImage, VectorizeError> {
    if size == 0 {
        return Err(VectorizeError::BadConfig(
            "working size must be at least 1 pixel".into(),
        ));
    }
    let decoded = decode_limited(bytes, path)?;
    let (w, h) = (decoded.width(), decoded.height());
    let rgba = decoded.to_rgba8();
    let scale = size as f64 / f64::from(w.max(h));
    let nw = ((f64::from(w) * scale).round() as u32).max(1);
    let nh = ((f64::from(h) * scale).round() as u32).max(1);
    let resized = if (nw, nh) == (w, h) {
        rgba
    } else {
        image::imageops::resize(&rgba, nw, nh, image::imageops::FilterType::Triangle)
    };
    let image = TargetImage::from_rgba8(nw as usize, nh as usize, resized.as_raw())?;
    Ok(LoadedImage {
        image,
        original_size: (w, h),
    })
}
