//! Peak GPU memory of a benchmark, sampled from `nvidia-smi` (the figure users see there).
//!
//! libtorch's allocator statistics are not exposed through tch, so the probe samples the whole
//! device's used memory every 10 ms in a child `nvidia-smi` process and keeps the maximum. It
//! includes the CUDA context (≈0.5 GiB), like the figures other tools report; on a CPU device,
//! or where `nvidia-smi` is missing, there is no probe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tch::Device;

/// A running sampler of one CUDA device's used memory.
#[derive(Debug)]
pub struct GpuMemoryProbe {
    child: Child,
    peak_mib: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl GpuMemoryProbe {
    /// Starts sampling `device`; `None` on the CPU or when `nvidia-smi` cannot be started.
    pub fn start(device: Device) -> Option<Self> {
        let Device::Cuda(index) = device else {
            return None;
        };
        let mut child = Command::new("nvidia-smi")
            .args([
                "--query-gpu=memory.used",
                "--format=csv,noheader,nounits",
                "-lms",
                "10",
                "-i",
                &index.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let peak_mib = Arc::new(AtomicU64::new(0));
        let peak = Arc::clone(&peak_mib);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mib) = line.trim().parse::<u64>() {
                    peak.fetch_max(mib, Ordering::Relaxed);
                }
            }
        });
        // Let the first sample land before the measured work starts.
        std::thread::sleep(std::time::Duration::from_millis(50));
        Some(Self {
            child,
            peak_mib,
            reader: Some(reader),
        })
    }

    /// Stops sampling; the peak used memory in MiB (None if no sample arrived).
    pub fn finish(mut self) -> Option<u64> {
        // One more sampling period, so the last allocation is seen.
        std::thread::sleep(std::time::Duration::from_millis(30));
        self.stop();
        let peak = self.peak_mib.load(Ordering::Relaxed);
        (peak > 0).then_some(peak)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for GpuMemoryProbe {
    fn drop(&mut self) {
        self.stop();
    }
}
