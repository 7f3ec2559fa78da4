//! Benchmark of the vectoriser: PSNR / SSIM of the exported SVG rendered by resvg against
//! the input, paths, segments, SVG bytes and wall time, per image.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use vecdream_core::metrics::{composite_rgb, psnr, ssim_rgb};
use vecdream_core::{SvgOptions, render_svg_str, to_svg_string};

use super::{
    Progress, TargetImage, VectorizeConfig, VectorizeError, count_svg_segments, load_image,
    vectorize,
};

/// SVG export settings of the benchmark and the CLI: 2 decimals (0.01 px), no indentation.
pub fn compact_svg_options() -> SvgOptions {
    SvgOptions {
        precision: 2,
        indent: false,
    }
}

/// Quality of an SVG against a target, both composited over white.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SvgScore {
    /// PSNR in dB (RGB over white, resvg render at the target's size).
    pub psnr_db: f64,
    /// Mean SSIM of the luma (8×8 windows).
    pub ssim: f64,
    /// Number of `<path>`-like elements.
    pub paths: usize,
    /// Line, quadratic and cubic segments over all paths.
    pub segments: usize,
    /// Size of the SVG text.
    pub bytes: usize,
}

/// Renders `svg` with resvg at the target's size and scores it.
pub fn score_svg(svg: &str, target: &TargetImage) -> Result<SvgScore, VectorizeError> {
    let img = render_svg_str(
        svg,
        target.width as u32,
        target.height as u32,
        Path::new("<svg>"),
    )
    .map_err(|e| VectorizeError::Document(e.to_string()))?;
    let white = [255, 255, 255];
    let a = composite_rgb(&img.data, white);
    let b = composite_rgb(&target.to_rgba8(), white);
    let (paths, segments) = count_svg_segments(svg);
    Ok(SvgScore {
        psnr_db: psnr(&a, &b).unwrap_or(0.0),
        ssim: ssim_rgb(&a, &b, target.width, target.height).unwrap_or(0.0),
        paths,
        segments,
        bytes: svg.len(),
    })
}

/// One benchmark row.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorizeRow {
    /// Image file name.
    pub image: String,
    /// Working width in pixels.
    pub width: usize,
    /// Working height in pixels.
    pub height: usize,
    /// Score of the exported SVG.
    pub score: SvgScore,
    /// Wall time of vectorisation (decoding excluded), seconds.
    pub wall_s: f64,
    /// Score of the initial layered fit alone (no optimisation).
    pub init_score: SvgScore,
    /// Wall time until the initial fit was ready, seconds.
    pub init_wall_s: f64,
    /// `(seconds, PSNR dB)` after each optimisation step (differentiable rasteriser).
    pub trace: Vec<(f64, f64)>,
    /// The exported SVG text.
    pub svg: String,
}

/// Vectorises one image and scores the exported SVG (and the initial fit) with resvg.
pub fn bench_image(
    target: &TargetImage,
    name: &str,
    cfg: &VectorizeConfig,
) -> Result<VectorizeRow, VectorizeError> {
    let start = Instant::now();
    let mut init: Option<(f64, vecdream_core::Document)> = None;
    let mut trace = Vec::new();
    // The first preview is sent right after initialisation; an interval longer than the run
    // makes it the only one.
    let cfg_with_first_preview = VectorizeConfig {
        preview_every: cfg.steps.max(1) * 10,
        ..cfg.clone()
    };
    let result = vectorize(target, &cfg_with_first_preview, &mut |p| {
        match p {
            Progress::Preview(doc) if init.is_none() => {
                init = Some((start.elapsed().as_secs_f64(), *doc));
            }
            Progress::Step { psnr_db, .. } => {
                trace.push((start.elapsed().as_secs_f64(), psnr_db));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    let wall_s = start.elapsed().as_secs_f64();
    let svg = to_svg_string(&result.document, &compact_svg_options());
    let score = score_svg(&svg, target)?;
    let (init_wall_s, init_score) = match init {
        Some((t, doc)) => (
            t,
            score_svg(&to_svg_string(&doc, &compact_svg_options()), target)?,
        ),
        None => (wall_s, score),
    };
    Ok(VectorizeRow {
        image: name.to_string(),
        width: target.width,
        height: target.height,
        score,
        wall_s,
        init_score,
        init_wall_s,
        trace,
        svg,
    })
}

/// Loads `path` at `size` and runs [`bench_image`].
pub fn bench_file(
    path: &Path,
    size: usize,
    cfg: &VectorizeConfig,
) -> Result<VectorizeRow, VectorizeError> {
    let loaded = load_image(path, size)?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    bench_image(&loaded.image, &name, cfg)
}

/// Seconds until the trace first reached `psnr_db`, if it did.
pub fn time_to_psnr(row: &VectorizeRow, psnr_db: f64) -> Option<f64> {
    if row.init_score.psnr_db >= psnr_db {
        return Some(row.init_wall_s);
    }
    row.trace
        .iter()
        .find(|(_, p)| *p >= psnr_db)
        .map(|(t, _)| *t)
}
