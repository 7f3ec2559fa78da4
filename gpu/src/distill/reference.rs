//! The reference-image teacher: a diffusion "model" with no weights — the exact denoiser of the
//! empirical distribution of K images — and the SDS / VPSD guidances built on it.
//!
//! For data `{y_k}` (in `[-1, 1]`) noised as `x_t = √ᾱ y + √(1−ᾱ) ε`, the posterior mean is
//! `D(x_t) = Σ_k softmax_k(−‖x_t − √ᾱ y_k‖² / (2(1−ᾱ))) y_k` and the optimal noise prediction is
//! `ε̂ = (x_t − √ᾱ D) / √(1−ᾱ)` (the closed-form score of a Gaussian mixture with vanishing
//! component width; see "The Unreasonable Effectiveness of Gaussian Score Approximation…",
//! Wang & Vastola 2024, in `shared/papers.md`).
//! - SDS with this teacher: `grad = (1−ᾱ)(ε̂ − ε)` pulls each particle toward the target its noised
//!   copy is closest to: mode seeking, particles that start alike end alike.
//! - VPSD with it: φ is the same closed form over the current (detached) particles, so
//!   `grad = (1−ᾱ)(ε̂_teacher − ε̂_φ)`: a particle is pushed away from where other particles already
//!   are, toward targets no particle covers (the particle distribution matches the targets').

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::DistillError;
use super::guidance::{Guidance, GuidanceOutput, StepCtx, apply_grad_loss};
use super::schedule::{TimeRange, sd_alphas_cumprod};

/// The posterior mean of `set` (a weighted empirical distribution) given noised samples.
///
/// `x_t`: `[B, …]`; `set`: `[K, …]` (same trailing shape); `alpha_bar`: ᾱ per sample `[B]`;
/// `log_weights`: optional `[K]` log-weights of the set's members (uniform when `None`).
/// `posterior_resolution`: `Some(r)` computes the responsibilities from `r × r` area averages of
/// `x_t` and the set (4-D inputs) with unchanged per-pixel noise variance — a coarse-grained
/// mixture: which member explains `x_t` is judged on the coarse picture, the mean is full-size.
/// Returns `(D [B, …], responsibilities [B, K])`. Computed in float64: with 10⁴ dimensions and
/// `1−ᾱ ≈ 0.02` the logits are differences of numbers around 10⁶.
pub fn closed_form_denoiser(
    x_t: &Tensor,
    set: &Tensor,
    alpha_bar: &Tensor,
    log_weights: Option<&Tensor>,
    posterior_resolution: Option<i64>,
) -> (Tensor, Tensor) {
    let b = x_t.size()[0];
    let k = set.size()[0];
    let ys = set.to_kind(Kind::Double).reshape([1, k, -1]);
    let (xp, yp) = match posterior_resolution {
        Some(r) if x_t.dim() == 4 && x_t.size()[2] > r => (
            x_t.adaptive_avg_pool2d([r, r]),
            set.adaptive_avg_pool2d([r, r]),
        ),
        _ => (x_t.shallow_clone(), set.shallow_clone()),
    };
    let xp = xp.to_kind(Kind::Double).reshape([b, 1, -1]);
    let yp = yp.to_kind(Kind::Double).reshape([1, k, -1]);
    let a = alpha_bar.to_kind(Kind::Double).reshape([b, 1, 1]);
    let d2 = (xp - a.sqrt() * yp)
        .square()
        .sum_dim_intlist(-1, false, Kind::Double); // [B, K]
    let a2 = a.reshape([b, 1]);
    let mut logits: Tensor = -d2 / ((a2.neg() + 1.0) * 2.0);
    if let Some(lw) = log_weights {
        logits += lw.to_kind(Kind::Double).reshape([1, k]);
    }
    let resp = logits.softmax(-1, Kind::Double);
    let d = resp.matmul(&ys.reshape([k, -1]));
    (
        d.reshape(x_t.size()).to_kind(x_t.kind()),
        resp.to_kind(Kind::Float),
    )
}

/// K target images at a fixed working resolution, with the closed-form denoiser over them.
#[derive(Debug)]
pub struct ReferenceTeacher {
    /// `[K, 3, r, r]` in `[-1, 1]`.
    targets: Tensor,
    resolution: i64,
    alphas_cumprod: Vec<f64>,
}

