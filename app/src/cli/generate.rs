//! `vecdream generate` (text or reference images → K vector particles) and `vecdream edit` (DDS).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use vecdream_core::Document;
use vecdream_gpu::device::best_device;
use vecdream_gpu::distill::{
    Annealing, DistillConfig, Distiller, Guidance, ReferenceConfig, ReferenceGuidance,
    ReferenceMode, ReferenceTeacher, SdGuidance, SdGuidanceConfig, SdMethod, demo_document,
};

use super::progress::bar;

/// `vecdream generate`.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Text prompt (with --model).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Negative prompt.
    #[arg(long, default_value = "")]
    pub negative: String,
    /// Stable Diffusion diffusers folder.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Reference images (PNG, JPEG or SVG) for the weight-free teacher, instead of a prompt.
    #[arg(long, num_args = 1..)]
    pub reference: Vec<PathBuf>,
    /// sds | vpsd | esd | csd (reference images: sds | vpsd).
    #[arg(long, default_value = "vpsd")]
    pub method: String,
    /// Number of particles K.
    #[arg(long, default_value_t = 4)]
    pub particles: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    /// Render size in pixels (512 for Stable Diffusion; 64 is plenty for references).
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Initial SVG (default: a grid of grey squares).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Grid cells per side of the default initial document.
    #[arg(long, default_value_t = 16)]
    pub cells: usize,
    /// Classifier-free guidance scale (default: 100 for SDS, 7.5 otherwise).
    #[arg(long)]
    pub cfg: Option<f64>,
    /// Timestep schedule: none | max_0.5_N | linear_T.
    #[arg(long)]
    pub t_schedule: Option<String>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the checkpoint in OUTDIR.
    #[arg(long)]
    pub resume: bool,
    /// Write checkpoint.safetensors every N steps (and at the end).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
    /// Output folder.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

/// `vecdream edit`: delta denoising score toward `--prompt` from `--source`.
#[derive(clap::Args, Debug, Clone)]
pub struct EditArgs {
    /// The SVG to edit.
    pub input: PathBuf,
    /// What the SVG shows now.
    #[arg(long)]
    pub source: String,
    /// What it should show.
    #[arg(long)]
    pub prompt: String,
    /// Stable Diffusion diffusers folder.
    #[arg(long)]
    pub model: PathBuf,
    /// Optimisation steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Render size in pixels.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// CFG scale.
    #[arg(long, default_value_t = 7.5)]
    pub cfg: f64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

fn load_rgba(path: &Path) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        let svg =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let img = vecdream_core::png::render_svg_str(&svg, 256, 256, path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok((img.width, img.height, img.data));
    }
    let img = image::open(path)
        .with_context(|| format!("reading image {}", path.display()))?
        .to_rgba8();
    Ok((img.width(), img.height(), img.into_raw()))
}

fn initial_document(init: Option<&Path>, cells: usize, size: usize) -> anyhow::Result<Document> {
    match init {
        Some(p) => Ok(vecdream_core::svg_import::import_svg(p)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            .document),
        None => Ok(demo_document(cells, size as f64)),
    }
}

