//! UNet benchmark: the real SD1.5 / SD2.1-base architecture with random weights, timed forward
//! and LoRA forward+backward.

use std::time::Instant;

use tch::{Device, Kind, Tensor, nn};

use super::Result;
use super::config::UNet2DConditionConfig;
use super::lora::{Lora, LoraConfig};
use super::unet_2d::UNet2DConditionModel;
use crate::gpu_memory::GpuMemoryProbe;

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct UNetBenchConfig {
    /// The architecture (e.g. [`UNet2DConditionConfig::sd15`]).
    pub unet: UNet2DConditionConfig,
    /// Batch size (2 = one CFG pair).
    pub batch: i64,
    /// Latent side (64 for 512² images).
    pub latent: i64,
    /// Timed iterations (after one warm-up).
    pub iters: usize,
    /// Device.
    pub device: Device,
    /// Weight and activation kind (Half on CUDA, Float on the CPU).
    pub kind: Kind,
    /// LoRA rank for the forward+backward timing; 0 skips it.
    pub lora_rank: i64,
}

/// Timings in milliseconds (mean over the timed iterations).
#[derive(Clone, Debug, PartialEq)]
pub struct UNetBenchReport {
    /// UNet parameters.
    pub parameters: i64,
    /// Forward pass, no gradient.
    pub forward_ms: f64,
    /// LoRA forward + backward (gradients for the LoRA weights only), if measured.
    pub lora_fwd_bwd_ms: Option<f64>,
    /// Whether every output was finite.
    pub finite: bool,
    /// Peak GPU memory in use, MiB (nvidia-smi samples, weights included), on CUDA.
    pub peak_gpu_mib: Option<u64>,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Untimed warm-up runs: CUDA needs a few (allocator, cuBLAS/cuDNN algorithm choice).
fn warmups(device: Device) -> usize {
    if device.is_cuda() { 3 } else { 1 }
}

/// Builds the UNet with random weights and times it.
pub fn bench_unet(c: &UNetBenchConfig, progress: &mut dyn FnMut(&str)) -> Result<UNetBenchReport> {
    let probe = GpuMemoryProbe::start(c.device);
    tch::manual_seed(0);
    let mut vs = nn::VarStore::new(c.device);
    vs.set_kind(c.kind);
    let mut unet = UNet2DConditionModel::new(vs.root(), &c.unet);
    vs.freeze();
    let parameters: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    let opts = (c.kind, c.device);
    let xs = Tensor::randn([c.batch, c.unet.in_channels, c.latent, c.latent], opts);
    let t = Tensor::full([c.batch], 500, (Kind::Int64, c.device));
    let ehs = Tensor::randn([c.batch, 77, c.unet.cross_attention_dim.get(0)], opts);
    let mut finite = true;
    let forward_ms = {
        let _guard = tch::no_grad_guard();
        progress("forward: warm-up");
        for _ in 0..warmups(c.device) {
            let out = unet.forward(&xs, &t, &ehs, 0.0)?;
            finite &= out.isfinite().all().int64_value(&[]) == 1;
        }
        sync(c.device);
        let start = Instant::now();
        let mut last = None;
        for i in 0..c.iters {
            progress(&format!("forward {}/{}", i + 1, c.iters));
            last = Some(unet.forward(&xs, &t, &ehs, 0.0)?);
        }
        sync(c.device);
        let ms = start.elapsed().as_secs_f64() * 1000.0 / c.iters.max(1) as f64;
        if let Some(out) = last {
            finite &= out.isfinite().all().int64_value(&[]) == 1;
        }
        ms
    };
    let lora_fwd_bwd_ms = if c.lora_rank > 0 {
        let lora = Lora::attach(
            &mut unet,
            c.device,
            LoraConfig {
                rank: c.lora_rank,
                camera_embedding_dim: None,
            },
        );
        let step = |unet: &UNet2DConditionModel| -> Result<()> {
            let out = unet.forward(&xs, &t, &ehs, 1.0)?;
            out.to_kind(Kind::Float)
                .square()
                .mean(Kind::Float)
                .backward();
            Ok(())
        };
        progress("LoRA forward+backward: warm-up");
        for _ in 0..warmups(c.device) {
            step(&unet)?;
        }
        sync(c.device);
        let start = Instant::now();
        for i in 0..c.iters {
            progress(&format!("LoRA forward+backward {}/{}", i + 1, c.iters));
            step(&unet)?;
        }
        sync(c.device);
        let ms = start.elapsed().as_secs_f64() * 1000.0 / c.iters.max(1) as f64;
        drop(lora);
        Some(ms)
    } else {
        None
    };
    Ok(UNetBenchReport {
        parameters,
        forward_ms,
        lora_fwd_bwd_ms,
        finite,
        peak_gpu_mib: probe.and_then(GpuMemoryProbe::finish),
    })
}
