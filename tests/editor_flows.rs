//! The editor's main flows on the real app (egui_kittest + wgpu on lavapipe), with the real worker
//! running the weight-free reference-image teacher on the CPU.

mod common;
use common::Dropped;

use common::{harness, open_through_menu, wait_until};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use vecdream::app::VecdreamApp;
use vecdream::core::{NodeId, ObjectChild};
use vecdream::ui::GuidanceMethod;

/// Control points and fill of shape `id` in `doc` (as text, exact to the bit).
fn shape_state(doc: &vecdream::core::Document, id: NodeId) -> (Vec<(f64, f64)>, String) {
    let shape = doc.shape(id).unwrap_or_else(|| panic!("no shape {id}"));
    let pts = shape
        .subpaths
        .iter()
        .flat_map(|s| s.points.iter().map(|p| (p.x, p.y)))
        .collect();
    (pts, format!("{:?}", shape.fill))
}

#[test]
fn run_pause_lock_step_stop_keeps_locked_shapes_still() {
    let mut h = harness(vec![]);
    {
        let s = h.state_mut().prompt_settings_mut();
        s.method = GuidanceMethod::Reference;
        s.particles = 2;
        s.steps = 100_000;
    }
    h.run();
    h.get_by_label("Start").click();
    wait_until(&mut h, "frames of both particles", |a| {
        a.frame_ids().len() == 2 && a.frames_received() >= 4 && a.run_status().step >= 2
    });
    h.get_by_label("Pause").click();
    wait_until(&mut h, "the pause", |a| a.run_status().paused);
    let doc = h.state().document().expect("the live particle").clone();
    // The working document is a vectorised sample, grouped: objects hold components.
    let front = doc.objects.last().expect("an object");
    let component = front
        .children
        .iter()
        .rev()
        .find_map(|c| match c {
            ObjectChild::Component(c) => Some(c.clone()),
            ObjectChild::Shape(_) => None,
        })
        .expect("the front object has a component");
    let locked_ids: Vec<NodeId> = component.shapes.iter().map(|s| s.meta.id).collect();
    let free_ids: Vec<NodeId> = doc
        .shape_entries()
        .iter()
        .map(|e| e.shape.meta.id)
        .filter(|id| !locked_ids.contains(id))
        .collect();
    assert!(
        !free_ids.is_empty(),
        "the sample has shapes outside that component"
    );

    // Lock the front-most component in the tree (its row is the first with that label); the lock
    // reaches the worker before the next step.
    h.get_all_by_label(&format!("Lock {}", component.meta.name))
        .next()
        .expect("a lock toggle")
        .click();
    h.run();
    let doc = h.state().document().unwrap().clone();
    assert!(doc.meta(component.meta.id).unwrap().locked);
    let locked_before: Vec<_> = locked_ids.iter().map(|&id| shape_state(&doc, id)).collect();
    let free_before: Vec<_> = free_ids.iter().map(|&id| shape_state(&doc, id)).collect();
    let paused_at = h.state().run_status().step;

    for _ in 0..3 {
        h.get_by_label("Step").click();
        h.run();
    }
    wait_until(&mut h, "three single steps", |a| {
        a.run_status().step == paused_at + 3 && a.run_status().paused
    });
    h.get_by_label("Stop").click();
    wait_until(&mut h, "the stop", |a| !a.run_status().active);
    let doc = h.state().document().unwrap().clone();
    let locked_after: Vec<_> = locked_ids.iter().map(|&id| shape_state(&doc, id)).collect();
    let free_after: Vec<_> = free_ids.iter().map(|&id| shape_state(&doc, id)).collect();
    assert_eq!(locked_before, locked_after, "a locked shape moved");
    assert_ne!(
        free_before,
        free_after,
        "unlocked shapes should have moved; status: {:?}",
        h.state().status_message()
    );
    assert!(h.state().median_frame_ms().is_some());
}

