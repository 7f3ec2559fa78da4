//! Benchmark of the differentiable rasteriser: forward + backward of an MSE loss.
//!
//! ```text
//! cargo run -p vecdream-gpu --release --example raster_bench -- [--threads 2] [--reps 5]
//!     [--seed 1] [--write-svg DIR] [--scene file.svg --size N] [--cuda]
//! ```
//! Without `--scene` it runs the four standard cases (a)–(d) and prints a table with
//! DiffVG's CPU time on the same scenes; `--write-svg` saves each seeded scene as SVG.

use std::path::PathBuf;

use vecdream_core::Document;
use vecdream_gpu::raster::{BenchCase, BenchResult, BenchScene, RasterOptions, bench_raster};

fn main() -> anyhow::Result<()> {
    let mut threads = 2;
    let mut reps = 5;
    let mut seed = 1u64;
    let mut write_svg: Option<PathBuf> = None;
    let mut scene: Option<PathBuf> = None;
    let mut size = 256usize;
    let mut cuda = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--threads" => threads = value()?.parse()?,
            "--reps" => reps = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--write-svg" => write_svg = Some(value()?.into()),
            "--scene" => scene = Some(value()?.into()),
            "--size" => size = value()?.parse()?,
            "--cuda" => cuda = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    tch::set_num_threads(threads);
    let device = if cuda {
        tch::Device::cuda_if_available()
    } else {
        tch::Device::Cpu
    };
    let opts = RasterOptions::default();
    let mut results: Vec<BenchResult> = Vec::new();
    let mut scenes: Vec<(BenchScene, Option<f64>)> = Vec::new();
    if let Some(path) = scene {
        let text = std::fs::read_to_string(&path)?;
        let name = path.display().to_string();
        let doc = Document::from_svg_str(&text, &name)?.document;
        scenes.push((
            BenchScene::from_view(name, &doc.param_view(), size, device)?,
            None,
        ));
    } else {
        for case in BenchCase::standard() {
            scenes.push((case.build(seed, device)?, case.diffvg_cpu_ms));
        }
    }
    for (s, diffvg) in &scenes {
        if let Some(dir) = &write_svg {
            std::fs::create_dir_all(dir)?;
            let file = dir.join(format!(
                "{}.svg",
                s.name.split(' ').next().unwrap_or("scene")
            ));
            std::fs::write(&file, s.to_svg()?)?;
        }
        results.push(bench_raster(s, reps, &opts, *diffvg)?);
    }
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9}",
        "scene", "wall ms", "fwd ms", "CPU ms", "DiffVG CPU", "ratio", "peak MiB"
    );
    for r in &results {
        println!(
            "{:<34} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>8} {:>9}",
            r.name,
            r.wall_ms,
            r.forward_wall_ms,
            r.cpu_ms,
            r.diffvg_cpu_ms.map_or("-".into(), |d| format!("{d:.0}")),
            r.ratio().map_or("-".into(), |x| format!("{x:.3}")),
            r.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
        );
    }
    Ok(())
}
