//! Parity of the CLIP model, tokenizer and preprocessing with transformers on the tiny fixtures.
//!
//! `tests/fixtures/tiny-clip-quickgelu` (32 px, patch 8, a 24×20 input upsampled) and
//! `tiny-clip-gelu` (30 px, patch 6, a 45×37 input downsampled, `tokenizer.json`, pad `!`) hold
//! random tiny `CLIPModel`s and what transformers computed from them (`make_tiny_clip.py`).
//! Tolerance 1e-4 (max |Δ|, fp32 CPU), the preprocessing of the PNG included.

use std::collections::HashMap;
use std::path::PathBuf;

use vecdream_gpu::clip::{Clip, normalize, preprocess};
use vecdream_gpu::sd::loader;
use vecdream_gpu::tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;
const FIXTURES: [&str; 2] = ["tiny-clip-quickgelu", "tiny-clip-gelu"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn golden(name: &str) -> HashMap<String, Tensor> {
    loader::read_all(&fixture(name).join("golden.safetensors"))
        .expect("golden tensors")
        .into_iter()
        .collect()
}

fn prompts(name: &str) -> Vec<String> {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
            .unwrap();
    j["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn check(fixture_name: &str, what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{fixture_name} {what}: shapes");
    let d = (ours.to_kind(Kind::Double) - theirs.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    eprintln!("{fixture_name} {what}: max |Δ| = {d:.2e}");
    assert!(d < TOL, "{fixture_name} {what}: max |Δ| = {d} ≥ {TOL}");
}

#[test]
fn preprocessing_of_the_png_matches_transformers() {
    for name in FIXTURES {
        let g = golden(name);
        let clip = Clip::load(&fixture(name), Device::Cpu).unwrap();
        let (w, h, rgb) = preprocess::read_rgb8(&fixture(name).join("input.png")).unwrap();
        let ours = clip.preprocess.pixel_values_rgb8(w, h, &rgb);
        check(name, "pixel_values", &ours, &g["pixel_values"]);
    }
}

#[test]
fn tokens_match_transformers() {
    for name in FIXTURES {
        let g = golden(name);
        let clip = Clip::load(&fixture(name), Device::Cpu).unwrap();
        let p = prompts(name);
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        let ours = clip.tokenize(&refs);
        assert!(
            ours.equal(&g["input_ids"]),
            "{name}: token ids differ from transformers"
        );
    }
}

#[test]
fn embeddings_and_logits_match_transformers() {
    for name in FIXTURES {
        let g = golden(name);
        let clip = Clip::load(&fixture(name), Device::Cpu).unwrap();
        let _guard = vecdream_gpu::tch::no_grad_guard();
        // The image side from the PNG, through our preprocessing.
        let image = clip
            .file_features(&fixture(name).join("input.png"))
            .unwrap();
        let pooled = clip.model.image_pooled(&g["pixel_values"]);
        check(name, "image pooled", &pooled, &g["image_pooled"]);
        check(name, "image embeds", &image, &g["image_embeds"]);
        check(
            name,
            "image embeds (normalised)",
            &normalize(&image),
            &g["image_embeds_normalized"],
        );
        let p = prompts(name);
        let refs: Vec<&str> = p.iter().map(String::as_str).collect();
        let text = clip.text_features(&refs);
        let text_pooled = clip
            .model
            .text_pooled(&g["input_ids"], clip.tokenizer.eos_id);
        check(name, "text pooled", &text_pooled, &g["text_pooled"]);
        check(name, "text embeds", &text, &g["text_embeds"]);
        check(
            name,
            "text embeds (normalised)",
            &normalize(&text),
            &g["text_embeds_normalized"],
        );
        let logits = clip.model.logits_per_image(&image, &text);
        check(name, "logits_per_image", &logits, &g["logits_per_image"]);
    }
}

#[test]
fn errors_name_the_file_and_the_key() {
    let dir = std::env::temp_dir().join(format!("vecdream-clip-errors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = fixture("tiny-clip-gelu");
    for f in [
        "config.json",
        "preprocessor_config.json",
        "vocab.json",
        "merges.txt",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let e = Clip::load(&dir, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // Weights without one tensor: the error names the file and the key.
    let mut tensors = loader::read_all(&src.join("model.safetensors")).unwrap();
    tensors.retain(|(k, _)| k != "vision_model.post_layernorm.weight");
    Tensor::write_safetensors(&tensors, dir.join("model.safetensors")).unwrap();
    let e = Clip::load(&dir, Device::Cpu).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("vision_model.post_layernorm.weight"),
        "{e}"
    );
    // A config that does not fit the weights.
    let cfg = std::fs::read_to_string(src.join("config.json"))
        .unwrap()
        .replace("\"patch_size\": 6", "\"patch_size\": 5");
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let e = Clip::load(&dir, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("vision_model.embeddings"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
