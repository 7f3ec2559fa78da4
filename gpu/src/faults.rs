//! Allocation failures: recognising libtorch's out-of-memory errors (CUDA and CPU), turning them
//! into an error that names the remedy, and a fault hook that makes a run request an impossible
//! buffer from the real allocator, so the path is tested with a real failed allocation.
//!
//! The hook: with `VECDREAM_FAULT_ALLOC=BYTES@STEP` in the environment, [`inject`] allocates a
//! `BYTES`-byte tensor on the run's device before every step from `STEP` on (e.g.
//! `1152921504606846976@3`, 2⁶⁰ bytes, fails on every machine). Unset, it does nothing.

use tch::{Device, Kind, Tensor};

/// What the user can do about an out-of-memory failure.
pub const OUT_OF_MEMORY_REMEDY: &str = "Remedy: fewer particles (--particles), a smaller render size (--size), \
or fp16 (Stable Diffusion runs in fp16 on CUDA by default; give the model folder *.fp16.safetensors weights)";

/// The environment variable of the fault hook.
pub const FAULT_ALLOC_VAR: &str = "VECDREAM_FAULT_ALLOC";

/// True if `message` (a libtorch error or panic text) reports a failed allocation.
pub fn is_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "out of memory",
        "not enough memory",
        "can't allocate memory",
        "cannot allocate memory",
        "bad_alloc",
        "failed to allocate",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The first line of an allocator's message, without libtorch's C++ backtrace (the frames after
/// it), the `unwrap` wrapping of a panic and a final full stop.
pub fn summary(message: &str) -> String {
    let mut m = message;
    if let Some(i) = m.find("Torch(\"") {
        m = &m[i + "Torch(\"".len()..];
        m = m.strip_suffix("\")").unwrap_or(m);
    }
    // A panic payload is the error's Debug text, whose newlines are the two characters `\n`.
    for end in ["\\n", "\n", " (Exception raised from"] {
        if let Some(i) = m.find(end) {
            m = &m[..i];
        }
    }
    let m = m.trim().trim_end_matches('.').trim();
    if m.is_empty() {
        "allocation failed".into()
    } else {
        m.to_string()
    }
}

/// The fault hook's `(bytes, from_step)`, if set and well-formed.
pub fn fault_alloc() -> Option<(i64, usize)> {
    let v = std::env::var(FAULT_ALLOC_VAR).ok()?;
    let (bytes, step) = v.split_once('@').unwrap_or((&v, "0"));
    Some((bytes.trim().parse().ok()?, step.trim().parse().ok()?))
}

/// The fault hook: before step `step` (0-based) allocates the requested buffer on `device` when
/// [`FAULT_ALLOC_VAR`] asks for it; the allocator's error is returned as it is.
pub fn inject(step: usize, device: Device) -> Result<(), tch::TchError> {
    if let Some((bytes, from)) = fault_alloc()
        && step >= from
    {
        let mut t = Tensor::f_empty([bytes], (Kind::Uint8, device))?;
        // Touch it, so a lazily committed allocation fails here too.
        let _ = t.f_fill_(1)?;
    }
    Ok(())
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_cuda_and_cpu_allocator_messages() {
        assert!(is_out_of_memory(
            "CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.10 GiB total capacity)"
        ));
        assert!(is_out_of_memory(
            "DefaultCPUAllocator: not enough memory: you tried to allocate 1152921504606846976 bytes."
        ));
        assert!(!is_out_of_memory("shape mismatch: [2, 3] vs [3, 2]"));
        assert_eq!(
            summary(
                r#"called `Result::unwrap()` on an `Err` value: Torch("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes. Error code 12\nframe #0: c10")"#
            ),
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes. Error code 12"
        );
        assert_eq!(
            summary(
                "DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes.\nException raised from alloc_cpu at …\nframe #0: …"
            ),
            "DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes"
        );
    }

    #[test]
    fn an_impossible_cpu_allocation_fails_with_an_out_of_memory_error() {
        let e = Tensor::f_empty([1i64 << 60], (Kind::Uint8, Device::Cpu))
            .and_then(|mut t| t.f_fill_(1))
            .unwrap_err();
        assert!(is_out_of_memory(&e.to_string()), "{e}");
    }
}
