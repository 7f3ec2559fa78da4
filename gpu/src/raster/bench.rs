//! Benchmark of forward + backward of an MSE loss, on seeded random scenes or any document.
//!
//! The standard cases mirror the DiffVG measurements in `shared/anchors.md`: closed
//! 4-segment cubic blobs of radius 8–40 px with fill alpha 0.8, and open strokes of width 2.

use std::fmt::Write as _;
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use vecdream_core::params::{FillRule, ParamView, PrimitiveKind};

use super::native::{Engine, rasterize_with};
use super::scene::{Scene, SceneParams, ShapeTopology};
use super::{RasterError, RasterOptions, Rendered, rasterize};

/// A scene ready to render: topology, one particle of parameters, output size.
#[derive(Debug)]
pub struct BenchScene {
    /// Name shown in the table.
    pub name: String,
    /// Topology.
    pub scene: Scene,
    /// Parameters (batch 1).
    pub params: SceneParams,
    /// Output width in pixels.
    pub width: usize,
    /// Output height in pixels.
    pub height: usize,
}

impl BenchScene {
    /// A document's parameter view rendered at `size` pixels on its longer side.
    pub fn from_view(
        name: impl Into<String>,
        view: &ParamView,
        size: usize,
        device: Device,
    ) -> Result<Self, RasterError> {
        let scene = Scene::from_view(view)?;
        let params = SceneParams::from_view(view, 1, device)?;
        let [cw, ch] = scene.canvas();
        let (width, height) = if cw >= ch {
            (size, ((size as f32 * ch / cw).round() as usize).max(1))
        } else {
            (((size as f32 * cw / ch).round() as usize).max(1), size)
        };
        Ok(Self {
            name: name.into(),
            scene,
            params,
            width,
            height,
        })
    }

    /// The scene as an SVG document (particle 0), e.g. to render it with DiffVG.
    pub fn to_svg(&self) -> Result<String, RasterError> {
        scene_to_svg(&self.scene, &self.params, 0)
    }
}

/// One standard benchmark case.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchCase {
    /// Short name ("a" … "d").
    pub name: &'static str,
    /// What it renders.
    pub description: &'static str,
    /// Number of shapes.
    pub shapes: usize,
    /// Open strokes of this width instead of filled blobs.
    pub stroke_width: Option<f32>,
    /// Output size in pixels, `[width, height]`.
    pub size: [usize; 2],
    /// Particles rendered in one batched call (each a jittered copy of the scene).
    pub particles: usize,
    /// DiffVG's forward + backward CPU ms on the same scene (1 sample per pixel, 2 threads),
    /// from `shared/anchors.md`, where measured.
    pub diffvg_cpu_ms: Option<f64>,
}

impl BenchCase {
    /// The four cases of the issue: (a) 64 blobs 256², (b) 256 blobs 256², (c) 256 strokes
    /// of width 2 at 256², (d) 512 blobs at 512².
    pub fn standard() -> Vec<Self> {
        vec![
            Self {
                name: "a",
                description: "64 closed blobs, 256²",
                shapes: 64,
                stroke_width: None,
                size: [256; 2],
                particles: 1,
                diffvg_cpu_ms: Some(270.0),
            },
            Self {
                name: "b",
                description: "256 closed blobs, 256²",
                shapes: 256,
                stroke_width: None,
                size: [256; 2],
                particles: 1,
                diffvg_cpu_ms: Some(711.0),
            },
            Self {
                name: "c",
                description: "256 open strokes w 2, 256²",
                shapes: 256,
                stroke_width: Some(2.0),
                size: [256; 2],
                particles: 1,
                // The side-by-side table of `shared/anchors.md` (1 sample per pixel).
                diffvg_cpu_ms: Some(794.0),
            },
            Self {
                name: "d",
                description: "512 closed blobs, 512²",
                shapes: 512,
                stroke_width: None,
                size: [512; 2],
                particles: 1,
                diffvg_cpu_ms: Some(1882.0),
            },
        ]
    }

    /// The GPU cases of the issue: (e) 2048 closed blobs at 2040×1344 (DiffVG: 85 + 448 ms
    /// on an RTX 4090, `shared/anchors.md`), (f) 6 particles of 512 blobs at 512² in one call.
    pub fn gpu() -> Vec<Self> {
        vec![
            Self {
                name: "e",
                description: "2048 closed blobs, 2040×1344",
                shapes: 2048,
                stroke_width: None,
                size: [2040, 1344],
                particles: 1,
                diffvg_cpu_ms: None,
            },
            Self {
                name: "f",
                description: "6 particles × 512 closed blobs, 512²",
                shapes: 512,
                stroke_width: None,
                size: [512; 2],
                particles: 6,
                diffvg_cpu_ms: None,
            },
        ]
    }

