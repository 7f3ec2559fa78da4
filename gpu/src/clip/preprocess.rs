//! CLIP image preprocessing from `preprocessor_config.json` (transformers `CLIPImageProcessor`):
//! resize the shortest side to `size`, centre-crop to `crop_size`, rescale by 1/255, normalise
//! with `image_mean` / `image_std`.
//!
//! Two paths:
//! - [`ClipPreprocessor::pixel_values_rgb8`] for image files reproduces transformers' PIL backend
//!   exactly: Pillow's separable resampling (`Resample.c`: bicubic a = −0.5 or bilinear, support
//!   scaled by the downscale factor, 22-bit fixed-point coefficients, an 8-bit intermediate after
//!   the horizontal pass), so its pixel values match transformers to float rounding;
//! - [`ClipPreprocessor::pixel_values`] for renders, differentiable in the graph: libtorch's
//!   antialiased bicubic (or bilinear) upsample on `[0, 1]` floats, no 8-bit rounding.

use std::path::Path;

use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::sd::config::read_json;
use crate::sd::{Result, SdError};

/// Pillow resampling filters we implement (`resample` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resample {
    /// `2`: triangle filter, support 1.
    Bilinear,
    /// `3`: Keys cubic with a = −0.5, support 2.
    Bicubic,
}

