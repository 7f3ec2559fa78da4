//! Parameter view: pack/unpack is lossless, masks follow locked/hidden, gradients survive.

use vecdream_core::{Document, Paint, ParamError, Rgba};

const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">
  <defs><linearGradient id="lg"><stop offset="0" stop-color="#f00"/><stop offset="1" stop-color="#00f"/></linearGradient></defs>
  <g id="a"><path id="p1" d="M10 10 C 20 0 30 0 40 10 Z" fill="url(#lg)"/>
    <g id="comp" data-vecdream-locked="true"><path id="p2" d="M0 50 L 50 50 L 50 60" fill="none" stroke="#000" stroke-width="3"/></g></g>
  <g id="b" display="none"><rect id="p3" x="1" y="1" width="3" height="3"/></g>
  <g id="c"><polygon id="p4" points="0,0 10,0 10,10" fill="#0f0"/></g>
</svg>"##;

fn doc() -> Document {
    Document::from_svg_str(SVG, "params.svg").unwrap().document
}

#[test]
fn param_view_pack_then_apply_is_identity() {
    let mut d = doc();
    let before = d.clone();
    let view = d.param_view();
    assert_eq!(view.slots.len(), 4);
    assert_eq!(view.canvas, [100.0, 100.0]);
    d.apply_param_view(&view).unwrap();
    assert_eq!(
        d, before,
        "unchanged f32 values keep their f64 originals, gradients stay"
    );
}

#[test]
fn param_view_masks_follow_effective_flags() {
    let d = doc();
    let view = d.param_view();
    let trainable: Vec<bool> = (0..4).map(|i| view.trainable(i)).collect();
    assert_eq!(
        trainable,
        [true, false, false, true],
        "p2 locked via component, p3 hidden via object"
    );
    let mask = view.point_mask();
    assert_eq!(mask.len(), view.points.len());
    for (i, slot) in view.slots.iter().enumerate() {
        for sp in &slot.subpaths {
            assert!(
                mask[sp.points.clone()]
                    .iter()
                    .all(|&m| m == view.trainable(i))
            );
        }
    }
    // Subpath layouts: closed 3n, open 3n+1.
    assert_eq!(view.slots[0].subpaths[0].points.len() % 3, 0);
    assert!(view.slots[0].subpaths[0].closed);
    assert_eq!(view.slots[1].subpaths[0].points.len() % 3, 1);
    // A gradient is seen as its mean colour.
    assert_eq!(view.fill[0], [0.5, 0.0, 0.5, 1.0]);
}

#[test]
fn param_view_apply_writes_only_trainable_slots() {
    let mut d = doc();
    let mut view = d.param_view();
    for p in &mut view.points {
        p[0] += 1.0;
    }
    view.fill[3] = [0.1, 0.2, 0.3, 0.4];
    view.stroke_width[1] = 9.0; // locked: ignored
    d.apply_param_view(&view).unwrap();
    let after = d.param_view();
    for (i, slot) in view.slots.iter().enumerate() {
        let r = view.point_range(i);
        let moved = after.points[r.clone()] == view.points[r];
        assert_eq!(moved, view.trainable(i), "slot {i} {:?}", slot.shape);
    }
    assert_eq!(after.stroke_width[1], 3.0);
    let p4 = d.shape(view.slots[3].shape).unwrap();
    assert_eq!(p4.fill, Some(Paint::Solid(Rgba::new(0.1, 0.2, 0.3, 0.4))));
    // The gradient of p1 is kept because its mean colour was not changed.
    assert!(matches!(
        d.shape(view.slots[0].shape).unwrap().fill,
        Some(Paint::Linear(_))
    ));
    // Changing the mean colour of a two-stop gradient shifts both stops (clamped to
    // [0, 1]); red → blue has change (−1, 0, 1, 0).
    let mut view = d.param_view();
    view.fill[0] = [1.0, 1.0, 0.0, 1.0];
    d.apply_param_view(&view).unwrap();
    let Some(Paint::Linear(g)) = &d.shape(view.slots[0].shape).unwrap().fill else {
        panic!("still a gradient");
    };
    assert_eq!(g.stops[0].color, Rgba::new(1.0, 1.0, 0.0, 1.0));
    assert_eq!(g.stops[1].color, Rgba::new(0.5, 1.0, 0.5, 1.0));
    // A gradient the view cannot represent (three stops) becomes solid when its mean
    // colour changes.
    let svg = SVG.replace(
        "<stop offset=\"1\" stop-color=\"#00f\"/>",
        "<stop offset=\"0.5\" stop-color=\"#0f0\"/><stop offset=\"1\" stop-color=\"#00f\"/>",
    );
    let mut d = Document::from_svg_str(&svg, "three.svg").unwrap().document;
    let mut view = d.param_view();
    assert!(view.fill_gradient[0].is_none());
    view.fill[0] = [1.0, 1.0, 0.0, 1.0];
    d.apply_param_view(&view).unwrap();
    assert_eq!(
        d.shape(view.slots[0].shape).unwrap().fill,
        Some(Paint::Solid(Rgba::new(1.0, 1.0, 0.0, 1.0)))
    );
}

