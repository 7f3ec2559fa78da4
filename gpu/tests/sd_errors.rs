//! Loading errors name the file and the key.

use std::path::{Path, PathBuf};

use vecdream_gpu::sd::{SdError, StableDiffusion, loader};
use vecdream_gpu::tch::{Device, Kind, Tensor};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd15")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vecdream-sd-err-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture(), &dir);
    dir
}

fn load(dir: &Path) -> Result<StableDiffusion, SdError> {
    StableDiffusion::load(dir, Device::Cpu, Kind::Float)
}

#[test]
fn missing_folder_is_named() {
    let err = load(Path::new("/nonexistent/sd")).unwrap_err();
    assert!(
        matches!(&err, SdError::MissingFolder { path, .. } if path == Path::new("/nonexistent/sd")),
        "{err}"
    );
    let dir = scratch("nounet");
    std::fs::remove_dir_all(dir.join("unet")).expect("rm");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::MissingFolder { path, .. } if path.ends_with("unet")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_weights_file_is_named() {
    let dir = scratch("nofile");
    std::fs::remove_file(dir.join("vae/diffusion_pytorch_model.safetensors")).expect("rm");
    let err = load(&dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("vae/diffusion_pytorch_model.safetensors"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let dir = scratch("tensor");
    let file = dir.join("unet/diffusion_pytorch_model.safetensors");
    let all = loader::read_all(&file).expect("read");
    let key = "mid_block.attentions.0.proj_in.weight";
    let kept: Vec<(String, Tensor)> = all
        .iter()
        .filter(|(k, _)| k != key)
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect();
    Tensor::write_safetensors(&kept, &file).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::MissingTensor { key: k, path, .. } if k == key && path == &file),
        "{err}"
    );

    let changed: Vec<(String, Tensor)> = all
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                if k == key {
                    t.narrow(0, 0, 1).contiguous()
                } else {
                    t.shallow_clone()
                },
            )
        })
        .collect();
    Tensor::write_safetensors(&changed, &file).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::Shape { key: k, .. } if k == key),
        "{err}"
    );

    let ints: Vec<(String, Tensor)> = all
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                if k == key {
                    t.to_kind(Kind::Int)
                } else {
                    t.shallow_clone()
                },
            )
        })
        .collect();
    Tensor::write_safetensors(&ints, &file).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::DType { key: k, .. } if k == key),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unsupported_config_is_named() {
    let dir = scratch("config");
    let cfg = dir.join("unet/config.json");
    let text = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("\"silu\"", "\"mish\"");
    std::fs::write(&cfg, text).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::Unsupported { key, path, .. } if key == "act_fn" && path == &cfg),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_or_garbled_safetensors_are_named() {
    let dir = scratch("truncated");
    let file = dir.join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&file).expect("read");
    // Cut in the data section: the header's offsets do not fit the file.
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::Safetensors { path, message } if path == &file && message.contains("tensor `")),
        "{err}"
    );
    // Cut inside the 8-byte length or the header itself.
    for keep in [5usize, 100] {
        std::fs::write(&file, &bytes[..keep]).expect("write");
        let err = load(&dir).unwrap_err();
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
    // A header that is not JSON.
    let mut garbled = bytes.clone();
    garbled[8] = b'#';
    std::fs::write(&file, &garbled).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::Json { path, .. } if path == &file),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_extra_tensor_is_named() {
    let dir = scratch("extra");
    let file = dir.join("vae/diffusion_pytorch_model.safetensors");
    let mut all = loader::read_all(&file).expect("read");
    all.push((
        "decoder.extra_block.weight".into(),
        Tensor::zeros([3], (Kind::Float, Device::Cpu)),
    ));
    Tensor::write_safetensors(&all, &file).expect("write");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::UnexpectedTensor { path, key, count: 1 } if path == &file && key == "decoder.extra_block.weight"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_that_does_not_match_the_weights_names_the_tensor() {
    let edit = |dir: &Path, from: &str, to: &str| {
        let cfg = dir.join("unet/config.json");
        let text = std::fs::read_to_string(&cfg).expect("read");
        assert!(text.contains(from), "{from} not in the fixture's config");
        std::fs::write(&cfg, text.replacen(from, to, 1)).expect("write");
    };
    let weights = |dir: &Path| dir.join("unet/diffusion_pytorch_model.safetensors");
    // A wider cross-attention: the key and value projections have the wrong shape.
    let dir = scratch("cross");
    edit(
        &dir,
        "\"cross_attention_dim\": 32",
        "\"cross_attention_dim\": 48",
    );
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::Shape { path, key, .. } if path == &weights(&dir) && key.contains("attn2.to_k")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Fewer layers: the weights of the dropped layers are unexpected.
    let dir = scratch("layers");
    edit(&dir, "\"layers_per_block\": 2", "\"layers_per_block\": 1");
    let err = load(&dir).unwrap_err();
    assert!(
        matches!(&err, SdError::UnexpectedTensor { path, key, .. } if path == &weights(&dir) && key.contains(".1.")),
        "{err}"
    );
    assert!(err.to_string().contains("config.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_config_that_is_not_json_is_named() {
    for sub in ["unet", "vae", "text_encoder", "scheduler"] {
        let dir = scratch(&format!("json-{sub}"));
        let cfg = if sub == "scheduler" {
            dir.join("scheduler/scheduler_config.json")
        } else {
            dir.join(sub).join("config.json")
        };
        std::fs::write(&cfg, b"{ \"act_fn\": silu, ").expect("write");
        let err = load(&dir).unwrap_err();
        assert!(
            matches!(&err, SdError::Json { path, .. } if path == &cfg),
            "{sub}: {err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
