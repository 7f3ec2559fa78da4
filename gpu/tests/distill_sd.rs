//! SDS / VPSD / CSD / DDS on the tiny Stable Diffusion fixture, end to end on CPU.

use std::path::PathBuf;

use vecdream_gpu::distill::{
    DistillConfig, Distiller, SdGuidance, SdGuidanceConfig, SdMethod, TimeRange, grid_document,
};
use vecdream_gpu::sd::StableDiffusion;
use vecdream_gpu::tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn guidance(method: SdMethod, cfg: f64) -> SdGuidance {
    guidance_in(method, cfg, Kind::Float)
}

fn guidance_in(method: SdMethod, cfg: f64, kind: Kind) -> SdGuidance {
    guidance_for("a photo of a cat", method, cfg, kind)
}

fn guidance_for(prompt: &str, method: SdMethod, cfg: f64, kind: Kind) -> SdGuidance {
    let dir = fixture("tiny-sd15");
    let sd = StableDiffusion::load(&dir, Device::Cpu, kind).unwrap();
    let config = SdGuidanceConfig {
        model_dir: dir,
        method,
        prompt: prompt.into(),
        negative_prompt: String::new(),
        source_prompt: "a photo of a corgi".into(),
        cfg,
        time: TimeRange::default(),
        resolution: 32,
        guided: Some(2),
        phi_particles: 1,
        half: false,
        ..SdGuidanceConfig::default()
    };
    SdGuidance::new(sd, config).unwrap()
}

/// A distiller of `particles` copies of a `cells²` grid at 32 px, guided by `g`.
fn distiller(cells: usize, particles: usize, steps: usize, g: SdGuidance) -> Distiller {
    let doc = grid_document(cells, 32.0);
    let config = DistillConfig {
        particles,
        steps,
        render_size: 32,
        ..DistillConfig::default()
    };
    Distiller::new(&doc, config, Box::new(g), Device::Cpu).unwrap()
}

fn golden(name: &str) -> Tensor {
    let all = Tensor::read_safetensors(fixture("tiny-sd15").join("golden.safetensors")).unwrap();
    all.into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("golden tensor {name} missing"))
}

#[test]
fn sds_gradient_equals_the_fixture_golden_gradient() {
    // The fixture uses threestudio's ε_c + 100(ε_c − ε_u), i.e. s = 101 in ε_u + s(ε_c − ε_u).
    let g = guidance(SdMethod::Sds, 101.0);
    let latents = golden("sds.latents");
    let noise = golden("sds.noise");
    let t: Vec<i64> = Vec::try_from(golden("sds.t").to_kind(Kind::Int64)).unwrap();
    let expected = golden("sds.grad");
    let got = g.sds_latent_grad(&latents, &noise, &t).unwrap();
    let scale = expected.abs().max().double_value(&[]);
    let err = (&got - &expected).abs().max().double_value(&[]);
    println!("SDS grad: max |got − golden| = {err:.3e} (max |golden| = {scale:.3e})");
    // float32 UNet on different kernels: a relative 1e-4 of the largest entry (the CFG of 101
    // multiplies UNet rounding differences by about 100).
    assert!(
        err <= 1e-4 * scale.max(1.0),
        "max |Δ| {err} vs scale {scale}"
    );
}

/// Max |a − b| against the largest entry of `b`.
fn rel_err(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let scale = b.abs().max().double_value(&[]);
    ((a - b).abs().max().double_value(&[]), scale)
}

#[test]
fn csd_gradient_is_the_golden_sds_minus_its_unguided_part() {
    // SDS(s) = w(ε_u + s(ε_c − ε_u) − ε), so SDS(101) − SDS(1) = w·100·(ε_c − ε_u) = CSD at scale 100.
    // SDS(101) is diffusers' own number (the fixture's golden), so CSD is checked against it.
    let latents = golden("sds.latents");
    let noise = golden("sds.noise");
    let t: Vec<i64> = Vec::try_from(golden("sds.t").to_kind(Kind::Int64)).unwrap();
    let unguided = guidance(SdMethod::Sds, 1.0)
        .sds_latent_grad(&latents, &noise, &t)
        .unwrap();
    let expected = golden("sds.grad") - unguided;
    let csd = guidance(SdMethod::Csd, 100.0)
        .method_latent_grad(&latents, &noise, &t, 0)
        .unwrap();
    let (err, scale) = rel_err(&csd, &expected);
    println!("CSD grad: max |Δ| = {err:.3e} (max |expected| = {scale:.3e})");
    assert!(scale > 1e-3, "a vanishing classifier score proves nothing");
    assert!(
        err <= 1e-4 * scale.max(1.0),
        "max |Δ| {err} vs scale {scale}"
    );
}

