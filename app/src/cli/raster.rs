//! Rasteriser subcommands: `render --engine diff` and `bench raster`.

use std::path::{Path, PathBuf};

use vecdream_core::{Document, RgbaImage};
use vecdream_gpu::device::best_device;
use vecdream_gpu::raster::bench::{BenchCase, BenchScene, bench_raster, bench_raster_with};
use vecdream_gpu::raster::{Engine, RasterOptions, Scene, SceneParams, rasterize_with};

/// Renders `doc` with the differentiable rasteriser to a `width × height` PNG (the native
/// kernel on the CPU, the tensor path on CUDA).
pub fn render_diff_png(doc: &Document, path: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let view = doc.param_view();
    let scene = Scene::from_view(&view)?;
    let params = SceneParams::from_view(&view, 1, best_device())?;
    let rendered = vecdream_gpu::tch::no_grad(|| {
        rasterize_with(
            &scene,
            &params,
            width as usize,
            height as usize,
            &RasterOptions::default(),
            Engine::Auto,
        )
    })?
    .rendered;
    let (data, w, h) = rendered.to_rgba8(0)?;
    RgbaImage {
        width: w as u32,
        height: h as u32,
        data,
    }
    .save_png(path)?;
    Ok(())
}

/// Arguments of `vecdream bench raster`.
#[derive(Debug, clap::Args)]
pub struct BenchRasterArgs {
    /// Render this SVG instead of the standard scenes (a)–(d).
    #[arg(long)]
    pub scene: Option<PathBuf>,
    /// Longer side in pixels for `--scene`.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Timed repetitions per scene (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Seed of the random standard scenes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write each standard scene as SVG into this folder (to run DiffVG on the same scenes).
    #[arg(long)]
    pub write_scenes: Option<PathBuf>,
    /// libtorch CPU threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Also run the GPU cases (e) 2048 blobs at 2040×1344 and (f) 6 particles × 512 blobs at
    /// 512² (on by default when CUDA is available; slow on a CPU).
    #[arg(long)]
    pub gpu_cases: bool,
    /// Run each scene idle, then again with one busy process per core (started and stopped by PID),
    /// and print both with the slowdown.
    #[arg(long)]
    pub contention: bool,
}

/// One busy-looping process per core, killed on drop.
struct BusyLoad(Vec<std::process::Child>);

impl BusyLoad {
    fn start() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut children = Vec::new();
        for _ in 0..cores {
            children.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .map_err(|e| anyhow::anyhow!("cannot start a busy process (sh): {e}"))?,
            );
        }
        // Let the scheduler see them as running before timing.
        std::thread::sleep(std::time::Duration::from_millis(300));
        Ok(Self(children))
    }
}

