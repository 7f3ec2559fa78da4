//! LoRA on the tiny SD1.5 fixture: scale 0 is the base model, training changes only LoRA weights
//! and lowers a denoising loss, and adapters survive a save/load round trip.

use std::path::PathBuf;

use vecdream_gpu::sd::{Lora, LoraConfig, StableDiffusion};
use vecdream_gpu::tch::{self, Device, Kind, Tensor, nn, nn::OptimizerConfig as _};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-sd15")
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, t)| (k, t.detach().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

struct Batch {
    noisy: Tensor,
    noise: Tensor,
    t: Tensor,
    text: Tensor,
}

fn batch(sd: &StableDiffusion) -> Batch {
    let mut rng = vecdream_gpu::rng::Rng::new(7);
    let latents = rng.normal_tensor(&[2, 4, 16, 16], Device::Cpu);
    let noise = rng.normal_tensor(&[2, 4, 16, 16], Device::Cpu);
    let t = Tensor::from_slice(&[100i64, 600]);
    let noisy = sd
        .scheduler
        .add_noise(&latents, &noise, &t)
        .expect("add_noise");
    let text = sd.encode_prompt(&["a photo of a cat", "a corgi"]);
    Batch {
        noisy,
        noise,
        t,
        text,
    }
}

#[test]
fn lora_scale_zero_is_base_and_training_touches_only_lora() {
    let mut sd = StableDiffusion::load(&fixture(), Device::Cpu, Kind::Float).expect("load");
    let b = batch(&sd);
    let base = tch::no_grad(|| sd.unet.forward(&b.noisy, &b.t, &b.text, 0.0)).expect("unet");
    let base_vars = snapshot(&sd.unet_vs);

    let mut lora = Lora::attach(&mut sd.unet, Device::Cpu, LoraConfig::default());
    assert!(lora.num_parameters() > 0);
    let scale0 = tch::no_grad(|| sd.unet.forward(&b.noisy, &b.t, &b.text, 0.0)).expect("unet");
    assert_eq!(scale0, base, "scale 0 must be exactly the base UNet");

    let loss_fn = |sd: &StableDiffusion| {
        let pred = sd.unet.forward(&b.noisy, &b.t, &b.text, 1.0).expect("unet");
        pred.mse_loss(&b.noise, tch::Reduction::Mean)
    };
    let initial = tch::no_grad(|| loss_fn(&sd)).double_value(&[]);
    let lora_before = snapshot(&lora.vs);
    let mut opt = nn::AdamW {
        beta1: 0.9,
        beta2: 0.99,
        wd: 0.01,
        eps: 1e-8,
        amsgrad: false,
    }
    .build(&lora.vs, 1e-3)
    .expect("optimizer");
    for _ in 0..5 {
        let loss = loss_fn(&sd);
        opt.backward_step(&loss);
    }
    let after = tch::no_grad(|| loss_fn(&sd)).double_value(&[]);
    eprintln!("denoising loss {initial:.6} -> {after:.6}");
    assert!(after < initial, "loss should go down: {initial} -> {after}");

    for ((name, before), (_, now)) in base_vars.iter().zip(snapshot(&sd.unet_vs)) {
        assert_eq!(before, &now, "base weight {name} changed");
    }
    let changed = lora_before
        .iter()
        .zip(snapshot(&lora.vs))
        .filter(|((_, before), (_, now))| before != now)
        .count();
    assert!(changed > 0, "no LoRA weight changed");

    // Save / load round trip into a fresh UNet.
    let dir = std::env::temp_dir().join(format!("vecdream-sd-lora-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("lora.safetensors");
    lora.save(&path).expect("save");
    let trained = tch::no_grad(|| sd.unet.forward(&b.noisy, &b.t, &b.text, 1.0)).expect("unet");
    let mut sd2 = StableDiffusion::load(&fixture(), Device::Cpu, Kind::Float).expect("load");
    let mut lora2 = Lora::attach(&mut sd2.unet, Device::Cpu, LoraConfig::default());
    lora2.load(&path).expect("load lora");
    let reloaded = tch::no_grad(|| sd2.unet.forward(&b.noisy, &b.t, &b.text, 1.0)).expect("unet");
    assert_eq!(trained, reloaded, "reloaded LoRA gives a different output");
    let _ = std::fs::remove_dir_all(&dir);
    lora.vs.freeze();
}
