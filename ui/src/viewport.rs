//! The central viewport: the current render (or a grid of particles), zoom and pan, a crisp vector
//! overlay of the selection (outlines and control points drawn as egui shapes, not the raster), click to
//! select, drag to move shapes or control points. It returns edits; the app applies them.

use egui::{Color32, Pos2, Rect, Sense, Stroke, StrokeKind, Vec2};
use kurbo::{PathEl, Point};
use vecdream_core::{Command, Document, NodeId, PrimitiveKind, Shape, Subpath};

use crate::Selection;

/// What the viewport asks of the app after a frame.
#[derive(Debug, Default, PartialEq)]
pub struct ViewportOutput {
    /// Edits (moves, control-point drags).
    pub commands: Vec<Command>,
    /// A drag began: open an undo transaction.
    pub begin_gesture: bool,
    /// A drag ended: commit the transaction.
    pub end_gesture: bool,
    /// The user picked this particle as the working document.
    pub picked_particle: Option<usize>,
}

/// A control point being dragged.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PointDrag {
    shape: NodeId,
    subpath: usize,
    point: usize,
}

/// The viewport widget.
#[derive(Default)]
pub struct Viewport {
    frames: Vec<egui::TextureHandle>,
    /// Index of the particle shown large.
    pub active_particle: usize,
    /// A small line under each particle's thumbnail (e.g. its reward and CLIP score; empty: none).
    pub particle_labels: Vec<String>,
    /// Canvas size in document units, used for the aspect ratio and the overlay.
    pub canvas: Vec2,
    /// Zoom factor (1 = fit).
    pub zoom: f32,
    /// Pan offset in screen points.
    pub pan: Vec2,
    dragging_shapes: bool,
    dragging_point: Option<PointDrag>,
    /// Where the canvas was drawn last frame and its points per document unit.
    last_canvas: Option<(Rect, f32)>,
}

impl std::fmt::Debug for Viewport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewport")
            .field("frames", &self.frames.len())
            .field("active_particle", &self.active_particle)
            .field("canvas", &self.canvas)
            .field("zoom", &self.zoom)
            .finish()
    }
}

impl Viewport {
    /// Where document point `p` was on screen in the last frame drawn (`None` before the first).
    pub fn screen_from_doc(&self, p: Point) -> Option<Pos2> {
        let (rect, scale) = self.last_canvas?;
        Some(rect.min + Vec2::new(p.x as f32, p.y as f32) * scale)
    }

    /// Shows one picture (e.g. the document rendered by resvg); updates the texture in place.
    pub fn set_frame(&mut self, ctx: &egui::Context, image: egui::ColorImage) {
        self.set_particle_frame(ctx, 0, image);
        self.frames.truncate(1);
    }

    /// Updates the picture of particle `index` (texture updated in place).
    pub fn set_particle_frame(
        &mut self,
        ctx: &egui::Context,
        index: usize,
        image: egui::ColorImage,
    ) {
        if let Some(t) = self.frames.get_mut(index) {
            t.set(image, egui::TextureOptions::LINEAR);
            return;
        }
        while self.frames.len() <= index {
            let name = format!("viewport_particle_{}", self.frames.len());
            self.frames
                .push(ctx.load_texture(name, image.clone(), egui::TextureOptions::LINEAR));
        }
    }

    /// Keeps only the first `n` particle pictures.
    pub fn truncate_particles(&mut self, n: usize) {
        self.frames.truncate(n.max(1));
        if self.active_particle >= self.frames.len() {
            self.active_particle = 0;
        }
    }

