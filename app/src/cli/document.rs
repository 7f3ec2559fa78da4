//! Document subcommands: `render` (SVG → PNG), `info` (SVG object tree, GLB parts) and `convert` (normalised,
//! grouped SVG).

use std::path::PathBuf;

use anyhow::Context as _;
use vecdream_core::SvgOptions;

use crate::io::{load_svg, preview_size};

/// Which renderer `vecdream render` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// resvg, the reference SVG renderer.
    #[default]
    Resvg,
    /// vecdream's differentiable rasteriser on libtorch (what the optimiser sees).
    Diff,
}

/// Arguments of `vecdream render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The SVG to render.
    pub input: PathBuf,
    /// Longer side of the PNG in pixels (the aspect ratio is kept).
    #[arg(long, default_value_t = 512)]
    pub size: u32,
    /// Output PNG.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Renderer.
    #[arg(long, value_enum, default_value_t = Engine::Resvg)]
    pub engine: Engine,
}

/// Arguments of `vecdream info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The SVG (object tree, shape counts) or GLB (parts, vertex and triangle counts) to describe.
    pub input: PathBuf,
}

/// Arguments of `vecdream convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The SVG to read.
    pub input: PathBuf,
    /// Where to write the normalised, grouped SVG.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Decimal places of coordinates.
    #[arg(long, default_value_t = SvgOptions::default().precision)]
    pub precision: usize,
}

/// `vecdream render`.
pub fn render(args: &RenderArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.size > 0, "--size must be at least 1 pixel");
    let doc = load_svg(&args.input)?;
    let (w, h) = preview_size(&doc, args.size);
    match args.engine {
        Engine::Resvg => vecdream_core::render_png(&doc, &args.output, w, h)?,
        Engine::Diff => crate::cli::raster::render_diff_png(&doc, &args.output, w, h)
            .with_context(|| {
                format!(
                    "rendering {} with the differentiable rasteriser",
                    args.input.display()
                )
            })?,
    }
    println!("wrote {} ({w}×{h})", args.output.display());
    Ok(())
}

/// `vecdream info`: a `.glb` prints its parts, anything else is read as SVG.
pub fn info(args: &InfoArgs) -> anyhow::Result<()> {
    if crate::io::is_glb_path(&args.input) {
        let mesh = vecdream_core::glb::read_glb(&args.input)?;
        println!("GLB {}", args.input.display());
        print!("{}", crate::io::mesh_summary(&mesh));
        return Ok(());
    }
    let import = vecdream_core::import_svg(&args.input)?;
    print!("{}", import.document.summary());
    for w in &import.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// `vecdream convert`.
pub fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let doc = load_svg(&args.input)?;
    let options = SvgOptions {
        precision: args.precision,
        ..SvgOptions::default()
    };
    vecdream_core::export_svg(&doc, &args.output, &options)?;
    println!("wrote {}", args.output.display());
    Ok(())
}
