//! Property test: random command sequences through the editor; undo all restores the
//! original document exactly, redo all restores the result; commands survive serde.

use std::sync::atomic::{AtomicU32, Ordering};

use kurbo::Point;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vecdream_core::{
    Command, Component, Document, Editor, NodeId, NodeKind, NodeMeta, Object, ObjectChild, Paint,
    PrimitiveKind, Rgba, Shape, Stroke, Subpath,
};

fn square(x: f64, kind: PrimitiveKind) -> Shape {
    let corners = [(x, 0.0), (x + 4.0, 0.0), (x + 4.0, 4.0), (x, 4.0)].map(Point::from);
    let points = match kind {
        PrimitiveKind::Polygon => corners.to_vec(),
        _ => (0..4)
            .flat_map(|i| {
                let (a, b) = (corners[i], corners[(i + 1) % 4]);
                [a, a.lerp(b, 1.0 / 3.0), a.lerp(b, 2.0 / 3.0)]
            })
            .collect(),
    };
    Shape {
        meta: NodeMeta::new(NodeId(0), "square"),
        kind,
        subpaths: vec![Subpath {
            points,
            closed: true,
        }],
        fill: Some(Paint::Solid(Rgba::new(0.2, 0.4, 0.6, 1.0))),
        fill_rule: Default::default(),
        stroke: Some(Stroke::solid(Rgba::BLACK, 1.0)),
    }
}

/// A document with two objects, a component, direct shapes and a polygon.
fn base() -> Document {
    let mut doc = Document::new(64.0, 64.0);
    let mut editor_doc = doc.clone();
    for (i, cmd) in [
        Command::AddObject {
            object: Object {
                meta: NodeMeta::new(NodeId(0), "cat"),
                children: vec![
                    ObjectChild::Component(Component {
                        meta: NodeMeta::new(NodeId(0), "ear"),
                        shapes: vec![
                            square(0.0, PrimitiveKind::ClosedPath),
                            square(5.0, PrimitiveKind::OpenPath),
                        ],
                    }),
                    ObjectChild::Shape(square(10.0, PrimitiveKind::Polygon)),
                ],
            },
            index: None,
        },
        Command::AddObject {
            object: Object {
                meta: NodeMeta::new(NodeId(0), "background"),
                children: vec![ObjectChild::Shape(square(20.0, PrimitiveKind::ClosedPath))],
            },
            index: None,
        },
    ]
    .into_iter()
    .enumerate()
    {
        editor_doc
            .apply(cmd)
            .unwrap_or_else(|e| panic!("base command {i}: {e}"));
    }
    std::mem::swap(&mut doc, &mut editor_doc);
    doc
}

/// Raw random choices; turned into a command against the current document.
type Op = (u8, u32, u32, f64, f64);

fn pick<T: Copy>(list: &[T], a: u32) -> Option<T> {
    (!list.is_empty()).then(|| list[a as usize % list.len()])
}

fn ids_of(doc: &Document, kind: NodeKind) -> Vec<NodeId> {
    doc.node_ids()
        .into_iter()
        .filter(|id| doc.kind_of(*id) == Some(kind))
        .collect()
}

fn to_command(doc: &Document, (k, a, b, x, y): Op) -> Option<Command> {
    let all = doc.node_ids();
    let shapes = ids_of(doc, NodeKind::Shape);
    let objects = ids_of(doc, NodeKind::Object);
    let comps = ids_of(doc, NodeKind::Component);
    let color = Rgba::new((a % 256) as f32 / 255.0, 0.5, (b % 256) as f32 / 255.0, 1.0);
    Some(match k % Command::KINDS as u8 {
        0 => Command::AddObject {
            object: Object {
                meta: NodeMeta::new(NodeId(0), format!("o{a}")),
                children: vec![ObjectChild::Shape(square(x, PrimitiveKind::ClosedPath))],
            },
            index: Some(b as usize % (doc.objects.len() + 1)),
        },
        1 => Command::AddComponent {
            object: pick(&objects, a)?,
            component: Component {
                meta: NodeMeta::new(NodeId(0), "c"),
                shapes: vec![square(y, PrimitiveKind::OpenPath)],
            },
            index: None,
        },
        2 => Command::AddShape {
            parent: pick(&[objects.clone(), comps.clone()].concat(), a)?,
            shape: square(x, PrimitiveKind::Polygon),
            index: Some(0),
        },
        3 => Command::Delete {
            ids: vec![pick(&all, a)?],
        },
        4 => Command::Translate {
            ids: vec![pick(&all, a)?],
            dx: x,
            dy: y,
        },
        5 => Command::Transform {
            ids: vec![pick(&all, a)?],
            matrix: [1.0 + x.abs() / 100.0, y / 100.0, 0.0, 1.0, x, y],
        },
        6 => {
            let id = pick(&shapes, a)?;
            let mut subpaths = doc.shape(id)?.subpaths.clone();
            subpaths
                .iter_mut()
                .flat_map(|s| s.points.iter_mut())
                .for_each(|p| p.x += x);
            Command::SetPoints {
                shape: id,
                subpaths,
            }
        }
        7 => Command::SetFill {
            shape: pick(&shapes, a)?,
            paint: (b % 3 != 0).then_some(Paint::Solid(color)),
        },
        8 => Command::SetStrokePaint {
            shape: pick(&shapes, a)?,
            paint: Paint::Solid(color),
        },
        9 => Command::SetStroke {
            shape: pick(&shapes, a)?,
            stroke: (b % 3 != 0).then(|| Stroke::solid(color, x.abs())),
        },
        10 => Command::SetStrokeWidth {
            shape: pick(&shapes, a)?,
            width: y.abs(),
        },
        11 => Command::Rename {
            id: pick(&all, a)?,
            name: format!("n{b}"),
        },
        12 => Command::Reorder {
            id: pick(&all, a)?,
            index: b as usize % 3,
        },
        13 => {
            let object = doc.object(pick(&objects, a)?)?;
            let ids: Vec<NodeId> = object
                .shapes()
                .map(|s| s.meta.id)
                .take(1 + b as usize % 3)
                .collect();
            Command::Group {
                ids,
                name: "g".into(),
            }
        }
        14 => Command::Ungroup {
            id: pick(&comps, a)?,
        },
        15 => Command::SetLocked {
            id: pick(&all, a)?,
            locked: b % 2 == 0,
        },
        16 => Command::SetHidden {
            id: pick(&all, a)?,
            hidden: b % 2 == 0,
        },
        17 => Command::SetBackground { color },
        _ => {
            let mut view = doc.param_view();
            view.points.iter_mut().for_each(|p| p[0] += x as f32 * 0.1);
            view.fill
                .iter_mut()
                .for_each(|c| c[1] = (b % 100) as f32 / 100.0);
            view.stroke_width.iter_mut().for_each(|w| *w += 0.5);
            Command::ReplaceFromOptimiser { view }
        }
    })
}

