//! Samples that particles start from: one per particle, each from its own seed.
//!
//! - Reference teacher: DDIM along the probability-flow ODE of the closed-form denoiser (the
//!   teacher's exact score), from the particle's own noise; it ends on one of the references.
//!   Particles sample in turn, each conditioned on the references not yet taken (their weights
//!   set to zero while any is left), so K particles over ≥ K references start on distinct ones:
//!   VPSD's diversity is there from step 0.
//! - Stable Diffusion: DDIM text-to-image per particle seed, with cross-attention maps of the
//!   object words captured on the way (see [`crate::sd::StableDiffusion::txt2img_with_attention`]).

use tch::{Device, Kind, Tensor};

use crate::distill::{DistillError, ReferenceTeacher, closed_form_denoiser};
use crate::rng::Rng;

/// Random stream of start sampling (see [`Rng::for_step`]).
const STREAM_SAMPLE: u64 = 4;

/// The reference each of `particles` particles samples from `teacher` (seeded by `seed` and the
/// particle index), drawing without replacement while untaken references remain.
pub fn reference_samples(
    teacher: &ReferenceTeacher,
    particles: usize,
    seed: u64,
) -> Result<Vec<usize>, DistillError> {
    let _g = tch::no_grad_guard();
    let k = teacher.len();
    let dev = teacher.targets().device();
    // The ODE runs on a coarse picture: the posterior over a handful of images is decided there.
    let r = teacher.resolution().min(16);
    let set = teacher.targets().adaptive_avg_pool2d([r, r]);
    let alphas = teacher.alphas_cumprod();
    let steps: Vec<usize> = (0..20).map(|i| 980 - i * 49).collect();
    let mut taken = vec![false; k];
    let mut out = Vec::with_capacity(particles);
    for p in 0..particles {
        if taken.iter().all(|&t| t) {
            taken.iter_mut().for_each(|t| *t = false);
        }
        let lw: Vec<f32> = taken.iter().map(|&t| if t { -1e4 } else { 0.0 }).collect();
        let lw = Tensor::from_slice(&lw).to_device(dev);
        let mut rng = Rng::for_step(seed, STREAM_SAMPLE, p as u64);
        let mut x = rng.normal_tensor(&[1, 3, r, r], dev);
        let mut resp = Tensor::zeros([1, k as i64], (Kind::Float, dev));
        for (i, &t) in steps.iter().enumerate() {
            let a = alphas[t];
            let at = Tensor::from_slice(&[a as f32]).to_device(dev);
            let (d, rsp) = closed_form_denoiser(&x, &set, &at, Some(&lw), None);
            resp = rsp;
            let eps = (&x - &d * a.sqrt()) / (1.0 - a).sqrt();
            let a_prev = steps.get(i + 1).map_or(1.0, |&tp| alphas[tp]);
            x = d * a_prev.sqrt() + eps * (1.0 - a_prev).sqrt();
        }
        let pick = Vec::<f32>::try_from(resp.flatten(0, -1))
            .map_err(DistillError::Torch)?
            .iter()
            .enumerate()
            .fold(
                (0usize, f32::MIN),
                |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                },
            )
            .0;
        taken[pick] = true;
        out.push(pick);
    }
    Ok(out)
}

/// A Stable Diffusion sample with the attention maps of its object words.
#[derive(Debug)]
pub struct SdSample {
    /// Straight RGBA8 pixels, `size × size`.
    pub rgba: Vec<u8>,
    /// Side in pixels.
    pub size: usize,
    /// Per object word, its attention map `(H', W')` over the latent (CPU, float).
    pub attention: Vec<Tensor>,
}

/// One sample per particle seed (`seed + p`), `steps` DDIM steps at CFG `cfg`.
#[allow(clippy::too_many_arguments)]
pub fn sd_samples(
    sd: &mut crate::sd::StableDiffusion,
    prompt: &str,
    negative: &str,
    words: &[String],
    particles: usize,
    seed: u64,
    size: usize,
    steps: i64,
    cfg: f64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<SdSample>, DistillError> {
    let f = sd.vae.config.scale_factor();
    let side = ((size as i64).max(f) / f) * f;
    let mut out = Vec::with_capacity(particles);
    for p in 0..particles {
        let opts = crate::sd::Txt2ImgOptions {
            prompt: prompt.to_string(),
            negative: negative.to_string(),
            steps,
            cfg,
            seed: seed.wrapping_add(p as u64),
            size: Some((side, side)),
        };
        let (img, attention) = sd.txt2img_with_attention(&opts, words, &mut |_, _| {})?;
        progress(p + 1, particles);
        // (1, 3, H, W) u8 → RGBA8 at `size`.
        let img = img.to_device(Device::Cpu).to_kind(Kind::Float) / 255.0;
        let img = if side as usize == size {
            img
        } else {
            img.upsample_bilinear2d([size as i64, size as i64], false, None, None)
        };
        let rgb: Vec<f32> =
            Vec::try_from(img.get(0).permute([1, 2, 0]).contiguous().flatten(0, -1))
                .map_err(DistillError::Torch)?;
        let rgba = rgb
            .chunks_exact(3)
            .flat_map(|c| {
                let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                [q(c[0]), q(c[1]), q(c[2]), 255]
            })
            .collect();
        out.push(SdSample {
            rgba,
            size,
            attention,
        });
    }
    Ok(out)
}
