//! Fixed targets: the pictures a style draws toward (a line drawing for sketch, ink tones for
//! ink & wash, the colour image otherwise) and [`FitGuidance`], a plain MSE "guidance" that fits
//! a start document to its sample before distillation (and recolours toward an image).

use tch::{Device, Kind, Tensor};
use vecdream_core::Style;

use crate::distill::{DistillError, Guidance, GuidanceOutput, StepCtx};
use crate::vectorize::TargetImage;

/// An RGB picture `[H·W][3]` in `[0, 1]`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels.
    pub pixels: Vec<[f32; 3]>,
}

impl RgbImage {
    /// `[1, 3, H, W]` on `device`.
    pub fn to_tensor(&self, device: Device) -> Tensor {
        let flat: Vec<f32> = self.pixels.iter().flatten().copied().collect();
        Tensor::from_slice(&flat)
            .view([self.height as i64, self.width as i64, 3])
            .permute([2, 0, 1])
            .unsqueeze(0)
            .to_device(device)
    }

    /// Straight RGBA8 (opaque), for PNG export and the reference teacher.
    pub fn to_rgba8(&self) -> Vec<u8> {
        self.pixels
            .iter()
            .flat_map(|p| {
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [q(p[0]), q(p[1]), q(p[2]), 255]
            })
            .collect()
    }

    /// Luminance (Rec. 709) per pixel.
    pub fn luminance(&self) -> Vec<f32> {
        self.pixels
            .iter()
            .map(|p| 0.2126 * p[0] + 0.7152 * p[1] + 0.0722 * p[2])
            .collect()
    }
}

/// `img` composited over white.
pub fn over_white(img: &TargetImage) -> RgbImage {
    RgbImage {
        width: img.width,
        height: img.height,
        pixels: img
            .pixels
            .iter()
            .map(|p| {
                let a = p[3];
                [p[0] * a + 1.0 - a, p[1] * a + 1.0 - a, p[2] * a + 1.0 - a]
            })
            .collect(),
    }
}

/// A 3×3 box blur of a scalar map (edge pixels replicate).
fn blur(v: &[f32], w: usize, h: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        v[y * w + x]
    };
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            let mut s = 0.0;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    s += at(x + dx, y + dy);
                }
            }
            s / 9.0
        })
        .collect()
}

/// Sobel gradients `(gx, gy)` of a scalar map.
pub fn sobel(v: &[f32], w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let at = |x: isize, y: isize| {
        let x = x.clamp(0, w as isize - 1) as usize;
        let y = y.clamp(0, h as isize - 1) as usize;
        v[y * w + x]
    };
    let mut gx = vec![0.0; w * h];
    let mut gy = vec![0.0; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let i = y as usize * w + x as usize;
            gx[i] = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1))
                / 8.0;
            gy[i] = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1))
                / 8.0;
        }
    }
    (gx, gy)
}

/// Ink of a line drawing of `img` per pixel, in `[0, 1]`: strong where the picture (or its
/// silhouette against transparency) has an edge.
pub fn line_ink(img: &TargetImage) -> Vec<f32> {
    let (w, h) = (img.width, img.height);
    let l = blur(&over_white(img).luminance(), w, h);
    let alpha: Vec<f32> = img.pixels.iter().map(|p| p[3]).collect();
    let (gx, gy) = sobel(&l, w, h);
    let (ax, ay) = sobel(&alpha, w, h);
    (0..w * h)
        .map(|i| {
            let g = (gx[i].hypot(gy[i]) * 6.0).max(ax[i].hypot(ay[i]) * 3.0);
            g.clamp(0.0, 1.0)
        })
        .collect()
}

