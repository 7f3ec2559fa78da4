//! Extrusion (volumes, holes, fill rules, outward normals, strokes, stacking, colours) and GLB
//! (round trip, hostile bytes) on small documents with analytic answers.

use std::f64::consts::PI;

use serde_json::Value;
use vecdream_core::Document;
use vecdream_core::extrude::{ExtrudeOptions, Extrusion, extrude_document, srgb_to_linear};
use vecdream_core::glb::{glb_bytes, read_glb, read_glb_bytes, write_glb};
use vecdream_core::mesh::{Mesh, MeshPart};

fn doc(svg: &str) -> Document {
    Document::from_svg_str(svg, "test.svg").unwrap().document
}

fn extrude(svg: &str) -> Extrusion {
    let e = extrude_document(&doc(svg), &ExtrudeOptions::default()).unwrap();
    e.mesh.validate().unwrap();
    e
}

/// 200 × 100 canvas: one unit = 200 document units; the centre (100, 50) is the origin.
const SCALE: f64 = 1.0 / 200.0;

fn to_output(x: f64, y: f64) -> (f64, f64) {
    ((x - 100.0) * SCALE, (50.0 - y) * SCALE)
}

/// A square frame (80 wide, a 40-wide square hole, even-odd) and a disc of radius 30.
const FRAME_AND_DISC: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
  <g id="frame"><path fill-rule="evenodd" fill="#3366cc" d="M10 10 H90 V90 H10 Z M30 30 H70 V70 H30 Z"/></g>
  <g id="disc"><circle cx="150" cy="50" r="30" fill="#cc3333"/></g>
</svg>"##;

fn depth() -> f64 {
    f64::from(ExtrudeOptions::default().depth)
}

fn part<'a>(m: &'a Mesh, name: &str) -> &'a MeshPart {
    m.parts
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no part {name}"))
}

fn tri(p: &MeshPart, t: &[u32]) -> [[f64; 3]; 3] {
    [0, 1, 2].map(|k| p.positions[t[k] as usize].map(f64::from))
}

