//! CLIPDraw guidance on the tiny CLIP fixture: optimising a drawing against it raises the
//! cosine to the prompt (measured on fixed augmentations), alone and added to another guidance.

use std::path::PathBuf;

use vecdream_gpu::distill::{
    ClipDrawConfig, ClipDrawGuidance, DistillConfig, Distiller, Guidance, ReferenceConfig,
    ReferenceGuidance, ReferenceMode, ReferenceTeacher, Rng, WithClipDraw, grid_document,
};
use vecdream_gpu::tch::{Device, Kind, Tensor};

fn config(weight: f64) -> ClipDrawConfig {
    ClipDrawConfig {
        clip_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tiny-clip-quickgelu"),
        prompt: "a red square".into(),
        views: 4,
        weight,
        ..ClipDrawConfig::default()
    }
}

/// Mean cosine of the renders to the prompt on 16 fixed views.
fn fixed_cosine(eval: &ClipDrawGuidance, images: &Tensor) -> f64 {
    vecdream_gpu::tch::no_grad(|| eval.cosines(images, &mut Rng::new(99)))
        .mean(Kind::Double)
        .double_value(&[])
}

fn run(guidance: Box<dyn Guidance>, steps: usize) -> (f64, f64, Vec<f64>) {
    let eval = ClipDrawGuidance::load(
        &ClipDrawConfig {
            views: 16,
            ..config(1.0)
        },
        Device::Cpu,
    )
    .unwrap();
    let doc = grid_document(3, 48.0);
    let cfg = DistillConfig {
        seed: 5,
        steps,
        particles: 2,
        render_size: 48,
        init_jitter: 1.0,
        ..DistillConfig::default()
    };
    let mut d = Distiller::new(&doc, cfg, guidance, Device::Cpu).unwrap();
    let before = fixed_cosine(&eval, &d.render().unwrap().detach());
    let mut losses = Vec::new();
    while !d.is_finished() {
        losses.push(d.step().unwrap().loss);
    }
    let after = fixed_cosine(&eval, &d.render().unwrap().detach());
    (before, after, losses)
}

#[test]
fn clipdraw_alone_raises_the_cosine_to_the_prompt() {
    let g = ClipDrawGuidance::load(&config(1.0), Device::Cpu).unwrap();
    let (before, after, losses) = run(Box::new(g), 40);
    let n = losses.len();
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[n - 5..].iter().sum::<f64>() / 5.0;
    eprintln!("cos {before:.4} → {after:.4}; loss {first:.4} → {last:.4}");
    assert!(after > before + 0.01, "cos {before} → {after}");
    assert!(last < first, "loss {first} → {last}");
}

fn reference_sds() -> Box<dyn Guidance> {
    let mut rng = Rng::new(1);
    let targets = (rng.normal_tensor(&[2, 3, 4, 4], Device::Cpu) * 0.3 + 0.5)
        .clamp(0.0, 1.0)
        .upsample_bilinear2d([48, 48], false, None, None);
    Box::new(ReferenceGuidance::new(
        ReferenceTeacher::new(&targets, 48, Device::Cpu).unwrap(),
        ReferenceConfig {
            mode: ReferenceMode::Sds,
            resolution: 48,
            ..ReferenceConfig::default()
        },
    ))
}

#[test]
fn clipdraw_added_to_another_guidance_pulls_toward_the_prompt() {
    let (_, base_after, _) = run(reference_sds(), 40);
    let clip = ClipDrawGuidance::load(&config(1000.0), Device::Cpu).unwrap();
    let g = WithClipDraw::new(reference_sds(), clip);
    assert_eq!(g.name(), "reference-sds+clipdraw");
    let (_, with_after, _) = run(Box::new(g), 40);
    eprintln!("cos after reference SDS {base_after:.4}, with CLIPDraw added {with_after:.4}");
    assert!(
        with_after > base_after + 0.01,
        "{base_after} vs {with_after}"
    );
}
