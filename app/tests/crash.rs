//! Crash recovery of `vecdream generate`, with the built binary: a run killed with SIGKILL between
//! checkpoints resumes from its last checkpoint and ends exactly as an uninterrupted run does;
//! damaged and mismatched checkpoints are refused with an error that names the file and what does
//! not fit.

use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vecdream");

fn shared(rel: &str) -> PathBuf {
    vecdream_core::testing::test_data_dir().join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("crash")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `vecdream generate` on two Twemoji references, 2 particles at 32 px; `extra` replaces flag values.
fn generate_args(out: &Path, steps: usize, every: usize, extra: &[(&str, &str)]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "generate".into(),
        "--reference".into(),
        shared("svg/twemoji/1f499.svg").display().to_string(),
        shared("svg/twemoji/1f7e8.svg").display().to_string(),
        "--particles".into(),
        "2".into(),
        "--steps".into(),
        steps.to_string(),
        "--size".into(),
        "32".into(),
        "--paths".into(),
        "12".into(),
        "--checkpoint-every".into(),
        every.to_string(),
        "--seed".into(),
        "3".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    for (flag, value) in extra {
        let p = a
            .iter()
            .position(|x| x == flag)
            .expect("a flag the base command has");
        a[p + 1] = value.to_string();
    }
    a
}

fn command(args: &[String]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("VECDREAM_DEVICE", "cpu");
    c
}

fn run(args: &[String]) -> Output {
    command(args).output().unwrap()
}

fn ok(args: &[String]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "vecdream {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn fails(args: &[String]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "vecdream {args:?} succeeded:\n{err}");
    assert!(
        !err.contains("panicked"),
        "a panic instead of an error:\n{err}"
    );
    err
}

/// The step of the checkpoint's JSON copy in `dir`, if one is there.
fn checkpoint_step(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("step")?.as_u64().map(|s| s as usize)
}

/// Complete rows in loss.csv (0 while it does not exist), read while the run may be writing it.
fn logged_rows(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("loss.csv"))
        .map_or(0, |t| t.matches('\n').count().saturating_sub(1))
}

