//! Generation in a style: sample, vectorise into semantic objects and components, then distil.
//!
//! The pipeline (SVGDreamer++'s SIVE and HIVE, with the vectoriser doing the fitting):
//! 1. [`sample`]: one sample per particle, from its own seed — from the reference teacher (no
//!    weights) or from Stable Diffusion with the object words' cross-attention captured.
//! 2. [`masks`]: attention maps → one mask per object word (threshold, open, disjoint).
//! 3. [`starts`]: each sample becomes a start document in the style's primitives: objects (the
//!    words, or the vectoriser's segmentation), components inside them, shapes inside those.
//! 4. [`distill_config`]: the style preset as distillation settings (what trains, colour and
//!    width constraints, palette, re-initialisation / adaptive control, t schedule); the caller
//!    runs [`crate::distill::Distiller::from_starts`].
//!
//! [`recolor`] changes only the colours of a document toward a palette, an image or a prompt.

pub mod bench;
pub mod masks;
pub mod recolor;
pub mod sample;
pub mod starts;
pub mod strokes;
pub mod target;

use tch::Device;
use vecdream_core::{Document, GenerationOptions, PrimitiveKind, Style};

use crate::distill::{
    AdaptiveConfig, Annealing, Constraints, DistillConfig, DistillError, LrConfig, NewShape,
    Optimise, ReferenceTeacher,
};
use crate::vectorize::{TargetImage, VectorizeError};
pub use starts::{ID_STRIDE, StartSample, start_document};

/// Why a generation could not start.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum GenerateError {
    /// Distillation (or the SD model) failed.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// Vectorising a sample failed.
    #[error("vectorising a sample: {0}")]
    Vectorize(#[from] VectorizeError),
    /// A setting is out of range.
    #[error("generation setting `{field}`: {message}")]
    Config {
        /// The setting.
        field: String,
        /// What was expected.
        message: String,
    },
}

impl From<crate::sd::SdError> for GenerateError {
    fn from(e: crate::sd::SdError) -> Self {
        Self::Distill(DistillError::Sd(e))
    }
}

/// Everything a generation needs besides its guidance.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateSetup {
    /// Style, detail, palette, object words, content type, adaptive control.
    pub options: GenerationOptions,
    /// Number of particles.
    pub particles: usize,
    /// Canvas and render size in pixels.
    pub size: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Weight of the object-region loss (0: off).
    pub region_weight: f64,
}

impl GenerateSetup {
    /// A setup with the style's default steps.
    pub fn new(options: GenerationOptions, particles: usize, size: usize, seed: u64) -> Self {
        let steps = options.preset().steps;
        Self {
            options,
            particles,
            size,
            steps,
            seed,
            region_weight: 0.0,
        }
    }

    fn check(&self) -> Result<(), GenerateError> {
        let bad = |field: &str, message: String| {
            Err(GenerateError::Config {
                field: field.into(),
                message,
            })
        };
        if !(16..=2048).contains(&self.size) {
            return bad("size", format!("{}: expected 16..=2048 pixels", self.size));
        }
        if !(1..=64).contains(&self.particles) {
            return bad("particles", format!("{}: expected 1..=64", self.particles));
        }
        let paths = self.options.preset().paths;
        if !(1..=20_000).contains(&paths) {
            return bad("paths", format!("{paths}: expected 1..=20000"));
        }
        Ok(())
    }
}

