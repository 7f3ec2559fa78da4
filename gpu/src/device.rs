//! Compute-device selection and a description of the runtime (libtorch version, CUDA devices, threads).

use tch::{Cuda, Device};

/// The device every computation uses unless told otherwise: the first CUDA device when one is usable,
/// else the CPU. `VECDREAM_DEVICE=cpu` forces the CPU; `VECDREAM_DEVICE=cuda:N` picks a CUDA device.
pub fn best_device() -> Device {
    match std::env::var("VECDREAM_DEVICE").ok().as_deref() {
        Some("cpu") => Device::Cpu,
        Some(s) if s.starts_with("cuda") => {
            let index = s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if Cuda::is_available() && (index as i64) < Cuda::device_count() {
                Device::Cuda(index)
            } else {
                tracing::warn!("VECDREAM_DEVICE={s} is not available here, using the CPU");
                Device::Cpu
            }
        }
        _ => Device::cuda_if_available(),
    }
}

/// What libtorch reports about this machine.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeInfo {
    /// libtorch version, e.g. "2.11.0".
    pub torch_version: String,
    /// Whether CUDA is usable.
    pub cuda_available: bool,
    /// Names of the CUDA devices (empty without CUDA).
    pub cuda_devices: Vec<String>,
    /// Threads libtorch uses for intra-op parallelism on the CPU.
    pub cpu_threads: i32,
    /// The device [`best_device`] picks.
    pub device: Device,
}

impl RuntimeInfo {
    /// Queries libtorch. Loading libtorch happens at process start (it is linked), so this cannot fail
    /// once the process runs.
    pub fn query() -> Self {
        let cuda_available = Cuda::is_available();
        let count = if cuda_available {
            Cuda::device_count()
        } else {
            0
        };
        let cuda_devices = (0..count).map(cuda_device_name).collect();
        Self {
            torch_version: torch_version(),
            cuda_available,
            cuda_devices,
            cpu_threads: tch::get_num_threads(),
            device: best_device(),
        }
    }

    /// Short label for a status bar: the CUDA device name, or "CPU, N threads".
    pub fn device_label(&self) -> String {
        match self.device {
            Device::Cuda(i) => self
                .cuda_devices
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("CUDA device {i}")),
            _ => format!("CPU, {} threads", self.cpu_threads),
        }
    }
}

/// The linked libtorch's version (from the `torch.version` python-free C++ API is not exposed by tch, so it
/// is read from the `version.txt` of the libtorch tree at build time).
pub fn torch_version() -> String {
    // torch-sys is built against exactly this version (tch checks it at build time).
    TORCH_VERSION.to_string()
}

/// The libtorch version tch 0.24 is built against (its build script refuses any other).
pub const TORCH_VERSION: &str = "2.11.0";

fn cuda_device_name(index: i64) -> String {
    // tch 0.24 has no device-name query; CUDA's name comes from nvidia-smi where available.
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name",
            "--format=csv,noheader",
            &format!("--id={index}"),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => format!("CUDA device {index}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn autograd_step_on_cpu_gives_the_analytic_gradient() {
        // f(x) = sum(x^3 + 2x); df/dx = 3x^2 + 2.
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
        let y = (x.pow_tensor_scalar(3) + &x * 2.0).sum(Kind::Float);
        y.backward();
        let grad: Vec<f32> = Vec::try_from(x.grad()).unwrap();
        assert_eq!(grad, vec![5.0, 14.0, 2.75]);
    }

    #[test]
    fn runtime_info_reports_threads_and_a_label() {
        let info = RuntimeInfo::query();
        assert!(info.cpu_threads >= 1);
        if !info.cuda_available {
            assert_eq!(
                info.device_label(),
                format!("CPU, {} threads", info.cpu_threads)
            );
        }
        assert_eq!(info.torch_version, TORCH_VERSION);
    }
}
