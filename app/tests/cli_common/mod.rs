//! Helpers shared by the CLI and batch tests: the real `vecdream` binary on real files in scratch folders.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

pub const BIN: &str = env!("CARGO_BIN_EXE_vecdream");

/// A fresh scratch folder under the target dir.
pub fn scratch(group: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `vecdream ARGS` on the CPU, outside any scheduler's environment.
pub fn vecdream() -> Command {
    let mut c = Command::new(BIN);
    c.env("VECDREAM_DEVICE", "cpu");
    for k in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
        "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_JOB_ID",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(k);
    }
    c
}

pub fn run(args: &[&str]) -> Output {
    vecdream().args(args).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "vecdream {args:?} failed:\n{}",
        text(&o)
    );
    o
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Copies test images next to the jobs file (`data/…`), so jobs use relative paths.
pub fn copy_test_images(dir: &Path) {
    let data = vecdream_core::testing::test_data_dir();
    let dst = dir.join("data");
    std::fs::create_dir_all(&dst).unwrap();
    for (from, to) in [
        ("svg/twemoji/1f499.svg", "blue.svg"),
        ("svg/twemoji/1f7e8.svg", "yellow.svg"),
        ("images/horse.png", "horse.png"),
        ("images/logo.png", "logo.png"),
    ] {
        std::fs::copy(data.join(from), dst.join(to)).unwrap();
    }
}

pub fn write_jobs(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("jobs.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

pub fn json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}\n{t}", path.display()))
}

/// The `runs.log` events of a job.
pub fn runs(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn starts(dir: &Path) -> Vec<serde_json::Value> {
    runs(dir)
        .into_iter()
        .filter(|e| e["event"] == "start")
        .collect()
}

/// Every regular file under `dir` (relative path → (mtime, bytes)), skipping `skip` names.
pub fn snapshot(
    dir: &Path,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, (SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for job in std::fs::read_dir(dir).unwrap().flatten() {
        if !job.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(job.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if f.path().is_file() && keep(&name) {
                let rel = format!("{}/{name}", job.file_name().to_string_lossy());
                let meta = f.metadata().unwrap();
                out.insert(
                    rel,
                    (meta.modified().unwrap(), std::fs::read(f.path()).unwrap()),
                );
            }
        }
    }
    out
}

/// The result files a job writes (same seeds → same bytes).
pub fn is_result(name: &str) -> bool {
    (name.starts_with("particle_") && name.ends_with(".svg"))
        || name == "vectorized.svg"
        || name == "loss.csv"
}

/// Asserts two batch outputs hold the same result files, byte for byte.
pub fn assert_same_results(a: &Path, b: &Path) {
    let sa = snapshot(a, is_result);
    let sb = snapshot(b, is_result);
    assert!(!sa.is_empty(), "no results in {}", a.display());
    let ka: Vec<_> = sa.keys().collect();
    let kb: Vec<_> = sb.keys().collect();
    assert_eq!(ka, kb, "different result files");
    for (k, (_, bytes)) in &sa {
        assert!(
            sb[k].1 == *bytes,
            "{k} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Waits until `cond` holds (polling every 20 ms) or panics after `secs` with `what`.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn checkpoint_step(dir: &Path) -> Option<u64> {
    let t = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&t).ok()?["step"].as_u64()
}

/// The `generate` field for a start document of ≈9 shapes: `cells` (a grid of squares) where the CLI
/// has `--cells`, else `paths` (the path budget of the style presets that replace it). The jobs file
/// takes whatever flags the CLI has, so the tests ask the binary which.
pub fn few_shapes() -> &'static str {
    static FIELD: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FIELD.get_or_init(|| {
        let help = ok(&["generate", "--help"]);
        if String::from_utf8_lossy(&help.stdout).contains("--cells") {
            r#""cells":3"#
        } else {
            r#""paths":9"#
        }
    })
}

/// A reference-teacher generate job of `particles` particles at `size` px.
pub fn generate_job_sized(
    id: &str,
    refs: &[&str],
    particles: u32,
    size: u32,
    steps: u32,
    seed: u32,
    extra: &str,
) -> String {
    let refs: Vec<String> = refs.iter().map(|r| format!("\"data/{r}\"")).collect();
    format!(
        r#"{{"kind":"generate","id":"{id}","reference":[{}],"particles":{particles},"steps":{steps},"size":{size},{},"seed":{seed}{extra}}}"#,
        refs.join(","),
        few_shapes()
    )
}

/// A tiny reference-teacher generate job: 2 particles at 32 px (≈0.2–0.5 s in a debug build).
pub fn generate_job(id: &str, refs: &[&str], steps: u32, seed: u32, extra: &str) -> String {
    generate_job_sized(id, refs, 2, 32, steps, seed, extra)
}

/// A tiny vectorize job.
pub fn vectorize_job(id: &str, image: &str, extra: &str) -> String {
    format!(
        r#"{{"kind":"vectorize","id":"{id}","input":"data/{image}","size":40,"steps":8,"paths":10{extra}}}"#
    )
}