    /// The seeded scene of this case.
    pub fn build(&self, seed: u64, device: Device) -> Result<BenchScene, RasterError> {
        let mut s = match self.stroke_width {
            Some(wd) => random_strokes(self.shapes, self.size, wd, seed, device)?,
            None => random_blobs(self.shapes, self.size, seed, device)?,
        };
        s.name = format!("{} ({})", self.name, self.description);
        if self.particles > 1 {
            s.params = jittered_particles(&s.params, self.particles, seed);
        }
        Ok(s)
    }
}

/// `particles` copies of a one-particle scene, particle k > 0 with its points moved by seeded
/// N(0, 2 px) noise, so a batched render has distinct particles (as in VPSD).
fn jittered_particles(one: &SceneParams, particles: usize, seed: u64) -> SceneParams {
    let b = particles as i64;
    tch::manual_seed(seed as i64);
    let jitter = Tensor::randn(one.points.size(), (Kind::Float, one.points.device())) * 2.0;
    let rep = |t: &Tensor| {
        let mut dims = vec![b];
        dims.extend(std::iter::repeat_n(1, t.dim() - 1));
        t.repeat(&dims)
    };
    let params = one.map(rep);
    let _ = params.points.narrow(0, 1, b - 1).g_add_(&jitter);
    params
}

/// Measured figures of one scene.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// Scene name.
    pub name: String,
    /// Output width.
    pub width: usize,
    /// Output height.
    pub height: usize,
    /// Median wall-clock ms of forward + backward.
    pub wall_ms: f64,
    /// Median process CPU ms (all threads) of forward + backward.
    pub cpu_ms: f64,
    /// Median wall-clock ms of the forward pass alone.
    pub forward_wall_ms: f64,
    /// Peak resident memory of the process while running this scene, MiB (Linux only).
    pub peak_rss_mib: Option<f64>,
    /// DiffVG's CPU ms on the same case, where known.
    pub diffvg_cpu_ms: Option<f64>,
    /// Peak GPU memory in use while running this scene, MiB (nvidia-smi samples), on CUDA.
    pub peak_gpu_mib: Option<u64>,
}

impl BenchResult {
    /// Our CPU time over DiffVG's (the bar is ≤ 0.35).
    pub fn ratio(&self) -> Option<f64> {
        self.diffvg_cpu_ms.map(|d| self.cpu_ms / d)
    }
}

/// Mean squared error between a render (over white) and a `[B, 3, H, W]` target.
pub fn mse_loss(rendered: &Rendered, target: &Tensor) -> Tensor {
    (rendered.over([1.0, 1.0, 1.0]) - target)
        .square()
        .mean(Kind::Float)
}

/// Process CPU time in ns, summed over all threads (Linux `/proc`; None elsewhere), the
/// native kernel's helper threads included (they live as long as the process).
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Resets the kernel's peak-RSS counter (Linux ≥ 4.0); best effort.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Times forward + backward of an MSE loss against a flat grey target, `reps` times after
/// one warm-up run; gradients go to points and colours (and widths for strokes). Tensor path.
pub fn bench_raster(
    scene: &BenchScene,
    reps: usize,
    opts: &RasterOptions,
    diffvg_cpu_ms: Option<f64>,
) -> Result<BenchResult, RasterError> {
    bench_raster_with(scene, reps, opts, Engine::Tensor, diffvg_cpu_ms)
}

