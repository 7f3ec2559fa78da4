//! `vecdream vectorize`: seed image → layered SVG, and `vecdream bench vectorize`.

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::Context as _;
use vecdream_core::export_svg;
use vecdream_gpu::vectorize::bench::{bench_file, compact_svg_options, time_to_psnr};
use vecdream_gpu::vectorize::{Budget, Progress, Style, VectorizeConfig, vectorize_file};

/// Drawing style of `vecdream vectorize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StyleArg {
    /// Filled closed cubic paths.
    Iconography,
    /// Filled polygons.
    LowPoly,
    /// Grid of squares.
    PixelArt,
}

impl From<StyleArg> for Style {
    fn from(s: StyleArg) -> Self {
        match s {
            StyleArg::Iconography => Style::Iconography,
            StyleArg::LowPoly => Style::LowPoly,
            StyleArg::PixelArt => Style::PixelArt,
        }
    }
}

/// Arguments of `vecdream vectorize`.
#[derive(Debug, clap::Args)]
pub struct VectorizeArgs {
    /// Input image (PNG or JPEG; grayscale and alpha are fine).
    pub input: PathBuf,
    /// Output SVG.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Budget in cubic segments (polygon edges for low-poly).
    #[arg(long, conflicts_with = "paths")]
    pub segments: Option<usize>,
    /// Budget in paths (each up to 16 segments).
    #[arg(long)]
    pub paths: Option<usize>,
    /// Primitive style.
    #[arg(long, value_enum, default_value_t = StyleArg::Iconography)]
    pub style: StyleArg,
    /// Working size: the longer image side in pixels (= SVG canvas units).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Seed of the colour clustering.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimisation steps after the initial layered fit (0: fit only).
    #[arg(long, default_value_t = VectorizeConfig::default().steps)]
    pub steps: usize,
    /// Flat colours only: no linear-gradient fills on shaded regions (iconography style;
    /// low-poly and pixel-art are always flat).
    #[arg(long)]
    pub flat: bool,
}

fn config(
    segments: Option<usize>,
    paths: Option<usize>,
    style: Style,
    seed: u64,
    steps: usize,
    gradients: bool,
) -> VectorizeConfig {
    let budget = match (segments, paths) {
        (_, Some(p)) => Budget::Paths(p),
        (Some(s), None) => Budget::Segments(s),
        (None, None) => VectorizeConfig::default().budget,
    };
    VectorizeConfig {
        budget,
        style,
        seed,
        steps,
        gradients,
        device: vecdream_gpu::device::best_device(),
        ..VectorizeConfig::default()
    }
}

/// `vecdream vectorize in.png -o out.svg`.
pub fn run(args: &VectorizeArgs) -> anyhow::Result<()> {
    let cfg = config(
        args.segments,
        args.paths,
        args.style.into(),
        args.seed,
        args.steps,
        !args.flat,
    );
    let bar = crate::cli::progress::bar(cfg.steps as u64, "steps");
    let result = vectorize_file(&args.input, args.size, &cfg, &mut |p| {
        match p {
            Progress::Note(n) => bar.suspend(|| eprintln!("{n}")),
            Progress::Initialised {
                shapes,
                segments,
                psnr_db,
            } => bar.set_message(format!(
                "initial fit: {shapes} paths, {segments} segments, {psnr_db:.2} dB"
            )),
            Progress::Step {
                step,
                psnr_db,
                shapes,
                segments,
                ..
            } => {
                bar.set_position(step as u64);
                bar.set_message(format!(
                    "{psnr_db:.2} dB, {shapes} paths, {segments} segments"
                ));
            }
            Progress::Adapted { pruned, added } => {
                bar.suspend(|| tracing::debug!("adaptive control: pruned {pruned}, added {added}"));
            }
            Progress::Preview(_) => {}
        }
        ControlFlow::Continue(())
    })
    .with_context(|| format!("vectorising {}", args.input.display()))?;
    bar.finish_and_clear();
    export_svg(&result.document, &args.output, &compact_svg_options())
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "{}: {} paths, {} segments, {:.2} dB (initial fit {:.2} dB), {} objects",
        args.output.display(),
        result.shapes,
        result.segments,
        result.psnr_db,
        result.init_psnr_db,
        result.document.objects.len()
    );
    Ok(())
}

/// Arguments of `vecdream bench vectorize`.
#[derive(Debug, clap::Args)]
pub struct BenchVectorizeArgs {
    /// Images to vectorise (default: every file in `tests/data/images` under the current folder).
    pub images: Vec<PathBuf>,
    /// Segment budget per image.
    #[arg(long, default_value_t = 1024)]
    pub segments: usize,
    /// Working size (longer side, pixels).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = VectorizeConfig::default().steps)]
    pub steps: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write each SVG into this folder.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Flat colours only (no gradient fills).
    #[arg(long)]
    pub flat: bool,
}

/// `vecdream bench vectorize`: a Markdown table of quality, size and time per image.
pub fn bench(args: &BenchVectorizeArgs) -> anyhow::Result<()> {
    let mut images = args.images.clone();
    if images.is_empty() {
        // No path is baked into the binary: without arguments it reads the repository's
        // photos relative to the current folder (run it from the checkout).
        let dir = PathBuf::from("tests/data/images");
        images = std::fs::read_dir(&dir)
            .with_context(|| {
                format!(
                    "listing {} (give image files, or run from the vecdream checkout)",
                    dir.display()
                )
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        images.sort();
    }
    let cfg = config(
        Some(args.segments),
        None,
        Style::Iconography,
        args.seed,
        args.steps,
        !args.flat,
    );
    println!(
        "| image | size | PSNR dB | SSIM | paths | segments | SVG bytes | wall s | initial fit dB (s) | s to initial +1 dB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let bar = crate::cli::progress::bar(images.len() as u64, "images");
    for path in &images {
        let row = bench_file(path, args.size, &cfg)
            .with_context(|| format!("vectorising {}", path.display()))?;
        if let Some(dir) = &args.out_dir {
            std::fs::create_dir_all(dir)?;
            vecdream_core::atomic::write_atomic(
                &dir.join(format!("{}.svg", row.image)),
                row.svg.as_bytes(),
            )?;
        }
        bar.suspend(|| {
            println!(
                "| {} | {}×{} | {:.2} | {:.3} | {} | {} | {} | {:.1} | {:.2} ({:.1}) | {} |",
                row.image,
                row.width,
                row.height,
                row.score.psnr_db,
                row.score.ssim,
                row.score.paths,
                row.score.segments,
                row.score.bytes,
                row.wall_s,
                row.init_score.psnr_db,
                row.init_wall_s,
                time_to_psnr(&row, row.init_score.psnr_db + 1.0)
                    .map_or("–".into(), |t| format!("{t:.1}")),
            )
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
