//! What the README promises about editing, each on the real app (kittest + wgpu): viewport selection,
//! moves and control-point drags as single undo steps, zoom and pan, renaming, stroke widths, `.txt`
//! drops, *File → Open image…*, PNG export, particle thumbnails and undo while a run is paused.

mod common;
use common::Dropped;

use common::{harness, open_through_menu, wait_until};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egui::{Modifiers, PointerButton, Pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use kurbo::Point;
use vecdream::app::VecdreamApp;
use vecdream::core::{Document, NodeId};
use vecdream::ui::GuidanceMethod;

fn data(rel: &str) -> PathBuf {
    vecdream::core::testing::test_data_dir().join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("claims-{name}"));
    let _ = std::fs::remove_file(&p);
    p
}

/// Document points well inside up to `n` different shapes (topmost at that point), found on a grid.
fn shape_points(doc: &Document, n: usize) -> Vec<(NodeId, Point)> {
    let mut found: Vec<(NodeId, Point)> = Vec::new();
    let step = doc.width.min(doc.height) / 40.0;
    for i in 4..36 {
        for j in 4..36 {
            let p = Point::new(j as f64 * step, i as f64 * step);
            // A point well inside: the same shape is hit a little to each side.
            let Some(id) = doc.hit_test(p, 0.0) else {
                continue;
            };
            let inside = [(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)]
                .iter()
                .all(|(dx, dy)| {
                    doc.hit_test(p + kurbo::Vec2::new(dx * step, dy * step), 0.0) == Some(id)
                });
            if inside && !found.iter().any(|(f, _)| *f == id) {
                found.push((id, p));
            }
            if found.len() == n {
                return found;
            }
        }
    }
    assert!(!found.is_empty(), "no shape found on the grid");
    found
}

fn two_shape_points(doc: &Document) -> [(NodeId, Point); 2] {
    let f = shape_points(doc, 2);
    assert_eq!(f.len(), 2, "fewer than two shapes found on the grid");
    [f[0], f[1]]
}

fn screen(h: &Harness<'_, VecdreamApp>, p: Point) -> Pos2 {
    h.state()
        .viewport()
        .screen_from_doc(p)
        .expect("the viewport was drawn")
}

fn click_at(h: &mut Harness<'_, VecdreamApp>, pos: Pos2, modifiers: Modifiers) {
    h.hover_at(pos);
    h.run();
    h.event_modifiers(
        egui::Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed: true,
            modifiers,
        },
        modifiers,
    );
    h.event_modifiers(
        egui::Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed: false,
            modifiers,
        },
        modifiers,
    );
    h.run();
}

fn drag(h: &mut Harness<'_, VecdreamApp>, button: PointerButton, from: Pos2, to: Pos2) {
    h.hover_at(from);
    h.run();
    let press = |pos, pressed| egui::Event::PointerButton {
        pos,
        button,
        pressed,
        modifiers: Modifiers::NONE,
    };
    h.event(press(from, true));
    for i in 1..=10 {
        h.hover_at(from.lerp(to, i as f32 / 10.0));
        h.step();
    }
    h.event(press(to, false));
    h.run();
    h.remove_cursor();
    h.run();
}

fn stroke_width(h: &Harness<'_, VecdreamApp>, id: NodeId) -> f64 {
    let doc = h.state().document().unwrap();
    doc.shape(id).unwrap().stroke.as_ref().unwrap().width
}

fn points_of(doc: &Document, id: NodeId) -> Vec<Point> {
    doc.shape(id)
        .unwrap()
        .subpaths
        .iter()
        .flat_map(|s| s.points.clone())
        .collect()
}

