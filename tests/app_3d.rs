//! The 3D tab of the real app (egui_kittest, wgpu on lavapipe): an extruded icon in the viewport, orbit by
//! drag, GLB export and open through the (scripted) file dialogs, and `.glb` drops.

#[allow(dead_code)] // not every helper is used here
mod common;
use common::Dropped;

use std::path::{Path, PathBuf};

use common::{harness, open_through_menu};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use vecdream::app::VecdreamApp;

/// The icon every test extrudes: Twemoji's owl (12 objects, fills only).
const ICON: &str = "twemoji/1f989.svg";

fn icon() -> PathBuf {
    let p = vecdream::core::testing::test_data_dir()
        .join("svg")
        .join(ICON);
    assert!(p.exists(), "missing test file {}", p.display());
    p
}

/// A fresh folder under the system temp dir for this test's files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vecdream-app3d-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Three labelled groups (three objects, so three parts): a box, a ball and a flag.
const THREE_OBJECTS: &str = r##"<svg xmlns="http://www.w3.org/2000/svg"
  xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" width="100" height="100" viewBox="0 0 100 100">
  <g id="base" inkscape:label="base"><rect x="10" y="60" width="80" height="30" fill="#3366cc"/></g>
  <g id="ball" inkscape:label="ball"><circle cx="50" cy="40" r="20" fill="#e04040"/></g>
  <g id="flag" inkscape:label="flag"><path d="M70 10 L90 20 L70 30 Z" fill="#40b040"/></g>
</svg>"##;

/// Opens `svg` through File → Open SVG…, switches to the 3D tab and extrudes it with the button.
fn extruded(svg: PathBuf, answers_after_svg: Vec<PathBuf>) -> Harness<'static, VecdreamApp> {
    let mut answers = vec![svg];
    answers.extend(answers_after_svg);
    let mut h = harness(answers);
    open_through_menu(&mut h);
    h.get_by_label("3D").click();
    h.run();
    assert!(h.state().tab3d().is_active());
    h.get_by_label("Extrude current document").click();
    h.run();
    let mesh = h.state().tab3d().mesh();
    assert!(
        !mesh.parts.is_empty() && mesh.triangle_count() > 20,
        "extruded {} parts, {} triangles; status {:?}",
        mesh.parts.len(),
        mesh.triangle_count(),
        h.state().status_message()
    );
    h
}

/// Fraction of the pixels of `rect` (points; the harness draws 1 px per point) that differ by more than 24
/// in some channel between two RGBA8 pictures `width` pixels wide.
fn changed_fraction(a: &[u8], b: &[u8], width: u32, rect: egui::Rect) -> f64 {
    let (mut changed, mut total) = (0usize, 0usize);
    for y in rect.min.y as usize..rect.max.y as usize {
        for x in rect.min.x as usize..rect.max.x as usize {
            let i = 4 * (y * width as usize + x);
            total += 1;
            if (0..4).any(|c| a[i + c].abs_diff(b[i + c]) > 24) {
                changed += 1;
            }
        }
    }
    changed as f64 / total.max(1) as f64
}

#[test]
fn snapshot_of_the_3d_tab_with_an_extruded_icon() {
    let mut h = extruded(icon(), vec![]);
    let tab = h.state().tab3d();
    assert_eq!(tab.source_label(), Some("extruded from 1f989.svg"));
    let first = tab.mesh().parts[0].name.clone();
    // The parts list: a visibility toggle per part, named after the object.
    h.get_by_label(&first);
    h.get_by_label("3D view");
    h.remove_cursor();
    h.run();
    h.snapshot("app_3d");
}

