//! Peak resident memory of loading a UNet's weights with our streaming loader (and, for comparison,
//! tch's `VarStore::load`). The test command checks it on an SD1.5-shaped UNet at a fifth of the
//! channels (≈70 MB fp16); the full SD1.5 size (1.7 GB file, ~1 min) is a benchmark:
//! `cargo test -p vecdream-gpu --test sd_load_ram -- --ignored --nocapture`.
//! Peak RSS is process-wide, so this file holds nothing else that runs in the test command.

use vecdream_gpu::sd::{UNet2DConditionConfig, UNet2DConditionModel, loader};
use vecdream_gpu::tch::{Device, Kind, Tensor, nn};

/// `VmRSS` / `VmHWM` from /proc/self/status, in bytes.
fn proc_status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("field")
        * 1024
}

/// Resets the peak-RSS counter (Linux ≥ 4.0).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}

fn build(config: &UNet2DConditionConfig, kind: Kind) -> (nn::VarStore, UNet2DConditionModel) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    let unet = UNet2DConditionModel::new(vs.root(), config);
    (vs, unet)
}

#[test]
fn streaming_load_peaks_near_the_weights_size() {
    let mut config = UNet2DConditionConfig::sd15();
    config.block_out_channels = vec![64, 128, 256, 256];
    measure(&config, "small");
}

#[test]
#[ignore = "benchmark: writes a 1.7 GB file and prints both loaders' peak RAM"]
fn loading_ram_sd15_unet_fp16() {
    measure(&UNet2DConditionConfig::sd15(), "sd15");
}

fn measure(config: &UNet2DConditionConfig, name: &str) {
    let dir = std::env::temp_dir().join(format!("vecdream-sd-ram-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("diffusion_pytorch_model.safetensors");
    {
        let (vs, _unet) = build(config, Kind::Half);
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&named, &file).expect("write");
    }
    let size = std::fs::metadata(&file).expect("meta").len() as f64;
    let gb = |b: f64| b / 1e9;

    reset_peak();
    let before = proc_status("VmRSS:") as f64;
    let (vs, _unet) = build(config, Kind::Half);
    let built = proc_status("VmRSS:") as f64;
    loader::load_var_store(&vs, std::slice::from_ref(&file), &loader::rename_identity)
        .expect("load");
    let peak = proc_status("VmHWM:") as f64;
    eprintln!(
        "weights file {:.2} GB; streaming loader: variables {:.2} GB, peak over baseline {:.2} GB = {:.2}× the weights",
        gb(size),
        gb(built - before),
        gb(peak - before),
        (peak - before) / size
    );
    assert!(
        peak - before < 1.5 * size,
        "streaming loader used {:.2}× the weights",
        (peak - before) / size
    );
    drop(vs);

    reset_peak();
    let before = proc_status("VmRSS:") as f64;
    let (mut vs, _unet) = build(config, Kind::Half);
    vs.load(&file).expect("tch load");
    let peak = proc_status("VmHWM:") as f64;
    eprintln!(
        "tch VarStore::load: peak over baseline {:.2} GB = {:.2}× the weights",
        gb(peak - before),
        (peak - before) / size
    );
    drop(vs);
    let _ = std::fs::remove_dir_all(&dir);
}
