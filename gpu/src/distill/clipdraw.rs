//! CLIPDraw guidance (Frans et al. 2021): the loss is the negative cosine between the CLIP
//! embedding of `views` random augmentations of each render and the prompt's embedding. Each view
//! is a random perspective warp (distortion ≤ `distortion`, outside filled white) followed by a
//! random resized crop (area fraction in `crop_scale`, aspect in [3/4, 4/3]), sampled in one
//! `grid_sample` straight at CLIP's input size. Runs alone with only a CLIP folder, or adds to
//! another guidance (SDS, VPSD, …) with a weight through [`WithClipDraw`].

use std::path::PathBuf;

use tch::{Device, Kind, Tensor};

use super::DistillError;
use super::guidance::{Guidance, GuidanceOutput, StepCtx};
use crate::clip::{Clip, normalize};
use crate::rng::Rng;

/// CLIPDraw settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipDrawConfig {
    /// transformers CLIPModel folder.
    pub clip_dir: PathBuf,
    /// The prompt.
    pub prompt: String,
    /// Augmented views per particle and step (CLIPDraw: 4–8).
    pub views: usize,
    /// Largest corner displacement of the perspective warp, as a fraction of the half side (0.5).
    pub distortion: f64,
    /// Area fraction of the random crops (0.7, 0.9).
    pub crop_scale: (f64, f64),
    /// Multiplier of the loss (1 alone; the weight when added to another guidance).
    pub weight: f64,
}

impl Default for ClipDrawConfig {
    fn default() -> Self {
        Self {
            clip_dir: PathBuf::new(),
            prompt: String::new(),
            views: 4,
            distortion: 0.5,
            crop_scale: (0.7, 0.9),
            weight: 1.0,
        }
    }
}

/// The CLIPDraw guidance.
#[derive(Debug)]
pub struct ClipDrawGuidance {
    clip: Clip,
    text: Tensor,
    config: ClipDrawConfig,
}

/// Solves the 8×8 system of the homography mapping `from[i]` to `to[i]` (h33 = 1).
fn homography(from: [[f64; 2]; 4], to: [[f64; 2]; 4]) -> [f64; 9] {
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let ([x, y], [u, v]) = (from[i], to[i]);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for c in 0..8 {
        let p = (c..8)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        let d = a[c][c];
        if d.abs() < 1e-12 {
            continue;
        }
        for v in a[c].iter_mut().skip(c) {
            *v /= d;
        }
        let pivot = a[c];
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c];
                for (v, pv) in row.iter_mut().zip(&pivot).skip(c) {
                    *v -= f * pv;
                }
            }
        }
    }
    let mut h = [1.0; 9];
    for (i, row) in a.iter().enumerate() {
        h[i] = row[8];
    }
    h
}

impl ClipDrawGuidance {
    /// Loads the CLIP folder and encodes the prompt.
    pub fn load(config: &ClipDrawConfig, device: Device) -> Result<Self, DistillError> {
        Ok(Self::new(
            Clip::load(&config.clip_dir, device)?,
            config.clone(),
        ))
    }

    /// A guidance from a loaded model.
    pub fn new(clip: Clip, config: ClipDrawConfig) -> Self {
        let text = tch::no_grad(|| normalize(&clip.text_features(&[config.prompt.as_str()])));
        Self { clip, text, config }
    }

    /// The sampling grid `(n, S, S, 2)` of `n` random views (perspective, then a resized crop).
    fn grids(&self, n: usize, rng: &mut Rng, device: Device) -> Tensor {
        let s = self.clip.model.config.vision_config.image_size;
        let d = self.config.distortion.clamp(0.0, 1.0);
        let (lo, hi) = self.config.crop_scale;
        let lin = Tensor::linspace(
            -1.0 + 1.0 / s as f64,
            1.0 - 1.0 / s as f64,
            s,
            (Kind::Float, device),
        );
        let gy = lin.view([s, 1]).expand([s, s], false);
        let gx = lin.view([1, s]).expand([s, s], false);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            // Perspective: corners move inward by up to `d`; an output point p shows the source
            // H(p), H mapping the moved corners back to the corners.
            let corners = [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]];
            let moved =
                corners.map(|[x, y]| [x - x * d * rng.uniform(), y - y * d * rng.uniform()]);
            let h = homography(moved, corners);
            // Random resized crop of the warped picture (in its normalised coordinates).
            let area = lo + (hi - lo).max(0.0) * rng.uniform();
            let aspect =
                ((0.75f64).ln() + ((4.0f64 / 3.0).ln() - (0.75f64).ln()) * rng.uniform()).exp();
            let cw = (area * aspect).sqrt().min(1.0);
            let ch = (area / aspect).sqrt().min(1.0);
            let cx = (1.0 - cw) * (2.0 * rng.uniform() - 1.0);
            let cy = (1.0 - ch) * (2.0 * rng.uniform() - 1.0);
            let px = &gx * cw + cx;
            let py = &gy * ch + cy;
            let w = &px * h[6] + &py * h[7] + h[8];
            let sx = (&px * h[0] + &py * h[1] + h[2]) / &w;
            let sy = (&px * h[3] + &py * h[4] + h[5]) / &w;
            out.push(Tensor::stack(&[sx, sy], -1));
        }
        Tensor::stack(&out, 0)
    }

    /// `views` augmented copies of each image at CLIP's input size, normalised:
    /// `(B·views, 3, S, S)` (particle-major).
    pub fn augment(&self, images: &Tensor, rng: &mut Rng) -> Tensor {
        let b = images.size()[0];
        let v = self.config.views.max(1);
        let dev = images.device();
        // Downsample to about CLIP's size first (antialiased), so the warp does not alias.
        let s = self.clip.model.config.vision_config.image_size;
        let size = images.size();
        let short = size[2].min(size[3]);
        let x = if short > 2 * s {
            let f = (2 * s) as f64 / short as f64;
            let (nh, nw) = (
                ((size[2] as f64 * f).round() as i64).max(1),
                ((size[3] as f64 * f).round() as i64).max(1),
            );
            images.internal_upsample_bilinear2d_aa([nh, nw], false, None, None)
        } else {
            images.shallow_clone()
        };
        let grid = self.grids(b as usize * v, rng, dev);
        let rep = x
            .unsqueeze(1)
            .expand([b, v as i64, 3, x.size()[2], x.size()[3]], false)
            .reshape([b * v as i64, 3, x.size()[2], x.size()[3]]);
        // White outside the picture: sample (x − 1) with zero padding, add 1 back.
        let warped = (rep - 1.0).grid_sampler(&grid, 0, 0, false) + 1.0;
        let p = &self.clip.preprocess;
        let stat = |m: [f64; 3]| {
            Tensor::from_slice(&m.map(|f| f as f32))
                .to_device(dev)
                .view([1, 3, 1, 1])
        };
        (warped - stat(p.mean)) / stat(p.std)
    }

    /// Mean cosine to the prompt over the views of each particle: `(B,)`, differentiable.
    pub fn cosines(&self, images: &Tensor, rng: &mut Rng) -> Tensor {
        let b = images.size()[0];
        let dev = self.text.device();
        let pv = self.augment(&images.to_device(dev).to_kind(Kind::Float), rng);
        let f = self.clip.model.image_features(&pv);
        crate::clip::Clip::cosine(&f, &self.text)
            .view([b, -1])
            .mean_dim(-1, false, Kind::Float)
    }
}

