//! Replays every fuzz seed (`fuzz/seeds/<target>/*`) through the fuzz targets' own entry points
//! (`vecdream_app::fuzz_entry`), with no fuzzer: each seed whole, cut at eight lengths and with
//! eight single bytes flipped. None may panic; the real files among them must still be accepted
//! and the hostile ones refused.

use std::path::{Path, PathBuf};

use vecdream_app::fuzz_entry::{TARGETS, run};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds")
}

/// The seed, then deterministic variants of it: prefixes and single-byte flips.
fn variants(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("whole".to_string(), bytes.to_vec())];
    let n = bytes.len();
    for k in 1..=8 {
        let cut = n * k / 9;
        out.push((format!("cut at {cut}"), bytes[..cut].to_vec()));
    }
    for k in 0..8 {
        if n == 0 {
            break;
        }
        let at = (n * (2 * k + 1) / 16).min(n - 1);
        let mut b = bytes.to_vec();
        b[at] ^= 0x5a;
        out.push((format!("byte {at} flipped"), b));
    }
    out
}

#[test]
fn every_fuzz_seed_and_its_variants_replay_without_a_panic() {
    let mut outcomes = std::collections::HashMap::new();
    let mut count = 0;
    for target in TARGETS {
        let dir = seeds_dir().join(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for (what, data) in variants(&bytes) {
                let result = std::panic::catch_unwind(|| run(target, &data));
                match result {
                    Ok(Some(accepted)) => {
                        if what == "whole" {
                            let name = file.file_name().unwrap().to_string_lossy().into_owned();
                            outcomes.insert(name, accepted);
                        }
                    }
                    Ok(None) => panic!("unknown target {target}"),
                    Err(_) => panic!("{target} panicked on {} ({what})", file.display()),
                }
                count += 1;
            }
        }
    }
    eprintln!("{count} inputs replayed");
    for accepted in [
        "1f989.svg",
        "owl.svgz",
        "hrefs-and-hidden.svg",
        "horse.png",
        "rocket-32.jpg",
        "logo-gray-alpha.png",
        "tiny.safetensors",
        "bf16-u8-bool.safetensors",
        "sd15-unet.json",
        "sd15-scheduler.json",
        "two-particles.json",
    ] {
        assert_eq!(
            outcomes.get(accepted),
            Some(&true),
            "{accepted} was not accepted"
        );
    }
    for refused in ["bomb-30000.png", "truncated.safetensors", "bad-lines.jsonl"] {
        assert_eq!(
            outcomes.get(refused),
            Some(&false),
            "{refused} was not refused"
        );
    }
}
