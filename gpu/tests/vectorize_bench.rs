//! Manual benchmark of the vectoriser on the shared images (ignored by default; run with
//! `cargo test --release -p vecdream-gpu --test vectorize_bench -- --ignored --nocapture`).
//! `VECDREAM_VEC_SEGMENTS` sets the budget (default 1024), `VECDREAM_VEC_STEPS` the steps.

use vecdream_gpu::vectorize::bench::{bench_file, time_to_psnr};
use vecdream_gpu::vectorize::{Budget, VectorizeConfig};

#[test]
#[ignore = "benchmark: slow, prints a table"]
fn vectorize_bench_shared_images() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cfg = VectorizeConfig {
        budget: Budget::Segments(env("VECDREAM_VEC_SEGMENTS", 1024)),
        steps: env("VECDREAM_VEC_STEPS", 60),
        ..VectorizeConfig::default()
    };
    let dir = vecdream_core::testing::test_data_dir().join("images");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    println!(
        "| image | init dB | init s | dB | SSIM | paths | segments | bytes | s | s to init+1 dB |"
    );
    let only = std::env::var("VECDREAM_VEC_ONLY").unwrap_or_default();
    for f in files {
        if !f.to_string_lossy().contains(&only) {
            continue;
        }
        let r = bench_file(&f, 256, &cfg).unwrap();
        if let Ok(dir) = std::env::var("VECDREAM_VEC_DUMP") {
            std::fs::write(format!("{dir}/{}.svg", r.image), &r.svg).unwrap();
            let png = vecdream_core::render_svg_str(
                &r.svg,
                r.width as u32,
                r.height as u32,
                std::path::Path::new("dump"),
            )
            .unwrap();
            png.save_png(std::path::Path::new(&format!(
                "{dir}/{}.resvg.png",
                r.image
            )))
            .unwrap();
        }
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} | {} | {:.1} | {} |",
            r.image,
            r.init_score.psnr_db,
            r.init_wall_s,
            r.score.psnr_db,
            r.score.ssim,
            r.score.paths,
            r.score.segments,
            r.score.bytes,
            r.wall_s,
            time_to_psnr(&r, r.init_score.psnr_db + 1.0)
                .map_or("–".into(), |t| format!("{t:.1}")),
        );
    }
}
