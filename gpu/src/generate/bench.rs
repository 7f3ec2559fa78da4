//! `vecdream bench generate`: the reference teacher on CPU toward detailed emoji, particles
//! starting from their own vectorised samples against the old grid-of-squares start at the same
//! settings in the same run. Reports targets covered, PSNR of every particle to its nearest
//! target, paths used and seconds per step.

use std::time::Instant;

use tch::Device;
use vecdream_core::GenerationOptions;

use super::{GenerateError, GenerateSetup, StartsFrom, build_with_starts, distill_config};
use crate::distill::{
    Distiller, GuidanceSpec, ReferenceConfig, ReferenceMode, ReferenceTeacher, grid_document,
};

/// One start's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateBenchRow {
    /// "vectorised samples" or "grid".
    pub start: String,
    /// Distinct targets that are some particle's nearest.
    pub targets_covered: usize,
    /// Per particle, PSNR (dB) to its nearest target at the render size.
    pub psnr_db: Vec<f64>,
    /// Per particle, its nearest target.
    pub nearest: Vec<usize>,
    /// Paths per particle at the end.
    pub paths: Vec<usize>,
    /// Seconds to make the start documents.
    pub start_secs: f64,
    /// Mean seconds per optimisation step.
    pub secs_per_step: f64,
    /// Steps run.
    pub steps: usize,
    /// The particles at the end.
    pub documents: Vec<vecdream_core::Document>,
}

/// Settings of [`bench_generate`].
#[derive(Clone, Debug)]
pub struct GenerateBench {
    /// Reference images, straight RGBA8.
    pub images: Vec<(u32, u32, Vec<u8>)>,
    /// Particles.
    pub particles: usize,
    /// Render size.
    pub size: usize,
    /// Path budget.
    pub paths: usize,
    /// Steps.
    pub steps: usize,
    /// Seed.
    pub seed: u64,
}

fn spec(b: &GenerateBench) -> GuidanceSpec {
    GuidanceSpec::Reference {
        images: b.images.clone(),
        config: ReferenceConfig {
            mode: ReferenceMode::Vpsd,
            resolution: b.size as i64,
            ..ReferenceConfig::default()
        },
    }
}

fn measure(
    name: &str,
    mut d: Distiller,
    teacher: &ReferenceTeacher,
    start_secs: f64,
) -> Result<GenerateBenchRow, GenerateError> {
    let t0 = Instant::now();
    let mut steps = 0;
    while !d.is_finished() {
        d.step()?;
        steps += 1;
    }
    let secs_per_step = t0.elapsed().as_secs_f64() / steps.max(1) as f64;
    let images = tch::no_grad(|| d.render())?;
    let psnr = teacher.psnr(&images);
    let nearest: Vec<usize> = psnr
        .iter()
        .map(|row| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0)
        })
        .collect();
    let mut covered = nearest.clone();
    covered.sort_unstable();
    covered.dedup();
    Ok(GenerateBenchRow {
        start: name.into(),
        targets_covered: covered.len(),
        psnr_db: psnr.iter().zip(&nearest).map(|(row, &k)| row[k]).collect(),
        nearest,
        paths: d.shape_counts().to_vec(),
        start_secs,
        secs_per_step,
        steps,
        documents: d.particle_documents()?,
    })
}

/// Runs both starts; returns `[vectorised samples, grid]`.
pub fn bench_generate(
    b: &GenerateBench,
    device: Device,
) -> Result<Vec<GenerateBenchRow>, GenerateError> {
    let teacher = ReferenceTeacher::from_rgba8(&b.images, b.size as i64, device)?;
    let options = GenerationOptions {
        paths: Some(b.paths),
        ..GenerationOptions::default()
    };
    let mut setup = GenerateSetup::new(options, b.particles, b.size, b.seed);
    setup.steps = b.steps;
    // Vectorised samples.
    let t0 = Instant::now();
    let starts = StartsFrom::Samples {
        setup: setup.clone(),
        sample_steps: 25,
    };
    let (g, docs) = build_with_starts(spec(b), &starts, device, &mut |_, _| {})?;
    let docs = docs.unwrap_or_default();
    let start_secs = t0.elapsed().as_secs_f64();
    let config = distill_config(&setup, b.size as f64);
    let d = Distiller::from_starts(docs, config.clone(), g, device)?;
    let sampled = measure("vectorised samples", d, &teacher, start_secs)?;
    // The grid of squares at the same budget and settings.
    let cells = (b.paths as f64).sqrt().floor().max(1.0) as usize;
    let grid = grid_document(cells, b.size as f64);
    let (g, _) = build_with_starts(spec(b), &StartsFrom::Document, device, &mut |_, _| {})?;
    let d = Distiller::new(&grid, config, g, device)?;
    let grid_row = measure(&format!("grid {cells}×{cells}"), d, &teacher, 0.0)?;
    Ok(vec![sampled, grid_row])
}
