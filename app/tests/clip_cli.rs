//! `vecdream score` and `vecdream generate --reward` on the tiny CLIP fixture, run as a user would.

use std::path::{Path, PathBuf};

use vecdream_gpu::tch::{Kind, Tensor};

mod cli_common;
use cli_common::run;

fn scratch(name: &str) -> PathBuf {
    cli_common::scratch("clip_cli", name)
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip-gelu")
}

const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" viewBox="0 0 40 30">
<rect x="0" y="0" width="40" height="30" fill="#ffd400"/><circle cx="20" cy="15" r="9" fill="#1d3557"/></svg>"##;

fn golden_cosine() -> f64 {
    let g: std::collections::HashMap<String, Tensor> =
        vecdream_gpu::sd::loader::read_all(&fixture().join("golden.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    (&g["image_embeds_normalized"].get(0) * &g["text_embeds_normalized"].get(0))
        .sum(Kind::Double)
        .double_value(&[])
}

#[test]
fn score_prints_cosine_and_clip_score_per_file_and_names_bad_files() {
    let dir = scratch("score");
    let svg = dir.join("badge.svg");
    std::fs::write(&svg, SVG).unwrap();
    let broken = dir.join("broken.png");
    std::fs::write(&broken, b"not a png").unwrap();
    let png = fixture().join("input.png");
    let clip = fixture();
    let base = [
        "score",
        "--clip",
        clip.to_str().unwrap(),
        "--prompt",
        "a photo of a cat",
    ];
    let mut args = base.to_vec();
    args.extend([png.to_str().unwrap(), svg.to_str().unwrap()]);
    let out = run(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0][0], png.to_str().unwrap());
    assert_eq!(lines[1][0], svg.to_str().unwrap());
    for l in &lines {
        assert_eq!(l.len(), 3, "{l:?}");
        assert_eq!(
            l[1].split('.').nth(1).map(str::len),
            Some(6),
            "6 decimals: {l:?}"
        );
        let cos: f64 = l[1].parse().unwrap();
        let score: f64 = l[2].parse().unwrap();
        assert!((-1.0..=1.0).contains(&cos));
        assert!((score - 100.0 * cos.max(0.0)).abs() < 1e-3, "{l:?}");
    }
    // The PNG's cosine is transformers' (preprocessing included).
    let cos: f64 = lines[0][1].parse().unwrap();
    assert!(
        (cos - golden_cosine()).abs() < 2e-6,
        "{cos} vs {}",
        golden_cosine()
    );
    assert_ne!(lines[0][1], lines[1][1]);

    // Bad files: the good ones are still scored, each bad one is named, the exit status is an error.
    let missing = dir.join("missing.svg");
    let mut args = base.to_vec();
    args.extend([
        broken.to_str().unwrap(),
        png.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.png") && stderr.contains("missing.svg"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[test]
fn score_with_an_aesthetic_head_adds_a_column() {
    let dir = scratch("aesthetic");
    let head = dir.join("head.safetensors");
    let w = Tensor::ones([1, 16], (Kind::Float, vecdream_gpu::tch::Device::Cpu)) * 0.25;
    let b = Tensor::from_slice(&[3.0f32]);
    Tensor::write_safetensors(&[("weight", &w), ("bias", &b)], &head).unwrap();
    let png = fixture().join("input.png");
    let out = run(&[
        "score",
        "--clip",
        fixture().to_str().unwrap(),
        "--prompt",
        "a hamburger on a plate",
        "--aesthetic",
        head.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cols: Vec<&str> = stdout.trim_end().split('\t').collect();
    assert_eq!(cols.len(), 4, "{stdout}");
    // 3 + 0.25 · Σ ê over the fixture's golden normalised embedding.
    let g: std::collections::HashMap<String, Tensor> =
        vecdream_gpu::sd::loader::read_all(&fixture().join("golden.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let want = 3.0
        + 0.25
            * g["image_embeds_normalized"]
                .sum(Kind::Double)
                .double_value(&[]);
    let got: f64 = cols[3].parse().unwrap();
    assert!((got - want).abs() < 1e-3, "{got} vs {want}");
}

/// `vecdream generate` with the reference teacher, 2 particles, 32 px and a CLIP-score reward
/// every `every` steps, in scratch folder `name`; asserts success, returns (folder, output folder).
fn clipscore_run(name: &str, every: usize, steps: usize) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let init = dir.join("init.svg");
    std::fs::write(&init, SVG).unwrap();
    let out = dir.join("run");
    let spec = format!("clipscore:{}", fixture().display());
    let (every, steps) = (every.to_string(), steps.to_string());
    let o = run(&[
        "generate",
        "--reference",
        fixture().join("input.png").to_str().unwrap(),
        "--prompt",
        "a photo of a cat",
        "--reward",
        &spec,
        "--reward-every",
        &every,
        "--particles",
        "2",
        "--steps",
        &steps,
        "--size",
        "32",
        "--init",
        init.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, out)
}

#[test]
fn generate_with_a_clip_reward_runs_and_records_it() {
    let (dir, out) = clipscore_run("generate", 1, 2);
    let meta = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    assert!(meta.contains("clipscore:"), "{meta}");
    // A reward folder that is not a CLIP model fails before any work, naming it.
    let o = run(&[
        "generate",
        "--reference",
        fixture().join("input.png").to_str().unwrap(),
        "--prompt",
        "x",
        "--reward",
        "pickscore:/nonexistent/clip",
        "-o",
        dir.join("bad").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("/nonexistent/clip"),
        "{stderr}"
    );
}

#[test]
fn generate_with_clipdraw_alone_and_added_to_the_reference_teacher() {
    let dir = scratch("clipdraw");
    let clip = fixture();
    let out = dir.join("alone");
    let o = run(&[
        "generate",
        "--method",
        "clipdraw",
        "--clip",
        clip.to_str().unwrap(),
        "--prompt",
        "a red square",
        "--particles",
        "1",
        "--paths",
        "9",
        "--steps",
        "3",
        "--size",
        "48",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("particle_0.svg").is_file());
    let meta = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    assert!(meta.contains("clipdraw"), "{meta}");
    // Added to the reference teacher.
    let init = dir.join("init.svg");
    std::fs::write(&init, SVG).unwrap();
    let out = dir.join("added");
    let o = run(&[
        "generate",
        "--reference",
        fixture().join("input.png").to_str().unwrap(),
        "--clip",
        clip.to_str().unwrap(),
        "--clip-weight",
        "100",
        "--prompt",
        "a red square",
        "--particles",
        "1",
        "--steps",
        "2",
        "--size",
        "32",
        "--init",
        init.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    assert!(meta.contains("+clipdraw"), "{meta}");
    // clipdraw without --clip says what is missing.
    let o = run(&[
        "generate",
        "--method",
        "clipdraw",
        "--prompt",
        "x",
        "-o",
        dir.join("bad").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("--clip"), "{stderr}");
}

#[test]
fn vpsd_with_a_pickscore_reward_and_clipdraw_added_runs_and_resumes() {
    let dir = scratch("vpsd");
    let init = dir.join("init.svg");
    std::fs::write(&init, SVG).unwrap();
    let out = dir.join("run");
    let sd = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd21");
    let spec = format!("pickscore:{}", fixture().display());
    let args = |steps: &'static str, resume: bool| {
        let mut a = vec![
            "generate".to_string(),
            "--prompt".into(),
            "a red square".into(),
            "--model".into(),
            sd.display().to_string(),
            "--method".into(),
            "vpsd".into(),
            "--reward".into(),
            spec.clone(),
            "--reward-every".into(),
            "1".into(),
            "--clip".into(),
            fixture().display().to_string(),
            "--clip-weight".into(),
            "100".into(),
            "--particles".into(),
            "2".into(),
            "--steps".into(),
            steps.into(),
            "--size".into(),
            "64".into(),
            "--init".into(),
            init.display().to_string(),
            "-o".into(),
            out.display().to_string(),
        ];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let a = args("2", false);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    assert!(
        meta.contains("vpsd+clipdraw") && meta.contains("pickscore:"),
        "{meta}"
    );
    let a = args("3", true);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // Each particle's reward and CLIP score, on every step (--reward-every 1), resumed included.
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "step",
            "loss",
            "skipped",
            "shapes",
            "reward_0",
            "reward_1",
            "clip_score_0",
            "clip_score_1"
        ],
        "{csv}"
    );
    for (row, want_step) in lines.zip(1..) {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f.len(), header.len(), "{row}");
        assert_eq!(f[0].parse::<usize>().unwrap(), want_step, "{csv}");
        let nums: Vec<f64> = f[4..].iter().map(|v| v.parse().unwrap()).collect();
        assert!(nums.iter().all(|v| v.is_finite()), "{row}");
        // CLIP score is 100·max(cos, 0); PickScore exp(logit_scale)·cos.
        assert!(nums[2..].iter().all(|c| (0.0..=100.0).contains(c)), "{row}");
    }
}

#[test]
fn loss_csv_leaves_the_scores_empty_between_reward_steps() {
    let (_, out) = clipscore_run("every", 2, 3);
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0].len(), 8, "{csv}");
    assert_eq!(rows.len(), 4, "{csv}");
    for r in &rows[1..] {
        let step: usize = r[0].parse().unwrap();
        let scored = (step - 1).is_multiple_of(2);
        for v in &r[4..] {
            if scored {
                assert!(v.parse::<f64>().unwrap().is_finite(), "{csv}");
            } else {
                assert!(v.is_empty(), "{csv}");
            }
        }
        if scored {
            // The reward is the CLIP score here: the same numbers.
            assert_eq!(r[4..6], r[6..8], "{csv}");
        }
    }
}