#[test]
fn dds_gradient_is_the_edit_score_minus_the_source_score_on_shared_noise() {
    // Against its own latents, DDS = w(ε̂(z_t, edit) − ε̂(z_t, source)) with the same noise in both,
    // i.e. SDS(edit prompt) − SDS(source prompt): the noise term cancels.
    let latents = golden("sds.latents");
    let noise = golden("sds.noise");
    let t: Vec<i64> = Vec::try_from(golden("sds.t").to_kind(Kind::Int64)).unwrap();
    let edit = guidance(SdMethod::Sds, 7.5)
        .sds_latent_grad(&latents, &noise, &t)
        .unwrap();
    let source = guidance_for("a photo of a corgi", SdMethod::Sds, 7.5, Kind::Float)
        .sds_latent_grad(&latents, &noise, &t)
        .unwrap();
    let dds = guidance(SdMethod::Dds, 7.5)
        .method_latent_grad(&latents, &noise, &t, 0)
        .unwrap();
    let expected = edit - source;
    let (err, scale) = rel_err(&dds, &expected);
    println!("DDS grad: max |Δ| = {err:.3e} (max |expected| = {scale:.3e})");
    assert!(
        scale > 1e-4,
        "the prompts must disagree for the check to mean anything"
    );
    assert!(
        err <= 1e-4 * scale.max(1.0),
        "max |Δ| {err} vs scale {scale}"
    );
    // Same prompt for edit and source: nothing to change, exactly.
    let same = guidance_for("a photo of a corgi", SdMethod::Dds, 7.5, Kind::Float);
    let zero = same.method_latent_grad(&latents, &noise, &t, 0).unwrap();
    let max = zero.abs().max().double_value(&[]);
    assert!(
        max < 1e-6 * scale.max(1.0),
        "DDS with equal prompts gave {max}"
    );
}

#[test]
fn sds_runs_end_to_end_from_render_to_update() {
    let mut d = distiller(4, 2, 3, guidance(SdMethod::Sds, 100.0));
    // The grid's cells share one grey, so only colours feel a gradient at first.
    let before: Vec<f32> = Vec::try_from(d.params().fill.detach().flatten(0, -1)).unwrap();
    for _ in 0..3 {
        let r = d.step().unwrap();
        assert!(r.skipped.is_none() && r.loss > 0.0, "{r:?}");
    }
    let after: Vec<f32> = Vec::try_from(d.params().fill.detach().flatten(0, -1)).unwrap();
    assert!(before != after, "the fill colours did not change");
}

#[test]
fn vpsd_esd_csd_dds_step_on_the_fixture() {
    for method in [SdMethod::Vpsd, SdMethod::Esd, SdMethod::Csd, SdMethod::Dds] {
        let mut d = distiller(3, 3, 2, guidance(method, 7.5));
        for _ in 0..2 {
            let r = d.step().unwrap();
            assert!(r.skipped.is_none(), "{method:?}: {r:?}");
            if matches!(method, SdMethod::Vpsd | SdMethod::Esd) {
                assert_eq!(r.guided.len(), 2, "{method:?}");
                assert!(
                    r.terms
                        .iter()
                        .any(|(k, v)| k == "phi_loss" && v.is_finite())
                );
            }
        }
        if matches!(method, SdMethod::Vpsd | SdMethod::Esd) {
            // φ trained: LoRA up-projections (zero at start) are no longer all zero.
            let state = d.guidance().state();
            let moved = state
                .iter()
                .filter(|(k, _)| k.starts_with("lora.") && k.ends_with("lora_B.weight"))
                .any(|(_, t)| t.abs().max().double_value(&[]) > 0.0);
            assert!(moved, "{method:?}: LoRA did not train");
        }
    }
}

/// The half-precision path (what CUDA runs: fp16 model, fp32 particles, fp32 LoRA) on the
/// CPU: every method steps without a dtype error and without skipped (non-finite) steps.
#[test]
fn every_method_steps_with_a_half_precision_model() {
    for method in [
        SdMethod::Sds,
        SdMethod::Vpsd,
        SdMethod::Esd,
        SdMethod::Csd,
        SdMethod::Dds,
    ] {
        let mut d = distiller(3, 3, 2, guidance_in(method, 7.5, Kind::Half));
        for _ in 0..2 {
            let r = d
                .step()
                .unwrap_or_else(|e| panic!("{method:?} in fp16: {e}"));
            assert!(r.skipped.is_none(), "{method:?} in fp16: {r:?}");
            assert!(r.loss.is_finite(), "{method:?} in fp16: {r:?}");
        }
        assert_eq!(d.params().points.kind(), Kind::Float, "particles stay fp32");
    }
}