#[test]
fn edits_undo_and_redo_with_the_keyboard() {
    let svg = vecdream::core::testing::test_data_dir().join("svg/twemoji/1f404.svg");
    let mut h = harness(vec![svg]);
    open_through_menu(&mut h);
    let name = "path 3";
    let hidden = |a: &VecdreamApp| {
        let doc = a.document().unwrap();
        doc.shape_entries()
            .into_iter()
            .find(|e| e.shape.meta.name == name)
            .unwrap()
            .hidden
    };
    h.get_by_label(&format!("Visible {name}")).click();
    h.run();
    assert!(hidden(h.state()));
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert!(!hidden(h.state()), "undo shows it again");
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.run();
    assert!(hidden(h.state()), "redo hides it again");
}

#[test]
fn dropped_files_open_svgs_and_add_references() {
    let shared = vecdream::core::testing::test_data_dir();
    let mut h = harness(vec![]);
    h.run();
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(shared.join("svg/tabler/beer.svg"))));
    h.run();
    let shapes = h.state().document().map(|d| d.shape_count());
    assert!(shapes.is_some_and(|n| n > 0), "the dropped SVG opened");

    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(shared.join("images/coffee.png"))));
    h.run();
    h.get_by_label("Use as reference").click();
    h.run();
    assert_eq!(h.state().reference_count(), 1);
    assert_eq!(
        h.state().prompt_settings().method,
        GuidanceMethod::Reference
    );

    let bad = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notes.xyz");
    std::fs::write(&bad, "x").unwrap();
    h.input_mut().dropped_files.push(Arc::new(Dropped(bad)));
    h.run();
    let msg = h.state().status_message().unwrap_or_default().to_string();
    assert!(
        msg.contains("notes.xyz") && msg.contains("expected"),
        "{msg}"
    );
}

#[test]
fn export_svg_through_the_dialog_and_reimport() {
    let shared = vecdream::core::testing::test_data_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("editor_export.svg");
    let _ = std::fs::remove_file(&out);
    let mut h = harness(vec![shared.join("svg/twemoji/1f404.svg"), out.clone()]);
    open_through_menu(&mut h);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export…").click();
    h.run();
    let reimported = vecdream::core::import_svg(&out).expect("the export re-imports");
    let original = h.state().document().unwrap();
    assert_eq!(reimported.document.shape_count(), original.shape_count());
    assert_eq!(reimported.document.objects.len(), original.objects.len());
}

#[test]
fn export_glb_extruded_through_the_menu() {
    let shared = vecdream::core::testing::test_data_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("editor_export.glb");
    let _ = std::fs::remove_file(&out);
    let mut h = harness(vec![shared.join("svg/twemoji/1f404.svg"), out.clone()]);
    open_through_menu(&mut h);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export GLB (extruded)…").click();
    h.run();
    let msg = h.state().status_message().unwrap_or_default().to_string();
    assert!(
        msg.contains("Exported") && msg.contains("editor_export.glb"),
        "{msg}"
    );
    let mesh = vecdream::core::glb::read_glb(&out).expect("the GLB reads back");
    let doc = h.state().document().unwrap();
    assert_eq!(mesh.parts.len(), doc.objects.len(), "one part per object");
    assert!(mesh.parts.iter().all(|p| p.signed_volume() > 0.0));
}

#[test]
fn select_in_the_tree_then_delete_and_undo() {
    let svg = vecdream::core::testing::test_data_dir().join("svg/twemoji/1f404.svg");
    let mut h = harness(vec![svg]);
    open_through_menu(&mut h);
    let before = h.state().document().unwrap().shape_count();
    h.get_by_label("path 3").click();
    h.run();
    assert_eq!(h.state().selection().ids().len(), 1, "one shape selected");
    h.get_by_label("Delete").click();
    h.run();
    assert_eq!(h.state().document().unwrap().shape_count(), before - 1);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(h.state().document().unwrap().shape_count(), before);
}

