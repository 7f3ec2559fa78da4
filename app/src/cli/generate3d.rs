//! `vecdream generate3d` (a prompt with a model, or a views folder → a coloured mesh as GLB) and
//! `vecdream bench 3d`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use vecdream_gpu::device::best_device;
use vecdream_gpu::distill::SdMethod;
use vecdream_gpu::field::{FieldConfig, FieldRun, TextConfig};

use super::progress::bar;

/// `vecdream generate3d`.
#[derive(clap::Args, Debug, Clone)]
pub struct Generate3dArgs {
    /// Text prompt (with --model): text-to-3D by score distillation.
    #[arg(long, conflicts_with = "views")]
    pub prompt: Option<String>,
    /// Negative prompt.
    #[arg(long, default_value = "")]
    pub negative: String,
    /// Stable Diffusion diffusers folder (with --prompt).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A views folder (views.json + images with known cameras): multi-view fitting, no weights.
    #[arg(long)]
    pub views: Option<PathBuf>,
    /// sds | vsd | esd | csd | asd | tsm | cds (with --prompt). ASD: ScaleDreamer's asynchronous
    /// score distillation; TSM: Dreamer XL's trajectory score matching; CDS: Consistent3D's
    /// consistency distillation sampling.
    #[arg(long, default_value = "sds")]
    pub method: String,
    /// A method knob NAME=VALUE, repeatable (see `vecdream generate --help`), e.g.
    /// tsm_gamma=0.5 or cds_gap=50.
    #[arg(long = "knob", value_name = "NAME=VALUE")]
    pub knobs: Vec<String>,
    /// RGB field rendered at 128 px through the VAE encoder, instead of 4 latent channels.
    #[arg(long)]
    pub rgb: bool,
    /// Final voxels per side (coarse-to-fine from half of it when ≥ 64).
    #[arg(long, default_value_t = 128)]
    pub grid: i64,
    /// Optimisation steps (default: 5000 with a prompt, 500 with views).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Samples per ray.
    #[arg(long, default_value_t = 64)]
    pub samples: i64,
    /// Classifier-free guidance scale (default: 100 for SDS, 50 for CDS, 7.5 otherwise).
    #[arg(long)]
    pub cfg: Option<f64>,
    /// Density threshold of the extracted surface (default: the density at which the renders'
    /// rays stop, measured on the views).
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Views in the turntable strip.
    #[arg(long, default_value_t = 8)]
    pub turntable: usize,
    /// Side of each turntable view in pixels.
    #[arg(long, default_value_t = 128)]
    pub turntable_size: u32,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the checkpoint in OUTDIR (same settings; --steps may grow).
    #[arg(long)]
    pub resume: bool,
    /// Output folder: model.glb, turntable.png, loss.csv, checkpoint.safetensors.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

impl Generate3dArgs {
    /// The run's configuration from the flags.
    pub fn config(&self) -> anyhow::Result<FieldConfig> {
        let mut config = match (&self.views, &self.prompt, &self.model) {
            (Some(dir), None, _) => {
                FieldConfig::views(dir.clone(), self.grid, self.steps.unwrap_or(500))
            }
            (None, Some(prompt), Some(model)) => {
                let method = parse_method(&self.method)?;
                let text = TextConfig {
                    model_dir: model.clone(),
                    prompt: prompt.clone(),
                    negative_prompt: self.negative.clone(),
                    method,
                    cfg: self.cfg,
                    rgb: self.rgb,
                    knobs: self
                        .knobs
                        .iter()
                        .map(|k| super::generate::parse_knob(k).map(|(n, v)| (n.to_string(), v)))
                        .collect::<anyhow::Result<_>>()?,
                    ..TextConfig::default()
                };
                FieldConfig::text(text, self.grid, self.steps.unwrap_or(5000))
            }
            (None, Some(_), None) => bail!("--prompt needs --model DIR (a diffusers folder)"),
            (Some(_), Some(_), _) => bail!("give --prompt or --views, not both"),
            (None, None, _) => bail!("give --prompt \"…\" --model DIR, or --views DIR"),
        };
        config.seed = self.seed;
        config.samples = self.samples;
        if let Some(t) = self.threshold {
            config.mesh_threshold = Some(t);
        }
        config.validate()?;
        Ok(config)
    }
}

/// `--method` of `generate3d`: any score distillation but DDS (an edit, with no source in 3D).
fn parse_method(s: &str) -> anyhow::Result<SdMethod> {
    match SdMethod::parse(s) {
        Ok(SdMethod::Dds) | Err(_) => {
            bail!("--method {s}: expected sds, vsd, esd, csd, asd, tsm or cds")
        }
        Ok(m) => Ok(m),
    }
}

/// Keeps the header and the rows of steps ≤ `step` of a `loss.csv` (rewritten atomically).
fn keep_rows_up_to(csv: &Path, step: usize) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(csv) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.parse::<usize>().ok())
                .is_none_or(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        vecdream_core::atomic::write_atomic(csv, kept.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// Runs `vecdream generate3d`.
pub fn run(args: &Generate3dArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let device = best_device();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ckpt = args.out.join("checkpoint.safetensors");
    let mut run = if args.resume {
        let steps = config.steps;
        let mut r = FieldRun::resume(&ckpt, config, device)?;
        r.set_steps(steps);
        eprintln!("resuming from step {}", r.step_index());
        r
    } else {
        FieldRun::new(config, device)?
    };
    let csv_path = args.out.join("loss.csv");
    if args.resume {
        keep_rows_up_to(&csv_path, run.step_index())?;
    }
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(args.resume)
        .write(true)
        .truncate(!args.resume)
        .open(&csv_path)
        .with_context(|| format!("opening {}", csv_path.display()))?;
    if !args.resume || std::fs::metadata(&csv_path).map_or(true, |m| m.len() == 0) {
        writeln!(csv, "step,loss,skipped,resolution")?;
    }
    let pb = bar(run.config().steps as u64, "steps");
    pb.set_position(run.step_index() as u64);
    let mut last_save = std::time::Instant::now();
    while !run.is_finished() {
        let info = run.step()?;
        writeln!(
            csv,
            "{},{},{},{}",
            info.step,
            info.loss,
            info.skipped,
            run.grid().resolution
        )?;
        pb.set_position(info.step as u64);
        pb.set_message(format!(
            "loss {:.4}, grid {}³",
            info.loss,
            run.grid().resolution
        ));
        if last_save.elapsed().as_secs() >= 30 {
            csv.flush()?;
            run.save_checkpoint(&ckpt)?;
            last_save = std::time::Instant::now();
        }
    }
    pb.finish();
    csv.flush()?;
    run.save_checkpoint(&ckpt)?;
    let (mesh, threshold) = run.surface();
    if mesh.triangle_count() == 0 {
        bail!(
            "the field has no surface at density threshold {threshold} (try a lower --threshold); checkpoint.safetensors and loss.csv are in {}",
            args.out.display()
        );
    }
    let glb = args.out.join("model.glb");
    vecdream_core::glb::write_glb(&glb, &mesh).map_err(|e| anyhow::anyhow!("{e}"))?;
    let strip = run.turntable(args.turntable, args.turntable_size);
    let png = args.out.join("turntable.png");
    strip
        .save_png(&png)
        .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
    eprintln!(
        "wrote model.glb ({} vertices, {} triangles), turntable.png, loss.csv and checkpoint.safetensors to {}",
        mesh.vertex_count(),
        mesh.triangle_count(),
        args.out.display()
    );
    Ok(())
}

/// Arguments of `vecdream bench 3d`.
#[derive(Debug, clap::Args)]
pub struct Bench3dArgs {
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Voxels per side.
    #[arg(long, default_value_t = 128)]
    pub grid: i64,
    /// Latent render side.
    #[arg(long, default_value_t = 64)]
    pub size: i64,
    /// Samples per ray.
    #[arg(long, default_value_t = 64)]
    pub samples: i64,
    /// Also time text-to-3D (SDS, and VSD) on the SD 2.1-base architecture with random weights
    /// (meant for CUDA: on a CPU one UNet pass takes about a minute). The tokenizer is borrowed
    /// from this folder (the tiny fixture's works: tests/fixtures/tiny-sd21/tokenizer).
    #[arg(long)]
    pub sd_tokenizer: Option<PathBuf>,
}

/// `vecdream bench 3d`: seconds per iteration and peak memory.
pub fn bench(args: &Bench3dArgs) -> anyhow::Result<()> {
    use vecdream_gpu::field::bench::{FieldBenchResult, bench_field, bench_field_sd21};
    let device = best_device();
    println!(
        "device: {device:?}, {} CPU threads",
        vecdream_gpu::tch::get_num_threads()
    );
    println!(
        "| case | grid | latent | samples/ray | s/iter | 5000 iters | peak RSS MiB | peak GPU MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let print = |r: &FieldBenchResult| {
        let total = r.sec_per_iter * 5000.0;
        println!(
            "| {} | {}³ | {}² | {} | {:.3} | {:.1} min | {} | {} |",
            r.name,
            r.grid,
            r.size,
            r.samples,
            r.sec_per_iter,
            total / 60.0,
            r.peak_rss_mib.map_or("–".into(), |m| m.to_string()),
            r.peak_gpu_mib.map_or("–".into(), |m| m.to_string())
        )
    };
    print(&bench_field(
        args.grid,
        args.size,
        args.samples,
        args.iters,
        device,
    )?);
    if let Some(tok) = &args.sd_tokenizer {
        if !device.is_cuda() {
            eprintln!("note: no CUDA device: SD 2.1-base on the CPU takes minutes per iteration");
        }
        for method in [SdMethod::Sds, SdMethod::Vpsd] {
            print(&bench_field_sd21(
                method,
                args.grid,
                args.size,
                args.samples,
                args.iters,
                tok,
                device,
            )?);
        }
    }
    Ok(())
}