static COVERED: AtomicU32 = AtomicU32::new(0);

fn kind_index(cmd: &Command) -> u32 {
    (0..Command::KINDS as u8)
        .position(|k| {
            // The generator maps k to a fixed variant; compare by name.
            let probe = to_command(&base(), (k, 0, 1, 1.0, 1.0));
            probe.is_some_and(|p| p.kind_name() == cmd.kind_name())
        })
        .unwrap_or(31) as u32
}

fn run_sequence(ops: &[Op]) -> Result<(), TestCaseError> {
    let original = base();
    let mut editor = Editor::new(original.clone()).with_history_cap(10_000);
    for (i, &op) in ops.iter().enumerate() {
        match op.1 % 11 {
            0 => editor.begin_transaction(),
            1 => editor.commit_transaction(),
            _ => {}
        }
        let Some(cmd) = to_command(editor.document(), op) else {
            continue;
        };
        // Commands are plain data: they survive JSON unchanged.
        let json = serde_json::to_string(&cmd).expect("serialise");
        let back: Command = serde_json::from_str(&json).expect("deserialise");
        prop_assert_eq!(&back, &cmd);
        let before = editor.document().clone();
        match editor.apply(back) {
            Ok(_) => {
                if editor.document() != &before {
                    COVERED.fetch_or(1 << kind_index(&cmd), Ordering::Relaxed);
                }
            }
            Err(e) => prop_assert_eq!(
                editor.document(),
                &before,
                "op {} failed ({}) but changed the document",
                i,
                e
            ),
        }
        if let Err(e) = editor.document().validate() {
            return Err(TestCaseError::fail(format!(
                "op {i} {}: invalid document: {e}",
                cmd.kind_name()
            )));
        }
    }
    editor.commit_transaction();
    let result = editor.document().clone();
    let steps = editor.undo_len();
    while editor.undo() {}
    prop_assert_eq!(editor.document(), &original, "undo all");
    for _ in 0..steps {
        prop_assert!(editor.redo());
    }
    prop_assert!(!editor.redo());
    prop_assert_eq!(editor.document(), &result, "redo all");
    Ok(())
}

#[test]
fn editor_undo_all_and_redo_all_random_sequences() {
    let mut runner = TestRunner::new(Config {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7ec_d7ea),
        failure_persistence: None,
        ..Config::default()
    });
    let op = (
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        -20.0..20.0f64,
        -20.0..20.0f64,
    );
    runner
        .run(&prop::collection::vec(op, 1..40), |ops| run_sequence(&ops))
        .unwrap();
    let covered = COVERED.load(Ordering::Relaxed).count_ones();
    println!(
        "command kinds covered by the undo property test: {covered} of {}",
        Command::KINDS
    );
    assert_eq!(
        covered as usize,
        Command::KINDS,
        "mask {:b}",
        COVERED.load(Ordering::Relaxed)
    );
}

#[test]
fn editor_transaction_is_one_undo_step() {
    let mut editor = Editor::new(base());
    let id = editor.document().objects[0].meta.id;
    editor.begin_transaction();
    for _ in 0..10 {
        editor
            .apply(Command::Translate {
                ids: vec![id],
                dx: 1.0,
                dy: 0.0,
            })
            .unwrap();
    }
    editor.commit_transaction();
    assert_eq!(editor.undo_len(), 1);
    assert!(editor.undo());
    assert_eq!(editor.document(), &base());
}

#[test]
fn editor_history_is_capped() {
    let mut editor = Editor::new(base()).with_history_cap(5);
    for i in 0..20 {
        editor
            .apply(Command::SetBackground {
                color: Rgba::new(i as f32 / 20.0, 0.0, 0.0, 1.0),
            })
            .unwrap();
    }
    assert_eq!(editor.undo_len(), 5);
}
