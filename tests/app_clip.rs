//! The Generate panel's CLIP settings on the real app: CLIPDraw with the tiny CLIP fixture, a
//! reward, and each particle's reward and CLIP score under its thumbnail.

#[allow(dead_code)] // open_through_menu
mod common;

use common::{harness, wait_until};
use egui_kittest::kittest::Queryable as _;

#[test]
fn clipdraw_with_the_tiny_clip_shows_reward_and_clip_score_under_the_thumbnails() {
    let clip =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip-gelu");
    let mut h = harness(vec![]);
    {
        let s = h.state_mut().prompt_settings_mut();
        s.prompt = "a red square".into();
        s.particles = 2;
        s.steps = 3;
        s.style.paths = Some(4);
    }
    h.run();
    // Pick CLIPDraw in the Guidance picker, the CLIP folder and a reward in the panel.
    h.get_by_label("Guidance").click();
    h.run();
    h.get_by_label("CLIPDraw").click();
    h.run();
    h.get_by_label("CLIP folder").click();
    h.run();
    h.get_by_label("CLIP folder")
        .type_text(&clip.display().to_string());
    h.run();
    h.get_by_label("Reward").click();
    h.run();
    h.get_by_label("Colourfulness").click();
    h.run();
    let s = h.state().prompt_settings().clone();
    assert_eq!(s.method, vecdream::ui::GuidanceMethod::ClipDraw);
    assert_eq!(s.clip.clip_folder, clip.display().to_string());
    assert_eq!(s.clip.reward, vecdream::ui::RewardChoice::Colorfulness);
    let ctx = h.ctx.clone();
    h.state_mut().start_run(&ctx);
    wait_until(&mut h, "the scores of the first step", |a| {
        a.viewport().particle_labels.len() == 2
            && a.viewport()
                .particle_labels
                .iter()
                .all(|l| l.contains("CLIP "))
    });
    h.run();
    let text = h.state().viewport().particle_labels[0].clone();
    // The line is on screen under each thumbnail.
    let shown = h
        .state()
        .viewport()
        .particle_labels
        .iter()
        .filter(|l| **l == text)
        .count();
    assert_eq!(h.get_all_by_label(&text).count(), shown);
    let clip_score: f64 = text.rsplit("CLIP ").next().unwrap().parse().unwrap();
    assert!((0.0..=100.0).contains(&clip_score), "{text}");
    assert!(text.starts_with("reward "), "{text}");
}
