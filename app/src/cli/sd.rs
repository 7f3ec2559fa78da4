//! `vecdream txt2img` and `vecdream bench unet`: Stable Diffusion from the command line.

use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use vecdream_gpu::sd::bench::{UNetBenchConfig, bench_unet as run_bench};
use vecdream_gpu::sd::{StableDiffusion, Txt2ImgOptions, UNet2DConditionConfig, save_png};
use vecdream_gpu::tch::{Device, Kind};

/// Arguments of `vecdream txt2img`.
#[derive(Clone, Debug, clap::Args)]
pub struct Txt2ImgArgs {
    /// A diffusers Stable Diffusion folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/).
    #[arg(long)]
    pub model: PathBuf,
    /// What to draw.
    #[arg(long)]
    pub prompt: String,
    /// Negative prompt (the unconditional branch of classifier-free guidance).
    #[arg(long, default_value = "")]
    pub negative: String,
    /// DDIM steps.
    #[arg(long, default_value_t = 50)]
    pub steps: i64,
    /// Classifier-free guidance scale.
    #[arg(long, default_value_t = 7.5)]
    pub cfg: f64,
    /// Seed of the initial noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Image width in pixels (default: the model's native size).
    #[arg(long)]
    pub width: Option<i64>,
    /// Image height in pixels (default: the model's native size).
    #[arg(long)]
    pub height: Option<i64>,
    /// Output PNG.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

fn device_and_kind() -> (Device, Kind) {
    let device = vecdream_gpu::device::best_device();
    let kind = if device.is_cuda() {
        Kind::Half
    } else {
        Kind::Float
    };
    (device, kind)
}

/// Runs `vecdream txt2img`.
pub fn txt2img(args: &Txt2ImgArgs) -> anyhow::Result<()> {
    let (device, kind) = device_and_kind();
    let mut sd = StableDiffusion::load(&args.model, device, kind)
        .with_context(|| format!("loading Stable Diffusion from {}", args.model.display()))?;
    let size = match (args.height, args.width) {
        (None, None) => None,
        (h, w) => {
            let native = sd.vae.config.scale_factor()
                * sd.unet
                    .config
                    .sample_size
                    .as_ref()
                    .and_then(|v| v.as_i64())
                    .unwrap_or(64);
            Some((h.unwrap_or(native), w.unwrap_or(native)))
        }
    };
    let opts = Txt2ImgOptions {
        prompt: args.prompt.clone(),
        negative: args.negative.clone(),
        steps: args.steps,
        cfg: args.cfg,
        seed: args.seed,
        size,
    };
    let bar = ProgressBar::new(args.steps.max(0) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("denoising");
    let image = sd.txt2img(&opts, &mut |step, _total| bar.set_position(step as u64))?;
    bar.finish_and_clear();
    save_png(&image, &args.output).with_context(|| format!("writing {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Which UNet architecture `bench unet` builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UNetPreset {
    /// Stable Diffusion 1.5 (heads = 8, cross-attention width 768).
    Sd15,
    /// Stable Diffusion 2.1 base (head size 64, linear projections, width 1024).
    Sd21,
}

/// Arguments of `vecdream bench unet`.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchUnetArgs {
    /// The architecture.
    #[arg(long, value_enum, default_value_t = UNetPreset::Sd15)]
    pub config: UNetPreset,
    /// Use random weights (the only mode: no download needed); accepted for clarity.
    #[arg(long, default_value_t = true)]
    pub random_weights: bool,
    /// Latent side (64 = 512×512 images). Use 16–32 on a CPU: the full size takes minutes there.
    #[arg(long, default_value_t = 64)]
    pub latent: i64,
    /// Batch size (2 = one classifier-free-guidance pair).
    #[arg(long, default_value_t = 2)]
    pub batch: i64,
    /// Timed iterations after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// LoRA rank for the forward+backward timing (0 skips it).
    #[arg(long, default_value_t = 4)]
    pub lora_rank: i64,
}

/// Runs `vecdream bench unet`.
pub fn bench_unet(args: &BenchUnetArgs) -> anyhow::Result<()> {
    let (device, kind) = device_and_kind();
    let unet = match args.config {
        UNetPreset::Sd15 => UNet2DConditionConfig::sd15(),
        UNetPreset::Sd21 => UNet2DConditionConfig::sd21_base(),
    };
    let cfg = UNetBenchConfig {
        unet,
        batch: args.batch,
        latent: args.latent,
        iters: args.iters.max(1),
        device,
        kind,
        lora_rank: args.lora_rank,
    };
    let bar = ProgressBar::new_spinner();
    let report = run_bench(&cfg, &mut |msg| bar.set_message(msg.to_string()))?;
    bar.finish_and_clear();
    println!(
        "unet {:?}: {:.1} M parameters, batch {} × {}², {:?} {:?}",
        args.config,
        report.parameters as f64 / 1e6,
        args.batch,
        args.latent,
        device,
        kind
    );
    println!("forward:               {:10.1} ms", report.forward_ms);
    if let Some(ms) = report.lora_fwd_bwd_ms {
        println!(
            "LoRA forward+backward: {ms:10.1} ms (rank {})",
            args.lora_rank
        );
    }
    if let Some(mib) = report.peak_gpu_mib {
        println!("peak GPU memory:       {mib:10} MiB (nvidia-smi, weights included)");
    }
    if !report.finite {
        println!("warning: non-finite outputs (random weights in {kind:?})");
    }
    Ok(())
}
