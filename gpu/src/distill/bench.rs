//! `vecdream bench distill`: seconds per iteration of the reference teacher (any device) and of
//! SDS / VPSD on the SD 2.1-base architecture with random weights (meant for CUDA).

use std::path::Path;
use std::time::Instant;

use crate::gpu_memory::GpuMemoryProbe;

use tch::{Device, Kind, nn};

use super::DistillError;
use super::engine::{DistillConfig, Distiller};
use super::grid::grid_document;
use super::guidance::Guidance;
use super::reference::{ReferenceConfig, ReferenceGuidance, ReferenceMode, ReferenceTeacher};
use super::sd_guidance::{SdGuidance, SdGuidanceConfig, SdMethod};
use crate::sd::config::{ClipTextConfig, SchedulerConfig, UNet2DConditionConfig, VaeConfig};
use crate::sd::{
    AutoencoderKL, ClipTextTransformer, ClipTokenizer, DdimScheduler, StableDiffusion,
    UNet2DConditionModel,
};

/// One benchmark line.
#[derive(Clone, Debug, PartialEq)]
pub struct DistillBenchResult {
    /// What ran.
    pub name: String,
    /// Particles.
    pub particles: usize,
    /// Render side in pixels.
    pub size: usize,
    /// Vector shapes per particle.
    pub shapes: usize,
    /// Mean seconds per iteration (after one warm-up step).
    pub sec_per_iter: f64,
    /// Peak GPU memory in use, MiB (nvidia-smi samples, model loading included), on CUDA.
    pub peak_gpu_mib: Option<u64>,
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// One timed case: `particles` copies of `doc` rendered at `size` px, `iters` timed steps.
struct Run {
    particles: usize,
    size: usize,
    cells: usize,
    iters: usize,
    device: Device,
}

impl Run {
    fn time(
        &self,
        name: &str,
        doc: &vecdream_core::Document,
        guidance: Box<dyn Guidance>,
        probe: Option<GpuMemoryProbe>,
    ) -> Result<DistillBenchResult, DistillError> {
        let config = DistillConfig {
            particles: self.particles,
            render_size: self.size,
            steps: self.iters + 1,
            ..DistillConfig::default()
        };
        let mut d = Distiller::new(doc, config, guidance, self.device)?;
        let sec = time_steps(&mut d, self.iters)?;
        Ok(DistillBenchResult {
            name: name.into(),
            particles: self.particles,
            size: self.size,
            shapes: self.cells * self.cells,
            sec_per_iter: sec,
            peak_gpu_mib: probe.and_then(GpuMemoryProbe::finish),
        })
    }
}

fn time_steps(d: &mut Distiller, iters: usize) -> Result<f64, DistillError> {
    let warmups = if d.params().device().is_cuda() { 2 } else { 1 };
    for _ in 0..warmups {
        d.step()?;
    }
    sync(d.params().device());
    let t0 = Instant::now();
    for _ in 0..iters {
        d.step()?;
    }
    sync(d.params().device());
    Ok(t0.elapsed().as_secs_f64() / iters.max(1) as f64)
}

/// Reference-teacher iteration time: `particles` particles of a grid with `cells²` squares
/// rendered at `size` px, teacher at 64 px over 4 random targets (VPSD).
pub fn bench_reference(
    size: usize,
    particles: usize,
    cells: usize,
    iters: usize,
    device: Device,
) -> Result<DistillBenchResult, DistillError> {
    let probe = GpuMemoryProbe::start(device);
    let doc = grid_document(cells, size as f64);
    let mut rng = crate::rng::Rng::new(0);
    let targets = (rng.normal_tensor(&[4, 3, 64, 64], device) * 0.3 + 0.5).clamp(0.0, 1.0);
    let teacher = ReferenceTeacher::new(&targets, 64, device)?;
    let guidance: Box<dyn Guidance> = Box::new(ReferenceGuidance::new(
        teacher,
        ReferenceConfig {
            mode: ReferenceMode::Vpsd,
            ..ReferenceConfig::default()
        },
    ));
    let run = Run {
        particles,
        size,
        cells,
        iters,
        device,
    };
    run.time("reference-vpsd", &doc, guidance, probe)
}

/// SD 2.1-base with random weights (fp16 on CUDA), with the tokenizer of `tokenizer_dir` (any
/// CLIP tokenizer folder, e.g. the tiny test fixture's: only the token ids are used).
pub fn random_sd21(tokenizer_dir: &Path, device: Device) -> Result<StableDiffusion, DistillError> {
    let kind = if device.is_cuda() {
        Kind::Half
    } else {
        Kind::Float
    };
    tch::manual_seed(0);
    let tokenizer = ClipTokenizer::from_dir(tokenizer_dir)?;
    let mk = |device| nn::VarStore::new(device);
    let mut text_encoder_vs = mk(device);
    let text_encoder = ClipTextTransformer::new(text_encoder_vs.root(), &ClipTextConfig::sd21());
    let mut unet_vs = mk(device);
    let unet = UNet2DConditionModel::new(unet_vs.root(), &UNet2DConditionConfig::sd21_base());
    let mut vae_vs = mk(device);
    let vae = AutoencoderKL::new(vae_vs.root(), &VaeConfig::default());
    for vs in [&mut text_encoder_vs, &mut unet_vs, &mut vae_vs] {
        if kind != Kind::Float {
            vs.set_kind(kind);
        }
        vs.freeze();
    }
    Ok(StableDiffusion {
        tokenizer,
        text_encoder,
        unet,
        vae,
        scheduler: DdimScheduler::new(&SchedulerConfig::default()),
        text_encoder_vs,
        unet_vs,
        vae_vs,
        device,
        kind,
    })
}

/// SDS (1 particle) or VPSD (6 particles, 4 guided, 2 for φ) iteration time at `size` px with
/// `shapes` random blobs per particle on SD 2.1-base random weights.
pub fn bench_distill(
    method: SdMethod,
    particles: usize,
    size: usize,
    cells: usize,
    iters: usize,
    tokenizer_dir: &Path,
    device: Device,
) -> Result<DistillBenchResult, DistillError> {
    let probe = GpuMemoryProbe::start(device);
    let sd = random_sd21(tokenizer_dir, device)?;
    let mut cfg = match method {
        SdMethod::Sds => SdGuidanceConfig::sds(),
        _ => SdGuidanceConfig::default(),
    };
    cfg.method = method;
    cfg.prompt = "a photo of a cat".into();
    cfg.resolution = size as i64;
    let guidance: Box<dyn Guidance> = Box::new(SdGuidance::new(sd, cfg)?);
    let doc = grid_document(cells, 600.0);
    let run = Run {
        particles,
        size,
        cells,
        iters,
        device,
    };
    run.time(method.as_str(), &doc, guidance, probe)
}
