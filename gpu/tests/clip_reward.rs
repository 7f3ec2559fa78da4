//! CLIP rewards on the tiny fixture: PickScore / CLIP score re-weight VPSD's particles toward the
//! reward's prompt; the aesthetic head (LAION layout, hand-set weights) orders colour extremes.

use std::path::PathBuf;

use vecdream_gpu::clip::{AestheticHead, AestheticReward, Clip, ClipReward, ClipRewardKind};
use vecdream_gpu::distill::{
    DistillConfig, Distiller, Guidance, ReferenceConfig, ReferenceGuidance, ReferenceMode,
    ReferenceTeacher, Reward, RewardConfig, RewardMode, grid_document,
};
use vecdream_gpu::tch::{Device, Kind, Tensor};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-clip-gelu")
}

fn argsort(v: &[f64]) -> Vec<usize> {
    let mut i: Vec<usize> = (0..v.len()).collect();
    i.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    i
}

fn reference() -> Box<dyn Guidance> {
    let mut rng = vecdream_gpu::distill::Rng::new(3);
    let t = (rng.normal_tensor(&[2, 3, 4, 4], Device::Cpu) * 0.3 + 0.5)
        .clamp(0.0, 1.0)
        .upsample_bilinear2d([32, 32], false, None, None);
    let teacher = ReferenceTeacher::new(&t, 32, Device::Cpu).unwrap();
    Box::new(ReferenceGuidance::new(
        teacher,
        ReferenceConfig {
            mode: ReferenceMode::Vpsd,
            resolution: 32,
            ..ReferenceConfig::default()
        },
    ))
}

/// The weights a distiller with `reward` gives its particles after one step, and the scores the
/// reward gives the renders it saw.
fn weights_after_one_step(reward: ClipReward) -> (Vec<f64>, Vec<f64>) {
    let doc = grid_document(4, 64.0);
    let config = DistillConfig {
        seed: 11,
        steps: 2,
        particles: 4,
        render_size: 32,
        init_jitter: 6.0,
        reward: Some(RewardConfig {
            every: 1,
            mode: RewardMode::Reweight { temperature: 0.02 },
        }),
        ..DistillConfig::default()
    };
    let d = Distiller::new(&doc, config, reference(), Device::Cpu).unwrap();
    let images = d.render().unwrap().detach();
    let mut probe = reward;
    let scores = probe.score(&images).unwrap();
    let mut d = d.with_reward(Box::new(probe));
    assert!(d.weights().is_none());
    d.step().unwrap();
    (d.weights().expect("reward weights").to_vec(), scores)
}

#[test]
fn prompt_rewards_reweight_particles_toward_their_prompt() {
    let prompts = [
        "a photo of a cat",
        "a dslr photo of a corgi wearing a hat",
        "a hamburger on a plate",
    ];
    let mut best = Vec::new();
    for p in prompts {
        let clip = Clip::load(&fixture(), Device::Cpu).unwrap();
        let (w, scores) =
            weights_after_one_step(ClipReward::new(clip, ClipRewardKind::PickScore, p));
        eprintln!("{p:?}: scores {scores:?} weights {w:?}");
        assert!((w.iter().sum::<f64>() - 4.0).abs() < 1e-9);
        // The particle this prompt's reward prefers gets the most weight, the one it likes least
        // the least.
        assert_eq!(argsort(&w), argsort(&scores), "{p:?}");
        best.push(*argsort(&w).last().unwrap());
    }
    // Different prompts prefer different particles: the weights follow the prompt.
    assert!(
        best.iter().any(|&b| b != best[0]),
        "every prompt preferred particle {}",
        best[0]
    );
}

