//! The real editor, driven through egui_kittest with wgpu (lavapipe on a machine without a GPU).

mod common;

use common::{harness, open_through_menu, wait_until};
use std::path::PathBuf;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use vecdream::app::VecdreamApp;

fn shared_svg(name: &str) -> PathBuf {
    vecdream::core::testing::test_data_dir()
        .join("svg")
        .join(name)
}

#[test]
fn app_shows_menu_panels_and_status_bar() {
    let mut harness = harness(vec![]);
    harness.run();
    harness.get_by_label("File");
    harness.get_by_label("Prompt");
    harness.get_by_label("Objects");
    harness.get_by_label("Device: CPU, test");
    harness.get_by_label("libtorch 2.11.0");
    harness.get_by_label("Guidance");
    harness.snapshot("app_empty");
}

#[test]
fn file_menu_opens_an_svg_into_tree_and_viewport() {
    let svg = shared_svg("twemoji/1f404.svg");
    assert!(svg.exists(), "missing test file {}", svg.display());
    let mut harness = harness(vec![svg.clone()]);
    open_through_menu(&mut harness);
    let app = harness.state();
    let doc = app.document().expect("the SVG was opened");
    assert!(doc.shape_count() > 0);
    assert!(app.viewport_has_frame(), "the viewport shows the document");
    assert_eq!(
        app.status_message(),
        Some(format!("Opened {}", svg.display()).as_str())
    );
    // The status line holds a machine-specific path: snapshot after replacing it.
    harness.state_mut().set_status_message("Opened 1f404.svg");
    harness.run();
    harness.snapshot("app_document");
}

#[test]
fn typing_a_prompt_updates_the_settings() {
    let mut harness = harness(vec![]);
    harness.run();
    harness
        .get_by_role_and_label(Role::MultilineTextInput, "Prompt")
        .click();
    harness.run();
    harness
        .get_by_role_and_label(Role::MultilineTextInput, "Prompt")
        .type_text("a corgi wearing a hat");
    harness.run();
    assert_eq!(
        harness.state().prompt_settings().prompt,
        "a corgi wearing a hat"
    );
}

#[test]
fn locking_in_the_tree_is_one_undoable_edit() {
    let svg = shared_svg("twemoji/1f404.svg");
    let mut harness = harness(vec![svg]);
    open_through_menu(&mut harness);
    let doc = harness.state().document().unwrap().clone();
    let object = doc
        .objects
        .last()
        .expect("the emoji has an object")
        .meta
        .clone();
    assert!(!object.locked);
    harness
        .get_by_label(&format!("Lock {}", object.name))
        .click();
    harness.run();
    let locked = |h: &Harness<'_, VecdreamApp>| {
        h.state()
            .document()
            .unwrap()
            .meta(object.id)
            .unwrap()
            .locked
    };
    assert!(locked(&harness), "the lock toggle locks the object");
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    harness.run();
    assert!(!locked(&harness), "Ctrl+Z unlocks it");
    harness.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    harness.run();
    assert!(locked(&harness), "Ctrl+Shift+Z locks it again");
}

#[test]
fn snapshot_of_the_demo_run_paused_at_a_fixed_step() {
    const STEPS: usize = 8;
    let mut harness = harness(vec![]);
    harness.state_mut().prompt_settings_mut().method = vecdream::ui::GuidanceMethod::Reference;
    harness.run();
    let particles = harness.state().prompt_settings().particles as usize;
    // Start the first-launch demo and pause it before its first step: the worker takes its commands
    // in order, before any step, so the snapshot is always of the same step.
    let ctx = harness.ctx.clone();
    harness.state_mut().start_run(&ctx);
    assert!(
        harness
            .state()
            .send_to_worker(vecdream::gpu::distill::Command::Pause)
    );
    wait_until(&mut harness, "the pause", |a| a.run_status().paused);
    assert_eq!(harness.state().run_status().step, 0);
    for _ in 0..STEPS {
        harness.get_by_label("Step").click();
        harness.step();
    }
    // The frames of a step arrive after its progress report.
    wait_until(&mut harness, "the steps and their frames", |a| {
        a.run_status().step == STEPS && a.frames_received() == (STEPS + 1) * particles
    });
    assert!(harness.state().run_status().paused);
    assert_eq!(harness.state().frame_ids().len(), particles);
    harness.remove_cursor();
    harness.run();
    let total = harness.state().prompt_settings().steps;
    harness.get_by_label(&format!("step {STEPS}/{total}"));
    harness.get_by_label("reference-vpsd · paused");
    // The loss's last digits depend on libtorch's CPU kernels and thread count: hide that line.
    let loss = harness
        .get_by_label_contains(&format!(" at step {STEPS}"))
        .rect();
    harness.mask(loss);
    harness.snapshot("app_running");
}