/// [`bench_raster`] with a chosen engine (the native kernel's backward is its two phases).
pub fn bench_raster_with(
    scene: &BenchScene,
    reps: usize,
    opts: &RasterOptions,
    engine: Engine,
    diffvg_cpu_ms: Option<f64>,
) -> Result<BenchResult, RasterError> {
    reset_peak_rss();
    let params = scene.params.to_leaves();
    let dev = params.device();
    let probe = crate::gpu_memory::GpuMemoryProbe::start(dev);
    let target = Tensor::full(
        [1, 3, scene.height as i64, scene.width as i64],
        0.5,
        (Kind::Float, dev),
    );
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut fwds = Vec::new();
    for rep in 0..=reps.max(1) {
        for t in params.tensors() {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        if dev.is_cuda() {
            tch::Cuda::synchronize(dev_index(dev));
        }
        let c0 = cpu_ns();
        let t0 = Instant::now();
        let out = rasterize_with(
            &scene.scene,
            &params,
            scene.width,
            scene.height,
            opts,
            engine,
        )?;
        let loss = mse_loss(&out.rendered, &target);
        if dev.is_cuda() {
            tch::Cuda::synchronize(dev_index(dev));
        }
        let fwd = t0.elapsed().as_secs_f64() * 1e3;
        out.backward(&loss)?;
        if dev.is_cuda() {
            tch::Cuda::synchronize(dev_index(dev));
        }
        let wall = t0.elapsed().as_secs_f64() * 1e3;
        let cpu = match (c0, cpu_ns()) {
            (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e6,
            _ => f64::NAN,
        };
        if rep > 0 {
            walls.push(wall);
            cpus.push(cpu);
            fwds.push(fwd);
        }
    }
    Ok(BenchResult {
        name: scene.name.clone(),
        width: scene.width,
        height: scene.height,
        wall_ms: median(walls),
        cpu_ms: median(cpus),
        forward_wall_ms: median(fwds),
        peak_rss_mib: peak_rss_mib(),
        diffvg_cpu_ms,
        peak_gpu_mib: probe.and_then(crate::gpu_memory::GpuMemoryProbe::finish),
    })
}

/// How closely a scene's render and MSE gradients on its device agree with the CPU's (the
/// same code runs on both): max |Δ pixel| and max |Δ ∂loss/∂point| over max |∂loss/∂point|.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceAgreement {
    /// Largest absolute difference of any pixel channel (values in [0, 1]).
    pub max_pixel_diff: f64,
    /// Largest difference of a control-point gradient, relative to the largest gradient.
    pub max_grad_rel_diff: f64,
}

/// Renders `scene` (forward + backward of the benchmark loss) on its own device and on the
/// CPU and compares them.
pub fn agreement_with_cpu(
    scene: &BenchScene,
    opts: &RasterOptions,
) -> Result<DeviceAgreement, RasterError> {
    let run = |device: Device| -> Result<(Tensor, Tensor), RasterError> {
        let params = scene.params.map(|t| t.to_device(device)).to_leaves();
        let target = Tensor::full(
            [1, 3, scene.height as i64, scene.width as i64],
            0.5,
            (Kind::Float, device),
        );
        let out = rasterize(&scene.scene, &params, scene.width, scene.height, opts)?;
        mse_loss(&out, &target).backward();
        let image = out.rgb.detach().to_device(Device::Cpu);
        Ok((image, params.points.grad().to_device(Device::Cpu)))
    };
    let (image_dev, grad_dev) = run(scene.params.device())?;
    let (image_cpu, grad_cpu) = run(Device::Cpu)?;
    let max = |t: Tensor| t.abs().max().double_value(&[]);
    let scale = max(grad_cpu.shallow_clone()).max(f64::MIN_POSITIVE);
    Ok(DeviceAgreement {
        max_pixel_diff: max(image_dev - image_cpu),
        max_grad_rel_diff: max(grad_dev - grad_cpu) / scale,
    })
}

/// How closely the native kernel agrees with the tensor path on `scene` (forward + backward
/// of the benchmark loss, on the CPU): max |Δ pixel| and max |Δ ∂loss/∂point| over
/// max |∂loss/∂point|.
pub fn native_agreement(
    scene: &BenchScene,
    opts: &RasterOptions,
) -> Result<DeviceAgreement, RasterError> {
    let run = |engine: Engine| -> Result<(Tensor, Tensor), RasterError> {
        let params = scene.params.map(|t| t.to_device(Device::Cpu)).to_leaves();
        let target = Tensor::full(
            [1, 3, scene.height as i64, scene.width as i64],
            0.5,
            (Kind::Float, Device::Cpu),
        );
        let out = rasterize_with(
            &scene.scene,
            &params,
            scene.width,
            scene.height,
            opts,
            engine,
        )?;
        out.backward(&mse_loss(&out.rendered, &target))?;
        Ok((out.rendered.rgb.detach(), params.points.grad()))
    };
    let (image_n, grad_n) = run(Engine::Native)?;
    let (image_t, grad_t) = run(Engine::Tensor)?;
    let max = |t: Tensor| t.abs().max().double_value(&[]);
    let scale = max(grad_t.shallow_clone()).max(f64::MIN_POSITIVE);
    Ok(DeviceAgreement {
        max_pixel_diff: max(image_n - image_t),
        max_grad_rel_diff: max(grad_n - grad_t) / scale,
    })
}

fn dev_index(dev: Device) -> i64 {
    match dev {
        Device::Cuda(i) => i as i64,
        _ => 0,
    }
}

/// SplitMix64: a tiny seeded generator, so scenes are the same everywhere.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    /// A random opaque-ish colour: uniform RGB, alpha 0.8.
    fn paint(&mut self) -> [f32; 4] {
        [
            self.uniform(0.0, 1.0),
            self.uniform(0.0, 1.0),
            self.uniform(0.0, 1.0),
            0.8,
        ]
    }
}