#[test]
fn viewport_click_selects_shift_click_adds_and_a_drag_moves_as_one_undo_step() {
    let mut h = harness(vec![data("svg/twemoji/1f404.svg")]);
    open_through_menu(&mut h);
    h.run();
    let doc = h.state().document().unwrap().clone();
    let [(a, pa), (b, pb)] = two_shape_points(&doc);

    let at = screen(&h, pa);
    click_at(&mut h, at, Modifiers::NONE);
    assert_eq!(
        h.state().selection().ids(),
        vec![a],
        "click selects the shape under the pointer"
    );
    let at = screen(&h, pb);
    click_at(&mut h, at, Modifiers::SHIFT);
    let mut sel = h.state().selection().ids();
    sel.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(sel, want, "Shift-click adds");

    // Drag the selection by 30 screen points: both shapes move by the same document offset.
    let from = screen(&h, pa);
    drag(
        &mut h,
        PointerButton::Primary,
        from,
        from + egui::vec2(30.0, 0.0),
    );
    let moved = h.state().document().unwrap().clone();
    for id in [a, b] {
        let (p0, p1) = (points_of(&doc, id), points_of(&moved, id));
        let dx = p1[0].x - p0[0].x;
        assert!(dx > 0.5, "shape {id} moved by {dx}");
        assert!(
            p0.iter()
                .zip(&p1)
                .all(|(u, v)| ((v.x - u.x) - dx).abs() < 1e-6 && (v.y - u.y).abs() < 1e-6)
        );
    }
    // One Ctrl+Z undoes the whole drag.
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run();
    let undone = h.state().document().unwrap();
    for id in [a, b] {
        assert_eq!(
            points_of(undone, id),
            points_of(&doc, id),
            "one undo step restores shape {id}"
        );
    }
}

#[test]
fn dragging_a_control_point_moves_only_that_point() {
    let mut h = harness(vec![data("svg/twemoji/1f7e8.svg")]);
    open_through_menu(&mut h);
    h.run();
    let doc = h.state().document().unwrap().clone();
    let (a, pa) = shape_points(&doc, 1)[0];
    let at = screen(&h, pa);
    click_at(&mut h, at, Modifiers::NONE);
    assert_eq!(h.state().selection().ids(), vec![a]);
    let before = points_of(&doc, a);
    let from = screen(&h, before[0]);
    drag(
        &mut h,
        PointerButton::Primary,
        from,
        from + egui::vec2(-12.0, 9.0),
    );
    let after = points_of(h.state().document().unwrap(), a);
    assert!(
        after[0].distance(before[0]) > 0.5,
        "{:?} → {:?}",
        before[0],
        after[0]
    );
    let others_moved = before
        .iter()
        .zip(&after)
        .skip(1)
        .filter(|(u, v)| u.distance(**v) > 1e-9)
        .count();
    assert_eq!(others_moved, 0, "only the dragged point moves");
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert_eq!(points_of(h.state().document().unwrap(), a), before);
}

#[test]
fn wheel_zooms_and_secondary_drag_pans() {
    let mut h = harness(vec![data("svg/twemoji/1f404.svg")]);
    open_through_menu(&mut h);
    h.run();
    let centre = Point::new(18.0, 18.0);
    let (zoom0, at0) = (h.state().viewport().zoom, screen(&h, centre));
    h.hover_at(at0);
    h.run();
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 120.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Unknown,
        modifiers: Modifiers::NONE,
    });
    h.run();
    let zoom1 = h.state().viewport().zoom;
    assert!(zoom1 > zoom0 * 1.05, "zoom {zoom0} → {zoom1}");
    // Zoom keeps the point under the pointer in place (within a point).
    assert!(screen(&h, centre).distance(at0) < 1.5);
    let before = screen(&h, centre);
    drag(
        &mut h,
        PointerButton::Secondary,
        before,
        before + egui::vec2(40.0, -25.0),
    );
    // The view follows the drag (less the few points egui waits for before a press becomes a drag).
    let moved = screen(&h, centre) - before;
    let want = egui::vec2(40.0, -25.0);
    let along = moved.dot(want) / want.length_sq();
    assert!(
        (0.8..=1.01).contains(&along) && (moved - want * along).length() < 1.0,
        "panned by {moved:?} for a drag of {want:?}"
    );
}