/// Resizes `[B, C, H, W]` to `r × r`: area averaging when shrinking, bilinear when growing.
fn resize(images: &Tensor, r: i64) -> Tensor {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    if h == r && w == r {
        images.shallow_clone()
    } else if h >= r && w >= r {
        images.adaptive_avg_pool2d([r, r])
    } else {
        images.upsample_bilinear2d([r, r], false, None, None)
    }
}

impl ReferenceTeacher {
    /// Targets from `[K, 3, H, W]` images in `[0, 1]`, resized to `resolution²`.
    pub fn new(images: &Tensor, resolution: i64, device: Device) -> Result<Self, DistillError> {
        let size = images.size();
        if size.len() != 4 || size[1] != 3 || size[0] < 1 {
            return Err(DistillError::Config {
                field: "reference images".into(),
                message: format!("expected a [K, 3, H, W] tensor with K ≥ 1, got {size:?}"),
            });
        }
        if !(4..=1024).contains(&resolution) {
            return Err(DistillError::Config {
                field: "reference resolution".into(),
                message: format!("{resolution}: expected 4..=1024 pixels"),
            });
        }
        let targets =
            resize(&images.to_kind(Kind::Float).to_device(device), resolution) * 2.0 - 1.0;
        Ok(Self {
            targets: targets.detach(),
            resolution,
            alphas_cumprod: sd_alphas_cumprod(),
        })
    }

    /// Targets from straight-alpha RGBA8 images `(width, height, pixels)`, composited over white
    /// (each may have its own size; all are resized to `resolution²`).
    pub fn from_rgba8(
        images: &[(u32, u32, Vec<u8>)],
        resolution: i64,
        device: Device,
    ) -> Result<Self, DistillError> {
        let mut list = Vec::with_capacity(images.len());
        for (i, (w, h, px)) in images.iter().enumerate() {
            let (w, h) = (i64::from(*w), i64::from(*h));
            if w < 1 || h < 1 || px.len() as i64 != w * h * 4 {
                return Err(DistillError::Config {
                    field: format!("reference image {i}"),
                    message: format!("{} bytes for {w}×{h} RGBA8", px.len()),
                });
            }
            let t = Tensor::from_slice(px.as_slice())
                .view([h, w, 4])
                .permute([2, 0, 1])
                .to_kind(Kind::Float)
                / 255.0;
            let rgb = t.narrow(0, 0, 3);
            let alpha = t.narrow(0, 3, 1);
            let over_white: Tensor = &rgb * &alpha + (alpha.neg() + 1.0);
            list.push(resize(&over_white.unsqueeze(0), resolution));
        }
        if list.is_empty() {
            return Err(DistillError::Config {
                field: "reference images".into(),
                message: "at least one image is needed".into(),
            });
        }
        Self::new(&Tensor::cat(&list, 0), resolution, device)
    }

    /// Number of targets K.
    pub fn len(&self) -> usize {
        self.targets.size()[0] as usize
    }

    /// Whether there are no targets (never true for a constructed teacher).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Working resolution r.
    pub fn resolution(&self) -> i64 {
        self.resolution
    }

    /// The targets `[K, 3, r, r]` in `[-1, 1]`.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// ᾱ per timestep (SD's schedule).
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// Images `[B, 3, H, W]` in `[0, 1]` → working resolution in `[-1, 1]` (differentiable).
    pub fn prepare(&self, images: &Tensor) -> Tensor {
        resize(images, self.resolution) * 2.0 - 1.0
    }

    /// The teacher's ε prediction for `x_t` (`[B, 3, r, r]`) at timesteps `t`.
    /// `posterior_resolution`: see [`closed_form_denoiser`].
    pub fn epsilon(&self, x_t: &Tensor, t: &[i64], posterior_resolution: Option<i64>) -> Tensor {
        epsilon_of_set(
            x_t,
            &self.targets,
            t,
            &self.alphas_cumprod,
            None,
            posterior_resolution,
        )
    }

    /// PSNR (dB, images in `[0, 1]`) of every image `[B, 3, H, W]` to every target at the working
    /// resolution: `[B][K]`.
    pub fn psnr(&self, images: &Tensor) -> Vec<Vec<f64>> {
        let _g = tch::no_grad_guard();
        let x = (self.prepare(&images.to_device(self.targets.device())) + 1.0) / 2.0;
        let y = (&self.targets + 1.0) / 2.0;
        let b = x.size()[0];
        let k = y.size()[0];
        let mse = (x.reshape([b, 1, -1]) - y.reshape([1, k, -1]))
            .square()
            .mean_dim(-1, false, Kind::Double);
        let mse: Vec<f64> = Vec::try_from(mse.flatten(0, -1)).unwrap_or_default();
        mse.chunks(k as usize)
            .map(|row| row.iter().map(|m| -10.0 * m.max(1e-12).log10()).collect())
            .collect()
    }
}