/// The picture a style's particles are pulled toward, from a colour image: a line drawing
/// (black edges on white) for sketch, ink tones (darkness plus edges, grey on white) for ink &
/// wash, and the image over white for every other style.
pub fn style_target(style: Style, img: &TargetImage) -> RgbImage {
    let base = over_white(img);
    match style {
        Style::Sketch => {
            let ink = line_ink(img);
            RgbImage {
                pixels: ink.iter().map(|&k| [1.0 - k; 3]).collect(),
                ..base
            }
        }
        Style::Ink => {
            let edges = line_ink(img);
            let lum = base.luminance();
            RgbImage {
                pixels: lum
                    .iter()
                    .zip(&edges)
                    .map(|(&l, &e)| {
                        // Tones compressed toward white (a wash), edges in full ink.
                        let wash = 1.0 - 0.55 * (1.0 - l);
                        [wash.min(1.0 - e); 3]
                    })
                    .collect(),
                ..base
            }
        }
        _ => base,
    }
}

/// Fits particles to one fixed picture by mean squared error: `images → mean((x − y)²)`. Used to
/// fit a start document to its sample (as the vectoriser does for filled styles) and to recolour
/// toward an image. Its denoised target is the picture itself.
#[derive(Debug)]
pub struct FitGuidance {
    target: Tensor,
}

impl FitGuidance {
    /// MSE toward `target` (`[1, 3, H, W]` or `[B, 3, H, W]` in `[0, 1]`, resized to the renders).
    pub fn new(target: Tensor) -> Self {
        Self { target }
    }

    fn target_for(&self, images: &Tensor) -> Tensor {
        let size = images.size();
        let t = self.target.to_device(images.device()).to_kind(Kind::Float);
        let t = if t.size()[2..] == size[2..] {
            t
        } else {
            t.upsample_bilinear2d([size[2], size[3]], false, None, None)
        };
        t.expand([size[0], size[1], size[2], size[3]], false)
    }
}

impl Guidance for FitGuidance {
    fn name(&self) -> String {
        "fit".into()
    }

    fn loss(
        &mut self,
        images: &Tensor,
        _ctx: &mut StepCtx,
    ) -> Result<GuidanceOutput, DistillError> {
        let t = self.target_for(images);
        let loss = (images - t).square().mean(Kind::Float);
        let value = loss.double_value(&[]);
        Ok(GuidanceOutput {
            loss,
            value,
            terms: Vec::new(),
            guided: (0..images.size()[0] as usize).collect(),
        })
    }

    fn denoised_target(
        &mut self,
        images: &Tensor,
        _ctx: &mut StepCtx,
    ) -> Result<Option<Tensor>, DistillError> {
        Ok(Some(self.target_for(images).detach()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_image(n: usize) -> TargetImage {
        let mut px = vec![0u8; n * n * 4];
        for y in n / 4..3 * n / 4 {
            for x in n / 4..3 * n / 4 {
                let i = (y * n + x) * 4;
                px[i..i + 4].copy_from_slice(&[200, 30, 30, 255]);
            }
        }
        TargetImage::from_rgba8(n, n, &px).unwrap()
    }

    #[test]
    fn sketch_target_draws_the_outline_and_leaves_the_inside_white() {
        let img = square_image(32);
        let t = style_target(Style::Sketch, &img);
        let at = |x: usize, y: usize| t.pixels[y * 32 + x][0];
        assert!(at(8, 16) < 0.5, "edge is inked: {}", at(8, 16));
        assert!(at(16, 16) > 0.95, "inside stays white: {}", at(16, 16));
        assert!(at(2, 2) > 0.95, "outside stays white: {}", at(2, 2));
    }

    #[test]
    fn ink_target_is_grey_and_lighter_than_the_colour_image() {
        let img = square_image(32);
        let t = style_target(Style::Ink, &img);
        let p = t.pixels[16 * 32 + 16];
        assert!(p[0] == p[1] && p[1] == p[2], "grey: {p:?}");
        let l = over_white(&img).luminance()[16 * 32 + 16];
        assert!(
            p[0] > l,
            "a wash is lighter than the colour: {} vs {l}",
            p[0]
        );
    }
}