/// Runs `vecdream generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = best_device();
    let t_schedule = args
        .t_schedule
        .as_deref()
        .map(Annealing::parse)
        .transpose()?;
    let guidance: Box<dyn Guidance> = if !args.reference.is_empty() {
        let images = args
            .reference
            .iter()
            .map(|p| load_rgba(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mode = match args.method.as_str() {
            "sds" => ReferenceMode::Sds,
            "vpsd" => ReferenceMode::Vpsd,
            m => bail!("--method {m}: reference images work with sds or vpsd"),
        };
        let mut config = ReferenceConfig {
            mode,
            ..ReferenceConfig::default()
        };
        if let Some(a) = t_schedule {
            config.time.annealing = a;
        }
        let teacher = ReferenceTeacher::from_rgba8(&images, config.resolution, device)?;
        Box::new(ReferenceGuidance::new(teacher, config))
    } else {
        let (Some(prompt), Some(model)) = (&args.prompt, &args.model) else {
            bail!("give --prompt and --model, or --reference images");
        };
        let method = SdMethod::parse(&args.method)?;
        let mut config = if method == SdMethod::Sds {
            SdGuidanceConfig::sds()
        } else {
            SdGuidanceConfig::default()
        };
        config.method = method;
        config.model_dir = model.clone();
        config.prompt = prompt.clone();
        config.negative_prompt = args.negative.clone();
        config.resolution = args.size as i64;
        if let Some(c) = args.cfg {
            config.cfg = c;
        }
        if let Some(a) = t_schedule {
            config.time.annealing = a;
        }
        Box::new(SdGuidance::load(&config, device)?)
    };
    let doc = initial_document(args.init.as_deref(), args.cells, args.size)?;
    let config = DistillConfig {
        seed: args.seed,
        steps: args.steps,
        particles: args.particles,
        render_size: args.size,
        ..DistillConfig::default()
    };
    let every = args.checkpoint_every as usize;
    optimise(doc, config, guidance, device, args.resume, every, &args.out)
}

/// Runs `vecdream edit` (DDS, one particle).
pub fn run_edit(args: EditArgs) -> anyhow::Result<()> {
    let device = best_device();
    let doc = initial_document(Some(&args.input), 0, args.size)?;
    let config = SdGuidanceConfig {
        method: SdMethod::Dds,
        model_dir: args.model.clone(),
        prompt: args.prompt.clone(),
        source_prompt: args.source.clone(),
        cfg: args.cfg,
        resolution: args.size as i64,
        time: Default::default(),
        ..SdGuidanceConfig::default()
    };
    let guidance = Box::new(SdGuidance::load(&config, device)?);
    let dconfig = DistillConfig {
        seed: args.seed,
        steps: args.steps,
        particles: 1,
        render_size: args.size,
        ..DistillConfig::default()
    };
    optimise(doc, dconfig, guidance, device, false, 100, &args.out)
}

fn optimise(
    doc: Document,
    config: DistillConfig,
    guidance: Box<dyn Guidance>,
    device: vecdream_gpu::tch::Device,
    resume: bool,
    checkpoint_every: usize,
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let ckpt = out.join("checkpoint.safetensors");
    let mut d = if resume {
        let mut d = Distiller::resume(&ckpt, guidance, device)?;
        // `--steps` on a resume is the new total (the rest of the configuration comes from the checkpoint).
        d.set_param("steps", config.steps as f64)?;
        d
    } else {
        Distiller::new(&doc.param_view(), config, guidance, device)?
    };
    let csv_path = out.join("loss.csv");
    if resume {
        // Rows logged after the checkpoint (a run killed between checkpoints) are redone: drop them.
        keep_rows_up_to(&csv_path, d.step_index())?;
    }
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&csv_path)
        .with_context(|| format!("opening {}", csv_path.display()))?;
    if !resume {
        writeln!(csv, "step,loss,skipped")?;
    }
    let total = d.config().steps;
    let pb = bar(total as u64, "steps");
    pb.set_position(d.step_index() as u64);
    while !d.is_finished() {
        let r = d.step()?;
        writeln!(csv, "{},{},{}", r.step, r.loss, r.skipped.is_some())?;
        pb.set_position(r.step as u64);
        pb.set_message(format!("loss {:.4}", r.loss));
        if r.step % checkpoint_every == 0 {
            d.save_checkpoint(&ckpt)?;
        }
    }
    pb.finish();
    d.save_checkpoint(&ckpt)?;
    let (w, h) = d.render_size();
    for i in 0..d.config().particles {
        let mut doc_i = doc.clone();
        d.write_into(i, &mut doc_i)?;
        let svg = out.join(format!("particle_{i}.svg"));
        vecdream_core::svg_export::export_svg(&doc_i, &svg, &Default::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", svg.display()))?;
        let png = out.join(format!("particle_{i}.png"));
        vecdream_core::png::render_png(&doc_i, &png, w as u32, h as u32)
            .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
    }
    eprintln!(
        "wrote {} particles, loss.csv and checkpoint.safetensors to {}",
        d.config().particles,
        out.display()
    );
    Ok(())
}

/// Keeps the header and the rows of steps ≤ `step` in `loss.csv` (rewritten atomically).
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

/// Arguments of `vecdream bench distill`.
#[derive(Debug, clap::Args)]
pub struct BenchDistillArgs {
    /// Timed iterations per case (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Render size of the reference-teacher case (CPU).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Also time SDS (1 particle) and VPSD (6 particles) at 512 px with the SD 2.1-base architecture and
    /// random weights (needs CUDA to finish in reasonable time). The tokenizer is borrowed from this
    /// diffusers folder (the tiny test fixture works).
    #[arg(long)]
    pub sd_tokenizer: Option<PathBuf>,
}

/// `vecdream bench distill`: seconds per iteration.
pub fn bench(args: &BenchDistillArgs) -> anyhow::Result<()> {
    use vecdream_gpu::distill::{SdMethod, bench_distill, bench_reference};
    let device = vecdream_gpu::device::best_device();
    println!("device: {device:?}");
    println!("| case | particles | size | shapes | s/iter | peak GPU memory MiB |");
    println!("|---|---|---|---|---|---|");
    let print = |r: &vecdream_gpu::distill::DistillBenchResult| {
        println!(
            "| {} | {} | {} | {} | {:.3} | {} |",
            r.name,
            r.particles,
            r.size,
            r.shapes,
            r.sec_per_iter,
            r.peak_gpu_mib.map_or("–".into(), |m| m.to_string())
        )
    };
    for particles in [1, 4] {
        print(&bench_reference(
            args.size, particles, 16, args.iters, device,
        )?);
    }
    if let Some(tok) = &args.sd_tokenizer {
        for (method, particles) in [(SdMethod::Sds, 1), (SdMethod::Vpsd, 6)] {
            print(&bench_distill(
                method, particles, 512, 23, args.iters, tok, device,
            )?);
        }
    }
    Ok(())
}
