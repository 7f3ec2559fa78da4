//! `vecdream generate` (text or reference images → K vector particles) and `vecdream edit` (DDS).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use vecdream_core::{ContentType, Document, GenerationOptions, Palette, Style};
use vecdream_gpu::device::best_device;
use vecdream_gpu::distill::{
    Annealing, DistillConfig, Distiller, GuidanceSpec, ReferenceConfig, ReferenceMode, SdGuidance,
    SdGuidanceConfig, SdMethod,
};
use vecdream_gpu::generate::{
    GenerateSetup, StartsFrom, build_with_starts, distill_config, t_annealing,
};

use vecdream_gpu::clip::{ParticleScorer, TappedReward};

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
    /// Drawing style: iconography | sketch | ink | painting | pixel-art | low-poly.
    #[arg(long, default_value = "iconography")]
    pub style: String,
    /// Path budget per particle (the detail level; default: the style's).
    #[arg(long)]
    pub paths: Option<usize>,
    /// Fixed colours, e.g. "#1d3557,#e63946,#f1faee": fills and strokes use only these.
    #[arg(long)]
    pub palette: Option<String>,
    /// Prompt words that become semantic objects, e.g. "cat,hat" (Stable Diffusion).
    #[arg(long)]
    pub objects: Option<String>,
    /// icon (few flat paths, no background) | subject (no background object) | scene.
    #[arg(long, default_value = "scene")]
    pub content: String,
    /// Adaptive primitive control: prune faded shapes and add new ones where the render is
    /// furthest from the guidance's target, up to the path budget.
    #[arg(long)]
    pub adaptive: bool,
    /// Weight of the object-region loss that keeps objects apart (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub region_weight: f64,
    /// Learning rate of the control points, in pixels of a 600-px canvas per step (default: the
    /// style's).
    #[arg(long)]
    pub lr_points: Option<f64>,
    /// sds | vpsd | esd | csd | asd | tsm | cds (reference images: sds | vpsd) | clipdraw (needs
    /// only --clip and --prompt). ASD: ScaleDreamer's asynchronous score distillation; TSM: Dreamer
    /// XL's trajectory score matching; CDS: Consistent3D's consistency distillation sampling.
    #[arg(long, default_value = "vpsd")]
    pub method: String,
    /// A method knob NAME=VALUE, repeatable: asd_ratio (0.1), asd_random (1), tsm_delta (80),
    /// tsm_xs_delta (200), tsm_xs_steps (5), tsm_gamma (0.3), cds_gap (100), cds_perturb (200).
    #[arg(long = "knob", value_name = "NAME=VALUE")]
    pub knobs: Vec<String>,
    /// Number of particles K.
    #[arg(long, default_value_t = 4)]
    pub particles: usize,
    /// Optimisation steps (default: the style's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Render and canvas size in pixels (default 512 with --model, 128 with references).
    #[arg(long)]
    pub size: Option<usize>,
    /// Start every particle from this SVG (its groups stay objects and components) instead of
    /// its own vectorised sample.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// DDIM steps of each particle's Stable Diffusion sample.
    #[arg(long, default_value_t = 25)]
    pub sample_steps: i64,
    /// Classifier-free guidance scale (default: 100 for SDS, 50 for CDS, 7.5 otherwise).
    #[arg(long)]
    pub cfg: Option<f64>,
    /// Timestep schedule: none | max_0.5_N | linear_T (default: the style's).
    #[arg(long)]
    pub t_schedule: Option<String>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a checkpoint every this many steps (and every 30 s, and at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Continue the checkpoint in OUTDIR.
    #[arg(long)]
    pub resume: bool,
    /// Reward feedback on the particles.
    #[command(flatten)]
    pub reward: super::reward::RewardArgs,
    /// CLIPDraw guidance, alone or added.
    #[command(flatten)]
    pub clipdraw: super::clipdraw::ClipDrawArgs,
    /// Output folder.
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
}