fn face_normal(v: &[[f64; 3]; 3]) -> [f64; 3] {
    let u = [0, 1, 2].map(|k| v[1][k] - v[0][k]);
    let w = [0, 1, 2].map(|k| v[2][k] - v[0][k]);
    let n = [
        u[1] * w[2] - u[2] * w[1],
        u[2] * w[0] - u[0] * w[2],
        u[0] * w[1] - u[1] * w[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    n.map(|c| c / len)
}

/// How many non-vertical triangles of `p` a line parallel to z through `(x, y)` crosses: 0
/// outside the solid, 2 (front and back cap) inside a single slab.
fn crossings(p: &MeshPart, x: f64, y: f64) -> usize {
    p.indices
        .chunks_exact(3)
        .filter(|t| {
            let v = tri(p, t);
            let area = |a: [f64; 3], b: [f64; 3], c: [f64; 3]| {
                (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            };
            let q = [x, y, 0.0];
            let total = area(v[0], v[1], v[2]);
            if total.abs() < 1e-15 {
                return false; // a wall
            }
            let s = total.signum();
            [
                area(v[0], v[1], q),
                area(v[1], v[2], q),
                area(v[2], v[0], q),
            ]
            .iter()
            .all(|a| a * s > 0.0)
        })
        .count()
}

#[test]
fn extrusion_volumes_match_the_analytic_solids() {
    let e = extrude(FRAME_AND_DISC);
    assert_eq!(
        e.mesh
            .parts
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["frame", "disc"]
    );
    let frame = (80.0f64.powi(2) - 40.0f64.powi(2)) * SCALE * SCALE * depth();
    let disc = PI * 30.0 * 30.0 * SCALE * SCALE * depth();
    for (name, analytic) in [("frame", frame), ("disc", disc)] {
        let v = part(&e.mesh, name).signed_volume();
        let err = (v - analytic).abs() / analytic;
        eprintln!(
            "{name}: volume {v:.6e}, analytic {analytic:.6e}, error {:.4} %",
            err * 100.0
        );
        assert!(err < 0.02, "{name}: {v} vs {analytic}");
    }
}

#[test]
fn holes_stay_open_and_fill_rules_are_honoured() {
    let e = extrude(FRAME_AND_DISC);
    let frame = part(&e.mesh, "frame");
    let (hx, hy) = to_output(50.3, 49.1);
    assert_eq!(crossings(frame, hx, hy), 0, "the hole is covered");
    let (sx, sy) = to_output(20.3, 49.1);
    assert_eq!(crossings(frame, sx, sy), 2, "the frame is not solid");
    let (ox, oy) = to_output(95.0, 49.1);
    assert_eq!(crossings(frame, ox, oy), 0, "outside is covered");

    // Non-zero with both squares wound the same way: no hole.
    let same = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
      <path fill="#000" d="M10 10 H90 V90 H10 Z M30 30 H70 V70 H30 Z"/></svg>"##;
    let m = extrude(same).mesh;
    let v = m.signed_volume();
    let full = 80.0 * 80.0 * SCALE * SCALE * depth();
    assert!((v - full).abs() / full < 1e-4, "{v} vs {full}");
    assert_eq!(crossings(&m.parts[0], hx, hy), 2);
    // Non-zero with the inner square wound the other way: a hole again.
    let reversed = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
      <path fill="#000" d="M10 10 H90 V90 H10 Z M30 30 V70 H70 V30 Z"/></svg>"##;
    let m = extrude(reversed).mesh;
    assert_eq!(crossings(&m.parts[0], hx, hy), 0);
    let holed = (80.0f64.powi(2) - 40.0f64.powi(2)) * SCALE * SCALE * depth();
    assert!((m.signed_volume() - holed).abs() / holed < 1e-4);
}

#[test]
fn normals_point_outward() {
    let e = extrude(FRAME_AND_DISC);
    for p in &e.mesh.parts {
        assert!(p.signed_volume() > 0.0, "{}", p.name);
        let caps: Vec<u32> = p
            .indices
            .chunks_exact(3)
            .filter(|t| face_normal(&tri(p, t))[2].abs() > 0.5)
            .flatten()
            .copied()
            .collect();
        let cap_part = MeshPart {
            indices: caps,
            ..p.clone()
        };
        let mut walls = 0;
        for t in p.indices.chunks_exact(3) {
            let v = tri(p, t);
            let n = face_normal(&v);
            // The stored (flat) normals agree with the winding.
            for &i in t {
                let s = p.normals[i as usize].map(f64::from);
                let dot = s[0] * n[0] + s[1] * n[1] + s[2] * n[2];
                assert!(dot > 0.999, "{}: stored normal {s:?} vs face {n:?}", p.name);
            }
            if n[2].abs() < 1e-9 {
                // A wall: a step along its normal leaves the solid, a step against it enters.
                walls += 1;
                let c = [0, 1].map(|k| (v[0][k] + v[1][k] + v[2][k]) / 3.0);
                let step = 1e-4;
                let out = crossings(&cap_part, c[0] + step * n[0], c[1] + step * n[1]);
                let inside = crossings(&cap_part, c[0] - step * n[0], c[1] - step * n[1]);
                assert_eq!(
                    (out, inside),
                    (0, 2),
                    "{}: wall at {c:?} normal {n:?}",
                    p.name
                );
            }
        }
        assert!(walls >= 8, "{}: {walls} wall triangles", p.name);
    }
    // The front cap faces the viewer (+z) and sits in front of the back cap.
    let disc = part(&e.mesh, "disc");
    let (lo, hi) = disc.bounds().unwrap();
    let (cx, cy) = to_output(150.0, 50.0);
    assert!((f64::from(lo[0]) - (cx - 0.15)).abs() < 1e-4, "{lo:?}");
    assert!((f64::from(hi[1]) - (cy + 0.15)).abs() < 1e-4, "{hi:?}");
    let top = disc
        .positions
        .iter()
        .zip(&disc.normals)
        .filter(|(_, n)| n[2] > 0.5)
        .map(|(p, _)| p[2])
        .fold(f32::NAN, f32::max);
    assert_eq!(top, hi[2]);
}

#[test]
fn strokes_are_outlined_then_extruded() {
    let svg = |cap: &str| {
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
              <path id="line" d="M20 50 H180" stroke="#000" stroke-width="10" stroke-linecap="{cap}" fill="none"/></svg>"##
        )
    };
    let butt = extrude(&svg("butt")).mesh.signed_volume();
    let analytic = 160.0 * 10.0 * SCALE * SCALE * depth();
    let err = (butt - analytic).abs() / analytic;
    eprintln!("butt-capped stroke: volume error {:.4} %", err * 100.0);
    assert!(err < 0.005, "{butt} vs {analytic}");
    let round = extrude(&svg("round")).mesh.signed_volume();
    let analytic = (160.0 * 10.0 + PI * 25.0) * SCALE * SCALE * depth();
    let err = (round - analytic).abs() / analytic;
    eprintln!("round-capped stroke: volume error {:.4} %", err * 100.0);
    assert!(err < 0.01, "{round} vs {analytic}");
    // A stroked closed square: the outline is a ring (hole open), walls inside and out.
    let ring = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
      <rect x="60" y="10" width="80" height="80" stroke="#000" stroke-width="10" fill="none"/></svg>"##;
    let m = extrude(ring).mesh;
    let analytic = (90.0f64.powi(2) - 70.0f64.powi(2)) * SCALE * SCALE * depth();
    let err = (m.signed_volume() - analytic).abs() / analytic;
    eprintln!("stroked square ring: volume error {:.4} %", err * 100.0);
    assert!(err < 0.005, "{err}");
    let (x, y) = to_output(100.3, 50.2);
    assert_eq!(crossings(&m.parts[0], x, y), 0);
}

#[test]
fn layers_stack_by_paint_order_with_colours_and_notes() {
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">
      <defs><linearGradient id="g"><stop offset="0" stop-color="#000"/><stop offset="1" stop-color="#fff"/></linearGradient></defs>
      <g id="back"><rect x="0" y="0" width="200" height="100" fill="#3366cc"/></g>
      <g id="middle"><rect x="20" y="20" width="50" height="50" fill="url(#g)" stroke="#ff0000" stroke-width="2"/></g>
      <g id="ghost"><rect id="hid" x="0" y="0" width="10" height="10" fill="#0f0" display="none"/></g>
      <g id="front"><circle cx="100" cy="50" r="10" fill="#ffffff" fill-opacity="0.5"/></g>
    </svg>"##;
    let opts = ExtrudeOptions::default();
    let e = extrude(svg);
    let names: Vec<&str> = e.mesh.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["back", "middle", "front"], "hidden object skipped");
    let zmin = |p: &MeshPart| p.bounds().unwrap().0[2];
    let zmax = |p: &MeshPart| p.bounds().unwrap().1[2];
    let [back, middle, front] = [0, 1, 2].map(|i| &e.mesh.parts[i]);
    assert_eq!(zmin(back), 0.0);
    assert_eq!(zmax(back), opts.depth);
    // middle: fill at layer 1, stroke at layer 2; front at layer 3.
    assert!((zmin(middle) - opts.layer_gap).abs() < 1e-7);
    assert!((zmax(middle) - (2.0 * opts.layer_gap + opts.depth)).abs() < 1e-7);
    assert!((zmin(front) - 3.0 * opts.layer_gap).abs() < 1e-7);
    // Colours: linear, alpha kept.
    let blue = [0x33, 0x66, 0xcc].map(|c| srgb_to_linear(c as f32 / 255.0));
    assert!(
        (back.colors[0][0] - blue[0]).abs() < 1e-6 && (back.colors[0][2] - blue[2]).abs() < 1e-6
    );
    let white = front.colors[0];
    assert!(
        white
            .iter()
            .zip([1.0, 1.0, 1.0, 0.5])
            .all(|(a, b)| (a - b).abs() < 1e-6),
        "{white:?}"
    );
    let grey = srgb_to_linear(0.5);
    assert!(
        middle
            .colors
            .iter()
            .any(|c| (c[0] - grey).abs() < 1e-3 && c[1] == c[0])
    );
    assert!(
        middle.colors.contains(&[1.0, 0.0, 0.0, 1.0]),
        "stroke colour"
    );
    let notes = e.notes.join("\n");
    assert!(
        notes.contains("gradient") && notes.contains("mean colour"),
        "{notes}"
    );
    assert!(notes.contains("1 hidden shape"), "{notes}");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vecdream-glb-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn glb_round_trip_keeps_parts_and_vertices() {
    let e = extrude(FRAME_AND_DISC);
    let dir = scratch("roundtrip");
    let path = dir.join("out.glb");
    write_glb(&path, &e.mesh).unwrap();
    let back = read_glb(&path).unwrap();
    assert_eq!(back.parts.len(), e.mesh.parts.len());
    for (a, b) in e.mesh.parts.iter().zip(&back.parts) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.positions, b.positions);
        assert_eq!(a.indices, b.indices);
        assert_eq!(a.colors, b.colors);
        for (m, n) in a.normals.iter().zip(&b.normals) {
            assert!((0..3).all(|k| (m[k] - n[k]).abs() < 1e-6), "{m:?} vs {n:?}");
        }
    }
    assert_eq!(back.vertex_count(), e.mesh.vertex_count());
    assert_eq!(back.triangle_count(), e.mesh.triangle_count());
    // Only the file is left (atomic write cleans its temporary file).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let err = read_glb(&dir.join("missing.glb")).unwrap_err().to_string();
    assert!(err.contains("missing.glb"), "{err}");
    let err = write_glb(&dir.join("no/such/dir/x.glb"), &e.mesh)
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.glb"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rebuilds a GLB container around `json` and `bin` (both padded), with a correct header.
fn container(json: &[u8], bin: &[u8]) -> Vec<u8> {
    let pad = |v: &[u8], with: u8| {
        let mut v = v.to_vec();
        while !v.len().is_multiple_of(4) {
            v.push(with);
        }
        v
    };
    let (j, b) = (pad(json, b' '), pad(bin, 0));
    let mut out = b"glTF".to_vec();
    out.extend(2u32.to_le_bytes());
    out.extend(((28 + j.len() + b.len()) as u32).to_le_bytes());
    out.extend((j.len() as u32).to_le_bytes());
    out.extend(0x4E4F_534Au32.to_le_bytes());
    out.extend(&j);
    out.extend((b.len() as u32).to_le_bytes());
    out.extend(0x004E_4942u32.to_le_bytes());
    out.extend(&b);
    out
}

fn numeric_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Number(_) => out.push(at),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| numeric_pointers(x, format!("{at}/{i}"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| numeric_pointers(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

#[test]
fn hostile_bytes_never_panic() {
    // A small valid file: a two-part extrusion (a triangle and a square).
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
      <g id="a"><path d="M1 1 L4 1 L1 4 Z" fill="#f00"/></g><g id="b"><rect x="5" y="5" width="3" height="3" fill="#00f"/></g></svg>"##;
    let mesh = extrude(svg).mesh;
    let good = glb_bytes(&mesh).unwrap();
    assert_eq!(read_glb_bytes(&good, "good.glb").unwrap().parts.len(), 2);
    let json_len = u32::from_le_bytes(good[12..16].try_into().unwrap()) as usize;
    let json: Value = serde_json::from_slice(&good[20..20 + json_len]).unwrap();
    let bin = &good[28 + json_len..];

    let mut outcomes = [0usize; 2];
    let mut check = |bytes: &[u8]| {
        let ok = read_glb_bytes(bytes, "hostile.glb").is_ok();
        outcomes[usize::from(ok)] += 1;
    };
    // Every truncation, as is and with the header length patched to match.
    for len in 0..good.len() {
        let mut b = good[..len].to_vec();
        check(&b);
        if len >= 12 {
            b[8..12].copy_from_slice(&(len as u32).to_le_bytes());
            check(&b);
        }
    }
    // Every byte of the header and chunk headers, and a deterministic sample of the rest, flipped.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut positions: Vec<usize> = (0..20).chain(20 + json_len..28 + json_len).collect();
    positions.extend((0..3000).map(|_| (next() % good.len() as u64) as usize));
    for at in positions {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[at] ^= mask;
            check(&b);
        }
    }
    // Every number in the JSON replaced by hostile values (accessor counts, offsets, strides,
    // indices of views and buffers, component types, transforms).
    let mut pointers = Vec::new();
    numeric_pointers(&json, String::new(), &mut pointers);
    assert!(pointers.len() > 40, "{}", pointers.len());
    for p in &pointers {
        for v in [
            Value::from(0),
            Value::from(1),
            Value::from(-1),
            Value::from(3),
            Value::from(4_294_967_295u64),
            Value::from(u64::MAX),
            Value::from(1e300),
            Value::from(0.5),
        ] {
            let mut j = json.clone();
            *j.pointer_mut(p).unwrap() = v;
            check(&container(&serde_json::to_vec(&j).unwrap(), bin));
        }
    }
    // Structural damage: keys removed, wrong types.
    for key in [
        "accessors",
        "bufferViews",
        "buffers",
        "meshes",
        "nodes",
        "scenes",
        "asset",
    ] {
        let mut j = json.clone();
        j.as_object_mut().unwrap().remove(key);
        check(&container(&serde_json::to_vec(&j).unwrap(), bin));
        j[key] = Value::from("nonsense");
        check(&container(&serde_json::to_vec(&j).unwrap(), bin));
    }
    eprintln!(
        "hostile inputs: {} refused with an error, {} still readable",
        outcomes[0], outcomes[1]
    );
    assert!(outcomes[0] > 1000 && outcomes[1] > 10, "{outcomes:?}");
}