impl Drop for BusyLoad {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `vecdream bench raster --contention`: each scene idle, then with one busy process per core.
fn bench_contention(
    scenes: &[(BenchScene, Option<f64>)],
    reps: usize,
    opts: &RasterOptions,
) -> anyhow::Result<()> {
    println!(
        "OMP_WAIT_POLICY={}; busy processes: {}",
        std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "(unset)".into()),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| scene | engine | idle fwd+bwd wall ms | loaded wall ms | slowdown | idle CPU ms | loaded CPU ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    // The native kernel is the CPU default; the tensor path is what CUDA runs (and the reference).
    let engines = [(Engine::Native, "native"), (Engine::Tensor, "tensor")];
    let bar = crate::cli::progress::bar((scenes.len() * engines.len()) as u64, "scenes");
    for (scene, _) in scenes {
        for (engine, engine_name) in engines {
            let idle = bench_raster_with(scene, reps, opts, engine, None)?;
            let loaded = {
                let _load = BusyLoad::start()?;
                bench_raster_with(scene, reps, opts, engine, None)?
            };
            bar.suspend(|| {
                println!(
                    "| {} | {engine_name} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} |",
                    idle.name,
                    idle.wall_ms,
                    loaded.wall_ms,
                    loaded.wall_ms / idle.wall_ms.max(1e-9),
                    idle.cpu_ms,
                    loaded.cpu_ms
                )
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// `vecdream bench raster`: forward + backward of an MSE loss, wall and CPU ms per scene.
pub fn bench(args: &BenchRasterArgs) -> anyhow::Result<()> {
    if let Some(t) = args.threads {
        vecdream_gpu::tch::set_num_threads(t);
    }
    let device = best_device();
    let opts = RasterOptions::default();
    let mut scenes: Vec<(BenchScene, Option<f64>)> = Vec::new();
    if let Some(path) = &args.scene {
        let doc = crate::io::load_svg(path)?;
        let name = path
            .file_name()
            .map_or("scene".into(), |n| n.to_string_lossy().into_owned());
        scenes.push((
            BenchScene::from_view(name, &doc.param_view(), args.size, device)?,
            None,
        ));
    } else {
        let mut cases = BenchCase::standard();
        if args.gpu_cases || device.is_cuda() {
            cases.extend(BenchCase::gpu());
        }
        for case in cases {
            let scene = case.build(args.seed, device)?;
            if let Some(dir) = &args.write_scenes {
                std::fs::create_dir_all(dir)?;
                let file = dir.join(format!("{}.svg", case.name));
                vecdream_core::atomic::write_atomic(&file, scene.to_svg()?.as_bytes())?;
            }
            scenes.push((scene, case.diffvg_cpu_ms));
        }
    }
    println!(
        "device: {:?}, libtorch threads: {}",
        device,
        vecdream_gpu::tch::get_num_threads()
    );
    if args.contention {
        return bench_contention(&scenes, args.reps, &opts);
    }
    println!(
        "| scene | size | native fwd wall ms | native fwd+bwd wall ms | native fwd+bwd CPU ms | tensor fwd+bwd wall ms | tensor fwd+bwd CPU ms | DiffVG CPU ms | native / DiffVG | tensor / DiffVG | native speed-up | peak RSS MiB | peak GPU MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let bar = crate::cli::progress::bar(scenes.len() as u64, "scenes");
    let ratio = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.3}×"));
    for (scene, diffvg) in &scenes {
        let n = bench_raster_with(scene, args.reps, &opts, Engine::Native, *diffvg)?;
        let r = bench_raster(scene, args.reps, &opts, *diffvg)?;
        bar.suspend(|| {
            println!(
                "| {} | {}×{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.1}× | {} | {} |",
                r.name,
                r.width,
                r.height,
                n.forward_wall_ms,
                n.wall_ms,
                n.cpu_ms,
                r.wall_ms,
                r.cpu_ms,
                r.diffvg_cpu_ms.map_or("–".into(), |d| format!("{d:.0}")),
                ratio(n.ratio()),
                ratio(r.ratio()),
                r.cpu_ms / n.cpu_ms.max(1e-9),
                r.peak_rss_mib.map_or("–".into(), |m| format!("{m:.0}")),
                r.peak_gpu_mib.map_or("–".into(), |m| m.to_string()),
            )
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("native kernel vs tensor path on the same scenes (CPU, forward + backward):");
    for (scene, _) in scenes.iter().take(4) {
        let a = vecdream_gpu::raster::native_agreement(scene, &opts)?;
        println!(
            "  {}: max |Δ pixel| {:.2e}, max |Δ ∂L/∂point| / max |∂L/∂point| {:.2e}",
            scene.name, a.max_pixel_diff, a.max_grad_rel_diff
        );
    }
    if device.is_cuda() {
        // The same code runs on both devices: show how closely they agree (scenes (a)–(d)).
        println!("CUDA vs CPU on the same scenes (forward + backward):");
        for (scene, _) in scenes.iter().take(4) {
            let a = vecdream_gpu::raster::agreement_with_cpu(scene, &opts)?;
            println!(
                "  {}: max |Δ pixel| {:.2e}, max |Δ ∂L/∂point| / max |∂L/∂point| {:.2e}",
                scene.name, a.max_pixel_diff, a.max_grad_rel_diff
            );
        }
    }
    if args.scene.is_none() && (args.gpu_cases || device.is_cuda()) {
        println!(
            "DiffVG on scene (e): 85 ms forward + 448 ms backward on an RTX 4090 (shared/anchors.md)"
        );
    }
    Ok(())
}
