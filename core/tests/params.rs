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
    // Changing the mean colour replaces the gradient by a solid colour.
    let mut view = d.param_view();
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