    /// Whether a picture is shown.
    pub fn has_frame(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Texture ids of the particle pictures (to check that frames arrive).
    pub fn frame_ids(&self) -> Vec<egui::TextureId> {
        self.frames.iter().map(|t| t.id()).collect()
    }

    /// Draws the viewport in the available space.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        doc: Option<&Document>,
        selection: &mut Selection,
    ) -> ViewportOutput {
        let mut out = ViewportOutput::default();
        if self.zoom <= 0.0 {
            self.zoom = 1.0;
        }
        if self.frames.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("Particles:");
                for (i, t) in self.frames.iter().enumerate() {
                    let button = egui::Button::image(egui::load::SizedTexture::new(
                        t.id(),
                        Vec2::splat(56.0),
                    ))
                    .selected(i == self.active_particle);
                    let label = self.particle_labels.get(i).filter(|l| !l.is_empty());
                    let r = ui
                        .vertical(|ui| {
                            let r = ui.add(button);
                            if let Some(l) = label {
                                ui.label(egui::RichText::new(l).small());
                            }
                            r
                        })
                        .inner;
                    r.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Particle {i}"))
                    });
                    if r.clicked() {
                        self.active_particle = i;
                        out.picked_particle = Some(i);
                    }
                }
            });
        }
        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        let area = response.rect;
        painter.rect_filled(area, 0.0, Color32::from_gray(40));
        let canvas = match doc {
            Some(d) if d.width > 0.0 && d.height > 0.0 => {
                Vec2::new(d.width as f32, d.height as f32)
            }
            _ if self.canvas.x > 0.0 && self.canvas.y > 0.0 => self.canvas,
            _ => Vec2::splat(512.0),
        };

        // Zoom around the pointer with the wheel, pan with the secondary or middle button.
        if response.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                let old = self.zoom;
                self.zoom = (self.zoom * (scroll * 0.002).exp()).clamp(0.1, 40.0);
                if let Some(p) = response.hover_pos() {
                    let c = area.center() + self.pan;
                    self.pan += (p - c) * (1.0 - self.zoom / old);
                }
            }
        }
        if response.dragged_by(egui::PointerButton::Secondary)
            || response.dragged_by(egui::PointerButton::Middle)
        {
            self.pan += response.drag_delta();
        }
        let fit = (area.width() / canvas.x).min(area.height() / canvas.y) * 0.9;
        let scale = fit * self.zoom;
        let canvas_rect = Rect::from_center_size(area.center() + self.pan, canvas * scale);
        self.last_canvas = Some((canvas_rect, scale));
        let screen_from_doc =
            |p: Point| -> Pos2 { canvas_rect.min + Vec2::new(p.x as f32, p.y as f32) * scale };
        let doc_from_screen = |p: Pos2| -> Point {
            let v = (p - canvas_rect.min) / scale;
            Point::new(v.x as f64, v.y as f64)
        };

        let painter = painter.with_clip_rect(area);
        draw_checkerboard(&painter, canvas_rect);
        if let Some(texture) = self
            .frames
            .get(self.active_particle)
            .or(self.frames.first())
        {
            painter.image(
                texture.id(),
                canvas_rect,
                Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        painter.rect_stroke(
            canvas_rect,
            0.0,
            Stroke::new(1.0, Color32::from_gray(120)),
            StrokeKind::Outside,
        );

        let Some(doc) = doc else {
            return out;
        };
        let tolerance = 4.0 / scale as f64;

        // Click: select the topmost shape (Ctrl/Shift adds), or clear on empty canvas.
        if response.clicked()
            && let Some(p) = response.interact_pointer_pos()
        {
            match doc.hit_test(doc_from_screen(p), tolerance) {
                Some(id) if ui.input(|i| i.modifiers.command || i.modifiers.shift) => {
                    selection.toggle(id)
                }
                Some(id) => selection.select_only(id),
                None => selection.clear(),
            }
        }

        // Drag with the primary button: a control point of the single selected shape, or the selection.
        if response.drag_started_by(egui::PointerButton::Primary)
            && let Some(p) = response.interact_pointer_pos()
        {
            let at = doc_from_screen(p);
            self.dragging_point = nearest_control_point(doc, selection, at, 2.0 * tolerance);
            if self.dragging_point.is_none() {
                let hit = doc.hit_test(at, tolerance);
                if let Some(id) = hit
                    && !selection.contains(id)
                {
                    selection.select_only(id);
                }
                self.dragging_shapes = hit.is_some() && !selection.is_empty();
            }
            out.begin_gesture = self.dragging_point.is_some() || self.dragging_shapes;
        }
        if response.dragged_by(egui::PointerButton::Primary) {
            let d = response.drag_delta() / scale;
            if let Some(drag) = self.dragging_point {
                if let (Some(p), Some(shape)) =
                    (response.interact_pointer_pos(), doc.shape(drag.shape))
                {
                    let mut subpaths = shape.subpaths.clone();
                    if let Some(pt) = subpaths
                        .get_mut(drag.subpath)
                        .and_then(|s| s.points.get_mut(drag.point))
                    {
                        *pt = doc_from_screen(p);
                        out.commands.push(Command::SetPoints {
                            shape: drag.shape,
                            subpaths,
                        });
                    }
                }
            } else if self.dragging_shapes && d != Vec2::ZERO {
                out.commands.push(Command::Translate {
                    ids: selection.ids(),
                    dx: d.x as f64,
                    dy: d.y as f64,
                });
            }
        }
        if response.drag_stopped() && (self.dragging_shapes || self.dragging_point.is_some()) {
            self.dragging_shapes = false;
            self.dragging_point = None;
            out.end_gesture = true;
        }

        // The overlay: outlines of the selected shapes, and control points when one shape is selected.
        let outline = Stroke::new(1.5, Color32::from_rgb(40, 160, 255));
        let ids = selection.ids();
        let show_points = ids.len() == 1;
        for id in &ids {
            for entry in doc.shape_entries_of(*id).unwrap_or_default() {
                let shape = entry.shape;
                for poly in flatten(shape, tolerance * 0.25) {
                    let pts: Vec<Pos2> = poly.into_iter().map(screen_from_doc).collect();
                    painter.add(egui::Shape::line(pts, outline));
                }
                for subpath in &shape.subpaths {
                    if show_points {
                        draw_control_points(&painter, subpath, shape.kind, &screen_from_doc);
                    }
                }
            }
        }
        out
    }
}

