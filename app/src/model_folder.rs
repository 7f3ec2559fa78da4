//! Validation of a Stable Diffusion model folder (diffusers layout) with a human verdict.

use std::path::Path;

/// "found SD 2.1 base (…)" when `dir` looks like a usable diffusers folder, else why not (naming the
/// missing file or the bad key).
pub fn inspect(dir: &Path) -> Result<String, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a folder", dir.display()));
    }
    let index = dir.join("model_index.json");
    if !index.is_file() {
        return Err(format!(
            "{}: no model_index.json (expected a diffusers folder, e.g. stable-diffusion-2-1-base)",
            dir.display()
        ));
    }
    for part in ["tokenizer", "text_encoder", "unet", "vae", "scheduler"] {
        if !dir.join(part).is_dir() {
            return Err(format!("{}: missing the {part}/ folder", dir.display()));
        }
    }
    for part in ["text_encoder", "unet", "vae"] {
        let has_weights = std::fs::read_dir(dir.join(part))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
            .unwrap_or(false);
        if !has_weights {
            return Err(format!(
                "{}: no .safetensors weights (only safetensors are supported)",
                dir.join(part).display()
            ));
        }
    }
    let config_path = dir.join("unet/config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: cannot read: {e}", config_path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not valid JSON: {e}", config_path.display()))?;
    let cross = config["cross_attention_dim"].as_u64();
    let sample = config["sample_size"].as_u64().unwrap_or(64);
    let family = match cross {
        Some(768) => "SD 1.x".to_string(),
        Some(1024) if sample >= 96 => "SD 2.x (768)".to_string(),
        Some(1024) => "SD 2.x base".to_string(),
        Some(d) => format!("a UNet with cross_attention_dim {d}"),
        None => {
            return Err(format!(
                "{}: no cross_attention_dim key",
                config_path.display()
            ));
        }
    };
    Ok(format!("found {family}, {} px", sample * 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiny_fixtures_are_recognised_and_bad_folders_explained() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let sd21 = inspect(&fixtures.join("tiny-sd21")).unwrap();
        assert!(sd21.starts_with("found"), "{sd21}");
        let err = inspect(&fixtures).unwrap_err();
        assert!(err.contains("model_index.json"), "{err}");
        let err = inspect(Path::new("/no/such/dir")).unwrap_err();
        assert!(err.contains("not a folder"), "{err}");
    }
}
