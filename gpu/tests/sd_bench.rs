//! The UNet benchmark on the real SD1.5 / SD2.1-base architectures (random weights). Ignored by
//! default (minutes on a CPU); `VECDREAM_BENCH_LATENT` (default 32) and `VECDREAM_BENCH_ITERS`
//! (default 1) size it: `cargo test -p vecdream-gpu --release --test sd_bench -- --ignored --nocapture`.

use vecdream_gpu::sd::UNet2DConditionConfig;
use vecdream_gpu::sd::bench::{UNetBenchConfig, bench_unet};
use vecdream_gpu::tch::Kind;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: minutes on a CPU; prints timings and checks the parameter counts"]
fn bench_unet_sd15_and_sd21() {
    let device = vecdream_gpu::device::best_device();
    let kind = if device.is_cuda() {
        Kind::Half
    } else {
        Kind::Float
    };
    // Published UNet parameter counts (diffusers `num_parameters()`): 859.52 M and 865.91 M.
    for (name, unet, published) in [
        ("sd15", UNet2DConditionConfig::sd15(), 859.52e6),
        ("sd21", UNet2DConditionConfig::sd21_base(), 865.91e6),
    ] {
        let c = UNetBenchConfig {
            unet,
            batch: 2,
            latent: env("VECDREAM_BENCH_LATENT", 32),
            iters: env("VECDREAM_BENCH_ITERS", 1) as usize,
            device,
            kind,
            lora_rank: 4,
        };
        let r = bench_unet(&c, &mut |_| {}).expect("bench");
        eprintln!(
            "{name}: {:.1} M params, batch 2 × {}², {device:?} {kind:?}, threads {}: forward {:.0} ms, LoRA fwd+bwd {:.0} ms",
            r.parameters as f64 / 1e6,
            c.latent,
            vecdream_gpu::tch::get_num_threads(),
            r.forward_ms,
            r.lora_fwd_bwd_ms.unwrap_or(f64::NAN)
        );
        assert!(r.finite, "{name}: non-finite output");
        // The benchmark really built the published architecture (a wrong block layout changes this).
        let rel = (r.parameters as f64 - published).abs() / published;
        assert!(
            rel < 1e-3,
            "{name}: {} parameters, published {published}",
            r.parameters
        );
    }
}