/// One generated path: a filled closed blob or a stroked open curve over `points`.
fn random_topology(points: std::ops::Range<usize>, closed: bool) -> ShapeTopology {
    ShapeTopology {
        kind: if closed {
            PrimitiveKind::ClosedPath
        } else {
            PrimitiveKind::OpenPath
        },
        subpaths: vec![(points, closed)],
        fill_rule: FillRule::NonZero,
        has_fill: closed,
        has_stroke: !closed,
        locked: false,
        hidden: false,
    }
}

/// Per-shape colours and widths of a generated scene: fill RGBA, stroke RGBA, width.
type Paints = (Vec<f32>, Vec<f32>, Vec<f32>);

fn build(
    name: String,
    [width, height]: [usize; 2],
    shapes: Vec<ShapeTopology>,
    points: Vec<f32>,
    (fill, stroke, stroke_width): Paints,
    device: Device,
) -> Result<BenchScene, RasterError> {
    let n = shapes.len() as i64;
    let p = (points.len() / 2) as i64;
    let scene = Scene::new([width as f32, height as f32], p as usize, shapes)?;
    let params = SceneParams {
        points: Tensor::from_slice(&points)
            .view([1, p, 2])
            .to_device(device),
        fill: Tensor::from_slice(&fill).view([1, n, 4]).to_device(device),
        stroke: Tensor::from_slice(&stroke)
            .view([1, n, 4])
            .to_device(device),
        stroke_width: Tensor::from_slice(&stroke_width)
            .view([1, n])
            .to_device(device),
        background: Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0])
            .view([1, 4])
            .to_device(device),
        fill_gradient: None,
    };
    Ok(BenchScene {
        name,
        scene,
        params,
        width,
        height,
    })
}

/// `n` random closed blobs (4 cubic segments, radius 8–40 px, fill alpha 0.8) on a white
/// `[width, height]` canvas (1 document unit = 1 px).
pub fn random_blobs(
    n: usize,
    size: [usize; 2],
    seed: u64,
    device: Device,
) -> Result<BenchScene, RasterError> {
    let mut rng = Rng(seed);
    let (mut shapes, mut points, mut fill) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let start = points.len() / 2;
        let cx = rng.uniform(0.0, size[0] as f32);
        let cy = rng.uniform(0.0, size[1] as f32);
        let r = rng.uniform(8.0, 40.0);
        let theta0 = rng.uniform(0.0, std::f32::consts::TAU);
        let anchors: Vec<(f32, f32, f32)> = (0..4)
            .map(|k| {
                let th = theta0 + k as f32 * std::f32::consts::FRAC_PI_2;
                let rk = r * rng.uniform(0.7, 1.3);
                (th, rk, rk * 0.55 * rng.uniform(0.6, 1.4))
            })
            .collect();
        for k in 0..4 {
            let (th, rk, hk) = anchors[k];
            let (th1, rk1, hk1) = anchors[(k + 1) % 4];
            let (s, c) = th.sin_cos();
            let (s1, c1) = th1.sin_cos();
            points.extend_from_slice(&[cx + rk * c, cy + rk * s]);
            points.extend_from_slice(&[cx + rk * c - hk * s, cy + rk * s + hk * c]);
            points.extend_from_slice(&[cx + rk1 * c1 + hk1 * s1, cy + rk1 * s1 - hk1 * c1]);
        }
        shapes.push(random_topology(start..points.len() / 2, true));
        fill.extend_from_slice(&rng.paint());
    }
    let stroke = vec![0.0; 4 * n];
    let width = vec![0.0; n];
    build(
        format!("{n} blobs {}×{}", size[0], size[1]),
        size,
        shapes,
        points,
        (fill, stroke, width),
        device,
    )
}