/// Polylines approximating a shape's outline within `tolerance` document units.
fn flatten(shape: &Shape, tolerance: f64) -> Vec<Vec<Point>> {
    let mut lines: Vec<Vec<Point>> = Vec::new();
    let path = shape.to_bezpath();
    kurbo::flatten(
        path.elements().iter().copied(),
        tolerance.max(1e-3),
        |el| match el {
            PathEl::MoveTo(p) => lines.push(vec![p]),
            PathEl::LineTo(p) => {
                if let Some(l) = lines.last_mut() {
                    l.push(p);
                }
            }
            PathEl::ClosePath => {
                if let Some(l) = lines.last_mut()
                    && let Some(&first) = l.first()
                {
                    l.push(first);
                }
            }
            _ => {}
        },
    );
    lines
}

fn draw_control_points(
    painter: &egui::Painter,
    subpath: &Subpath,
    kind: PrimitiveKind,
    screen_from_doc: &impl Fn(Point) -> Pos2,
) {
    let anchor = Color32::WHITE;
    let handle = Color32::from_rgb(40, 160, 255);
    let n = subpath.points.len();
    for (i, p) in subpath.points.iter().enumerate() {
        let is_anchor = kind == PrimitiveKind::Polygon || i % 3 == 0;
        let s = screen_from_doc(*p);
        if is_anchor {
            painter.rect_filled(Rect::from_center_size(s, Vec2::splat(6.0)), 0.0, anchor);
            painter.rect_stroke(
                Rect::from_center_size(s, Vec2::splat(6.0)),
                0.0,
                Stroke::new(1.0, handle),
                StrokeKind::Middle,
            );
        } else {
            // A handle: draw its line to the anchor it belongs to.
            let anchor_index = if i % 3 == 1 {
                i - 1
            } else {
                (i + 1) % n.max(1)
            };
            if let Some(a) = subpath.points.get(anchor_index) {
                painter.line_segment([screen_from_doc(*a), s], Stroke::new(1.0, handle));
            }
            painter.circle_filled(s, 3.0, handle);
        }
    }
}

/// The control point of the single selected shape nearest to `at` within `radius`.
fn nearest_control_point(
    doc: &Document,
    selection: &Selection,
    at: Point,
    radius: f64,
) -> Option<PointDrag> {
    let ids = selection.ids();
    let [id] = ids.as_slice() else {
        return None;
    };
    let entries = doc.shape_entries_of(*id)?;
    let [entry] = entries.as_slice() else {
        return None;
    };
    if entry.locked {
        return None;
    }
    let mut best: Option<(f64, PointDrag)> = None;
    for (si, sp) in entry.shape.subpaths.iter().enumerate() {
        for (pi, p) in sp.points.iter().enumerate() {
            let d = p.distance(at);
            if d <= radius && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((
                    d,
                    PointDrag {
                        shape: entry.shape.meta.id,
                        subpath: si,
                        point: pi,
                    },
                ));
            }
        }
    }
    best.map(|(_, d)| d)
}

fn draw_checkerboard(painter: &egui::Painter, rect: Rect) {
    const CELL: f32 = 16.0;
    painter.rect_filled(rect, 0.0, Color32::from_gray(230));
    let clip = painter.clip_rect().intersect(rect);
    if clip.width() <= 0.0 || clip.height() <= 0.0 {
        return;
    }
    let (i0, j0) = (
        ((clip.min.x - rect.min.x) / CELL).floor() as i64,
        ((clip.min.y - rect.min.y) / CELL).floor() as i64,
    );
    let (i1, j1) = (
        ((clip.max.x - rect.min.x) / CELL).ceil() as i64,
        ((clip.max.y - rect.min.y) / CELL).ceil() as i64,
    );
    for j in j0.max(0)..j1 {
        for i in i0.max(0)..i1 {
            if (i + j) % 2 == 1 {
                let min = rect.min + Vec2::new(i as f32 * CELL, j as f32 * CELL);
                let cell = Rect::from_min_size(min, Vec2::splat(CELL)).intersect(rect);
                painter.rect_filled(cell, 0.0, Color32::from_gray(200));
            }
        }
    }
}