/// The style preset of `setup` as distillation settings for a canvas whose longer side is
/// `canvas` document units.
pub fn distill_config(setup: &GenerateSetup, canvas: f64) -> DistillConfig {
    let p = setup.options.preset();
    let [init_w, lo, hi] = p.widths_for(canvas);
    let steps = setup.steps.max(1);
    let px = setup.size as f64 / 256.0;
    let new_shape = match (p.style, p.primitive) {
        (_, PrimitiveKind::Polygon) => NewShape::Polygon,
        (s, _) if s.is_stroked() => NewShape::Stroke {
            segments: p.segments_per_stroke,
            width: init_w,
            black: p.color == vecdream_core::style::ColorRule::Black,
        },
        _ => NewShape::Filled,
    };
    let adaptive = if p.style == Style::PixelArt {
        None
    } else if setup.options.adaptive {
        Some(AdaptiveConfig {
            every: (steps / 8).max(10),
            until_fraction: 0.7,
            min_alpha: 0.05,
            min_area_px: p.reinit.min_area_px.map(|a| a * (px * px) as f32),
            max_shapes: Some(p.paths),
            max_added: (p.paths / 8).max(2),
            new_shape,
        })
    } else if p.reinit.every > 0 {
        // SVGDreamer re-initialises every 100 of its 2000 steps: 5 % of the run.
        Some(AdaptiveConfig {
            every: (steps / 20).max(10),
            until_fraction: p.reinit.until_fraction,
            min_alpha: p.reinit.min_alpha,
            min_area_px: p.reinit.min_area_px.map(|a| a * (px * px) as f32),
            max_shapes: None,
            max_added: (p.paths / 8).max(2),
            new_shape,
        })
    } else {
        None
    };
    DistillConfig {
        seed: setup.seed,
        steps,
        particles: setup.particles,
        render_size: setup.size,
        lr: LrConfig {
            points: 1.0,
            color: 0.01,
            width: 0.1,
            ..LrConfig::default()
        },
        optimise: Optimise {
            points: p.trained.points,
            fill: p.trained.fill,
            stroke: p.trained.stroke,
            width: p.trained.width,
            background: false,
        },
        constraints: Constraints {
            palette: setup
                .options
                .palette
                .as_ref()
                .map(|p| p.unit_colors())
                .unwrap_or_default(),
            width_range: p.style.is_stroked().then_some([lo as f32, hi as f32]),
            stroke_alpha_only: p.trained.stroke_alpha_only,
            fill_alpha_fixed: p.style == Style::PixelArt,
        },
        adaptive,
        region_weight: setup.region_weight,
        ..DistillConfig::default()
    }
}

/// The style's timestep schedule over `steps` (SVGDreamer's `max_0.5_N`).
pub fn t_annealing(setup: &GenerateSetup) -> Annealing {
    match setup.options.preset().t_half_after {
        Some(f) => Annealing::MaxHalfAfter {
            after: (f64::from(f) * setup.steps as f64).round() as usize,
        },
        None => Annealing::None,
    }
}

/// Straight RGBA8 `(w, h, pixels)` fitted into a transparent `size × size` square (aspect kept,
/// centred), as the vectoriser's target.
pub fn fit_square(rgba: &(u32, u32, Vec<u8>), size: usize) -> Result<TargetImage, GenerateError> {
    let (w, h, px) = rgba;
    let img =
        image::RgbaImage::from_raw(*w, *h, px.clone()).ok_or_else(|| GenerateError::Config {
            field: "reference image".into(),
            message: format!("{} bytes for {w}×{h} RGBA8", px.len()),
        })?;
    let s = size as u32;
    let scale = f64::from(s) / f64::from((*w).max(*h).max(1));
    let (nw, nh) = (
        ((f64::from(*w) * scale).round() as u32).clamp(1, s),
        ((f64::from(*h) * scale).round() as u32).clamp(1, s),
    );
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbaImage::new(s, s);
    image::imageops::overlay(
        &mut canvas,
        &resized,
        i64::from((s - nw) / 2),
        i64::from((s - nh) / 2),
    );
    Ok(TargetImage::from_rgba8(size, size, canvas.as_raw())?)
}