#[test]
fn param_view_apply_rejects_bad_views_without_change() {
    let mut d = doc();
    let before = d.clone();
    let mut view = d.param_view();
    view.points[0][0] = f32::NAN;
    assert!(matches!(
        d.apply_param_view(&view),
        Err(ParamError::NotFinite { .. })
    ));
    let mut view = d.param_view();
    view.fill.pop();
    assert!(matches!(
        d.apply_param_view(&view),
        Err(ParamError::Length { .. })
    ));
    let mut view = d.param_view();
    view.slots[0].subpaths[0].points.end -= 3;
    assert!(matches!(
        d.apply_param_view(&view),
        Err(ParamError::Structure(_))
    ));
    assert_eq!(d, before);
}

#[test]
fn param_view_of_subtree() {
    let d = doc();
    let a = d.objects[0].meta.id;
    let view = d.param_view_of(a);
    assert_eq!(view.slots.len(), 2);
    assert!(!view.trainable(1));
    let mut d2 = d.clone();
    d2.apply_param_view(&view).unwrap();
    assert_eq!(d2, d);
}

/// A two-stop linear gradient reaches the view as mean colour + change + document-space
/// axis, whatever its units, offsets and transform; an edited view writes a plain
/// user-space gradient that paints the same picture (checked with resvg).
#[test]
fn param_view_linear_gradients_round_trip_and_edit() {
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">
  <linearGradient id="g" x1="0" y1="0" x2="20" y2="0" gradientUnits="userSpaceOnUse"
      gradientTransform="matrix(1 0.4 -0.2 1.5 6 4)">
    <stop offset="0.25" stop-color="#ff8000"/><stop offset="0.75" stop-color="#0040ff"/>
  </linearGradient>
  <linearGradient id="three"><stop offset="0" stop-color="#000"/>
    <stop offset="0.5" stop-color="#fff"/><stop offset="1" stop-color="#000"/></linearGradient>
  <rect width="40" height="24" fill="url(#g)"/>
  <rect y="26" width="40" height="14" fill="url(#three)"/>
</svg>"##;
    let mut doc = Document::from_svg_str(svg, "g.svg").unwrap().document;
    let before = vecdream_core::render_rgba(&doc, 40, 40).unwrap();
    let view = doc.param_view();
    let g = view.fill_gradient[0].expect("two stops: a gradient slot");
    assert!(
        view.fill_gradient[1].is_none(),
        "three stops: mean colour only"
    );
    // Mean of the stops, and the change from the first to the last.
    let (orange, blue) = (
        [1.0, 128.0 / 255.0, 0.0, 1.0],
        [0.0, 64.0 / 255.0, 1.0, 1.0],
    );
    for k in 0..4 {
        assert!((view.fill[0][k] - 0.5 * (orange[k] + blue[k])).abs() < 1e-6);
        assert!((g.delta[k] - (blue[k] - orange[k])).abs() < 1e-6);
    }
    // Unchanged: the document keeps its gradients exactly (transform and all).
    let copy = doc.clone();
    doc.apply_param_view(&view).unwrap();
    assert_eq!(doc, copy);
    // Re-anchored: nudging nothing but writing the gradient back as a plain user-space
    // gradient paints the same pixels.
    let mut edited = view.clone();
    edited.fill_gradient[0] = Some(vecdream_core::LinearFill {
        axis: g.axis.map(|v| v + 1e-3),
        ..g
    });
    doc.apply_param_view(&edited).unwrap();
    let Some(Paint::Linear(lg)) = &doc.shape_entries()[0].shape.fill else {
        panic!("still a linear gradient");
    };
    assert_eq!(lg.transform, kurbo::Affine::IDENTITY);
    assert_eq!(lg.stops.len(), 2);
    let after = vecdream_core::render_rgba(&doc, 40, 40).unwrap();
    let worst = before
        .data
        .iter()
        .zip(&after.data)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 2, "re-anchored gradient differs by {worst} levels");
    let repacked = doc.param_view().fill_gradient[0].unwrap();
    for k in 0..4 {
        assert!(
            // f32 axis values of size ~40 carry ~4e-6 of rounding: 1e-4 tells the 1e-3 nudge from none.
            (repacked.axis[k] - g.axis[k] - 1e-3).abs() < 1e-4,
            "{repacked:?}"
        );
    }
}