fn logged_steps(dir: &Path) -> Vec<usize> {
    let rows = std::fs::read_to_string(dir.join("loss.csv")).unwrap();
    assert_eq!(rows.lines().next(), Some("step,loss,skipped,shapes"));
    rows.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_run_killed_with_sigkill_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one() {
    const STEPS: usize = 80;
    const EVERY: usize = 3;
    const KILL_AFTER: usize = 12;
    let dir = scratch("kill");
    let whole = dir.join("uninterrupted");
    let killed = dir.join("killed");
    ok(&generate_args(&whole, STEPS, EVERY, &[]));

    let log = std::fs::File::create(dir.join("killed-stderr.txt")).unwrap();
    let started = Instant::now();
    let mut child = command(&generate_args(&killed, STEPS, EVERY, &[]))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Kill it once a checkpoint of step ≥ KILL_AFTER is on disk and a step after it is logged
    // (between two checkpoints, so loss.csv holds rows the checkpoint does not).
    loop {
        if let Some(s) = checkpoint_step(&killed).filter(|&s| s >= KILL_AFTER)
            && logged_rows(&killed) > s
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the run ended ({status}) before a checkpoint of step {KILL_AFTER}:\n{}",
                std::fs::read_to_string(dir.join("killed-stderr.txt")).unwrap()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no checkpoint of step {KILL_AFTER} after 300 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    let s = checkpoint_step(&killed).unwrap();
    let logged_at_kill = logged_rows(&killed);
    assert!(
        (KILL_AFTER..STEPS).contains(&s),
        "checkpoint step {s} after the kill (run of {STEPS} steps)"
    );
    eprintln!(
        "killed at a checkpoint of step {s} of {STEPS} with {logged_at_kill} loss rows logged"
    );

    let mut resume = generate_args(&killed, STEPS, EVERY, &[]);
    resume.push("--resume".into());
    let err = ok(&resume);
    assert!(err.contains(&format!("resuming from step {s}\n")), "{err}");
    assert!(s > 0);
    // Every step once, in order: rows logged after the checkpoint were rewound, nothing restarted.
    assert_eq!(logged_steps(&killed), (1..=STEPS).collect::<Vec<_>>());
    // And the run is the uninterrupted one: same losses, same particles, byte for byte.
    for f in ["loss.csv", "particle_0.svg", "particle_1.svg"] {
        assert!(
            std::fs::read(whole.join(f)).unwrap() == std::fs::read(killed.join(f)).unwrap(),
            "{f} differs from the uninterrupted run's"
        );
    }
}

#[test]
fn damaged_and_mismatched_checkpoints_are_refused_with_the_file_and_what_does_not_fit() {
    let dir = scratch("refuse");
    let out = dir.join("run");
    ok(&generate_args(&out, 8, 4, &[]));
    let ckpt = out.join("checkpoint.safetensors");
    let name = ckpt.display().to_string();
    let resume = |extra: &[(&str, &str)]| {
        let mut a = generate_args(&out, 8, 4, extra);
        a.push("--resume".into());
        a
    };

    // Another particle count, size or path budget: refused, naming the file and the flag.
    for (flag, now, was) in [
        ("--particles", "3", "2"),
        ("--size", "48", "32"),
        ("--paths", "20", "12"),
        ("--seed", "4", "3"),
    ] {
        let err = fails(&resume(&[(flag, now)]));
        assert!(err.contains(&name), "{err}");
        assert!(
            err.contains(&format!(
                "{flag} is {now} here but {was} in the checkpoint's run"
            )),
            "{err}"
        );
    }
    // Other references are another run too.
    let mut other = resume(&[]);
    let i = other.iter().position(|a| a.ends_with("1f7e8.svg")).unwrap();
    other[i] = shared("svg/twemoji/1f989.svg").display().to_string();
    let err = fails(&other);
    assert!(err.contains(&name) && err.contains("--reference"), "{err}");

    // A damaged JSON copy does not matter: the safetensors file carries its own metadata.
    std::fs::write(out.join("checkpoint.json"), b"{ not json").unwrap();
    let err = ok(&resume(&[]));
    assert!(err.contains("resuming from step 8\n"), "{err}");

    // A truncated safetensors file is refused, naming it.
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&resume(&[]));
    assert!(err.contains(&name) && err.contains("truncated"), "{err}");
    // So is a file that is not safetensors at all.
    std::fs::write(&ckpt, b"\x10\0\0\0\0\0\0\0{\"a\":1}").unwrap();
    let err = fails(&resume(&[]));
    assert!(
        err.contains(&name) && err.contains("not a complete safetensors"),
        "{err}"
    );
    // And a missing one.
    std::fs::remove_file(&ckpt).unwrap();
    let err = fails(&resume(&[]));
    assert!(err.contains(&name) && err.contains("not found"), "{err}");
}

#[test]
fn an_impossible_allocation_stops_generate_with_the_remedy_and_keeps_the_last_checkpoint() {
    let dir = scratch("oom");
    let out = dir.join("run");
    ok(&generate_args(&out, 8, 4, &[]));
    let kept: Vec<(PathBuf, Vec<u8>)> = [
        "particle_0.svg",
        "particle_1.svg",
        "particle_0.png",
        "checkpoint.safetensors",
    ]
    .iter()
    .map(|f| (out.join(f), std::fs::read(out.join(f)).unwrap()))
    .collect();
    // Resume toward 12 steps; before the 10th the fault hook asks the CPU allocator for 2⁶⁰ bytes.
    let mut resume = generate_args(&out, 12, 4, &[]);
    resume.push("--resume".into());
    let res = command(&resume)
        .env("VECDREAM_FAULT_ALLOC", "1152921504606846976@9")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{err}");
    for part in [
        "out of memory",
        "fewer particles (--particles)",
        "smaller render size (--size)",
        "fp16",
    ] {
        assert!(err.contains(part), "no `{part}` in:\n{err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("frame #"),
        "{err}"
    );
    // The results and the checkpoint of the last good state are untouched ...
    for (path, bytes) in &kept {
        assert!(
            &std::fs::read(path).unwrap() == bytes,
            "{} changed",
            path.display()
        );
    }
    // ... and the run goes on from there once it fits.
    let err = ok(&resume);
    assert!(err.contains("resuming from step 8\n"), "{err}");
    assert_eq!(logged_steps(&out), (1..=12).collect::<Vec<_>>());
}
