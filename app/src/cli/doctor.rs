//! `vecdream doctor`: reports what this installation can use and fails clearly when something is broken.

use std::io::Write as _;

use anyhow::Context as _;
use egui_wgpu::wgpu;

use crate::settings::{MODEL_ENV, Settings};

/// Arguments of `vecdream doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Skip the wgpu adapter query (it can take a second on software Vulkan).
    #[arg(long)]
    pub no_wgpu: bool,
}

/// Prints the report to stdout. Fails when libtorch cannot run a computation.
pub fn run(args: &DoctorArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "vecdream {}", crate::VERSION)?;
    let info = std::panic::catch_unwind(vecdream_gpu::device::RuntimeInfo::query)
        .map_err(|_| anyhow::anyhow!("libtorch failed to initialise"))?;
    writeln!(out, "libtorch: {}", info.torch_version)?;
    match vecdream_gpu::device::loaded_torch_library() {
        Some(lib) => writeln!(out, "libtorch library: {}", lib.display())?,
        None => writeln!(out, "libtorch library: (not found in /proc/self/maps)")?,
    }
    check_libtorch().context(
        "libtorch cannot run a computation: rerun scripts/setup, or on a GPU host set LD_LIBRARY_PATH to \
         the lib folder of torch 2.11.0",
    )?;
    writeln!(out, "libtorch check: ok (autograd step on the CPU)")?;
    writeln!(out, "CUDA available: {}", info.cuda_available)?;
    for (i, name) in info.cuda_devices.iter().enumerate() {
        writeln!(out, "  cuda:{i}: {name}")?;
    }
    writeln!(out, "CPU threads: {}", info.cpu_threads)?;
    writeln!(out, "compute device: {}", info.device_label())?;
    if args.no_wgpu {
        writeln!(out, "wgpu adapter: (not queried)")?;
    } else {
        let adapters = wgpu_adapters();
        if adapters.is_empty() {
            writeln!(
                out,
                "wgpu adapter: none found (the editor window needs Vulkan or GL; install mesa-vulkan-drivers)"
            )?;
        }
        for a in adapters {
            writeln!(out, "wgpu adapter: {a}")?;
        }
    }
    let settings = Settings::load();
    match settings.effective_model_folder() {
        Some(dir) => writeln!(out, "model folder: {}", dir.display())?,
        None => writeln!(
            out,
            "model folder: not set (set {MODEL_ENV} or choose one in the app; the demo needs none)"
        )?,
    }
    Ok(())
}

/// Runs one small autograd computation and checks its result.
fn check_libtorch() -> anyhow::Result<()> {
    use vecdream_gpu::tch::{Kind, Tensor};
    let x = Tensor::from_slice(&[2.0f32]).set_requires_grad(true);
    let y = (&x * &x).sum(Kind::Float);
    y.f_backward()?;
    let g = x.grad().f_double_value(&[0])?;
    anyhow::ensure!((g - 4.0).abs() < 1e-6, "d(x²)/dx at 2 gave {g}, expected 4");
    Ok(())
}

/// Names of the wgpu adapters, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
fn wgpu_adapters() -> Vec<String> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect()
}