impl Resample {
    fn support(self) -> f64 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
        }
    }

    fn filter(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Resample::Bilinear => (1.0 - x).max(0.0),
            Resample::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The settings of a `CLIPImageProcessor`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipPreprocessor {
    /// Target of the shortest side (`size.shortest_edge`), or `None` to resize to `resize_hw`.
    pub shortest_edge: Option<i64>,
    /// Fixed `(height, width)` when `size` has `height` and `width`.
    pub resize_hw: Option<(i64, i64)>,
    /// `(height, width)` of the centre crop.
    pub crop: (i64, i64),
    /// Whether to resize.
    pub do_resize: bool,
    /// Whether to centre-crop.
    pub do_center_crop: bool,
    /// Whether to multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// 1/255.
    pub rescale_factor: f64,
    /// Whether to normalise.
    pub do_normalize: bool,
    /// Per-channel mean.
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    pub std: [f64; 3],
    /// The resampling filter.
    pub resample: Resample,
}

/// OpenAI's CLIP mean.
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI's CLIP standard deviation.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

impl ClipPreprocessor {
    /// transformers' defaults for an `image_size` model: shortest side and crop `image_size`.
    pub fn for_size(image_size: i64) -> Self {
        Self {
            shortest_edge: Some(image_size),
            resize_hw: None,
            crop: (image_size, image_size),
            do_resize: true,
            do_center_crop: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            mean: OPENAI_CLIP_MEAN,
            std: OPENAI_CLIP_STD,
            resample: Resample::Bicubic,
        }
    }

    /// Reads `preprocessor_config.json` (`size` and `crop_size` as a number or a dict, as old and
    /// new saves write them); keys it lacks take transformers' CLIP defaults for `image_size`.
    pub fn from_file(path: &Path, image_size: i64) -> Result<Self> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Raw {
            size: Option<serde_json::Value>,
            crop_size: Option<serde_json::Value>,
            do_resize: Option<bool>,
            do_center_crop: Option<bool>,
            do_rescale: Option<bool>,
            rescale_factor: Option<f64>,
            do_normalize: Option<bool>,
            image_mean: Option<Vec<f64>>,
            image_std: Option<Vec<f64>>,
            resample: Option<i64>,
        }
        let raw: Raw = read_json(path)?;
        let bad = |key: &str, value: String, supported: &str| SdError::Unsupported {
            path: path.to_path_buf(),
            key: key.into(),
            value,
            supported: supported.into(),
        };
        let mut p = Self::for_size(image_size);
        let dim = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_i64());
        if let Some(size) = &raw.size {
            if let Some(n) = size.as_i64() {
                p.shortest_edge = Some(n);
            } else if let Some(n) = dim(size, "shortest_edge") {
                p.shortest_edge = Some(n);
            } else if let (Some(h), Some(w)) = (dim(size, "height"), dim(size, "width")) {
                p.shortest_edge = None;
                p.resize_hw = Some((h, w));
            } else {
                return Err(bad(
                    "size",
                    size.to_string(),
                    "a number, {\"shortest_edge\": n} or {\"height\": h, \"width\": w}",
                ));
            }
        }
        if let Some(crop) = &raw.crop_size {
            p.crop = if let Some(n) = crop.as_i64() {
                (n, n)
            } else if let (Some(h), Some(w)) = (dim(crop, "height"), dim(crop, "width")) {
                (h, w)
            } else {
                return Err(bad(
                    "crop_size",
                    crop.to_string(),
                    "a number or {\"height\": h, \"width\": w}",
                ));
            };
        }
        p.do_resize = raw.do_resize.unwrap_or(true);
        p.do_center_crop = raw.do_center_crop.unwrap_or(true);
        p.do_rescale = raw.do_rescale.unwrap_or(true);
        p.rescale_factor = raw.rescale_factor.unwrap_or(1.0 / 255.0);
        p.do_normalize = raw.do_normalize.unwrap_or(true);
        for (key, v, out) in [
            ("image_mean", raw.image_mean, &mut p.mean),
            ("image_std", raw.image_std, &mut p.std),
        ] {
            if let Some(v) = v {
                *out = match v.len() {
                    1 => [v[0]; 3],
                    3 => [v[0], v[1], v[2]],
                    _ => return Err(bad(key, format!("{v:?}"), "1 or 3 numbers")),
                };
            }
        }
        if p.std.iter().any(|&s| s <= 0.0) {
            return Err(bad("image_std", format!("{:?}", p.std), "positive numbers"));
        }
        p.resample = match raw.resample.unwrap_or(3) {
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            r => return Err(bad("resample", r.to_string(), "2 (bilinear), 3 (bicubic)")),
        };
        if p.crop.0 <= 0 || p.crop.1 <= 0 || p.shortest_edge.is_some_and(|s| s <= 0) {
            return Err(bad("crop_size", format!("{:?}", p.crop), "positive sizes"));
        }
        Ok(p)
    }

    /// The `(height, width)` after the resize step for an `h × w` input (transformers'
    /// `get_resize_output_image_size` with `default_to_square=False`).
    pub fn resized_size(&self, h: i64, w: i64) -> (i64, i64) {
        if !self.do_resize {
            return (h, w);
        }
        if let Some(hw) = self.resize_hw {
            return hw;
        }
        let s = self.shortest_edge.unwrap_or(h.min(w));
        let (short, long) = if w <= h { (w, h) } else { (h, w) };
        let new_long = (s as f64 * long as f64 / short as f64) as i64;
        if w <= h { (new_long, s) } else { (s, new_long) }
    }

    /// `(1, 3, crop_h, crop_w)` float pixel values of an RGB8 image (`w × h`, row-major RGB),
    /// exactly as transformers' PIL backend computes them.
    pub fn pixel_values_rgb8(&self, w: usize, h: usize, rgb: &[u8]) -> Tensor {
        assert_eq!(rgb.len(), w * h * 3, "RGB8 buffer of {w}×{h}");
        let (nh, nw) = self.resized_size(h as i64, w as i64);
        let (nh, nw) = (nh.max(1) as usize, nw.max(1) as usize);
        let resized = pil_resize_rgb8(rgb, w, h, nw, nh, self.resample);
        let (ch, cw) = if self.do_center_crop {
            (self.crop.0 as usize, self.crop.1 as usize)
        } else {
            (nh, nw)
        };
        // transformers' centre crop: top = (h - ch) // 2, zero padding when the image is smaller.
        let top = (nh as i64 - ch as i64).div_euclid(2);
        let left = (nw as i64 - cw as i64).div_euclid(2);
        let mut out = vec![0f32; 3 * ch * cw];
        for c in 0..3 {
            for y in 0..ch {
                for x in 0..cw {
                    let (sy, sx) = (y as i64 + top, x as i64 + left);
                    let mut v = if (0..nh as i64).contains(&sy) && (0..nw as i64).contains(&sx) {
                        resized[(sy as usize * nw + sx as usize) * 3 + c] as f64
                    } else {
                        0.0
                    };
                    if self.do_rescale {
                        v *= self.rescale_factor;
                    }
                    if self.do_normalize {
                        v = (v - self.mean[c]) / self.std[c];
                    }
                    out[(c * ch + y) * cw + x] = v as f32;
                }
            }
        }
        Tensor::from_slice(&out).view([1, 3, ch as i64, cw as i64])
    }

    /// Differentiable preprocessing of renders `(batch, 3, H, W)` in `[0, 1]`: antialiased resize
    /// of the shortest side, centre crop, normalisation. Keeps the input's device and kind.
    pub fn pixel_values(&self, images: &Tensor) -> Tensor {
        let size = images.size();
        let (h, w) = (size[2], size[3]);
        let (nh, nw) = self.resized_size(h, w);
        let mut x = if (nh, nw) != (h, w) {
            match self.resample {
                Resample::Bicubic => {
                    images.internal_upsample_bicubic2d_aa([nh, nw], false, None, None)
                }
                Resample::Bilinear => {
                    images.internal_upsample_bilinear2d_aa([nh, nw], false, None, None)
                }
            }
        } else {
            images.shallow_clone()
        };
        if self.do_center_crop {
            let (ch, cw) = self.crop;
            if ch > nh || cw > nw {
                let pt = (ch - nh).max(0);
                let pl = (cw - nw).max(0);
                x = x.constant_pad_nd([pl / 2 + pl % 2, pl / 2, pt / 2 + pt % 2, pt / 2]);
            }
            let s = x.size();
            let top = (s[2] - ch) / 2;
            let left = (s[3] - cw) / 2;
            x = x.narrow(2, top, ch).narrow(3, left, cw);
        }
        let scale = if self.do_rescale {
            // Renders are already in [0, 1]; the 8-bit rescale is folded in.
            self.rescale_factor * 255.0
        } else {
            255.0
        };
        let x = x * scale;
        if !self.do_normalize {
            return x;
        }
        let dev = images.device();
        let stat = |v: [f64; 3]| {
            Tensor::from_slice(&v.map(|f| f as f32))
                .to_device(dev)
                .to_kind(images.kind())
                .view([1, 3, 1, 1])
        };
        (x - stat(self.mean)) / stat(self.std)
    }
}