#[test]
fn clip_score_is_100_times_the_clamped_pickscore_cosine() {
    let clip = || Clip::load(&fixture(), Device::Cpu).unwrap();
    let p = "a hamburger on a plate";
    let mut pick = ClipReward::new(clip(), ClipRewardKind::PickScore, p);
    let mut cs = ClipReward::new(clip(), ClipRewardKind::ClipScore, p);
    let scale = pick.clip().model.logit_scale();
    assert!((scale - 2f64.exp()).abs() < 1e-5, "{scale}");
    let images = Tensor::rand([3, 3, 40, 36], (Kind::Float, Device::Cpu));
    let a = pick.score(&images).unwrap();
    let b = cs.score(&images).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert!((100.0 * (a / scale).max(0.0) - b).abs() < 1e-4, "{a} {b}");
        assert!(a.abs() <= scale + 1e-6);
    }
}

fn solid(rgb: [f64; 3]) -> Tensor {
    Tensor::from_slice(&rgb.map(|v| v as f32))
        .view([1, 3, 1, 1])
        .expand([1, 3, 30, 30], false)
        .contiguous()
}

#[test]
fn aesthetic_head_with_hand_set_weights_orders_colour_extremes() {
    let clip = Clip::load(&fixture(), Device::Cpu).unwrap();
    let (red, blue, grey) = (
        solid([1.0, 0.0, 0.0]),
        solid([0.0, 0.0, 1.0]),
        solid([0.5, 0.5, 0.5]),
    );
    let emb = |t: &Tensor| {
        vecdream_gpu::clip::normalize(&vecdream_gpu::tch::no_grad(|| clip.render_features(t)))
    };
    // A two-layer head in LAION's key layout whose direction points from blue to red.
    let dir = (emb(&red) - emb(&blue)).view([1, 16]);
    let layers = |sign: f64| {
        vec![
            (
                "layers.0.weight".to_string(),
                Tensor::cat(
                    &[
                        &dir * sign,
                        Tensor::zeros([3, 16], (Kind::Float, Device::Cpu)),
                    ],
                    0,
                ),
            ),
            (
                "layers.0.bias".to_string(),
                Tensor::zeros([4], (Kind::Float, Device::Cpu)),
            ),
            (
                "layers.2.weight".to_string(),
                Tensor::from_slice(&[2.0f32, 0.0, 0.0, 0.0]).view([1, 4]),
            ),
            ("layers.2.bias".to_string(), Tensor::from_slice(&[5.0f32])),
        ]
    };
    let dir_path = std::env::temp_dir().join(format!("vecdream-aesthetic-{}", std::process::id()));
    std::fs::create_dir_all(&dir_path).unwrap();
    let images = Tensor::cat(&[&red, &grey, &blue], 0);
    for (sign, name) in [(1.0, "red.safetensors"), (-1.0, "blue.safetensors")] {
        let path = dir_path.join(name);
        Tensor::write_safetensors(&layers(sign), &path).unwrap();
        let head = AestheticHead::load(&path, 16, Device::Cpu).unwrap();
        let mut r = AestheticReward::new(Clip::load(&fixture(), Device::Cpu).unwrap(), head);
        let s = r.score(&images).unwrap();
        eprintln!("{name}: red, grey, blue = {s:?}");
        // The extremes are ordered by the head's direction.
        if sign > 0.0 {
            assert!(s[0] > s[2], "{s:?}");
        } else {
            assert!(s[0] < s[2], "{s:?}");
        }
        // And each score is the head applied by hand: 5 + 2·sign·(ê · dir).
        for (i, img) in [&red, &grey, &blue].iter().enumerate() {
            let want = 5.0 + 2.0 * sign * (emb(img) * &dir).sum(Kind::Double).double_value(&[]);
            assert!((s[i] - want).abs() < 1e-5, "{i}: {} vs {want}", s[i]);
        }
    }
    // A head for another embedding width is refused naming the file.
    let bad = dir_path.join("bad.safetensors");
    Tensor::write_safetensors(&layers(1.0), &bad).unwrap();
    let e = AestheticHead::load(&bad, 768, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.safetensors") && e.contains("768"), "{e}");
    std::fs::remove_dir_all(&dir_path).unwrap();
}