/// `n` random open strokes (4 cubic segments spanning 8–40 px steps, given width, alpha
/// 0.8) on a white `[width, height]` canvas.
pub fn random_strokes(
    n: usize,
    size: [usize; 2],
    stroke_width: f32,
    seed: u64,
    device: Device,
) -> Result<BenchScene, RasterError> {
    let mut rng = Rng(seed);
    let (mut shapes, mut points, mut stroke) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let start = points.len() / 2;
        let mut x = rng.uniform(0.0, size[0] as f32);
        let mut y = rng.uniform(0.0, size[1] as f32);
        let r = rng.uniform(8.0, 40.0);
        points.extend_from_slice(&[x, y]);
        for _ in 0..4 {
            let th = rng.uniform(0.0, std::f32::consts::TAU);
            let (nx, ny) = (x + r * th.cos(), y + r * th.sin());
            for t in [1.0 / 3.0, 2.0 / 3.0] {
                points.extend_from_slice(&[
                    x + (nx - x) * t + rng.uniform(-0.5, 0.5) * r,
                    y + (ny - y) * t + rng.uniform(-0.5, 0.5) * r,
                ]);
            }
            points.extend_from_slice(&[nx, ny]);
            (x, y) = (nx, ny);
        }
        shapes.push(random_topology(start..points.len() / 2, false));
        stroke.extend_from_slice(&rng.paint());
    }
    let fill = vec![0.0; 4 * n];
    let width = vec![stroke_width; n];
    build(
        format!("{n} strokes w {stroke_width} {}×{}", size[0], size[1]),
        size,
        shapes,
        points,
        (fill, stroke, width),
        device,
    )
}

/// Writes particle `particle` of a scene as SVG (paths with round caps and joins, straight
/// RGBA as colour + opacity), e.g. to give the same scene to DiffVG or resvg.
pub fn scene_to_svg(
    scene: &Scene,
    params: &SceneParams,
    particle: usize,
) -> Result<String, RasterError> {
    params.check(scene)?;
    let one = params.particle(particle);
    let host = |t: &Tensor| -> Result<Vec<f32>, RasterError> {
        Ok(Vec::<f32>::try_from(
            t.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1),
        )?)
    };
    let pts = host(&one.points)?;
    let fill = host(&one.fill)?;
    let stroke = host(&one.stroke)?;
    let width = host(&one.stroke_width)?;
    let bg = host(&one.background)?;
    let [cw, ch] = scene.canvas();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{cw}\" height=\"{ch}\" viewBox=\"0 0 {cw} {ch}\">\n"
    );
    let rgb = |c: &[f32]| {
        let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
    };
    if bg[3] > 0.0 {
        let _ = writeln!(
            out,
            "<rect width=\"{cw}\" height=\"{ch}\" fill=\"{}\" fill-opacity=\"{}\"/>",
            rgb(&bg),
            bg[3]
        );
    }
    let p = |i: usize| (pts[2 * i], pts[2 * i + 1]);
    for (s, shape) in scene.shapes().iter().enumerate() {
        if shape.hidden || !(shape.has_fill || shape.has_stroke) {
            continue;
        }
        let mut d = String::new();
        for (range, closed) in &shape.subpaths {
            let idx: Vec<usize> = range.clone().collect();
            let Some(&first) = idx.first() else { continue };
            let (x, y) = p(first);
            let _ = write!(d, "M{x} {y}");
            match shape.kind {
                PrimitiveKind::Polygon => {
                    for &i in &idx[1..] {
                        let (x, y) = p(i);
                        let _ = write!(d, " L{x} {y}");
                    }
                }
                _ => {
                    let mut k = 1;
                    while k + 1 < idx.len() {
                        let end = idx.get(k + 2).copied().unwrap_or(first);
                        if k + 2 >= idx.len() && !closed {
                            break;
                        }
                        let (a, b) = (p(idx[k]), p(idx[k + 1]));
                        let c = p(end);
                        let _ = write!(d, " C{} {} {} {} {} {}", a.0, a.1, b.0, b.1, c.0, c.1);
                        k += 3;
                    }
                }
            }
            if *closed {
                d.push_str(" Z");
            }
        }
        let f = &fill[4 * s..4 * s + 4];
        let st = &stroke[4 * s..4 * s + 4];
        let fill_attr = if shape.has_fill {
            format!("fill=\"{}\" fill-opacity=\"{}\"", rgb(f), f[3])
        } else {
            "fill=\"none\"".to_string()
        };
        let rule = if shape.fill_rule == FillRule::EvenOdd {
            " fill-rule=\"evenodd\""
        } else {
            ""
        };
        let stroke_attr = if shape.has_stroke {
            format!(
                " stroke=\"{}\" stroke-opacity=\"{}\" stroke-width=\"{}\" stroke-linecap=\"round\" stroke-linejoin=\"round\"",
                rgb(st),
                st[3],
                width[s]
            )
        } else {
            String::new()
        };
        let _ = writeln!(out, "<path d=\"{d}\" {fill_attr}{rule}{stroke_attr}/>");
    }
    out.push_str("</svg>\n");
    Ok(out)
}