/// `ε̂ = (x_t − √ᾱ D) / √(1−ᾱ)` for the closed-form denoiser over `set`.
fn epsilon_of_set(
    x_t: &Tensor,
    set: &Tensor,
    t: &[i64],
    alphas: &[f64],
    log_weights: Option<&Tensor>,
    posterior_resolution: Option<i64>,
) -> Tensor {
    let dev = x_t.device();
    let a: Vec<f32> = t.iter().map(|&t| alphas[t as usize] as f32).collect();
    let a = Tensor::from_slice(&a).to_device(dev);
    let (d, _) = closed_form_denoiser(x_t, set, &a, log_weights, posterior_resolution);
    let a4 = a.view([-1, 1, 1, 1]);
    (x_t - a4.sqrt() * d) / (a4.neg() + 1.0).sqrt()
}

/// Which distillation the reference teacher drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferenceMode {
    /// `grad = (1−ᾱ)(ε̂_teacher − ε)`.
    Sds,
    /// `grad = (1−ᾱ)(ε̂_teacher − ε̂_φ)`, φ the closed form over the current particles.
    Vpsd,
}

/// Settings of [`ReferenceGuidance`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceConfig {
    /// SDS or VPSD.
    pub mode: ReferenceMode,
    /// Working resolution in pixels (renders are area-averaged to it).
    pub resolution: i64,
    /// Timestep range.
    pub time: TimeRange,
    /// VPSD: how many random particles get a gradient per step (`None`: all).
    pub guided: Option<usize>,
    /// Side of the coarse picture the posterior is judged on (see [`closed_form_denoiser`]);
    /// `None`: the exact posterior of the working resolution. The exact empirical posterior is
    /// sharp at every t ≤ 980 in 10⁴ dimensions (images are far apart compared with the noise), so
    /// neither SDS nor VPSD ever sees two targets at once; judged on a 2×2 picture it stays
    /// uncertain at high t, which is what lets VPSD's φ push particles toward uncovered targets.
    pub posterior_resolution: Option<i64>,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        Self {
            mode: ReferenceMode::Vpsd,
            resolution: 64,
            time: TimeRange {
                annealing: super::schedule::Annealing::Linear { to: 200 },
                ..TimeRange::default()
            },
            guided: None,
            posterior_resolution: Some(2),
        }
    }
}

/// SDS or VPSD against a [`ReferenceTeacher`]: the guidance that needs no model weights.
#[derive(Debug)]
pub struct ReferenceGuidance {
    /// The teacher.
    pub teacher: ReferenceTeacher,
    /// Settings.
    pub config: ReferenceConfig,
}

impl ReferenceGuidance {
    /// A guidance over `teacher`.
    pub fn new(teacher: ReferenceTeacher, config: ReferenceConfig) -> Self {
        Self { teacher, config }
    }
}

impl Guidance for ReferenceGuidance {
    fn name(&self) -> String {
        match self.config.mode {
            ReferenceMode::Sds => "reference-sds".into(),
            ReferenceMode::Vpsd => "reference-vpsd".into(),
        }
    }

    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError> {
        let x = self.teacher.prepare(images);
        let b = x.size()[0];
        let dev = x.device();
        let t = self
            .config
            .time
            .sample(ctx.step, ctx.total_steps, b as usize, ctx.rng);
        let noise = ctx.rng.normal_tensor(&x.size(), dev);
        let guided = match (self.config.mode, self.config.guided) {
            (ReferenceMode::Vpsd, Some(k)) => ctx.rng.subset(b as usize, k),
            _ => (0..b as usize).collect(),
        };
        let alphas = self.teacher.alphas_cumprod();
        let a: Vec<f32> = t.iter().map(|&t| alphas[t as usize] as f32).collect();
        let a4 = Tensor::from_slice(&a).to_device(dev).view([-1, 1, 1, 1]);
        let grad = tch::no_grad(|| {
            let xd = x.detach();
            let x_t = a4.sqrt() * &xd + (a4.neg() + 1.0).sqrt() * &noise;
            let rp = self.config.posterior_resolution;
            let eps_teacher = self.teacher.epsilon(&x_t, &t, rp);
            let eps_ref = match self.config.mode {
                ReferenceMode::Sds => noise.shallow_clone(),
                ReferenceMode::Vpsd => {
                    // Reward weights re-weight the particles' empirical distribution.
                    let lw = ctx.weights.map(|w| {
                        let lw: Vec<f32> = w.iter().map(|v| v.max(1e-12).ln() as f32).collect();
                        Tensor::from_slice(&lw).to_device(dev)
                    });
                    epsilon_of_set(&x_t, &xd, &t, alphas, lw.as_ref(), rp)
                }
            };
            let mut per = vec![0.0f32; b as usize];
            for &i in &guided {
                per[i] = ctx.weights.map_or(1.0, |w| w[i] as f32);
            }
            let per = Tensor::from_slice(&per).to_device(dev).view([-1, 1, 1, 1]);
            (a4.neg() + 1.0) * (eps_teacher - eps_ref) * per
        });
        let (loss, value) = apply_grad_loss(&x, &grad);
        let mean_t = t.iter().sum::<i64>() as f64 / t.len().max(1) as f64;
        Ok(GuidanceOutput {
            loss,
            value,
            terms: vec![("mean_t".into(), mean_t)],
            guided,
        })
    }

