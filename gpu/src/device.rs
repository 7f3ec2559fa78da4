//! Compute-device selection and a description of the runtime (libtorch version, CUDA devices, threads).

use tch::{Cuda, Device};

/// The device every computation uses unless told otherwise: the first CUDA device when one is usable,
/// else the CPU. `VECDREAM_DEVICE=cpu` forces the CPU; `VECDREAM_DEVICE=cuda:N` picks a CUDA device.
/// A value [`device_from_env`] refuses is logged and ignored here; the binary checks it at start-up
/// and refuses to run with it.
pub fn best_device() -> Device {
    match device_from_env() {
        Ok(Some(device)) => device,
        Ok(None) => Device::cuda_if_available(),
        Err(e) => {
            tracing::error!("{e}; using the default device");
            Device::cuda_if_available()
        }
    }
}

/// The device `VECDREAM_DEVICE` asks for: `None` when it is unset or empty, an error naming the value
/// and what was expected when it cannot be used.
pub fn device_from_env() -> Result<Option<Device>, String> {
    match std::env::var("VECDREAM_DEVICE") {
        Ok(v) if !v.trim().is_empty() => {
            let cuda = if Cuda::is_available() {
                Cuda::device_count()
            } else {
                0
            };
            parse_device(v.trim(), cuda).map(Some)
        }
        _ => Ok(None),
    }
}

/// Parses a device name (`cpu`, `cuda`, `cuda:N`) against the number of usable CUDA devices.
pub fn parse_device(value: &str, cuda_devices: i64) -> Result<Device, String> {
    let bad = |why: String| Err(format!("VECDREAM_DEVICE={value}: {why}"));
    let index = match value.to_ascii_lowercase().as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:") {
            Some(n) => match n.parse::<usize>() {
                Ok(i) => i,
                Err(_) => {
                    return bad(format!(
                        "`{n}` is not a device number (expected cuda:0, cuda:1, …)"
                    ));
                }
            },
            None => return bad("expected cpu, cuda or cuda:N".into()),
        },
    };
    if (index as i64) < cuda_devices {
        Ok(Device::Cuda(index))
    } else if cuda_devices == 0 {
        bad("no CUDA device is usable here (libtorch sees none); use cpu".into())
    } else {
        bad(format!(
            "there are {cuda_devices} CUDA devices (cuda:0 … cuda:{})",
            cuda_devices - 1
        ))
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

/// The version of the libtorch actually loaded into this process (the binary runs against other
/// libtorch folders on GPU hosts, e.g. `2.11.0+cu130`), read from the folder of the mapped
/// `libtorch_cpu` library: `version.py` beside `lib/` in a PyTorch wheel, `build-version` in a
/// standalone libtorch. Falls back to the build-time version, marked as such, when neither is found.
pub fn torch_version() -> String {
    match loaded_torch_library() {
        Some(lib) => match version_near_library(&lib) {
            Some(v) => v,
            None => format!(
                "{TORCH_VERSION} (built against; no version file beside {})",
                lib.display()
            ),
        },
        None => format!("{TORCH_VERSION} (built against; loaded library not found)"),
    }
}

/// The path of the `libtorch_cpu` shared library mapped into this process (from `/proc/self/maps`;
/// `None` on systems without it).
pub fn loaded_torch_library() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    library_in_maps(&maps, "libtorch_cpu")
}

/// The first mapped file whose name starts with `stem` (e.g. `libtorch_cpu.so`), from the text of a
/// `/proc/PID/maps` file.
pub fn library_in_maps(maps: &str, stem: &str) -> Option<std::path::PathBuf> {
    maps.lines().find_map(|line| {
        let path = line.split_whitespace().nth(5)?;
        let name = std::path::Path::new(path).file_name()?.to_str()?;
        name.starts_with(stem)
            .then(|| std::path::PathBuf::from(path))
    })
}

/// The PyTorch version recorded in the installation that holds `lib` (a file in its `lib/` folder):
/// `../version.py` (`__version__ = '2.11.0+cu130'`) or `../build-version`.
pub fn version_near_library(lib: &std::path::Path) -> Option<String> {
    let root = lib.parent()?.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        let found = text.lines().find_map(|l| {
            let rest = l.trim().strip_prefix("__version__")?.trim_start();
            let rest = rest.strip_prefix('=')?.trim();
            let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let inner = &rest[1..];
            Some(inner[..inner.find(quote)?].to_string())
        });
        if found.is_some() {
            return found;
        }
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    let v = text.trim();
    (!v.is_empty()).then(|| v.to_string())
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
        // The version comes from the library this test process really loaded.
        let lib = loaded_torch_library().expect("libtorch_cpu is mapped into the test process");
        assert!(lib.is_file(), "{}", lib.display());
        assert!(
            info.torch_version.starts_with(TORCH_VERSION)
                && !info.torch_version.contains("built against"),
            "{} (library {})",
            info.torch_version,
            lib.display()
        );
    }

    #[test]
    fn device_names_parse_or_say_what_was_expected() {
        assert_eq!(parse_device("cpu", 0), Ok(Device::Cpu));
        assert_eq!(parse_device("CPU", 2), Ok(Device::Cpu));
        assert_eq!(parse_device("cuda", 1), Ok(Device::Cuda(0)));
        assert_eq!(parse_device("cuda:1", 2), Ok(Device::Cuda(1)));
        let e = parse_device("gpu", 1).unwrap_err();
        assert!(
            e.contains("VECDREAM_DEVICE=gpu") && e.contains("expected cpu, cuda or cuda:N"),
            "{e}"
        );
        let e = parse_device("cuda:2", 2).unwrap_err();
        assert!(
            e.contains("there are 2 CUDA devices (cuda:0 … cuda:1)"),
            "{e}"
        );
        let e = parse_device("cuda:0", 0).unwrap_err();
        assert!(e.contains("no CUDA device"), "{e}");
        let e = parse_device("cuda:x", 1).unwrap_err();
        assert!(e.contains("`x` is not a device number"), "{e}");
    }

    #[test]
    fn version_files_beside_a_libtorch_folder_are_read() {
        let dir = std::env::temp_dir().join(format!("vecdream-torchver-{}", std::process::id()));
        let wheel = dir.join("torch");
        std::fs::create_dir_all(wheel.join("lib")).unwrap();
        std::fs::write(
            wheel.join("version.py"),
            "from typing import Optional\n__version__ = '2.11.0+cu130'\ncuda: Optional[str] = '13.0'\n",
        )
        .unwrap();
        let lib = wheel.join("lib/libtorch_cpu.so");
        assert_eq!(version_near_library(&lib).as_deref(), Some("2.11.0+cu130"));
        let standalone = dir.join("libtorch");
        std::fs::create_dir_all(standalone.join("lib")).unwrap();
        std::fs::write(standalone.join("build-version"), "2.10.0+cpu\n").unwrap();
        assert_eq!(
            version_near_library(&standalone.join("lib/libtorch_cpu.so")).as_deref(),
            Some("2.10.0+cpu")
        );
        assert_eq!(
            version_near_library(&dir.join("none/lib/libtorch_cpu.so")),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let maps = "7f00-7f01 r-xp 00000000 08:01 42 /opt/t/lib/libc10.so\n\
                    7f02-7f03 r-xp 00000000 08:01 43 /opt/t/lib/libtorch_cpu.so\n";
        assert_eq!(
            library_in_maps(maps, "libtorch_cpu"),
            Some(std::path::PathBuf::from("/opt/t/lib/libtorch_cpu.so"))
        );
    }
}