impl GenerateArgs {
    /// The artist's settings (style, detail, palette, objects, content, adaptive).
    pub fn options(&self) -> anyhow::Result<GenerationOptions> {
        Ok(GenerationOptions {
            style: Style::parse(&self.style).map_err(|e| anyhow::anyhow!("--style: {e}"))?,
            paths: self.paths,
            palette: self
                .palette
                .as_deref()
                .map(Palette::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--palette: {e}"))?,
            objects: self
                .objects
                .as_deref()
                .map(GenerationOptions::parse_objects)
                .unwrap_or_default(),
            content: ContentType::parse(&self.content)
                .map_err(|e| anyhow::anyhow!("--content: {e}"))?,
            adaptive: self.adaptive,
        })
    }
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

/// Loads a reference image (PNG, JPEG, or an SVG rendered at 256 px) as straight RGBA8.
pub fn load_rgba(path: &Path) -> anyhow::Result<(u32, u32, Vec<u8>)> {
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
    let img = vecdream_gpu::vectorize::read_image(path)?.to_rgba8();
    Ok((img.width(), img.height(), img.into_raw()))
}

fn import(p: &Path) -> anyhow::Result<Document> {
    Ok(vecdream_core::svg_import::import_svg(p)
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        .document)
}

/// Runs `vecdream generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let device = best_device();
    let options = args.options()?;
    let clipdraw = args.method == "clipdraw";
    if clipdraw && (!args.reference.is_empty() || args.model.is_some()) {
        bail!(
            "--method clipdraw is guided by --clip alone: drop --reference / --model (or add --clip to another method)"
        );
    }
    let sd = args.reference.is_empty() && !clipdraw;
    let size = args.size.unwrap_or(if clipdraw {
        224
    } else if sd {
        512
    } else {
        128
    });
    let mut setup = GenerateSetup::new(options, args.particles, size, args.seed);
    if let Some(n) = args.steps {
        setup.steps = n;
    }
    setup.region_weight = args.region_weight;
    let t_annealing = match args.t_schedule.as_deref() {
        Some(s) => Annealing::parse(s)?,
        None => t_annealing(&setup),
    };
    let guidance = if clipdraw {
        args.clipdraw.alone(args.prompt.as_deref())?
    } else if !sd {
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
            resolution: size.min(128) as i64,
            ..ReferenceConfig::default()
        };
        config.time.annealing = t_annealing;
        GuidanceSpec::Reference { images, config }
    } else {
        let (Some(prompt), Some(model)) = (&args.prompt, &args.model) else {
            bail!("give --prompt and --model, or --reference images");
        };
        let method = SdMethod::parse(&args.method)?;
        let mut config = SdGuidanceConfig::for_method(method);
        for knob in &args.knobs {
            let (name, value) = parse_knob(knob)?;
            config.set_knob(name, value)?;
        }
        config.model_dir = model.clone();
        config.prompt = prompt.clone();
        config.negative_prompt = args.negative.clone();
        config.resolution = size as i64;
        if let Some(c) = args.cfg {
            config.cfg = c;
        }
        // CDS keeps its own annealing of the less noisy end unless --t-schedule says otherwise.
        if args.t_schedule.is_some() || method != SdMethod::Cds {
            config.time.annealing = t_annealing;
        }
        GuidanceSpec::StableDiffusion(Box::new(config))
    };
    if !setup.options.objects.is_empty() && !sd {
        eprintln!(
            "note: --objects needs Stable Diffusion's attention; with references, objects come from the vectoriser's segmentation"
        );
    }
    // The reward loads before any sampling, so a bad `--reward` fails at once.
    let reward_config = args.reward.config()?;
    let reward = args.reward.build(args.prompt.as_deref(), device)?;
    let scorer = scorer(&args, reward, device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let ckpt = args.out.join("checkpoint.safetensors");
    let (starts, init) = match (&args.init, args.resume) {
        (_, true) => (StartsFrom::Document, None),
        (Some(p), false) => (StartsFrom::Document, Some(import(p)?)),
        // CLIPDraw has no sampler: random primitives of the style, as CLIPDraw starts.
        (None, false) if clipdraw => {
            let paths = setup.options.paths.unwrap_or(36).max(1);
            (
                StartsFrom::Document,
                Some(vecdream_gpu::distill::scribble_document(
                    setup.options.style,
                    paths,
                    size as f64,
                    setup.seed,
                )),
            )
        }
        (None, false) => (
            StartsFrom::Samples {
                setup: setup.clone(),
                sample_steps: args.sample_steps,
            },
            None,
        ),
    };
    let prep = bar(setup.particles as u64, "starts");
    prep.set_message("sampling and vectorising");
    let (guidance, docs) = build_with_starts(guidance, &starts, device, &mut |done, _| {
        prep.set_position(done as u64)
    })?;
    prep.finish_and_clear();
    let guidance = if clipdraw {
        guidance
    } else {
        args.clipdraw
            .add_to(guidance, args.prompt.as_deref(), device)?
    };
    let canvas = init
        .as_ref()
        .or(docs.as_ref().and_then(|d| d.first()))
        .map_or(size as f64, |d| d.width.max(d.height));
    let mut config = distill_config(&setup, canvas);
    if let Some(lr) = args.lr_points {
        config.lr.points = lr;
    }
    config.reward = reward_config;
    let settings = run_settings(&args, size);
    let mut d = if args.resume {
        // The JSON copy first (a clear error before a shape mismatch), then the copy inside the
        // safetensors file, which is the one written with the tensors.
        if let Ok(meta) = Distiller::read_checkpoint_meta(&ckpt) {
            check_settings(&ckpt, &meta.settings, &settings)?;
        }
        let mut d = Distiller::resume(&ckpt, guidance, device)?;
        check_settings(&ckpt, d.settings(), &settings)?;
        // `--steps` on a resume is the new total (the rest of the configuration comes from the checkpoint).
        if let Some(n) = args.steps {
            d.set_param("steps", n as f64)?;
        }
        eprintln!("resuming from step {}", d.step_index());
        d
    } else if let Some(docs) = docs {
        Distiller::from_starts(docs, config, guidance, device)?
    } else {
        let doc = init.ok_or_else(|| anyhow::anyhow!("no start document"))?;
        Distiller::new(&doc, config, guidance, device)?
    };
    let (reward, scorer) = scorer;
    if let Some(r) = reward {
        d = d.with_reward(r);
    }
    d.set_settings(settings);
    optimise(d, scorer, args.resume, args.checkpoint_every, &args.out)
}

/// The reward wrapped so its scores reach `loss.csv`, and the scorer that logs them with each
/// particle's CLIP score (from `--clip`, else the reward's CLIP folder; needs `--prompt`).
#[allow(clippy::type_complexity)]
fn scorer(
    args: &GenerateArgs,
    reward: Option<Box<dyn vecdream_gpu::distill::Reward>>,
    device: vecdream_gpu::tch::Device,
) -> anyhow::Result<(
    Option<Box<dyn vecdream_gpu::distill::Reward>>,
    ParticleScorer,
)> {
    let (reward, tap) = match reward {
        Some(r) => {
            let (r, tap) = TappedReward::new(r);
            (
                Some(Box::new(r) as Box<dyn vecdream_gpu::distill::Reward>),
                Some(tap),
            )
        }
        None => (None, None),
    };
    let spec = args
        .reward
        .reward
        .as_deref()
        .map(super::reward::RewardSpec::parse)
        .transpose()?;
    let clip_dir = args
        .clipdraw
        .clip
        .as_deref()
        .or(spec.as_ref().and_then(|s| s.clip_dir()));
    let clip_dir = clip_dir.filter(|_| args.prompt.is_some());
    let scorer = ParticleScorer::load(
        tap,
        clip_dir,
        args.prompt.as_deref().unwrap_or(""),
        args.reward.reward_every,
        device,
    )
    .with_context(|| {
        format!(
            "CLIP scores from {}",
            clip_dir.map_or(String::new(), |d| d.display().to_string())
        )
    })?;
    Ok((reward, scorer))
}

/// The flags that make a run what it is (all but `--steps`, `--checkpoint-every`, `--resume` and
/// `-o`) with their effective values: saved in the checkpoint and compared on `--resume`.
fn run_settings(args: &GenerateArgs, size: usize) -> Vec<(String, String)> {
    let path = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "(not given)".into());
    [
        ("--prompt", opt(args.prompt.clone())),
        ("--negative", args.negative.clone()),
        ("--model", opt(args.model.as_deref().map(path))),
        (
            "--reference",
            opt((!args.reference.is_empty()).then(|| {
                args.reference
                    .iter()
                    .map(|p| path(p))
                    .collect::<Vec<_>>()
                    .join(" ")
            })),
        ),
        ("--style", args.style.clone()),
        ("--paths", opt(args.paths.map(|v| v.to_string()))),
        ("--palette", opt(args.palette.clone())),
        ("--objects", opt(args.objects.clone())),
        ("--content", args.content.clone()),
        ("--adaptive", args.adaptive.to_string()),
        ("--region-weight", args.region_weight.to_string()),
        ("--lr-points", opt(args.lr_points.map(|v| v.to_string()))),
        ("--method", args.method.clone()),
        (
            "--knob",
            opt((!args.knobs.is_empty()).then(|| args.knobs.join(" "))),
        ),
        ("--particles", args.particles.to_string()),
        ("--size", size.to_string()),
        ("--init", opt(args.init.as_deref().map(path))),
        ("--sample-steps", args.sample_steps.to_string()),
        ("--cfg", opt(args.cfg.map(|v| v.to_string()))),
        ("--t-schedule", opt(args.t_schedule.clone())),
        ("--seed", args.seed.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(args.reward.settings())
    .chain(args.clipdraw.settings())
    .collect()
}

/// `NAME=VALUE` of `--knob`.
pub(crate) fn parse_knob(s: &str) -> anyhow::Result<(&str, f64)> {
    let Some((name, value)) = s.split_once('=') else {
        bail!("--knob {s}: expected NAME=VALUE, e.g. tsm_gamma=0.5");
    };
    let value = value
        .trim()
        .parse::<f64>()
        .map_err(|e| anyhow::anyhow!("--knob {s}: the value: {e}"))?;
    Ok((name.trim(), value))
}

/// Refuses to resume a checkpoint made with other settings (`saved` empty: an older checkpoint
/// that did not record them).
fn check_settings(
    ckpt: &Path,
    saved: &[(String, String)],
    now: &[(String, String)],
) -> anyhow::Result<()> {
    let diffs: Vec<String> = saved
        .iter()
        .filter_map(|(flag, was)| {
            let is = now
                .iter()
                .find(|(f, _)| f == flag)
                .map_or("(not given)", |(_, v)| v.as_str());
            (is != was).then(|| format!("{flag} is {is} here but {was} in the checkpoint's run"))
        })
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    bail!(
        "{}: the checkpoint does not fit this command: {}. Resume with the run's own settings (only --steps may change), or write to another folder",
        ckpt.display(),
        diffs.join("; ")
    )
}

/// Runs `vecdream edit` (DDS, one particle).
pub fn run_edit(args: EditArgs) -> anyhow::Result<()> {
    let device = best_device();
    let doc = import(&args.input)?;
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
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let d = Distiller::new(&doc, dconfig, guidance, device)?;
    optimise(d, ParticleScorer::new(None, None, 1), false, 100, &args.out)
}

/// The header of `loss.csv`: `step,loss,skipped,shapes` (mean shapes per particle), then with a
/// reward `reward_0..reward_{K-1}` and with a CLIP folder `clip_score_0..clip_score_{K-1}`
/// (`100·max(cos, 0)` to the prompt) — the scores of the render the step optimised, empty on the
/// steps that did not compute them (the reward's steps 1, 1 + every, … have both).
pub fn loss_csv_header(particles: usize, reward: bool, clip: bool) -> String {
    let mut h = String::from("step,loss,skipped,shapes");
    for (on, name) in [(reward, "reward"), (clip, "clip_score")] {
        if on {
            for i in 0..particles {
                h.push_str(&format!(",{name}_{i}"));
            }
        }
    }
    h
}

/// `,v0,v1,…` (or `K` empty fields) for a row of `loss.csv`.
fn score_fields(on: bool, particles: usize, scores: Option<&[f64]>) -> String {
    if !on {
        return String::new();
    }
    (0..particles)
        .map(|i| match scores.and_then(|s| s.get(i)) {
            Some(v) => format!(",{v}"),
            None => ",".into(),
        })
        .collect()
}

/// Runs `d` to its planned steps with a progress bar, logging `loss.csv` (see
/// [`loss_csv_header`]) and checkpointing every `every` steps and every 30 s (atomically),
/// then writes one SVG and PNG per particle.
fn optimise(
    mut d: Distiller,
    mut scorer: ParticleScorer,
    resume: bool,
    every: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let ckpt = out.join("checkpoint.safetensors");
    let csv_path = out.join("loss.csv");
    let k = d.config().particles;
    let header = loss_csv_header(k, scorer.has_reward(), scorer.has_clip());
    if resume {
        // Steps logged after the checkpoint (a run killed between checkpoints) are run again.
        keep_rows_up_to(&csv_path, d.step_index(), &header)?;
    }
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&csv_path)
        .with_context(|| format!("opening {}", csv_path.display()))?;
    if !resume {
        writeln!(csv, "{header}")?;
    }
    let total = d.config().steps;
    let pb = bar(total as u64, "steps");
    pb.set_position(d.step_index() as u64);
    let mut last_save = std::time::Instant::now();
    while !d.is_finished() {
        let r = d.step()?;
        let shapes = r
            .terms
            .iter()
            .find(|(k, _)| k == "shapes")
            .map_or(0.0, |(_, v)| *v);
        let scores = scorer.after_step(r.step, &mut d)?.unwrap_or_default();
        writeln!(
            csv,
            "{},{},{},{}{}{}",
            r.step,
            r.loss,
            r.skipped.is_some(),
            shapes,
            score_fields(scorer.has_reward(), k, scores.reward.as_deref()),
            score_fields(scorer.has_clip(), k, scores.clip_score.as_deref()),
        )?;
        pb.set_position(r.step as u64);
        pb.set_message(format!("loss {:.4}, {shapes:.0} shapes", r.loss));
        if (every > 0 && r.step % every == 0) || last_save.elapsed().as_secs() >= 30 {
            csv.flush()?;
            d.save_checkpoint(&ckpt)?;
            last_save = std::time::Instant::now();
        }
    }
    pb.finish();
    csv.flush()?;
    d.save_checkpoint(&ckpt)?;
    let (w, h) = d.render_size();
    for i in 0..d.config().particles {
        let doc_i = d.particle_document(i)?;
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

/// Keeps the header and the rows of steps ≤ `step` in `loss.csv` (rewritten atomically). A last
/// line without its newline (the run was killed while writing it) is dropped. A header other
/// than `header` (a file from an older version) becomes `header`; a missing file gets one.
fn keep_rows_up_to(csv: &Path, step: usize, header: &str) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(csv) else {
        return vecdream_core::atomic::write_atomic(csv, format!("{header}\n").as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"));
    };
    let mut kept: String = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter(|l| {
            l.split(',')
                .next()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .is_none_or(|s| s <= step)
        })
        .collect();
    if kept.lines().next() != Some(header) {
        let rows = kept.split_once('\n').map_or("", |(h, rest)| {
            if h.starts_with("step,") {
                rest
            } else {
                kept.as_str()
            }
        });
        kept = format!("{header}\n{rows}");
    }
    if kept != text {
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

/// Arguments of `vecdream bench generate`.
#[derive(Debug, clap::Args)]
pub struct BenchGenerateArgs {
    /// Reference images (default: four detailed emoji from `tests/data/svg/twemoji` under the
    /// current folder: cow, desert island, steaming bowl, owl).
    pub images: Vec<PathBuf>,
    /// Particles.
    #[arg(long, default_value_t = 4)]
    pub particles: usize,
    /// Render size in pixels.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Path budget per particle (the grid start gets ⌊√paths⌋² squares).
    #[arg(long, default_value_t = 128)]
    pub paths: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write every particle of both starts (SVG and PNG) into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `vecdream bench generate`: vectorised-sample starts against the grid start (reference VPSD).
pub fn bench_generate(args: &BenchGenerateArgs) -> anyhow::Result<()> {
    use vecdream_gpu::generate::bench::{GenerateBench, bench_generate};
    let files: Vec<PathBuf> = if args.images.is_empty() {
        ["1f404", "1f3dd", "1f35c", "1f989"]
            .iter()
            .map(|n| PathBuf::from(format!("tests/data/svg/twemoji/{n}.svg")))
            .collect()
    } else {
        args.images.clone()
    };
    let images = files
        .iter()
        .map(|p| {
            load_rgba(p).with_context(|| {
                format!(
                    "{} (give image files, or run from the vecdream checkout)",
                    p.display()
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let device = best_device();
    let b = GenerateBench {
        images,
        particles: args.particles,
        size: args.size,
        paths: args.paths,
        steps: args.steps,
        seed: args.seed,
    };
    eprintln!(
        "device {device:?}: {} particles, {} px, ≤ {} paths, {} steps",
        b.particles, b.size, b.paths, b.steps
    );
    let rows = bench_generate(&b, device)?;
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_stem()
                .map_or("?".into(), |s| s.to_string_lossy().into_owned())
        })
        .collect();
    println!(
        "| start | targets covered | PSNR to nearest per particle (dB) | nearest | paths per particle | start s | s / step |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let tag = if r.start.starts_with("grid") {
                "grid"
            } else {
                "samples"
            };
            for (i, doc) in r.documents.iter().enumerate() {
                let svg = dir.join(format!("{tag}_{i}.svg"));
                vecdream_core::svg_export::export_svg(doc, &svg, &Default::default())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", svg.display()))?;
                let png = dir.join(format!("{tag}_{i}.png"));
                vecdream_core::png::render_png(doc, &png, args.size as u32, args.size as u32)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;
            }
        }
        println!(
            "| {} | {} of {} | {} | {} | {} | {:.1} | {:.3} |",
            r.start,
            r.targets_covered,
            names.len(),
            r.psnr_db
                .iter()
                .map(|p| format!("{p:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            r.nearest
                .iter()
                .map(|&k| names.get(k).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(", "),
            r.paths
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" / "),
            r.start_secs,
            r.secs_per_step
        );
    }
    Ok(())
}