/// One output's taps of Pillow's separable resampling: `(first input index, weights)`.
fn pil_coeffs(in_size: usize, out_size: usize, filter: Resample) -> Vec<(usize, Vec<i32>)> {
    const PRECISION_BITS: i32 = 32 - 8 - 2;
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| filter.filter((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&k| {
                    let k = if total != 0.0 { k / total } else { k };
                    let v = k * (1i64 << PRECISION_BITS) as f64;
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(acc: i64) -> u8 {
    (acc >> 22).clamp(0, 255) as u8
}

/// Pillow's `Image.resize` of an RGB8 image (`Resample.c`): horizontal pass, then vertical, each
/// rounding to 8 bits; a pass whose size does not change is skipped.
pub fn pil_resize_rgb8(
    rgb: &[u8],
    w: usize,
    h: usize,
    nw: usize,
    nh: usize,
    filter: Resample,
) -> Vec<u8> {
    let half = 1i64 << 21;
    let tmp = if nw != w {
        let cx = pil_coeffs(w, nw, filter);
        let mut t = vec![0u8; nw * h * 3];
        for y in 0..h {
            for (xx, (xmin, k)) in cx.iter().enumerate() {
                for c in 0..3 {
                    let acc = k.iter().enumerate().fold(half, |a, (i, &kk)| {
                        a + rgb[(y * w + xmin + i) * 3 + c] as i64 * kk as i64
                    });
                    t[(y * nw + xx) * 3 + c] = clip8(acc);
                }
            }
        }
        t
    } else {
        rgb.to_vec()
    };
    if nh == h {
        return tmp;
    }
    let cy = pil_coeffs(h, nh, filter);
    let mut out = vec![0u8; nw * nh * 3];
    for (yy, (ymin, k)) in cy.iter().enumerate() {
        for x in 0..nw {
            for c in 0..3 {
                let acc = k.iter().enumerate().fold(half, |a, (i, &kk)| {
                    a + tmp[((ymin + i) * nw + x) * 3 + c] as i64 * kk as i64
                });
                out[(yy * nw + x) * 3 + c] = clip8(acc);
            }
        }
    }
    out
}

/// Reads a PNG or JPEG as RGB8, compositing any transparency over white (transformers'
/// `convert_rgb`). Errors name the file.
pub fn read_rgb8(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img = crate::vectorize::read_image(path).map_err(|e| SdError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    let rgba = img.to_rgba8();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    Ok((w, h, rgba_over_white(rgba.as_raw())))
}

/// Straight RGBA8 composited over white, as RGB8 (Pillow's `alpha_composite` rounding).
pub fn rgba_over_white(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| {
            let a = p[3] as u32;
            [0, 1, 2].map(|c| ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8)
        })
        .collect()
}

/// `(B, 3, H, W)` float `[0, 1]` tensor of RGB8 images of one size, on `device`.
pub fn rgb8_to_tensor(w: usize, h: usize, rgb: &[u8], device: Device) -> Tensor {
    Tensor::from_slice(rgb)
        .view([1, h as i64, w as i64, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        .to_device(device)
        / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_follows_the_shortest_side() {
        let p = ClipPreprocessor::for_size(224);
        assert_eq!(p.resized_size(480, 640), (224, 298));
        assert_eq!(p.resized_size(640, 480), (298, 224));
        assert_eq!(p.resized_size(100, 100), (224, 224));
    }

    #[test]
    fn pil_resize_keeps_a_constant_image_and_is_identity_at_the_same_size() {
        let rgb: Vec<u8> = (0..7 * 5).flat_map(|_| [10u8, 200, 77]).collect();
        let out = pil_resize_rgb8(&rgb, 7, 5, 3, 11, Resample::Bicubic);
        assert!(out.chunks(3).all(|p| p == [10, 200, 77]), "{out:?}");
        let ramp: Vec<u8> = (0..6 * 4 * 3).map(|i| (i * 3) as u8).collect();
        assert_eq!(pil_resize_rgb8(&ramp, 6, 4, 6, 4, Resample::Bicubic), ramp);
    }

    #[test]
    fn differentiable_path_is_close_to_the_file_path_on_a_smooth_image() {
        let (w, h) = (40usize, 52usize);
        let rgb: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [(x * 6) as u8, (y * 4) as u8, 128]))
            .collect();
        let p = ClipPreprocessor::for_size(16);
        let a = p.pixel_values_rgb8(w, h, &rgb);
        let b = p.pixel_values(&rgb8_to_tensor(w, h, &rgb, Device::Cpu));
        assert_eq!(a.size(), b.size());
        let diff = (a - b).abs().max().double_value(&[]);
        // One 8-bit step is 1/255/0.27 ≈ 0.015 in normalised units; the paths differ by rounding.
        assert!(diff < 0.1, "{diff}");
    }
}
