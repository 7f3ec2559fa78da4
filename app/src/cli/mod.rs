//! The command line: `vecdream` with no subcommand opens the editor; subcommands do the same work headless.

pub mod clipdraw;
pub mod doctor;
pub mod document;
pub mod extrude;
pub mod generate;
pub mod generate3d;
pub mod progress;
pub mod raster;
pub mod recolor;
pub mod reward;
pub mod score;
pub mod sd;
pub mod vectorize;

use clap::{Parser, Subcommand};

/// vecdream — text-guided vector graphics by score distillation.
#[derive(Debug, Parser)]
#[command(
    name = "vecdream",
    version = crate::VERSION,
    about = "vecdream: text-guided vector graphics (and 3D assets) by score distillation. \
             Without a subcommand the editor opens.",
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without a subcommand the editor window opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Open the editor on its 3D tab showing FILE: a .glb as it is, an .svg extruded.
    #[arg(long = "open-3d", value_name = "FILE")]
    pub open_3d: Option<std::path::PathBuf>,
}

/// The subcommands.
// Parsed once per process: the size of the largest variant (generate's flags) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the installation: libtorch, CUDA devices, threads, wgpu adapter, model folder.
    Doctor(doctor::DoctorArgs),
    /// Render an SVG to PNG (resvg by default, or the differentiable rasteriser).
    Render(document::RenderArgs),
    /// Print an SVG's object tree with shape counts, or a GLB's parts with vertex and triangle counts.
    Info(document::InfoArgs),
    /// Write an SVG normalised and grouped (objects → components → shapes).
    Convert(document::ConvertArgs),
    /// Distil vector particles from a prompt (SDS/VPSD/ESD/CSD, needs --model) or reference images.
    Generate(generate::GenerateArgs),
    /// Generate a 3D asset (GLB) from a prompt (score distillation on a voxel field, needs --model)
    /// or from a views folder (multi-view fitting).
    Generate3d(generate3d::Generate3dArgs),
    /// New colours for an SVG (a palette, a reference image or a prompt); geometry untouched.
    Recolor(recolor::RecolorArgs),
    /// Edit an SVG toward a new prompt against its source prompt (delta denoising score).
    Edit(generate::EditArgs),
    /// Extrude an SVG into a GLB: every visible fill and stroke a solid, one part per object, stacked by paint order.
    Extrude(extrude::ExtrudeArgs),
    /// Turn a PNG/JPEG into a layered, editable SVG (objects → components → shapes).
    Vectorize(vectorize::VectorizeArgs),
    /// CLIP cosine and CLIP score of images and SVGs against a prompt (optionally the LAION aesthetic score).
    Score(score::ScoreArgs),
    /// Generate an image with Stable Diffusion from a local diffusers folder (DDIM sampling).
    Txt2img(sd::Txt2ImgArgs),
    /// Run many jobs from a jobs file, resumably, sharded over Slurm arrays or Kubernetes Indexed Jobs.
    #[command(subcommand)]
    Batch(crate::batch::BatchCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `vecdream bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Differentiable rasteriser: forward + backward wall and CPU ms on standard scenes or an SVG.
    Raster(raster::BenchRasterArgs),
    /// Stable Diffusion UNet (SD1.5 / SD2.1-base architecture): forward and LoRA forward+backward.
    Unet(sd::BenchUnetArgs),
    /// Score distillation: seconds per iteration (reference teacher on CPU; SD 2.1-base with --sd-tokenizer).
    Distill(generate::BenchDistillArgs),
    /// Generation: vectorised-sample starts against the grid start (reference teacher, CPU).
    Generate(generate::BenchGenerateArgs),
    /// 3D field: seconds per iteration at a 64×64 latent with a 128³ grid, peak memory (SD 2.1-base with --sd-tokenizer).
    #[command(name = "3d")]
    ThreeD(generate3d::Bench3dArgs),
    /// Vectoriser: PSNR, SSIM, paths, segments, bytes and time per shared image (vtracer side by side: `cargo run --release --example vectorize_vs_vtracer`).
    Vectorize(vectorize::BenchVectorizeArgs),
    /// CLIP image tower (ViT-B/32, ViT-L/14, random weights, 224²): forward and forward+backward, against transformers.
    Clip(score::BenchClipArgs),
}

impl Command {
    /// Runs the subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Doctor(args) => doctor::run(&args),
            Command::Render(args) => document::render(&args),
            Command::Info(args) => document::info(&args),
            Command::Convert(args) => document::convert(&args),
            Command::Generate(args) => generate::run(args),
            Command::Generate3d(args) => generate3d::run(&args),
            Command::Edit(args) => generate::run_edit(args),
            Command::Recolor(args) => recolor::run(&args),
            Command::Vectorize(args) => vectorize::run(&args),
            Command::Extrude(args) => extrude::run(&args),
            Command::Txt2img(args) => sd::txt2img(&args),
            Command::Score(args) => score::run(&args),
            Command::Batch(batch) => batch.run(),
            Command::Bench(BenchCommand::Raster(args)) => raster::bench(&args),
            Command::Bench(BenchCommand::Unet(args)) => sd::bench_unet(&args),
            Command::Bench(BenchCommand::Distill(args)) => generate::bench(&args),
            Command::Bench(BenchCommand::ThreeD(args)) => generate3d::bench(&args),
            Command::Bench(BenchCommand::Vectorize(args)) => vectorize::bench(&args),
            Command::Bench(BenchCommand::Generate(args)) => generate::bench_generate(&args),
            Command::Bench(BenchCommand::Clip(args)) => score::bench(&args),
        }
    }
}
