//! `vecdream score` (CLIP cosine, CLIP score and optionally the LAION aesthetic score of images
//! and SVGs) and `vecdream bench clip` (the image tower against transformers).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use vecdream_gpu::clip::bench::bench_vision;
use vecdream_gpu::clip::preprocess::rgba_over_white;
use vecdream_gpu::clip::{AestheticHead, Clip, ClipConfig};
use vecdream_gpu::tch::{self, Device, Tensor};

/// Arguments of `vecdream score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// transformers CLIPModel folder (config.json, model.safetensors, tokenizer, preprocessor_config.json).
    #[arg(long)]
    pub clip: PathBuf,
    /// The text the images are compared with.
    #[arg(long)]
    pub prompt: String,
    /// LAION aesthetic head (safetensors) on the --clip embedding: adds a column.
    #[arg(long)]
    pub aesthetic: Option<PathBuf>,
    /// Longer side in pixels at which SVGs are rendered (resvg) before CLIP's preprocessing.
    #[arg(long, default_value_t = 512)]
    pub svg_size: u32,
    /// PNG / JPEG / SVG files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn is_svg(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg"))
}

/// The CLIP pixel values of one file (SVGs rendered with resvg over white).
fn pixel_values(clip: &Clip, path: &Path, svg_size: u32) -> anyhow::Result<Tensor> {
    if is_svg(path) {
        let doc = crate::io::load_svg(path).with_context(|| format!("{}", path.display()))?;
        let (w, h) = crate::io::preview_size(&doc, svg_size);
        let img = vecdream_core::png::render_rgba(&doc, w, h)
            .map_err(|e| anyhow::anyhow!("{}: rendering: {e}", path.display()))?;
        let rgb = rgba_over_white(img.data.as_slice());
        return Ok(clip
            .preprocess
            .pixel_values_rgb8(w as usize, h as usize, &rgb));
    }
    let (w, h, rgb) = vecdream_gpu::clip::preprocess::read_rgb8(path)?;
    Ok(clip.preprocess.pixel_values_rgb8(w, h, &rgb))
}

/// Runs `vecdream score`: one line per file, `path \t cosine \t CLIP score [\t aesthetic]`.
pub fn run(args: &ScoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.svg_size > 0, "--svg-size must be at least 1 pixel");
    let device = vecdream_gpu::device::best_device();
    let clip = Clip::load(&args.clip, device)
        .with_context(|| format!("--clip {}", args.clip.display()))?;
    let head = args
        .aesthetic
        .as_ref()
        .map(|p| AestheticHead::load(p, clip.model.config.projection_dim, device))
        .transpose()?;
    let _guard = tch::no_grad_guard();
    let text = clip.text_features(&[args.prompt.as_str()]);
    let mut failed = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.files {
        let pv = match pixel_values(&clip, path, args.svg_size) {
            Ok(pv) => pv,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
                continue;
            }
        };
        let feats = clip.model.image_features(&pv);
        let cos = Clip::cosine(&feats, &text).double_value(&[0]);
        write!(
            out,
            "{}\t{cos:.6}\t{:.4}",
            path.display(),
            100.0 * cos.max(0.0)
        )?;
        if let Some(h) = &head {
            write!(out, "\t{:.4}", h.forward(&feats).double_value(&[0]))?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {} files could not be scored", args.files.len());
    }
    Ok(())
}

/// Arguments of `vecdream bench clip`.
#[derive(Debug, clap::Args)]
pub struct BenchClipArgs {
    /// Architectures (random weights, 224² input): vit-b32, vit-b16, vit-l14, vit-h14.
    #[arg(long, num_args = 1.., default_values_t = ["vit-b32".to_string(), "vit-l14".to_string()])]
    pub config: Vec<String>,
    /// Timed runs after one warm-up (ViT-L/14 takes seconds per run on a CPU: keep it small there).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: i64,
    /// Python with torch and transformers for the baseline (scripts/bench_clip_transformers.py,
    /// looked up under the current folder); `none` skips it.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

/// One row of the baseline's JSON output.
#[derive(serde::Deserialize)]
struct Baseline {
    config: String,
    forward_ms: f64,
    forward_backward_ms: f64,
    torch: String,
    threads: i64,
}

/// Runs `vecdream bench clip`.
pub fn bench(args: &BenchClipArgs) -> anyhow::Result<()> {
    let device = vecdream_gpu::device::best_device();
    let configs = args
        .config
        .iter()
        .map(|n| {
            ClipConfig::preset(n)
                .map(|c| (n.clone(), c))
                .ok_or_else(|| {
                    anyhow::anyhow!("--config {n}: expected vit-b32, vit-b16, vit-l14 or vit-h14")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bar = super::progress::bar(configs.len() as u64, "configs");
    let mut ours = Vec::new();
    for (name, c) in &configs {
        bar.set_message(format!("vecdream {name}"));
        ours.push(bench_vision(c, args.batch, args.iters.max(1), device));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let baseline = if args.python == "none" {
        Vec::new()
    } else {
        run_baseline(args, &device)?
    };
    println!(
        "CLIP image tower, batch {} × 224², fp32, {device:?}, {} timed runs after 1 warm-up, tch threads {}",
        args.batch,
        args.iters.max(1),
        tch::get_num_threads()
    );
    if let Some(b) = baseline.first() {
        println!(
            "baseline: transformers on torch {} ({} threads)",
            b.torch, b.threads
        );
    }
    println!(
        "| config | params M | vecdream fwd ms | transformers fwd ms | vecdream fwd+bwd ms | transformers fwd+bwd ms |"
    );
    println!("|---|---|---|---|---|---|");
    for ((name, _), r) in configs.iter().zip(&ours) {
        let b = baseline.iter().find(|b| &b.config == name);
        let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
        println!(
            "| {name} | {:.1} | {:.1} | {} | {:.1} | {} |",
            r.parameters as f64 / 1e6,
            r.forward_ms,
            fmt(b.map(|b| b.forward_ms)),
            r.forward_backward_ms,
            fmt(b.map(|b| b.forward_backward_ms)),
        );
        if !r.finite {
            println!("warning: {name}: non-finite outputs or gradients");
        }
    }
    Ok(())
}

fn run_baseline(args: &BenchClipArgs, device: &Device) -> anyhow::Result<Vec<Baseline>> {
    let script = Path::new("scripts/bench_clip_transformers.py");
    if !script.is_file() {
        bail!(
            "{}: not found (run from the vecdream checkout, or give --python none)",
            script.display()
        );
    }
    let dev = if matches!(device, Device::Cuda(_)) {
        "cuda"
    } else {
        "cpu"
    };
    let out = Command::new(&args.python)
        .arg(script)
        .arg("--config")
        .args(&args.config)
        .args(["--iters", &args.iters.max(1).to_string()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--device", dev])
        .output()
        .with_context(|| {
            format!(
                "running {} {} (or give --python none)",
                args.python,
                script.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            args.python,
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            serde_json::from_str(l)
                .with_context(|| format!("{}: unexpected output line {l:?}", script.display()))
        })
        .collect()
}
