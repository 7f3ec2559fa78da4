//! Rasteriser subcommands: `render --engine diff` and `bench raster`.

use std::path::{Path, PathBuf};

use vecdream_core::{Document, RgbaImage};
use vecdream_gpu::device::best_device;
use vecdream_gpu::raster::bench::{BenchCase, BenchScene, bench_raster};
use vecdream_gpu::raster::{RasterOptions, Scene, SceneParams, rasterize};

/// Renders `doc` with the differentiable rasteriser to a `width × height` PNG.
pub fn render_diff_png(doc: &Document, path: &Path, width: u32, height: u32) -> anyhow::Result<()> {
    let view = doc.param_view();
    let scene = Scene::from_view(&view)?;
    let params = SceneParams::from_view(&view, 1, best_device())?;
    let rendered = vecdream_gpu::tch::no_grad(|| {
        rasterize(
            &scene,
            &params,
            width as usize,
            height as usize,
            &RasterOptions::default(),
        )
    })?;
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
    println!(
        "| scene | size | fwd wall ms | fwd+bwd wall ms | fwd+bwd CPU ms | DiffVG CPU ms | ratio | peak RSS MiB | peak GPU MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let bar = crate::cli::progress::bar(scenes.len() as u64, "scenes");
    for (scene, diffvg) in &scenes {
        let r = bench_raster(scene, args.reps, &opts, *diffvg)?;
        bar.suspend(|| {
            println!(
                "| {} | {}×{} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
                r.name,
                r.width,
                r.height,
                r.forward_wall_ms,
                r.wall_ms,
                r.cpu_ms,
                r.diffvg_cpu_ms.map_or("–".into(), |d| format!("{d:.0}")),
                r.ratio().map_or("–".into(), |x| format!("{x:.2}×")),
                r.peak_rss_mib.map_or("–".into(), |m| format!("{m:.0}")),
                r.peak_gpu_mib.map_or("–".into(), |m| m.to_string()),
            )
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
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
