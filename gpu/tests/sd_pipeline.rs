//! txt2img on the tiny SD1.5 / SD2.1 fixtures: output shape, determinism, seed sensitivity, and the
//! attention-map capture.

use std::path::PathBuf;

use vecdream_gpu::sd::{AttentionCapture, StableDiffusion, Txt2ImgOptions, UNetInputs, save_png};
use vecdream_gpu::tch::{self, Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

#[test]
fn txt2img_is_deterministic_per_seed() {
    for name in ["tiny-sd15", "tiny-sd21"] {
        let mut sd = StableDiffusion::load(&fixture(name), Device::Cpu, Kind::Float).expect("load");
        let opts = Txt2ImgOptions {
            prompt: "a photo of a cat".into(),
            steps: 4,
            seed: 3,
            ..Default::default()
        };
        let mut calls = Vec::new();
        let a = sd
            .txt2img(&opts, &mut |i, n| calls.push((i, n)))
            .expect("txt2img");
        assert_eq!(calls, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
        assert_eq!(a.size(), vec![1, 3, 32, 32], "{name}");
        assert_eq!(a.kind(), Kind::Uint8);
        let b = sd.txt2img(&opts, &mut |_, _| {}).expect("txt2img");
        assert_eq!(a, b, "{name}: same seed, different image");
        let c = sd
            .txt2img(
                &Txt2ImgOptions {
                    seed: 4,
                    ..opts.clone()
                },
                &mut |_, _| {},
            )
            .expect("txt2img");
        assert_ne!(a, c, "{name}: different seed, same image");
        let dir =
            std::env::temp_dir().join(format!("vecdream-sd-png-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let png = dir.join("out.png");
        save_png(&a, &png).expect("save png");
        let back = tch::vision::image::load(&png).expect("load png");
        assert_eq!(back, a.squeeze_dim(0), "{name}: PNG round trip");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn attention_capture_gives_token_maps_that_sum_to_one() {
    let _guard = tch::no_grad_guard();
    let sd = StableDiffusion::load(&fixture("tiny-sd15"), Device::Cpu, Kind::Float).expect("load");
    let xs = vecdream_gpu::rng::Rng::new(0).normal_tensor(&[1, 4, 16, 16], Device::Cpu);
    let text = sd.encode_prompt(&["a photo of a cat"]);
    let capture = AttentionCapture::new(&[16, 8]);
    let t = Tensor::from_slice(&[500i64]);
    let plain = sd.unet.forward(&xs, &t, &text, 0.0).expect("unet");
    let inputs = UNetInputs {
        capture: Some(&capture),
        ..Default::default()
    };
    let captured = sd.unet.forward_with(&xs, &t, &text, inputs).expect("unet");
    assert_eq!(plain, captured, "capturing must not change the output");
    // The tiny UNet has cross-attention at 16×16 (down and up) and 8×8 (mid).
    let m16 = capture.map(16).expect("16×16 maps");
    assert_eq!(m16.size(), vec![1, 77, 16, 16]);
    let total = m16.sum_dim_intlist(1, false, Kind::Float);
    let err = (total - 1.0).abs().max().double_value(&[]);
    assert!(
        err < 1e-5,
        "softmax over tokens should sum to 1, off by {err}"
    );
    let agg = capture.aggregate(32).expect("aggregate");
    assert_eq!(agg.size(), vec![1, 77, 32, 32]);
}