#[test]
fn dropped_image_vectorises_in_the_background_into_a_layered_document() {
    let shared = vecdream::core::testing::test_data_dir();
    let mut h = harness(vec![]);
    h.run();
    h.input_mut()
        .dropped_files
        .push(Arc::new(Dropped(shared.join("images/logo.png"))));
    h.run();
    h.get_by_label("Vectorise").click();
    h.run();
    assert!(
        h.state().is_vectorizing(),
        "vectorising runs off the UI thread"
    );
    wait_until(&mut h, "the vectoriser", |a| !a.is_vectorizing());
    let doc = h.state().document().expect("a vectorised document");
    assert!(doc.objects.len() >= 2, "layered: background and regions");
    assert!(doc.shape_count() > 10);
    let msg = h.state().status_message().unwrap_or_default();
    assert!(msg.starts_with("Vectorised"), "{msg}");
}

/// Names of the first object's direct shapes in paint order (back to front).
fn paint_order(app: &VecdreamApp) -> Vec<String> {
    app.document().unwrap().objects[0]
        .children
        .iter()
        .map(|c| match c {
            vecdream::core::ObjectChild::Shape(s) => s.meta.name.clone(),
            vecdream::core::ObjectChild::Component(c) => c.meta.name.clone(),
        })
        .collect()
}

/// Presses the primary button at `from`, moves the pointer to `to` in small steps (a frame each) and
/// releases it there, as a hand on a mouse would.
fn pointer_drag(h: &mut Harness<'_, VecdreamApp>, from: egui::Pos2, to: egui::Pos2) {
    h.hover_at(from);
    h.drag_at(from);
    for i in 1..=10 {
        h.hover_at(from.lerp(to, i as f32 / 10.0));
    }
    h.run();
    h.drop_at(to);
    h.run();
}

#[test]
fn dragging_a_tree_row_onto_a_sibling_reorders_and_undoes() {
    let svg = vecdream::core::testing::test_data_dir().join("svg/twemoji/1f404.svg");
    let mut h = harness(vec![svg]);
    open_through_menu(&mut h);
    let before = paint_order(h.state());
    assert!(before.len() >= 5, "{before:?}");
    let (dragged, target) = (before[1].clone(), before[4].clone());

    // Multi-select still works on rows that can also be dragged.
    h.get_by_label(&dragged).click();
    h.run();
    h.get_by_label(&target)
        .click_modifiers(egui::Modifiers::COMMAND);
    h.run();
    let selected = h.state().selection().ids();
    assert_eq!(selected.len(), 2, "Ctrl-click adds to the selection");

    // Drop on the upper half of the target's row: in front of it (the tree lists the front first).
    let from = h.get_by_label(&dragged).rect().center();
    let onto = h.get_by_label(&target).rect();
    pointer_drag(&mut h, from, egui::pos2(onto.center().x, onto.top() + 3.0));
    let mut expected = before.clone();
    let moved = expected.remove(1);
    let at = expected.iter().position(|n| *n == target).unwrap() + 1;
    expected.insert(at, moved);
    assert_eq!(
        paint_order(h.state()),
        expected,
        "dropped in front of {target}"
    );
    assert_eq!(
        h.state().selection().ids(),
        selected,
        "a drag keeps the selection"
    );

    // The lower half of a row: behind it. Drag the same shape behind the back-most one.
    let back = expected[0].clone();
    let from = h.get_by_label(&dragged).rect().center();
    let onto = h.get_by_label(&back).rect();
    pointer_drag(
        &mut h,
        from,
        egui::pos2(onto.center().x, onto.bottom() - 3.0),
    );
    let mut expected2 = expected.clone();
    let moved = expected2.remove(expected2.iter().position(|n| *n == dragged).unwrap());
    expected2.insert(0, moved);
    assert_eq!(paint_order(h.state()), expected2, "dropped behind {back}");

    // Each drop is one undo step.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(paint_order(h.state()), expected);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(paint_order(h.state()), before, "Ctrl+Z restores the order");
    h.key_press_modifiers(
        egui::Modifiers::COMMAND | egui::Modifiers::SHIFT,
        egui::Key::Z,
    );
    h.run();
    assert_eq!(paint_order(h.state()), expected, "Ctrl+Shift+Z redoes it");

    // Released away from any row: nothing changes.
    let from = h.get_by_label(&dragged).rect().center();
    pointer_drag(&mut h, from, egui::pos2(640.0, 400.0));
    assert_eq!(paint_order(h.state()), expected);
}