impl Guidance for ClipDrawGuidance {
    fn name(&self) -> String {
        "clipdraw".into()
    }

    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError> {
        let b = images.size()[0];
        let cos = self.cosines(images, ctx.rng).to_device(images.device());
        let w = match ctx.weights {
            Some(w) => Tensor::from_slice(&w.iter().map(|&v| v as f32).collect::<Vec<_>>())
                .to_device(images.device()),
            None => Tensor::ones([b], (Kind::Float, images.device())),
        };
        let loss: Tensor = (1.0 - &cos) * w;
        let loss = loss.sum(Kind::Float) * (self.config.weight / b as f64);
        let mean_cos = cos.mean(Kind::Double).double_value(&[]);
        Ok(GuidanceOutput {
            value: loss.double_value(&[]),
            loss,
            terms: vec![("clip_cos".into(), mean_cos)],
            guided: (0..b as usize).collect(),
        })
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<bool, DistillError> {
        match name {
            "clip_weight" => self.config.weight = value,
            "clip_views" => self.config.views = value.max(1.0) as usize,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Another guidance plus a weighted CLIPDraw loss (`base.loss + weight · clipdraw`).
pub struct WithClipDraw {
    base: Box<dyn Guidance>,
    clip: ClipDrawGuidance,
}

impl WithClipDraw {
    /// Adds `clip` to `base`.
    pub fn new(base: Box<dyn Guidance>, clip: ClipDrawGuidance) -> Self {
        Self { base, clip }
    }
}

impl Guidance for WithClipDraw {
    fn name(&self) -> String {
        format!("{}+clipdraw", self.base.name())
    }

    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError> {
        let a = self.base.loss(images, ctx)?;
        let c = self.clip.loss(images, ctx)?;
        let mut terms = a.terms;
        terms.extend(c.terms);
        terms.push(("clipdraw_loss".into(), c.value));
        let mut guided = a.guided;
        for g in c.guided {
            if !guided.contains(&g) {
                guided.push(g);
            }
        }
        Ok(GuidanceOutput {
            loss: a.loss + c.loss,
            value: a.value + c.value,
            terms,
            guided,
        })
    }

    fn denoised_target(
        &mut self,
        images: &Tensor,
        ctx: &mut StepCtx,
    ) -> Result<Option<Tensor>, DistillError> {
        self.base.denoised_target(images, ctx)
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<bool, DistillError> {
        if self.clip.set_param(name, value)? {
            return Ok(true);
        }
        self.base.set_param(name, value)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.base.state()
    }

    fn state_scalars(&self) -> Vec<(String, f64)> {
        self.base.state_scalars()
    }

    fn load_state(
        &mut self,
        tensors: &[(String, Tensor)],
        scalars: &[(String, f64)],
    ) -> Result<(), DistillError> {
        self.base.load_state(tensors, scalars)
    }
}

#[cfg(test)]
mod tests {
    use super::homography;

    #[test]
    fn homography_maps_the_four_points() {
        let from = [[-0.8, -0.9], [0.7, -1.0], [1.0, 0.6], [-0.9, 0.95]];
        let to = [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]];
        let h = homography(from, to);
        for (p, q) in from.iter().zip(&to) {
            let w = h[6] * p[0] + h[7] * p[1] + h[8];
            let u = (h[0] * p[0] + h[1] * p[1] + h[2]) / w;
            let v = (h[3] * p[0] + h[4] * p[1] + h[5]) / w;
            assert!(
                (u - q[0]).abs() < 1e-9 && (v - q[1]).abs() < 1e-9,
                "{u} {v} vs {q:?}"
            );
        }
    }
}