#[test]
fn double_click_renames_in_the_tree_and_stroke_width_edits_undo() {
    let mut h = common::harness_stepping(vec![data("svg/tabler/beer.svg")], 0.05);
    open_through_menu(&mut h);
    h.run();
    let doc = h.state().document().unwrap().clone();
    // The first stroked shape (tabler icons start with an invisible 24×24 frame path).
    let entry = doc
        .shape_entries()
        .into_iter()
        .find(|e| e.shape.stroke.is_some())
        .expect("a stroked shape")
        .shape
        .clone();
    let name = entry.meta.name.clone();
    let row = h.get_by_label(&name).rect().center();
    h.hover_at(row);
    h.run();
    // Press, release, press, release, one frame each (0.05 s apart): a double click.
    for pressed in [true, false, true, false] {
        h.event(egui::Event::PointerButton {
            pos: row,
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    let label = format!("Rename {name}");
    h.run();
    h.get_by_label(&label).type_text("-renamed");
    h.run();
    h.key_press(egui::Key::Enter);
    h.run();
    let renamed = h
        .state()
        .document()
        .unwrap()
        .shape(entry.meta.id)
        .unwrap()
        .meta
        .name
        .clone();
    assert!(
        renamed.ends_with("-renamed") && renamed.len() > "-renamed".len(),
        "{renamed}"
    );

    // Stroke width: select the shape, drag the Width field to the right.
    h.get_by_label(&renamed).click();
    h.run();
    let w0 = entry
        .stroke
        .as_ref()
        .expect("tabler icons are stroked")
        .width;
    let field = h.get_by_label("Width").rect().center();
    drag(
        &mut h,
        PointerButton::Primary,
        field,
        field + egui::vec2(40.0, 0.0),
    );
    let w1 = stroke_width(&h, entry.meta.id);
    assert!(w1 > w0 + 0.5, "width {w0} → {w1}");
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run();
    let w2 = stroke_width(&h, entry.meta.id);
    assert_eq!(w2, w0, "the whole drag is one undo step");
}

#[test]
fn text_drops_become_the_prompt_and_open_image_vectorises() {
    let notes = tmp("prompt.txt");
    std::fs::write(&notes, "  a red fox in the snow, flat vector art\n").unwrap();
    let mut h = harness(vec![data("images/logo.png")]);
    h.run();
    h.input_mut().dropped_files.push(Arc::new(Dropped(notes)));
    h.run();
    assert_eq!(
        h.state().prompt_settings().prompt,
        "a red fox in the snow, flat vector art"
    );

    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open image…").click();
    h.run();
    h.get_by_label("Vectorise").click();
    h.run();
    wait_until(&mut h, "the vectoriser", |a| {
        !a.is_vectorizing() && a.document().is_some()
    });
    assert!(h.state().document().unwrap().shape_count() > 5);
}

#[test]
fn png_export_through_the_dialog_writes_the_render() {
    let out = tmp("export.png");
    let mut h = harness(vec![data("svg/twemoji/1f7e8.svg"), out.clone()]);
    open_through_menu(&mut h);
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Export…").click();
    h.run();
    let img = image::open(&out)
        .unwrap_or_else(|e| panic!("{}: {e}", out.display()))
        .to_rgba8();
    assert_eq!(img.width(), 1024, "longer side 1024");
    // The yellow square twemoji (#FDCB58): the centre pixel is its yellow.
    let c = img.get_pixel(img.width() / 2, img.height() / 2).0;
    assert!(
        c[0] > 220 && c[1] > 170 && c[2] < 120 && c[3] == 255,
        "{c:?}"
    );
}

#[test]
fn thumbnails_pick_the_working_particle_and_undo_works_while_paused() {
    let mut h = harness(vec![]);
    {
        let s = h.state_mut().prompt_settings_mut();
        s.method = GuidanceMethod::Reference;
        s.particles = 2;
        s.steps = 100_000;
    }
    h.run();
    h.get_by_label("Start").click();
    wait_until(&mut h, "two particles", |a| {
        a.particle_documents().len() == 2 && a.run_status().step >= 1
    });
    h.get_by_label("Pause").click();
    wait_until(&mut h, "the pause", |a| a.run_status().paused);
    h.run();
    let p1 = h.state().particle_documents()[1].clone();
    h.get_by_label("Particle 1").click();
    h.run();
    assert_eq!(
        h.state().document().unwrap(),
        &p1,
        "the thumbnail made particle 1 the working document"
    );

    // Undo while paused: lock the front object in the tree, undo, the lock is gone, the run still paused.
    let front = p1.objects.last().unwrap().meta.clone();
    h.get_by_label(&format!("Lock {}", front.name)).click();
    h.run();
    let locked = |a: &VecdreamApp| a.document().unwrap().meta(front.id).unwrap().locked;
    assert!(locked(h.state()));
    h.key_press_modifiers(Modifiers::COMMAND, egui::Key::Z);
    h.run();
    assert!(!locked(h.state()), "undo while paused");
    assert!(h.state().run_status().paused);
}
