//! `vecdream recolor`: new colours for an SVG — nearest palette colours, or colours driven toward
//! a reference image or a prompt (Stable Diffusion), geometry untouched.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use vecdream_core::{Palette, SvgOptions};
use vecdream_gpu::device::best_device;
use vecdream_gpu::distill::{Guidance, SdGuidance, SdGuidanceConfig, SdMethod};
use vecdream_gpu::generate::recolor::{RecolorSettings, recolor};
use vecdream_gpu::generate::target::{FitGuidance, over_white};
use vecdream_gpu::vectorize::load_image;

use super::progress::bar;

/// `vecdream recolor`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecolorArgs {
    /// The SVG to recolour.
    pub input: PathBuf,
    /// Output SVG.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Colours to use, e.g. "#264653,#2a9d8f,#e9c46a": alone, each colour becomes its nearest
    /// palette colour; with --reference or --prompt, the optimised colours are limited to it.
    #[arg(long)]
    pub palette: Option<String>,
    /// Take colours from this image (PNG or JPEG).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Take colours from this prompt (with --model).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Stable Diffusion diffusers folder (with --prompt).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Optimisation steps (with --reference or --prompt).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Render size in pixels (default 128 with --reference, 512 with --prompt).
    #[arg(long)]
    pub size: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `vecdream recolor`.
pub fn run(args: &RecolorArgs) -> anyhow::Result<()> {
    let doc = vecdream_core::import_svg(&args.input)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.input.display()))?
        .document;
    let palette = args
        .palette
        .as_deref()
        .map(Palette::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--palette: {e}"))?;
    let device = best_device();
    let (guidance, size): (Option<Box<dyn Guidance>>, usize) =
        match (&args.reference, &args.prompt, &args.model) {
            (Some(_), Some(_), _) => bail!("give --reference or --prompt, not both"),
            (Some(img), None, _) => {
                let size = args.size.unwrap_or(128);
                let loaded = load_image(img, size)
                    .map_err(|e| anyhow::anyhow!("--reference: {e}"))?
                    .image;
                let target = over_white(&loaded).to_tensor(device);
                (Some(Box::new(FitGuidance::new(target))), size)
            }
            (None, Some(prompt), Some(model)) => {
                let size = args.size.unwrap_or(512);
                let config = SdGuidanceConfig {
                    method: SdMethod::Sds,
                    model_dir: model.clone(),
                    prompt: prompt.clone(),
                    resolution: size as i64,
                    ..SdGuidanceConfig::sds()
                };
                (Some(Box::new(SdGuidance::load(&config, device)?)), size)
            }
            (None, Some(_), None) => bail!("--prompt needs --model DIR"),
            (None, None, _) if palette.is_some() => (None, args.size.unwrap_or(128)),
            (None, None, _) => bail!("give --palette, --reference IMAGE or --prompt with --model"),
        };
    let settings = RecolorSettings {
        steps: args.steps,
        size,
        palette,
        only: None,
        seed: args.seed,
    };
    let pb = bar(settings.steps as u64, "steps");
    let out = recolor(&doc, guidance, &settings, device, &mut |done, _| {
        pb.set_position(done as u64)
    })?;
    pb.finish_and_clear();
    vecdream_core::export_svg(&out, &args.out, &SvgOptions::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))
        .with_context(|| "writing the recoloured SVG")?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
