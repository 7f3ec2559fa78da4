//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`) and of the seed-corpus replay test
//! (`app/tests/fuzz_seeds.rs`): each feeds arbitrary bytes to one of vecdream's readers of
//! untrusted input, through the same functions the program uses, and says whether they were
//! accepted. None may panic. Readers that take a path get the bytes in a temporary file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use vecdream_core::{Document, SvgOptions};

/// The fuzz targets, by name (also the folders under `fuzz/seeds/`).
pub const TARGETS: [&str; 6] = [
    "import_svg",
    "decode_image",
    "safetensors_header",
    "model_config",
    "checkpoint_meta",
    "jobs_file",
];

/// Runs target `name` on `data`: `Some(true)` if the input was accepted, `Some(false)` if it was
/// refused with an error, `None` for an unknown target.
pub fn run(name: &str, data: &[u8]) -> Option<bool> {
    Some(match name {
        "import_svg" => import_svg(data),
        "decode_image" => decode_image(data),
        "safetensors_header" => safetensors_header(data),
        "model_config" => model_config(data),
        "checkpoint_meta" => checkpoint_meta(data),
        "jobs_file" => jobs_file(data),
        _ => return None,
    })
}

/// A temporary file holding `data`, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vecdream-fuzz-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("creating a temporary folder");
        let path = dir.join(name);
        std::fs::write(&path, data).expect("writing a temporary file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// SVG import (and what imports must export and import again).
pub fn import_svg(data: &[u8]) -> bool {
    let Ok(import) = Document::from_svg_bytes(data, "fuzz.svg") else {
        return false;
    };
    let svg = import.document.to_svg_string(&SvgOptions::default());
    if let Err(e) = Document::from_svg_str(&svg, "fuzz-export.svg") {
        panic!("export of an imported document does not re-import: {e}\n{svg}");
    }
    true
}

/// The image loader (limits included) and the vectoriser's decoding at a 64-px working size.
pub fn decode_image(data: &[u8]) -> bool {
    let path = Path::new("fuzz.png");
    let Ok(img) = vecdream_gpu::vectorize::decode_limited(data, path) else {
        return false;
    };
    let loaded = vecdream_gpu::vectorize::decode_image(data, path, 64).unwrap_or_else(|e| {
        panic!(
            "decoded once ({}x{}), then not: {e}",
            img.width(),
            img.height()
        )
    });
    assert!(loaded.image.width.max(loaded.image.height) == 64);
    true
}

/// A safetensors file: its header, then every tensor read into CPU tensors.
pub fn safetensors_header(data: &[u8]) -> bool {
    let f = TempFile::new("model.safetensors", data);
    use vecdream_gpu::sd::loader;
    loader::read_header(&f.0).is_ok() && loader::read_all(&f.0).is_ok()
}

/// The four diffusers configs (UNet, VAE, CLIP text encoder, scheduler) on the same bytes.
pub fn model_config(data: &[u8]) -> bool {
    use vecdream_gpu::sd::config::{
        ClipTextConfig, SchedulerConfig, UNet2DConditionConfig, VaeConfig,
    };
    let f = TempFile::new("config.json", data);
    let unet = UNet2DConditionConfig::from_file(&f.0).is_ok();
    let vae = VaeConfig::from_file(&f.0).is_ok();
    let clip = ClipTextConfig::from_file(&f.0).is_ok();
    let sched = SchedulerConfig::from_file(&f.0).is_ok();
    unet || vae || clip || sched
}

/// A checkpoint's JSON metadata, as `--resume` reads it.
pub fn checkpoint_meta(data: &[u8]) -> bool {
    let f = TempFile::new("checkpoint.json", data);
    vecdream_gpu::distill::Distiller::read_checkpoint_meta(&f.0.with_extension("safetensors"))
        .is_ok()
}

/// A batch jobs file, every line checked by the CLI's own definitions.
pub fn jobs_file(data: &[u8]) -> bool {
    let f = TempFile::new("jobs.jsonl", data);
    crate::batch::jobs::JobsFile::load(&f.0).is_ok()
}