    fn denoised_target(
        &mut self,
        images: &Tensor,
        ctx: &mut StepCtx,
    ) -> Result<Option<Tensor>, DistillError> {
        // x̂₀ at a moderate t (ᾱ ≈ 0.6): the teacher's posterior mean of the noised render,
        // essentially the reference that render is closest to.
        let _g = tch::no_grad_guard();
        let x = self.teacher.prepare(&images.detach());
        let t = 300usize;
        let a = self.teacher.alphas_cumprod()[t];
        let noise = ctx.rng.normal_tensor(&x.size(), x.device());
        let x_t = &x * a.sqrt() + noise * (1.0 - a).sqrt();
        let at = Tensor::full([x.size()[0]], a, (Kind::Float, x.device()));
        let (d, _) = closed_form_denoiser(&x_t, self.teacher.targets(), &at, None, None);
        let size = images.size();
        let img = ((d + 1.0) / 2.0).clamp(0.0, 1.0);
        let img = if img.size()[2..] == size[2..] {
            img
        } else {
            img.upsample_bilinear2d([size[2], size[3]], false, None, None)
        };
        Ok(Some(img))
    }

    fn set_param(&mut self, name: &str, value: f64) -> Result<bool, DistillError> {
        match name {
            "t_min" => self.config.time.t_min = value.round().clamp(0.0, 999.0) as i64,
            "t_max" => self.config.time.t_max = value.round().clamp(0.0, 999.0) as i64,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_denoiser_matches_a_hand_computed_mixture() {
        // Two 1-pixel "images" y = ±1, x_t = 0.5, ᾱ = 0.25:
        // logits −(0.5 ∓ 0.5)²/(2·0.75) → weights ∝ (1, e^{−1/1.5}).
        let set = Tensor::from_slice(&[1.0f32, -1.0]).view([2, 1]);
        let x_t = Tensor::from_slice(&[0.5f32]).view([1, 1]);
        let a = Tensor::from_slice(&[0.25f32]);
        let (d, resp) = closed_form_denoiser(&x_t, &set, &a, None, None);
        let w1 = 1.0 / (1.0 + (-1.0f64 / 1.5).exp());
        let expected = w1 - (1.0 - w1);
        assert!((d.double_value(&[0, 0]) - expected).abs() < 1e-6);
        assert!((resp.double_value(&[0, 0]) - w1).abs() < 1e-6);
    }

    #[test]
    fn teacher_epsilon_recovers_the_noise_of_a_noised_target() {
        // At small t the posterior is sure of the target, so ε̂ equals the noise that was added.
        let imgs = crate::rng::Rng::new(11).uniform_tensor(&[3, 3, 8, 8], Device::Cpu);
        let teacher = ReferenceTeacher::new(&imgs, 8, Device::Cpu).unwrap();
        let t = [50i64];
        let a = teacher.alphas_cumprod()[50];
        let mut rng = crate::rng::Rng::new(0);
        let eps = rng.normal_tensor(&[1, 3, 8, 8], Device::Cpu);
        let y = teacher.targets().narrow(0, 1, 1);
        let x_t = y * a.sqrt() + &eps * (1.0 - a).sqrt();
        let got = teacher.epsilon(&x_t, &t, None);
        let err = (got - eps).abs().max().double_value(&[]);
        assert!(err < 1e-4, "max |ε̂ − ε| = {err}");
    }
}
