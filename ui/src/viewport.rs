//! The central viewport: the canvas with the current render.

use egui::{Color32, Rect, Sense, Stroke, StrokeKind, Vec2};

/// The viewport widget: shows the current frame (an RGBA texture) on a checkerboard canvas.
#[derive(Default)]
pub struct Viewport {
    texture: Option<egui::TextureHandle>,
    /// Canvas size in document units, used for the aspect ratio when there is no frame.
    pub canvas: Vec2,
}

impl std::fmt::Debug for Viewport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewport")
            .field("has_frame", &self.texture.is_some())
            .field("canvas", &self.canvas)
            .finish()
    }
}

impl Viewport {
    /// Replaces the shown frame (updates the texture in place when it exists).
    pub fn set_frame(&mut self, ctx: &egui::Context, image: egui::ColorImage) {
        match &mut self.texture {
            Some(t) => t.set(image, egui::TextureOptions::LINEAR),
            None => {
                self.texture =
                    Some(ctx.load_texture("viewport_frame", image, egui::TextureOptions::LINEAR));
            }
        }
    }

    /// Whether a frame is shown.
    pub fn has_frame(&self) -> bool {
        self.texture.is_some()
    }

    /// Draws the viewport filling the available space.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> egui::Response {
        let (response, painter) = ui.allocate_painter(ui.available_size(), Sense::click_and_drag());
        let area = response.rect;
        painter.rect_filled(area, 0.0, Color32::from_gray(40));
        let canvas = if self.canvas.x > 0.0 && self.canvas.y > 0.0 {
            self.canvas
        } else {
            Vec2::splat(512.0)
        };
        let scale = (area.width() / canvas.x).min(area.height() / canvas.y) * 0.9;
        let canvas_rect = Rect::from_center_size(area.center(), canvas * scale);
        draw_checkerboard(&painter, canvas_rect);
        if let Some(texture) = &self.texture {
            painter.image(
                texture.id(),
                canvas_rect,
                Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
                Color32::WHITE,
            );
        }
        painter.rect_stroke(
            canvas_rect,
            0.0,
            Stroke::new(1.0, Color32::from_gray(120)),
            StrokeKind::Outside,
        );
        response
    }
}

fn draw_checkerboard(painter: &egui::Painter, rect: Rect) {
    const CELL: f32 = 16.0;
    painter.rect_filled(rect, 0.0, Color32::from_gray(230));
    let (nx, ny) = (
        (rect.width() / CELL).ceil() as usize,
        (rect.height() / CELL).ceil() as usize,
    );
    for j in 0..ny {
        for i in (j % 2..nx).step_by(2) {
            let min = rect.min + Vec2::new(i as f32 * CELL, j as f32 * CELL);
            let cell = Rect::from_min_size(min, Vec2::splat(CELL)).intersect(rect);
            painter.rect_filled(cell, 0.0, Color32::from_gray(200));
        }
    }
}