#[test]
fn dragging_orbits_the_camera_and_changes_the_picture_and_scrolling_zooms() {
    let mut h = extruded(icon(), vec![]);
    h.remove_cursor();
    h.run();
    let rect = h.get_by_label("3D view").rect();
    let before_camera = h.state().tab3d().viewport().camera();
    let before = h.render().expect("wgpu render");
    let start = rect.center();
    h.drag_at(start);
    h.step();
    for i in 1..=10 {
        h.hover_at(start + egui::vec2(12.0 * i as f32, 4.0 * i as f32));
        h.step();
    }
    h.drop_at(start + egui::vec2(120.0, 40.0));
    h.step();
    h.remove_cursor();
    h.run();
    let after_camera = h.state().tab3d().viewport().camera();
    let d_az = after_camera.azimuth - before_camera.azimuth;
    let d_el = after_camera.elevation - before_camera.elevation;
    // 120 points right and 40 down at ORBIT_PER_POINT: the camera turns left (−0.96 rad) and rises
    // (+0.32 rad); the first few points go to egui's drag threshold.
    let k = vecdream::ui::viewport3d::ORBIT_PER_POINT;
    assert!(
        d_az < -90.0 * k && d_az >= -120.0 * k - 1e-4,
        "azimuth moved by {d_az}"
    );
    assert!(
        d_el > 25.0 * k && d_el <= 40.0 * k + 1e-4,
        "elevation moved by {d_el}"
    );
    assert_eq!(after_camera.distance, before_camera.distance);
    let after = h.render().expect("wgpu render");
    assert_eq!(before.dimensions(), after.dimensions());
    let changed = changed_fraction(
        before.as_raw(),
        after.as_raw(),
        before.width(),
        rect.shrink(2.0),
    );
    assert!(
        changed > 0.05,
        "only {:.1} % of the view changed",
        100.0 * changed
    );
    // Frame goes back to the default angles at the fitted distance.
    h.get_by_label("Frame").click();
    h.run();
    let framed = h.state().tab3d().viewport().camera();
    assert_eq!(
        (framed.azimuth, framed.elevation),
        (
            vecdream::ui::viewport3d::DEFAULT_AZIMUTH,
            vecdream::ui::viewport3d::DEFAULT_ELEVATION
        )
    );
    assert_eq!(framed.distance, before_camera.distance);

    // Scrolling up over the view zooms in.
    h.hover_at(rect.center());
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Point,
        delta: egui::vec2(0.0, 120.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    let zoomed = h.state().tab3d().viewport().camera();
    assert!(
        zoomed.distance < 0.9 * framed.distance,
        "scrolling zoomed from {} to {}",
        framed.distance,
        zoomed.distance
    );
    assert_eq!(zoomed.azimuth, framed.azimuth);
}

fn part_summary(mesh: &vecdream::core::mesh::Mesh) -> Vec<(String, usize, usize)> {
    mesh.parts
        .iter()
        .map(|p| (p.name.clone(), p.vertex_count(), p.triangle_count()))
        .collect()
}

#[test]
fn glb_export_and_open_through_the_dialogs_round_trip_the_parts() {
    let dir = scratch("roundtrip");
    let svg = dir.join("three.svg");
    std::fs::write(&svg, THREE_OBJECTS).unwrap();
    let all = dir.join("three.glb");
    // A bare name gets the .glb extension.
    let some = dir.join("three-some");
    let mut h = extruded(svg, vec![all.clone(), some.clone(), all.clone()]);
    let extruded = part_summary(h.state().tab3d().mesh());
    let names: Vec<_> = extruded.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        ["base", "ball", "flag"],
        "one part per object, by label"
    );

    h.get_by_label("Export GLB…").click();
    h.run();
    assert!(all.exists(), "status {:?}", h.state().status_message());
    assert!(
        h.state()
            .status_message()
            .is_some_and(|m| m.starts_with("Exported") && m.contains("three.glb")),
        "{:?}",
        h.state().status_message()
    );

    // Hidden parts are left out of the export.
    let first = extruded[0].0.clone();
    h.get_by_label(&first).click();
    h.run();
    assert!(!h.state().tab3d().viewport().part_visible(0));
    h.get_by_label("Export GLB…").click();
    h.run();
    let some = some.with_extension("glb");
    let partial = vecdream::core::glb::read_glb(&some).expect("the partial export reads back");
    assert_eq!(part_summary(&partial), extruded[1..].to_vec());

    h.get_by_label("Open GLB…").click();
    h.run();
    let tab = h.state().tab3d();
    assert_eq!(part_summary(tab.mesh()), extruded);
    assert_eq!(tab.source_label(), Some("opened three.glb"));
    assert!(
        tab.viewport().part_visible(0),
        "an opened mesh shows all parts"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_dropped_glb_opens_in_the_3d_tab_and_a_broken_one_is_reported() {
    let dir = scratch("drop");
    let path = dir.join("cube.glb");
    let cube = vecdream::core::mesh::Mesh {
        parts: vec![unit_cube("cube")],
    };
    vecdream::core::glb::write_glb(&path, &cube).unwrap();
    let broken = dir.join("broken.glb");
    std::fs::write(&broken, b"glTF but not really").unwrap();

    let mut h = harness(vec![]);
    h.run();
    assert!(!h.state().tab3d().is_active());
    drop_file(&mut h, &path);
    assert!(h.state().tab3d().is_active(), "a .glb drop switches to 3D");
    assert_eq!(part_summary(h.state().tab3d().mesh()), part_summary(&cube));
    h.get_by_label("cube");

    drop_file(&mut h, &broken);
    let status = h.state().status_message().unwrap_or_default().to_string();
    assert!(
        status.starts_with("Error: ") && status.contains("broken.glb"),
        "{status}"
    );
    assert_eq!(
        part_summary(h.state().tab3d().mesh()),
        part_summary(&cube),
        "a broken file keeps the mesh shown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn drop_file(h: &mut Harness<'static, VecdreamApp>, path: &Path) {
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(path.to_path_buf())));
    h.run();
}

/// A closed unit cube, counter-clockwise from outside, flat normals (24 vertices).
fn unit_cube(name: &str) -> vecdream::core::mesh::MeshPart {
    let mut part = vecdream::core::mesh::MeshPart {
        name: name.into(),
        ..Default::default()
    };
    // Each face: normal axis, sign; corners counter-clockwise seen from outside.
    for axis in 0..3 {
        for sign in [-1.0f32, 1.0] {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
            let base = part.positions.len() as u32;
            for (a, b) in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)] {
                let mut p = [0.0f32; 3];
                p[axis] = if sign > 0.0 { 1.0 } else { 0.0 };
                p[u] = a;
                p[v] = if sign > 0.0 { b } else { 1.0 - b };
                let mut n = [0.0f32; 3];
                n[axis] = sign;
                part.positions.push(p);
                part.normals.push(n);
                part.colors.push([0.8, 0.3, 0.2, 1.0]);
            }
            part.indices
                .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        }
    }
    assert!((part.signed_volume() - 1.0).abs() < 1e-6);
    part
}

