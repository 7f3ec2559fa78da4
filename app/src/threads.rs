//! CPU threading policy: libtorch's OpenMP threads sleep instead of spinning while they wait, and the
//! editor's worker leaves a core for the UI, so a busy laptop (a browser, a build) slows vecdream down
//! by its fair share rather than collapsing it.
//!
//! GNU OpenMP reads `OMP_WAIT_POLICY` once, when the library loads — before `main` runs — so the
//! binary re-executes itself with the policy set when the environment does not already choose one.

use std::os::unix::process::CommandExt as _;

/// Set on the re-executed process so it never loops.
const MARK: &str = "VECDREAM_THREAD_POLICY";

/// Re-executes this binary with `OMP_WAIT_POLICY=PASSIVE` unless the environment sets a policy (then it
/// is respected). Returns only when no re-exec happens (or it failed, with a warning).
pub fn ensure_passive_wait_policy() {
    if std::env::var_os("OMP_WAIT_POLICY").is_some() || std::env::var_os(MARK).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .env(MARK, "1")
        .exec();
    tracing::warn!("could not re-execute with OMP_WAIT_POLICY=PASSIVE ({err}); threads may spin");
}

/// Threads for the editor's worker: all cores but one (left to the UI), at least one;
/// `VECDREAM_THREADS` overrides.
pub fn worker_threads() -> i32 {
    if let Some(n) = std::env::var("VECDREAM_THREADS")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n >= 1)
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
    (cores - 1).max(1)
}
