//! `vecdream bench 3d`: seconds per iteration of the field at a 64×64 latent render with a
//! 128³ grid — the field alone (render + loss + backward + Adam, any device) and, with a
//! tokenizer folder, text-to-3D SDS on the SD 2.1-base architecture with random weights (meant
//! for CUDA). Peak memory: the process's peak RSS (Linux `VmHWM`) and, on CUDA, the device's
//! peak used memory (nvidia-smi samples).

use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind};

use super::FieldError;
use super::camera::CameraRanges;
use super::fit::FieldAdam;
use super::grid::{Blob, ColorSpace, Grid};
use super::render::render;
use super::run::{FieldConfig, FieldRun};
use super::sds::TextConfig;
use crate::distill::{SdMethod, random_sd21};
use crate::gpu_memory::GpuMemoryProbe;
use crate::rng::Rng;

/// One benchmark line.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldBenchResult {
    /// What ran.
    pub name: String,
    /// Voxels per side.
    pub grid: i64,
    /// Render side (latent pixels).
    pub size: i64,
    /// Samples per ray.
    pub samples: i64,
    /// Mean seconds per iteration (after warm-up).
    pub sec_per_iter: f64,
    /// Peak resident memory of the process so far, MiB (Linux).
    pub peak_rss_mib: Option<u64>,
    /// Peak used GPU memory, MiB (CUDA, nvidia-smi).
    pub peak_gpu_mib: Option<u64>,
}

/// The process's peak resident set size in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The field alone: a 4-channel latent grid of `grid³` rendered at `size²` from one random
/// camera with `samples` per ray, an MSE against a fixed random target, backward and Adam.
pub fn bench_field(
    grid: i64,
    size: i64,
    samples: i64,
    iters: usize,
    device: Device,
) -> Result<FieldBenchResult, FieldError> {
    let probe = GpuMemoryProbe::start(device);
    let g = Grid::new(grid, ColorSpace::Latent, Blob::default(), 32.0, device);
    let bg = tch::Tensor::zeros([4], (Kind::Float, device)).set_requires_grad(true);
    let mut adam = FieldAdam::new(&g, &bg, [0.1, 0.05, 0.01]);
    let mut rng = Rng::new(0);
    let target = rng.normal_tensor(&[1, 4, size, size], device);
    let ranges = CameraRanges::default();
    let mut one = |rng: &mut Rng| {
        FieldAdam::zero_grad(&g, &bg);
        let cam = ranges.sample(rng);
        let out = render(&g, &[cam], size, samples, &bg, Some(rng));
        let loss = (out.color - &target).square().mean(Kind::Float);
        loss.backward();
        adam.step(&g, &bg);
    };
    let warmups = if device.is_cuda() { 3 } else { 1 };
    for _ in 0..warmups {
        one(&mut rng);
    }
    sync(device);
    let t0 = Instant::now();
    for _ in 0..iters.max(1) {
        one(&mut rng);
    }
    sync(device);
    let sec = t0.elapsed().as_secs_f64() / iters.max(1) as f64;
    Ok(FieldBenchResult {
        name: "field (render + backward + Adam)".into(),
        grid,
        size,
        samples,
        sec_per_iter: sec,
        peak_rss_mib: peak_rss_mib(),
        peak_gpu_mib: probe.and_then(GpuMemoryProbe::finish),
    })
}

/// Text-to-3D with `method` on SD 2.1-base with random weights (fp16 on CUDA): the full step of
/// [`FieldRun`] (render latents, UNet with CFG, backward, Adam) at `size²` latents.
pub fn bench_field_sd21(
    method: SdMethod,
    grid: i64,
    size: i64,
    samples: i64,
    iters: usize,
    tokenizer_dir: &Path,
    device: Device,
) -> Result<FieldBenchResult, FieldError> {
    let probe = GpuMemoryProbe::start(device);
    let sd = random_sd21(tokenizer_dir, device)?;
    let text = TextConfig {
        model_dir: tokenizer_dir.to_path_buf(),
        prompt: "a photo of a hamburger".into(),
        method,
        latent_size: size,
        ..TextConfig::default()
    };
    let warmups = if device.is_cuda() { 3 } else { 1 };
    let mut config = FieldConfig::text(text, grid, iters + warmups);
    config.grid_start = grid;
    config.samples = samples;
    let mut run = FieldRun::with_model(config, sd)?;
    for _ in 0..warmups {
        run.step()?;
    }
    sync(device);
    let t0 = Instant::now();
    for _ in 0..iters.max(1) {
        run.step()?;
    }
    sync(device);
    let sec = t0.elapsed().as_secs_f64() / iters.max(1) as f64;
    Ok(FieldBenchResult {
        name: format!("{} on SD 2.1-base (random weights)", method.as_str()),
        grid,
        size,
        samples,
        sec_per_iter: sec,
        peak_rss_mib: peak_rss_mib(),
        peak_gpu_mib: probe.and_then(GpuMemoryProbe::finish),
    })
}