#[test]
fn a_views_run_in_the_3d_tab_streams_its_mesh_into_the_viewport() {
    use vecdream::gpu::field::{AnalyticShape, Camera, write_views};
    let views = scratch("run-views");
    let shape = AnalyticShape::Sphere { radius: 0.3 };
    let cams: Vec<_> = (0..6)
        .map(|i| {
            let c = Camera {
                azimuth_deg: 60.0 * f64::from(i),
                elevation_deg: if i % 2 == 0 { 15.0 } else { 50.0 },
                distance: 1.8,
                fov_deg: 45.0,
            };
            (c, shape.render(&c, 16, 2, [1.0; 3]))
        })
        .collect();
    write_views(&views, &cams, [1.0; 3]).unwrap();

    let mut h = harness(vec![]);
    h.run();
    h.get_by_label("3D").click();
    h.run();
    {
        let run = &mut h.state_mut().tab3d_mut().run;
        run.views_dir = views.display().to_string();
        run.grid = 16;
        run.steps = 8;
        run.mesh_every = 4;
    }
    h.get_by_label("Start").click();
    let start = std::time::Instant::now();
    while !h
        .state()
        .tab3d()
        .source_label()
        .is_some_and(|s| s.contains("finished"))
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no finished mesh; panel: {:?}",
            h.state().tab3d().run
        );
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mesh = h.state().tab3d().mesh();
    assert!(
        mesh.triangle_count() > 20,
        "{} triangles",
        mesh.triangle_count()
    );
    // The fitted sphere's mesh is closed: positive volume near the sphere's.
    let v: f64 = mesh.parts.iter().map(|p| p.signed_volume()).sum();
    assert!(v > 0.0, "volume {v}");
}
