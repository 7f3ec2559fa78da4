//! Timing of the CLIP image tower (random weights): forward, and forward + backward to the input
//! pixels (what a CLIP guidance or a differentiable reward needs; the weights stay frozen).

use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::{ClipConfig, ClipModel};

/// One benchmark row.
#[derive(Clone, Debug)]
pub struct ClipBenchResult {
    /// Image-tower parameters (with the projection).
    pub parameters: i64,
    /// Mean no-grad forward time, ms.
    pub forward_ms: f64,
    /// Mean forward + backward (to the pixels) time, ms.
    pub forward_backward_ms: f64,
    /// Whether the outputs and gradients were finite.
    pub finite: bool,
}

fn mean_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1e3 / iters.max(1) as f64
}

/// Times `config`'s image tower on `batch` random images of its `image_size`, `iters` runs each
/// after one warm-up.
pub fn bench_vision(
    config: &ClipConfig,
    batch: i64,
    iters: usize,
    device: Device,
) -> ClipBenchResult {
    tch::manual_seed(0);
    let mut model = ClipModel::new(config, device);
    model.vs.freeze();
    let s = config.vision_config.image_size;
    let x = Tensor::randn([batch, 3, s, s], (Kind::Float, device));
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    let mut finite = true;
    let forward_ms = mean_ms(iters, || {
        let y = tch::no_grad(|| model.image_features(&x));
        finite &= y.isfinite().all().int64_value(&[]) == 1;
        sync();
    });
    let forward_backward_ms = mean_ms(iters, || {
        let xi = x.detach().set_requires_grad(true);
        let y = model.image_features(&xi);
        y.square().mean(Kind::Float).backward();
        finite &= xi.grad().isfinite().all().int64_value(&[]) == 1;
        sync();
    });
    ClipBenchResult {
        parameters: model.vision_parameters(),
        forward_ms,
        forward_backward_ms,
        finite,
    }
}
