//! Recolouring: only colour parameters change; every coordinate, width and the structure stay
//! bit-identical (the optimiser's point and width rates are zero, and core writes back only
//! numbers whose `f32` value changed).
//!
//! - A palette alone: each colour becomes its nearest palette colour.
//! - An image or a prompt: a guidance (MSE to the image, or Stable Diffusion's SDS) drives the
//!   fill and stroke colours for a few steps, optionally constrained to a palette.

use tch::Device;
use vecdream_core::{Document, Palette, ShapeId};

use super::GenerateError;
use crate::distill::{Constraints, DistillConfig, Distiller, Guidance, LrConfig, Optimise};

/// Settings of [`recolor`].
#[derive(Clone, Debug, PartialEq)]
pub struct RecolorSettings {
    /// Optimisation steps (with a guidance).
    pub steps: usize,
    /// Render size in pixels.
    pub size: usize,
    /// Colours are limited to this palette (exactly, in the result).
    pub palette: Option<Palette>,
    /// Only these shapes change (`None`: every unlocked, visible shape).
    pub only: Option<Vec<ShapeId>>,
    /// Seed.
    pub seed: u64,
}

impl Default for RecolorSettings {
    fn default() -> Self {
        Self {
            steps: 100,
            size: 128,
            palette: None,
            only: None,
            seed: 0,
        }
    }
}

/// `doc` with new colours. With `guidance` `None` a palette is required (nearest colours).
/// Locked and hidden shapes, and shapes outside `only`, keep their colours.
pub fn recolor(
    doc: &Document,
    guidance: Option<Box<dyn Guidance>>,
    settings: &RecolorSettings,
    device: Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Document, GenerateError> {
    // Shapes that must not change are locked for the run, then unlocked again.
    let mut work = doc.clone();
    let mut locked_here = Vec::new();
    if let Some(only) = &settings.only {
        for e in doc.shape_entries() {
            if !only.contains(&e.shape.meta.id) && !e.shape.meta.locked {
                locked_here.push(e.shape.meta.id);
                if let Some(m) = work.meta_mut(e.shape.meta.id) {
                    m.locked = true;
                }
            }
        }
    }
    let Some(guidance) = guidance else {
        let Some(p) = &settings.palette else {
            return Err(GenerateError::Config {
                field: "recolor".into(),
                message: "give a palette, an image or a prompt".into(),
            });
        };
        let mut snapped = work.clone();
        p.apply(&mut snapped);
        // Write back only the colours of trainable shapes (the palette view of a snapped copy).
        let mut view = work.param_view();
        let sv = snapped.param_view();
        for i in 0..view.slots.len() {
            if view.trainable(i) {
                view.fill[i] = sv.fill[i];
                view.stroke[i] = sv.stroke[i];
                view.fill_gradient[i] = None;
            }
        }
        work.apply_param_view(&view)
            .map_err(|e| GenerateError::Config {
                field: "recolor".into(),
                message: e.to_string(),
            })?;
        return Ok(unlock(work, &locked_here));
    };
    let config = DistillConfig {
        seed: settings.seed,
        steps: settings.steps.max(1),
        particles: 1,
        render_size: settings.size,
        lr: LrConfig {
            points: 0.0,
            color: 0.02,
            width: 0.0,
            ..LrConfig::default()
        },
        optimise: Optimise {
            points: false,
            fill: true,
            stroke: true,
            width: false,
            background: false,
        },
        constraints: Constraints {
            palette: settings
                .palette
                .as_ref()
                .map(Palette::unit_colors)
                .unwrap_or_default(),
            ..Constraints::default()
        },
        ..DistillConfig::default()
    };
    let mut d = Distiller::new(&work, config, guidance, device)?;
    while !d.is_finished() {
        let r = d.step()?;
        progress(r.step, settings.steps);
    }
    let out = d.particle_document(0)?;
    Ok(unlock(out, &locked_here))
}

fn unlock(mut doc: Document, ids: &[ShapeId]) -> Document {
    for &id in ids {
        if let Some(m) = doc.meta_mut(id) {
            m.locked = false;
        }
    }
    doc
}