/// Start documents for the reference teacher: each particle samples a reference from
/// `teacher` (over `images`, the same list the teacher was built from) and vectorises it in
/// the style. `progress(done, total)` after each particle.
pub fn reference_starts(
    images: &[(u32, u32, Vec<u8>)],
    teacher: &ReferenceTeacher,
    setup: &GenerateSetup,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Document>, GenerateError> {
    setup.check()?;
    let picks = sample::reference_samples(teacher, setup.particles, setup.seed)?;
    let mut out = Vec::with_capacity(picks.len());
    for (p, &k) in picks.iter().enumerate() {
        let image = fit_square(&images[k], setup.size)?;
        let sample = StartSample {
            image,
            objects: Vec::new(),
            attention: None,
        };
        out.push(start_document(&sample, setup, p, device)?);
        progress(p + 1, picks.len());
    }
    Ok(out)
}

/// Start documents from Stable Diffusion: one DDIM sample per particle (`sample_steps` steps),
/// object masks from the object words' cross-attention, vectorised in the style.
pub fn sd_starts(
    sd: &mut crate::sd::StableDiffusion,
    prompt: &str,
    negative: &str,
    setup: &GenerateSetup,
    sample_steps: i64,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Document>, GenerateError> {
    setup.check()?;
    let words = &setup.options.objects;
    let samples = sample::sd_samples(
        sd,
        prompt,
        negative,
        words,
        setup.particles,
        setup.seed,
        setup.size,
        sample_steps,
        7.5,
        &mut |_, _| {},
    )?;
    let mut out = Vec::with_capacity(samples.len());
    for (p, s) in samples.iter().enumerate() {
        let image = TargetImage::from_rgba8(s.size, s.size, &s.rgba)?;
        let masks = masks::object_masks(&s.attention, s.size);
        let attention = (!s.attention.is_empty()).then(|| {
            let maps: Vec<Vec<f32>> = s
                .attention
                .iter()
                .map(|m| masks::normalised_map(m, s.size))
                .collect();
            (0..s.size * s.size)
                .map(|i| maps.iter().map(|m| m[i]).fold(0.0, f32::max))
                .collect()
        });
        let sample = StartSample {
            image,
            objects: words.iter().cloned().zip(masks).collect(),
            attention,
        };
        out.push(start_document(&sample, setup, p, device)?);
        progress(p + 1, samples.len());
    }
    Ok(out)
}

/// Where the particles start.
#[derive(Clone, Debug, PartialEq)]
pub enum StartsFrom {
    /// Every particle from one document (an `--init` SVG, or the document in the editor).
    Document,
    /// One given document per particle (disjoint ids, see [`ID_STRIDE`]).
    Documents(Vec<Document>),
    /// Each particle from its own sample of the guidance's model, vectorised in the style.
    Samples {
        /// Style, budget, objects, particles, size, seed.
        setup: GenerateSetup,
        /// DDIM steps of a Stable Diffusion sample.
        sample_steps: i64,
    },
}

/// The reference images as the teacher sees them in `style`: line drawings for sketch, ink tones
/// for ink & wash, unchanged for the other styles.
pub fn style_references(
    images: &[(u32, u32, Vec<u8>)],
    style: Style,
) -> Result<Vec<(u32, u32, Vec<u8>)>, GenerateError> {
    if !matches!(style, Style::Sketch | Style::Ink) {
        return Ok(images.to_vec());
    }
    images
        .iter()
        .map(|(w, h, px)| {
            let img = TargetImage::from_rgba8(*w as usize, *h as usize, px)?;
            Ok((*w, *h, target::style_target(style, &img).to_rgba8()))
        })
        .collect()
}

/// A built guidance and, when particles start from samples, their start documents.
pub type GuidanceAndStarts = (Box<dyn crate::distill::Guidance>, Option<Vec<Document>>);

/// Builds the guidance of `spec` on `device` and, for [`StartsFrom::Samples`], the particles'
/// start documents from that guidance's own model (the reference teacher or Stable Diffusion).
/// `progress(done, total)` while samples are made.
pub fn build_with_starts(
    spec: crate::distill::GuidanceSpec,
    starts: &StartsFrom,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GuidanceAndStarts, GenerateError> {
    use crate::distill::{GuidanceSpec, ReferenceGuidance, SdGuidance};
    let (setup, sample_steps) = match starts {
        StartsFrom::Document => return Ok((spec.build(device)?, None)),
        StartsFrom::Documents(d) => return Ok((spec.build(device)?, Some(d.clone()))),
        StartsFrom::Samples {
            setup,
            sample_steps,
        } => (setup, sample_steps),
    };
    match spec {
        GuidanceSpec::Reference { images, config } => {
            let styled = style_references(&images, setup.options.style)?;
            let teacher = ReferenceTeacher::from_rgba8(&styled, config.resolution, device)?;
            let docs = reference_starts(&images, &teacher, setup, device, progress)?;
            Ok((
                Box::new(ReferenceGuidance::new(teacher, config)),
                Some(docs),
            ))
        }
        GuidanceSpec::StableDiffusion(c) => {
            let mut g = SdGuidance::load(&c, device)?;
            let docs = sd_starts(
                &mut g.sd,
                &c.prompt,
                &c.negative_prompt,
                setup,
                *sample_steps,
                device,
                progress,
            )?;
            Ok((Box::new(g), Some(docs)))
        }
        GuidanceSpec::Custom(_) => Err(GenerateError::Config {
            field: "starts".into(),
            message: "samples need the reference teacher or Stable Diffusion".into(),
        }),
    }
}