/// What the UI did, frame by frame, while the worker ran.
#[derive(Debug, Default)]
struct FrameLog {
    /// CPU ms of each `App::ui` call, as the app measures it.
    ui_ms: Vec<f32>,
    /// Wall ms of each whole egui pass (the app, layout, tessellation, texture upload, and kittest's
    /// AccessKit update).
    pass_ms: Vec<f32>,
    /// Wall ms of rendering each frame (only when asked for).
    render_ms: Vec<f32>,
    /// UI frames during which no event at all arrived from the worker.
    frames_without_worker_event: usize,
    /// Particle frames received from the worker during the log.
    worker_frames: usize,
    /// Worker steps done during the log.
    worker_steps: usize,
    /// Wall time of the log.
    wall: Duration,
}

/// Steps the UI until `done` (or `limit` passes), one frame per `period` at most (like a display at
/// 1/period Hz; zero runs frames back to back), rendering each frame through wgpu when `render`.
fn log_frames(
    h: &mut Harness<'_, VecdreamApp>,
    period: Duration,
    render: bool,
    limit: Duration,
    done: impl Fn(&VecdreamApp, &FrameLog) -> bool,
) -> FrameLog {
    let mut log = FrameLog::default();
    let start = Instant::now();
    let (frames0, step0) = (h.state().frames_received(), h.state().run_status().step);
    while !done(h.state(), &log) && start.elapsed() < limit {
        let t0 = Instant::now();
        let before = h.state().events_received();
        h.step();
        log.pass_ms.push(t0.elapsed().as_secs_f32() * 1000.0);
        log.ui_ms
            .push(h.state().last_frame_ms().expect("the app timed its frame"));
        if render {
            let t1 = Instant::now();
            h.render().expect("wgpu renders the frame");
            log.render_ms.push(t1.elapsed().as_secs_f32() * 1000.0);
        }
        if h.state().events_received() == before {
            log.frames_without_worker_event += 1;
        }
        log.worker_frames = h.state().frames_received() - frames0;
        log.worker_steps = h.state().run_status().step.saturating_sub(step0);
        if let Some(rest) = period.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    log.wall = start.elapsed();
    log
}

/// "mean / p95 / max" of `v` in ms.
fn summary(v: &[f32]) -> String {
    if v.is_empty() {
        return "–".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let mean = s.iter().sum::<f32>() / s.len() as f32;
    let p95 = s[((s.len() as f32 * 0.95).ceil() as usize).clamp(1, s.len()) - 1];
    format!(
        "mean {mean:.2} ms, p95 {p95:.2} ms, max {:.2} ms",
        s[s.len() - 1]
    )
}

/// Starts a reference-teacher run with `particles` from the run panel and waits for its first frame.
fn start_demo(h: &mut Harness<'_, VecdreamApp>, particles: u32) {
    {
        let s = h.state_mut().prompt_settings_mut();
        s.method = GuidanceMethod::Reference;
        s.particles = particles;
        s.steps = 100_000;
    }
    h.run();
    h.get_by_label("Start").click();
    wait_until(h, "the first worker frame", |a| a.frames_received() > 0);
}

#[test]
fn ui_keeps_drawing_while_the_worker_steps() {
    let mut h = harness(vec![]);
    start_demo(&mut h, 2);
    let log = log_frames(
        &mut h,
        Duration::ZERO,
        false,
        Duration::from_secs(180),
        |_, log| log.worker_steps >= 3 && log.worker_frames >= 2 * 3,
    );
    assert!(log.worker_steps >= 3, "the worker made 3 steps: {log:?}");
    assert!(
        log.worker_frames >= 2 * 3,
        "frames of both particles arrived: {log:?}"
    );
    assert_eq!(h.state().frame_ids().len(), 2);
    // Events are drained without waiting: if a UI frame waited for the worker, every frame would
    // carry at least one new event.
    assert!(
        log.frames_without_worker_event > 0,
        "every UI frame waited for a worker event: {log:?}"
    );
    assert!(h.state().run_status().active && !h.state().run_status().paused);
}

/// The measured UI frame time while the worker runs the first-launch demo (6 particles, reference
/// teacher): prints the numbers, asserts no timing. Run with
/// `cargo test -p vecdream --test editor_flows measure_ui_frame_time -- --ignored --nocapture`
/// (`VECDREAM_MEASURE_SECS`, default 30; `VECDREAM_MEASURE_RENDER=1` also renders every frame on wgpu).
#[test]
#[ignore = "benchmark: prints timings"]
fn measure_ui_frame_time_while_the_worker_runs() {
    let secs: u64 = std::env::var("VECDREAM_MEASURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let render = std::env::var_os("VECDREAM_MEASURE_RENDER").is_some_and(|v| v == "1");
    let mut h = harness(vec![]);
    start_demo(&mut h, 6);
    let period = Duration::from_secs_f64(1.0 / 60.0);
    let log = log_frames(&mut h, period, render, Duration::from_secs(secs), |_, _| {
        false
    });
    let frames = log.ui_ms.len();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "UI while the worker runs ({} particles, {} build, {:.1} s, paced at 60 Hz, load avg {}):",
        h.state().frame_ids().len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        log.wall.as_secs_f64(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "  UI frames: {frames} ({:.1} fps)",
        frames as f64 / log.wall.as_secs_f64()
    );
    println!("  App::ui CPU time: {}", summary(&log.ui_ms));
    println!(
        "  whole egui pass (incl. AccessKit): {}",
        summary(&log.pass_ms)
    );
    if render {
        println!(
            "  kittest render + readback (wgpu; lavapipe on a machine without a GPU): {}",
            summary(&log.render_ms)
        );
    }
    println!(
        "  worker: {} particle frames, {} steps ({:.2} it/s); {} UI frames without a worker event",
        log.worker_frames,
        log.worker_steps,
        log.worker_steps as f64 / log.wall.as_secs_f64(),
        log.frames_without_worker_event
    );
    assert!(log.worker_frames > 0, "no worker frames arrived: {log:?}");
}

#[test]
fn gradient_fills_show_their_stops_and_turn_solid_undoably() {
    let dir = std::env::temp_dir().join(format!("vecdream-gradient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("shaded.svg");
    std::fs::write(
        &svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32">
  <linearGradient id="g" x1="0" y1="0" x2="32" y2="0" gradientUnits="userSpaceOnUse">
    <stop offset="0" stop-color="#ff0000"/><stop offset="1" stop-color="#0000ff"/>
  </linearGradient>
  <rect id="wall" width="32" height="32" fill="url(#g)"/>
</svg>"##,
    )
    .unwrap();
    let mut h = harness(vec![svg]);
    open_through_menu(&mut h);
    let fill = |a: &VecdreamApp| {
        let doc = a.document().unwrap();
        doc.shape_entries()[0].shape.fill.clone().unwrap()
    };
    assert!(matches!(fill(h.state()), vecdream::core::Paint::Linear(_)));
    let row = h.state().document().unwrap().shape_entries()[0]
        .shape
        .meta
        .name
        .clone();
    h.get_by_label(&row).click();
    h.run();
    // One colour button per stop, labelled with its position, then "Solid".
    for at in ["0%", "100%"] {
        assert!(h.query_by_label(at).is_some(), "a stop button at {at}");
    }
    h.get_by_label("Solid").click();
    h.run();
    let solid = fill(h.state());
    assert_eq!(
        solid,
        vecdream::core::Paint::Solid(vecdream::core::Rgba::new(0.5, 0.0, 0.5, 1.0)),
        "the mean of red → blue"
    );
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert!(
        matches!(fill(h.state()), vecdream::core::Paint::Linear(_)),
        "undo brings the gradient back"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
