//! The 3D viewport: shows a [`Mesh`] with an orbit camera (drag to orbit, right/middle drag to pan,
//! scroll to zoom, double-click to frame), shaded with a headlight Lambert on its vertex colours over a
//! ground grid, with an axis gizmo in the corner.
//!
//! Rendering goes through an `egui_wgpu` paint callback with its own WGSL pipelines: in `prepare` the
//! scene is drawn offscreen into the viewport's own 4× MSAA colour and depth targets (re-drawn only when
//! the camera, the mesh, the visible parts or the size changed; vertex buffers are uploaded when the mesh's
//! revision changes), and in `paint` one triangle composites the resolved picture over a gradient into
//! egui's render pass, whose sample count and depth format the composite pipeline matches
//! ([`PassFormat`]). Without a wgpu render state ([`Viewport3d::install`] never called) the camera still
//! responds and the widget says that the 3D view needs the wgpu renderer.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use egui::{Color32, Pos2, Rect, Sense, Stroke, Vec2};
use egui_wgpu::wgpu;
use egui_wgpu::wgpu::util::DeviceExt as _;
use vecdream_core::mesh::{Mesh, MeshError};

/// Azimuth of a freshly framed camera (radians): a little right of the front.
pub const DEFAULT_AZIMUTH: f32 = 0.55;
/// Elevation of a freshly framed camera (radians): a little above.
pub const DEFAULT_ELEVATION: f32 = 0.35;
/// The camera never goes closer to the poles than this (radians from the horizon).
pub const MAX_ELEVATION: f32 = 1.5;
/// Framing leaves this much room around the mesh's bounding sphere (distance factor).
pub const FRAME_MARGIN: f32 = 1.15;
/// Radians of orbit per point dragged.
pub const ORBIT_PER_POINT: f32 = 0.008;

const SCENE_SAMPLES: u32 = 4;
const SCENE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8UnormSrgb;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
/// Floats per vertex: position 3, normal 3, linear RGBA 4.
const VERTEX_FLOATS: usize = 10;
/// Floats of the scene uniform: view-projection 16, eye 4, key light 4, fill light 4.
const UNIFORM_FLOATS: usize = 28;

/// An orbit camera: it looks at `target` from `distance` away, at `azimuth` around the vertical axis
/// (0 looks from +z, the front, toward −z; positive turns toward +x) and `elevation` above the horizon.
/// Right-handed, y up, like [`Mesh`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrbitCamera {
    /// The point looked at (world units).
    pub target: [f32; 3],
    /// Angle around the y axis in radians, in `(-π, π]`.
    pub azimuth: f32,
    /// Angle above the horizon in radians, within ±[`MAX_ELEVATION`].
    pub elevation: f32,
    /// Distance from the target (world units, > 0).
    pub distance: f32,
    /// Vertical field of view in radians.
    pub fov_y: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        Self {
            target: [0.0; 3],
            azimuth: DEFAULT_AZIMUTH,
            elevation: DEFAULT_ELEVATION,
            distance: 3.0,
            fov_y: 35f32.to_radians(),
        }
    }
}

fn add(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale(a: [f32; 3], s: f32) -> [f32; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalize(a: [f32; 3]) -> [f32; 3] {
    let n = dot(a, a).sqrt();
    if n > 0.0 { scale(a, 1.0 / n) } else { a }
}

/// Column-major 4×4 matrix product `a · b`.
fn mat_mul(a: &[[f32; 4]; 4], b: &[[f32; 4]; 4]) -> [[f32; 4]; 4] {
    let mut c = [[0.0; 4]; 4];
    for (j, column) in c.iter_mut().enumerate() {
        for (i, v) in column.iter_mut().enumerate() {
            *v = (0..4).map(|k| a[k][i] * b[j][k]).sum();
        }
    }
    c
}

impl OrbitCamera {
    /// Unit vector from the target toward the eye.
    pub fn back(&self) -> [f32; 3] {
        let (se, ce) = self.elevation.sin_cos();
        let (sa, ca) = self.azimuth.sin_cos();
        [ce * sa, se, ce * ca]
    }

    /// The camera's position.
    pub fn eye(&self) -> [f32; 3] {
        add(self.target, scale(self.back(), self.distance))
    }

    /// The camera's right and up unit vectors (world).
    pub fn right_up(&self) -> ([f32; 3], [f32; 3]) {
        let back = self.back();
        let right = normalize([back[2], 0.0, -back[0]]);
        (right, cross(back, right))
    }

    /// Turns the camera around the target; the elevation is clamped to ±[`MAX_ELEVATION`].
    pub fn orbit(&mut self, d_azimuth: f32, d_elevation: f32) {
        let tau = std::f32::consts::TAU;
        let mut az = (self.azimuth + d_azimuth).rem_euclid(tau);
        if az > std::f32::consts::PI {
            az -= tau;
        }
        self.azimuth = az;
        self.elevation = (self.elevation + d_elevation).clamp(-MAX_ELEVATION, MAX_ELEVATION);
    }

    /// Multiplies the distance by `factor` (> 1 moves away).
    pub fn zoom(&mut self, factor: f32) {
        if factor.is_finite() && factor > 0.0 {
            self.distance = (self.distance * factor).clamp(1e-4, 1e7);
        }
    }

    /// Moves the target in the view plane by `(dx, dy)` world units (right, up).
    pub fn pan(&mut self, dx: f32, dy: f32) {
        let (right, up) = self.right_up();
        self.target = add(self.target, add(scale(right, dx), scale(up, dy)));
    }

    /// World units per point at the target's depth in a viewport `height` points tall.
    pub fn world_per_point(&self, height: f32) -> f32 {
        2.0 * self.distance * (self.fov_y * 0.5).tan() / height.max(1.0)
    }

    /// Looks at the middle of `bounds` from as close as the whole box fits a viewport of this aspect
    /// ratio (width / height); the angles stay.
    pub fn frame(&mut self, bounds: ([f32; 3], [f32; 3]), aspect: f32) {
        let (lo, hi) = bounds;
        self.target = scale(add(lo, hi), 0.5);
        let d = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let radius = (0.5 * dot(d, d).sqrt()).max(1e-4);
        let half_y = self.fov_y * 0.5;
        let half_x = (half_y.tan() * aspect.max(0.05)).atan();
        self.distance = radius / half_y.min(half_x).sin() * FRAME_MARGIN;
    }

    /// View-projection matrix (column-major, wgpu's 0..1 depth) for a viewport of this aspect ratio.
    pub fn view_proj(&self, aspect: f32) -> [[f32; 4]; 4] {
        let back = self.back();
        let (right, up) = self.right_up();
        let eye = self.eye();
        let view = [
            [right[0], up[0], back[0], 0.0],
            [right[1], up[1], back[1], 0.0],
            [right[2], up[2], back[2], 0.0],
            [-dot(right, eye), -dot(up, eye), -dot(back, eye), 1.0],
        ];
        let near = self.distance * 0.01;
        let far = self.distance * 100.0;
        let f = 1.0 / (self.fov_y * 0.5).tan();
        let proj = [
            [f / aspect.max(1e-3), 0.0, 0.0, 0.0],
            [0.0, f, 0.0, 0.0],
            [0.0, 0.0, far / (near - far), -1.0],
            [0.0, 0.0, near * far / (near - far), 0.0],
        ];
        mat_mul(&proj, &view)
    }

    /// Where a world point appears in `rect` (points), `None` behind the camera.
    pub fn project(&self, p: [f32; 3], rect: Rect) -> Option<Pos2> {
        let m = self.view_proj(rect.aspect_ratio());
        let clip: Vec<f32> = (0..4)
            .map(|i| m[0][i] * p[0] + m[1][i] * p[1] + m[2][i] * p[2] + m[3][i])
            .collect();
        (clip[3] > 1e-6).then(|| {
            let (x, y) = (clip[0] / clip[3], clip[1] / clip[3]);
            rect.center() + Vec2::new(x * rect.width() * 0.5, -y * rect.height() * 0.5)
        })
    }
}

/// What the render pass the viewport paints into looks like: the composite pipeline must match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassFormat {
    /// Colour format of the framebuffer.
    pub color: wgpu::TextureFormat,
    /// MSAA sample count of egui's pass (eframe's `multisampling`, 1 when off).
    pub samples: u32,
    /// Depth/stencil format of egui's pass (eframe's `depth_buffer`), `None` when it has none.
    pub depth_stencil: Option<wgpu::TextureFormat>,
}

impl PassFormat {
    /// eframe's and egui_kittest's defaults: the render state's target format, no MSAA, no depth.
    pub fn default_for(render_state: &egui_wgpu::RenderState) -> Self {
        Self {
            color: render_state.target_format,
            samples: 1,
            depth_stencil: None,
        }
    }
}

/// The mesh flattened for the GPU: one interleaved vertex array, one index array with each part's
/// index range, and the ground grid's line vertices.
#[derive(Debug, Default)]
struct PreparedMesh {
    vertices: Vec<f32>,
    indices: Vec<u32>,
    parts: Vec<Range<u32>>,
    grid: Vec<f32>,
}

fn nice_step(x: f32) -> f32 {
    let p = 10f32.powf(x.max(1e-9).log10().floor());
    let m = x / p;
    p * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    }
}

impl PreparedMesh {
    fn new(mesh: &Mesh) -> Self {
        let mut out = Self::default();
        for part in &mesh.parts {
            let base = (out.vertices.len() / VERTEX_FLOATS) as u32;
            for ((p, n), c) in part.positions.iter().zip(&part.normals).zip(&part.colors) {
                out.vertices.extend_from_slice(p);
                out.vertices.extend_from_slice(n);
                out.vertices.extend_from_slice(c);
            }
            let start = out.indices.len() as u32;
            out.indices.extend(part.indices.iter().map(|i| i + base));
            out.parts.push(start..out.indices.len() as u32);
        }
        if let Some(bounds) = mesh.bounds() {
            out.grid = grid_lines(bounds);
        }
        out
    }
}

/// Lines of a square grid on the floor under the mesh (y = its lowest point), a little larger than
/// its footprint, with round spacing.
fn grid_lines((lo, hi): ([f32; 3], [f32; 3])) -> Vec<f32> {
    let extent = (hi[0] - lo[0])
        .max(hi[2] - lo[2])
        .max((hi[1] - lo[1]) * 0.75)
        .max(1e-3);
    let step = nice_step(extent / 6.0);
    let half_lines = ((extent * 0.9) / step).ceil() as i32;
    let half = half_lines as f32 * step;
    let cx = ((lo[0] + hi[0]) * 0.5 / step).round() * step;
    let cz = ((lo[2] + hi[2]) * 0.5 / step).round() * step;
    let y = lo[1] - extent * 1e-3;
    let mut v = Vec::new();
    let mut line = |a: [f32; 3], b: [f32; 3], strong: bool| {
        let color = if strong {
            [0.55, 0.55, 0.58, 0.75]
        } else {
            [0.45, 0.45, 0.48, 0.40]
        };
        for p in [a, b] {
            v.extend_from_slice(&p);
            v.extend_from_slice(&[0.0, 1.0, 0.0]);
            v.extend_from_slice(&color);
        }
    };
    for i in -half_lines..=half_lines {
        let t = i as f32 * step;
        line([cx + t, y, cz - half], [cx + t, y, cz + half], i == 0);
        line([cx - half, y, cz + t], [cx + half, y, cz + t], i == 0);
    }
    v
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// The 3D viewport widget. Build it once, [`install`](Self::install) it on the app's wgpu render
/// state, give it a mesh with [`set_mesh`](Self::set_mesh) and call [`show`](Self::show) every frame.
pub struct Viewport3d {
    key: u64,
    mesh: Mesh,
    prepared: Arc<PreparedMesh>,
    revision: u64,
    visible: Vec<bool>,
    camera: OrbitCamera,
    frame_pending: bool,
    installed: bool,
    aspect: f32,
    /// Show the one-line controls hint at the bottom of the view.
    pub show_hint: bool,
}

impl std::fmt::Debug for Viewport3d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewport3d")
            .field("parts", &self.mesh.parts.len())
            .field("vertices", &self.mesh.vertex_count())
            .field("revision", &self.revision)
            .field("camera", &self.camera)
            .field("installed", &self.installed)
            .finish()
    }
}

impl Default for Viewport3d {
    fn default() -> Self {
        Self::new()
    }
}

impl Viewport3d {
    /// An empty viewport (no mesh) with the default camera.
    pub fn new() -> Self {
        Self {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            mesh: Mesh::default(),
            prepared: Arc::default(),
            revision: 0,
            visible: Vec::new(),
            camera: OrbitCamera::default(),
            frame_pending: false,
            installed: false,
            aspect: 1.0,
            show_hint: true,
        }
    }

    /// Creates the shared pipelines in the render state's callback resources (once per render state)
    /// for eframe's default pass (no MSAA, no depth); see [`install_for_pass`](Self::install_for_pass).
    pub fn install(&mut self, render_state: &egui_wgpu::RenderState) {
        self.install_for_pass(render_state, PassFormat::default_for(render_state));
    }

    /// Like [`install`](Self::install) for a pass with MSAA or a depth buffer (eframe's
    /// `multisampling` / `depth_buffer` options).
    pub fn install_for_pass(&mut self, render_state: &egui_wgpu::RenderState, pass: PassFormat) {
        let mut renderer = render_state.renderer.write();
        let resources = &mut renderer.callback_resources;
        if resources
            .get::<SharedResources>()
            .is_none_or(|r| r.pass != pass)
        {
            resources.insert(SharedResources::new(&render_state.device, pass));
        }
        self.installed = true;
    }

    /// Whether [`install`](Self::install) was called (the mesh is drawn, not just described).
    pub fn is_installed(&self) -> bool {
        self.installed
    }

    /// Shows `mesh` (all parts visible) and frames it at the next [`show`](Self::show). A malformed mesh
    /// (lengths disagree, an index out of range, a non-finite value) is refused and the old one kept.
    pub fn set_mesh(&mut self, mesh: Mesh) -> Result<(), MeshError> {
        mesh.validate()?;
        self.prepared = Arc::new(PreparedMesh::new(&mesh));
        self.visible = vec![true; mesh.parts.len()];
        self.mesh = mesh;
        self.revision += 1;
        self.frame_pending = true;
        Ok(())
    }

    /// Removes the mesh.
    pub fn clear(&mut self) {
        self.mesh = Mesh::default();
        self.prepared = Arc::default();
        self.visible.clear();
        self.revision += 1;
    }

    /// The mesh shown.
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// Counts [`set_mesh`](Self::set_mesh) and [`clear`](Self::clear) calls: the GPU buffers are
    /// re-uploaded when it changes.
    pub fn mesh_revision(&self) -> u64 {
        self.revision
    }

    /// Whether part `index` is drawn (false for parts that do not exist).
    pub fn part_visible(&self, index: usize) -> bool {
        self.visible.get(index).copied().unwrap_or(false)
    }

    /// Shows or hides part `index` (ignored for parts that do not exist).
    pub fn set_part_visible(&mut self, index: usize, visible: bool) {
        if let Some(v) = self.visible.get_mut(index) {
            *v = visible;
        }
    }

    /// The camera.
    pub fn camera(&self) -> OrbitCamera {
        self.camera
    }

    /// Replaces the camera (scripts, tests, screenshots).
    pub fn set_camera(&mut self, camera: OrbitCamera) {
        self.camera = camera;
        self.frame_pending = false;
    }

    /// Frames the mesh from the default angles (or now, from the current angles, if `keep_angles`).
    pub fn frame(&mut self, keep_angles: bool) {
        if !keep_angles {
            self.camera.azimuth = DEFAULT_AZIMUTH;
            self.camera.elevation = DEFAULT_ELEVATION;
        }
        if let Some(bounds) = self.mesh.bounds() {
            self.camera.frame(bounds, self.aspect);
        }
        self.frame_pending = false;
    }

    /// Draws the view into all the space left in `ui` and handles orbit, pan, zoom and framing.
    pub fn show(&mut self, ui: &mut egui::Ui) -> egui::Response {
        let ppp = ui.ctx().pixels_per_point();
        let size = ui.available_size().max(Vec2::splat(64.0));
        let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
        // Snap to pixels so the offscreen picture maps 1:1 onto the viewport egui sets.
        let rect = Rect::from_min_max(
            (rect.min.to_vec2() * ppp).round().to_pos2() / ppp,
            (rect.max.to_vec2() * ppp).round().to_pos2() / ppp,
        );
        response.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Canvas, ui.is_enabled(), "3D view")
        });
        self.aspect = rect.aspect_ratio();
        if self.frame_pending {
            self.frame(false);
        }
        self.handle_input(ui, &response, rect);
        if ui.is_rect_visible(rect) {
            self.paint(ui, rect, ppp);
        }
        response
    }

    fn handle_input(&mut self, ui: &egui::Ui, response: &egui::Response, rect: Rect) {
        let delta = response.drag_delta();
        if response.dragged_by(egui::PointerButton::Primary) {
            self.camera
                .orbit(-delta.x * ORBIT_PER_POINT, delta.y * ORBIT_PER_POINT);
        } else if response.dragged_by(egui::PointerButton::Secondary)
            || response.dragged_by(egui::PointerButton::Middle)
        {
            let k = self.camera.world_per_point(rect.height());
            self.camera.pan(-delta.x * k, delta.y * k);
        }
        if response.hovered() {
            let (scroll, pinch) = ui.input(|i| (i.smooth_scroll_delta.y, i.zoom_delta()));
            if scroll != 0.0 {
                self.camera.zoom((-scroll * 0.002).exp());
                ui.ctx().input_mut(|i| i.smooth_scroll_delta = Vec2::ZERO);
            }
            if pinch != 1.0 {
                self.camera.zoom(1.0 / pinch);
            }
        }
        if response.double_clicked() {
            self.frame(true);
        }
    }

    fn paint(&self, ui: &egui::Ui, rect: Rect, ppp: f32) {
        let painter = ui.painter_at(rect);
        let dark = ui.visuals().dark_mode;
        let (top, bottom) = if dark {
            (
                Color32::from_rgb(0x3c, 0x41, 0x4a),
                Color32::from_rgb(0x17, 0x19, 0x1d),
            )
        } else {
            (
                Color32::from_rgb(0xf6, 0xf7, 0xf9),
                Color32::from_rgb(0xc4, 0xc9, 0xd2),
            )
        };
        let text_color = ui.visuals().weak_text_color();
        if !self.installed {
            painter.rect_filled(rect, 0.0, bottom);
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "The 3D view needs the wgpu renderer",
                egui::FontId::proportional(14.0),
                text_color,
            );
            return;
        }
        let size_px = [
            (rect.width() * ppp).round().max(1.0) as u32,
            (rect.height() * ppp).round().max(1.0) as u32,
        ];
        let cam = self.camera;
        let (right, up) = cam.right_up();
        let back = cam.back();
        let key = normalize(add(back, add(scale(up, 0.45), scale(right, -0.35))));
        let fill = normalize(add(back, add(scale(up, -0.3), scale(right, 0.6))));
        let mut uniforms = [0.0f32; UNIFORM_FLOATS];
        let vp = cam.view_proj(rect.aspect_ratio());
        for (c, column) in vp.iter().enumerate() {
            uniforms[c * 4..c * 4 + 4].copy_from_slice(column);
        }
        let eye = cam.eye();
        uniforms[16..19].copy_from_slice(&eye);
        uniforms[20..23].copy_from_slice(&key);
        uniforms[24..27].copy_from_slice(&fill);
        let lin = |c: Color32| {
            let r = egui::Rgba::from(c);
            [r.r(), r.g(), r.b(), 1.0]
        };
        let mut backdrop = [0.0f32; 8];
        backdrop[..4].copy_from_slice(&lin(top));
        backdrop[4..].copy_from_slice(&lin(bottom));
        painter.add(egui_wgpu::Callback::new_paint_callback(
            rect,
            SceneCallback {
                key: self.key,
                size_px,
                mesh: Arc::clone(&self.prepared),
                revision: self.revision,
                visible: self.visible.clone(),
                uniforms,
                backdrop,
            },
        ));
        self.paint_gizmo(&painter, rect);
        let font = egui::FontId::proportional(12.0);
        if self.mesh.parts.is_empty() {
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "No mesh",
                egui::FontId::proportional(16.0),
                text_color,
            );
        }
        if self.show_hint {
            painter.text(
                rect.left_bottom() + Vec2::new(8.0, -6.0),
                egui::Align2::LEFT_BOTTOM,
                "drag: orbit · right-drag: pan · scroll: zoom · double-click: frame",
                font,
                text_color,
            );
        }
    }

    /// The world axes as seen by the camera, in the top-right corner.
    fn paint_gizmo(&self, painter: &egui::Painter, rect: Rect) {
        let center = rect.right_top() + Vec2::new(-34.0, 34.0);
        let (right, up) = self.camera.right_up();
        let back = self.camera.back();
        let mut axes = [
            ([1.0, 0.0, 0.0], "x", Color32::from_rgb(0xe0, 0x55, 0x55)),
            ([0.0, 1.0, 0.0], "y", Color32::from_rgb(0x6c, 0xc0, 0x4a)),
            ([0.0, 0.0, 1.0], "z", Color32::from_rgb(0x4f, 0x8c, 0xe8)),
        ];
        // Far axes first, so the nearest is drawn on top.
        axes.sort_by(|a, b| dot(a.0, back).total_cmp(&dot(b.0, back)));
        for (axis, name, color) in axes {
            let tip = center + Vec2::new(dot(axis, right), -dot(axis, up)) * 22.0;
            painter.line_segment([center, tip], Stroke::new(2.0, color));
            painter.text(
                tip,
                egui::Align2::CENTER_CENTER,
                name,
                egui::FontId::proportional(11.0),
                color,
            );
        }
    }
}

/// One frame's drawing of one viewport: everything `prepare` needs, by value.
struct SceneCallback {
    key: u64,
    size_px: [u32; 2],
    mesh: Arc<PreparedMesh>,
    revision: u64,
    visible: Vec<bool>,
    uniforms: [f32; UNIFORM_FLOATS],
    backdrop: [f32; 8],
}

impl egui_wgpu::CallbackTrait for SceneCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &egui_wgpu::ScreenDescriptor,
        egui_encoder: &mut wgpu::CommandEncoder,
        callback_resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(shared) = callback_resources.get_mut::<SharedResources>() {
            shared.prepare(device, queue, egui_encoder, self);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        callback_resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(shared) = callback_resources.get::<SharedResources>() else {
            return;
        };
        let Some(view) = shared.views.get(&self.key) else {
            return;
        };
        render_pass.set_pipeline(&shared.blit_pipeline);
        render_pass.set_bind_group(0, &view.blit_bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}

/// Pipelines shared by all viewports of one render state, and each viewport's targets and buffers.
struct SharedResources {
    pass: PassFormat,
    mesh_pipeline: wgpu::RenderPipeline,
    line_pipeline: wgpu::RenderPipeline,
    blit_pipeline: wgpu::RenderPipeline,
    scene_layout: wgpu::BindGroupLayout,
    blit_layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    views: HashMap<u64, ViewResources>,
}

/// What one viewport keeps on the GPU.
struct ViewResources {
    size: [u32; 2],
    msaa_view: wgpu::TextureView,
    depth_view: wgpu::TextureView,
    resolved_view: wgpu::TextureView,
    blit_bind_group: wgpu::BindGroup,
    uniform_buffer: wgpu::Buffer,
    backdrop_buffer: wgpu::Buffer,
    scene_bind_group: wgpu::BindGroup,
    revision: Option<u64>,
    vertices: Option<wgpu::Buffer>,
    indices: Option<wgpu::Buffer>,
    grid: Option<(wgpu::Buffer, u32)>,
    parts: Vec<Range<u32>>,
    /// Uniforms, backdrop and visibility of the picture in the resolved target (redrawn when they change).
    drawn: Option<(Vec<f32>, Vec<bool>)>,
}

fn vertex_layout() -> wgpu::VertexBufferLayout<'static> {
    const ATTRIBUTES: [wgpu::VertexAttribute; 3] =
        wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3, 2 => Float32x4];
    wgpu::VertexBufferLayout {
        array_stride: (VERTEX_FLOATS * 4) as u64,
        step_mode: wgpu::VertexStepMode::Vertex,
        attributes: &ATTRIBUTES,
    }
}

impl SharedResources {
    fn new(device: &wgpu::Device, pass: PassFormat) -> Self {
        let scene_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("viewport3d scene"),
            source: wgpu::ShaderSource::Wgsl(include_str!("viewport3d_scene.wgsl").into()),
        });
        let blit_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("viewport3d blit"),
            source: wgpu::ShaderSource::Wgsl(include_str!("viewport3d_blit.wgsl").into()),
        });
        let uniform_entry = |binding, visibility| wgpu::BindGroupLayoutEntry {
            binding,
            visibility,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let scene_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("viewport3d scene"),
            entries: &[uniform_entry(
                0,
                wgpu::ShaderStages::VERTEX | wgpu::ShaderStages::FRAGMENT,
            )],
        });
        let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("viewport3d blit"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        multisampled: false,
                        sample_type: wgpu::TextureSampleType::Float { filterable: true },
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
                uniform_entry(2, wgpu::ShaderStages::FRAGMENT),
            ],
        });
        let scene_pipeline_layout =
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("viewport3d scene"),
                bind_group_layouts: &[Some(&scene_layout)],
                immediate_size: 0,
            });
        let blit_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("viewport3d blit"),
            bind_group_layouts: &[Some(&blit_layout)],
            immediate_size: 0,
        });
        let scene_pipeline = |label, topology, fragment, depth_write, blend| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(label),
                layout: Some(&scene_pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &scene_module,
                    entry_point: Some("vs_scene"),
                    buffers: &[Some(vertex_layout())],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                },
                primitive: wgpu::PrimitiveState {
                    topology,
                    cull_mode: None,
                    ..Default::default()
                },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: DEPTH_FORMAT,
                    depth_write_enabled: Some(depth_write),
                    depth_compare: Some(wgpu::CompareFunction::LessEqual),
                    stencil: wgpu::StencilState::default(),
                    bias: wgpu::DepthBiasState::default(),
                }),
                multisample: wgpu::MultisampleState {
                    count: SCENE_SAMPLES,
                    mask: !0,
                    alpha_to_coverage_enabled: false,
                },
                fragment: Some(wgpu::FragmentState {
                    module: &scene_module,
                    entry_point: Some(fragment),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: SCENE_FORMAT,
                        blend,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let mesh_pipeline = scene_pipeline(
            "viewport3d mesh",
            wgpu::PrimitiveTopology::TriangleList,
            "fs_mesh",
            true,
            None,
        );
        let line_pipeline = scene_pipeline(
            "viewport3d grid",
            wgpu::PrimitiveTopology::LineList,
            "fs_line",
            false,
            Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
        );
        let blit_pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("viewport3d blit"),
            layout: Some(&blit_pipeline_layout),
            vertex: wgpu::VertexState {
                module: &blit_module,
                entry_point: Some("vs_blit"),
                buffers: &[],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: pass.depth_stencil.map(|format| wgpu::DepthStencilState {
                format,
                depth_write_enabled: Some(false),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: wgpu::StencilState::default(),
                bias: wgpu::DepthBiasState::default(),
            }),
            multisample: wgpu::MultisampleState {
                count: pass.samples.max(1),
                mask: !0,
                alpha_to_coverage_enabled: false,
            },
            fragment: Some(wgpu::FragmentState {
                module: &blit_module,
                entry_point: Some(if pass.color.is_srgb() {
                    "fs_blit_linear"
                } else {
                    "fs_blit_gamma"
                }),
                targets: &[Some(wgpu::ColorTargetState {
                    format: pass.color,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("viewport3d blit"),
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        Self {
            pass,
            mesh_pipeline,
            line_pipeline,
            blit_pipeline,
            scene_layout,
            blit_layout,
            sampler,
            views: HashMap::new(),
        }
    }

    fn new_view(&self, device: &wgpu::Device, size: [u32; 2]) -> ViewResources {
        let extent = wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: 1,
        };
        let texture = |label, format, samples, usage| {
            device
                .create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size: extent,
                    mip_level_count: 1,
                    sample_count: samples,
                    dimension: wgpu::TextureDimension::D2,
                    format,
                    usage,
                    view_formats: &[],
                })
                .create_view(&wgpu::TextureViewDescriptor::default())
        };
        let msaa_view = texture(
            "viewport3d msaa colour",
            SCENE_FORMAT,
            SCENE_SAMPLES,
            wgpu::TextureUsages::RENDER_ATTACHMENT,
        );
        let depth_view = texture(
            "viewport3d depth",
            DEPTH_FORMAT,
            SCENE_SAMPLES,
            wgpu::TextureUsages::RENDER_ATTACHMENT,
        );
        let resolved_view = texture(
            "viewport3d resolved colour",
            SCENE_FORMAT,
            1,
            wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
        );
        let uniform_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("viewport3d uniforms"),
            size: (UNIFORM_FLOATS * 4) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let backdrop_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("viewport3d backdrop"),
            size: 32,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let scene_bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewport3d scene"),
            layout: &self.scene_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform_buffer.as_entire_binding(),
            }],
        });
        let blit_bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("viewport3d blit"),
            layout: &self.blit_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(&resolved_view),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(&self.sampler),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: backdrop_buffer.as_entire_binding(),
                },
            ],
        });
        ViewResources {
            size,
            msaa_view,
            depth_view,
            resolved_view,
            blit_bind_group,
            uniform_buffer,
            backdrop_buffer,
            scene_bind_group,
            revision: None,
            vertices: None,
            indices: None,
            grid: None,
            parts: Vec::new(),
            drawn: None,
        }
    }

    fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        cb: &SceneCallback,
    ) {
        let limit = device.limits().max_texture_dimension_2d;
        let size = [cb.size_px[0].min(limit), cb.size_px[1].min(limit)];
        if self.views.get(&cb.key).is_none_or(|v| v.size != size) {
            // A resize keeps the uploaded mesh.
            let mut fresh = self.new_view(device, size);
            if let Some(old) = self.views.remove(&cb.key) {
                fresh.revision = old.revision;
                fresh.vertices = old.vertices;
                fresh.indices = old.indices;
                fresh.grid = old.grid;
                fresh.parts = old.parts;
            }
            self.views.insert(cb.key, fresh);
        }
        let Some(view) = self.views.get_mut(&cb.key) else {
            return;
        };
        if view.revision != Some(cb.revision) {
            let buffer = |label, data: Vec<u8>, usage| {
                (!data.is_empty()).then(|| {
                    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(label),
                        contents: &data,
                        usage,
                    })
                })
            };
            let m = &cb.mesh;
            view.vertices = buffer(
                "viewport3d vertices",
                f32_bytes(&m.vertices),
                wgpu::BufferUsages::VERTEX,
            );
            view.indices = buffer(
                "viewport3d indices",
                u32_bytes(&m.indices),
                wgpu::BufferUsages::INDEX,
            );
            view.grid = buffer(
                "viewport3d grid",
                f32_bytes(&m.grid),
                wgpu::BufferUsages::VERTEX,
            )
            .map(|b| (b, (m.grid.len() / VERTEX_FLOATS) as u32));
            view.parts = m.parts.clone();
            view.revision = Some(cb.revision);
            view.drawn = None;
        }
        let state = (
            cb.uniforms.iter().chain(&cb.backdrop).copied().collect(),
            cb.visible.clone(),
        );
        if view.drawn.as_ref() == Some(&state) {
            return;
        }
        queue.write_buffer(&view.uniform_buffer, 0, &f32_bytes(&cb.uniforms));
        queue.write_buffer(&view.backdrop_buffer, 0, &f32_bytes(&cb.backdrop));
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("viewport3d scene"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view.msaa_view,
                    depth_slice: None,
                    resolve_target: Some(&view.resolved_view),
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                        store: wgpu::StoreOp::Discard,
                    },
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &view.depth_view,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_bind_group(0, &view.scene_bind_group, &[]);
            if let Some((grid, count)) = &view.grid {
                pass.set_pipeline(&self.line_pipeline);
                pass.set_vertex_buffer(0, grid.slice(..));
                pass.draw(0..*count, 0..1);
            }
            if let (Some(vertices), Some(indices)) = (&view.vertices, &view.indices) {
                pass.set_pipeline(&self.mesh_pipeline);
                pass.set_vertex_buffer(0, vertices.slice(..));
                pass.set_index_buffer(indices.slice(..), wgpu::IndexFormat::Uint32);
                for (range, _) in view
                    .parts
                    .iter()
                    .zip(&cb.visible)
                    .filter(|(r, v)| **v && !r.is_empty())
                {
                    pass.draw_indexed(range.clone(), 0, 0..1);
                }
            }
        }
        view.drawn = Some(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecdream_core::mesh::MeshPart;

    fn triangle() -> Mesh {
        Mesh {
            parts: vec![MeshPart {
                name: "tri".into(),
                positions: vec![[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, -1.0]],
                normals: vec![[0.0, 0.0, 1.0]; 3],
                colors: vec![[1.0, 0.5, 0.0, 1.0]; 3],
                indices: vec![0, 1, 2],
            }],
        }
    }

    #[test]
    fn the_front_camera_projects_the_target_to_the_centre_and_x_to_the_right() {
        let cam = OrbitCamera {
            azimuth: 0.0,
            elevation: 0.0,
            ..OrbitCamera::default()
        };
        let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(200.0, 100.0));
        let c = cam.project([0.0; 3], rect).unwrap();
        assert!((c - rect.center()).length() < 1e-3, "{c:?}");
        let r = cam.project([0.5, 0.0, 0.0], rect).unwrap();
        let u = cam.project([0.0, 0.5, 0.0], rect).unwrap();
        assert!(r.x > c.x + 1.0 && (r.y - c.y).abs() < 1e-3, "{r:?}");
        assert!(u.y < c.y - 1.0 && (u.x - c.x).abs() < 1e-3, "{u:?}");
        // Behind the eye: not projected.
        assert!(cam.project([0.0, 0.0, 10.0], rect).is_none());
    }

    #[test]
    fn depth_runs_from_zero_at_near_to_one_at_far() {
        let cam = OrbitCamera {
            azimuth: 0.0,
            elevation: 0.0,
            distance: 10.0,
            ..OrbitCamera::default()
        };
        let m = cam.view_proj(1.0);
        let depth = |z: f32| {
            let p = [0.0, 0.0, z, 1.0];
            let c: Vec<f32> = (0..4)
                .map(|i| (0..4).map(|k| m[k][i] * p[k]).sum())
                .collect();
            c[2] / c[3]
        };
        // Eye at z = 10; near = 0.1, far = 1000.
        assert!(depth(10.0 - 0.1).abs() < 1e-4);
        assert!((depth(10.0 - 1000.0) - 1.0).abs() < 1e-4);
        assert!(depth(5.0) < depth(0.0));
    }

    #[test]
    fn orbit_wraps_azimuth_and_clamps_elevation() {
        let mut cam = OrbitCamera::default();
        cam.orbit(10.0, 10.0);
        assert!(cam.azimuth > -std::f32::consts::PI && cam.azimuth <= std::f32::consts::PI);
        assert_eq!(cam.elevation, MAX_ELEVATION);
        cam.orbit(0.0, -100.0);
        assert_eq!(cam.elevation, -MAX_ELEVATION);
        let (right, up) = cam.right_up();
        assert!(dot(right, up).abs() < 1e-5 && (dot(up, up) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn framing_fits_the_whole_box() {
        let mut cam = OrbitCamera::default();
        let bounds = ([-1.0, 0.0, -0.2], [3.0, 2.0, 0.2]);
        for aspect in [0.5, 1.0, 2.0] {
            cam.frame(bounds, aspect);
            assert_eq!(cam.target, [1.0, 1.0, 0.0]);
            let rect = Rect::from_min_size(Pos2::ZERO, Vec2::new(100.0 * aspect, 100.0));
            for corner in 0..8 {
                let p = [0, 1, 2].map(|k| {
                    if corner >> k & 1 == 1 {
                        bounds.1[k]
                    } else {
                        bounds.0[k]
                    }
                });
                let s = cam.project(p, rect).unwrap();
                assert!(
                    rect.expand(0.5).contains(s),
                    "aspect {aspect}: {p:?} at {s:?}"
                );
            }
        }
    }

    #[test]
    fn set_mesh_flattens_parts_and_refuses_malformed_meshes() {
        let mut v = Viewport3d::new();
        let mut two = triangle();
        two.parts.push(triangle().parts[0].clone());
        v.set_mesh(two).unwrap();
        assert_eq!(v.mesh_revision(), 1);
        assert_eq!(v.prepared.parts, vec![0..3, 3..6]);
        assert_eq!(&v.prepared.indices[3..], &[3, 4, 5]);
        assert_eq!(v.prepared.vertices.len(), 6 * VERTEX_FLOATS);
        assert!(!v.prepared.grid.is_empty());
        v.set_part_visible(1, false);
        assert!(v.part_visible(0) && !v.part_visible(1) && !v.part_visible(7));
        let mut bad = triangle();
        bad.parts[0].indices = vec![0, 1, 9];
        let e = v.set_mesh(bad).unwrap_err().to_string();
        assert!(e.contains("tri") && e.contains("out of range"), "{e}");
        assert_eq!(v.mesh_revision(), 1, "the old mesh stays");
        assert_eq!(v.mesh().parts.len(), 2);
    }

    #[test]
    fn the_shaders_parse_and_validate() {
        use egui_wgpu::wgpu::naga;
        for (name, source) in [
            ("scene", include_str!("viewport3d_scene.wgsl")),
            ("blit", include_str!("viewport3d_blit.wgsl")),
        ] {
            let module = naga::front::wgsl::parse_str(source)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }

    #[test]
    fn grid_steps_are_round_numbers() {
        for (x, step) in [(0.23, 0.2), (7.0, 5.0), (0.9, 1.0), (80.0, 100.0)] {
            assert!(
                (nice_step(x) - step).abs() < 1e-5 * step,
                "{x}: {}",
                nice_step(x)
            );
        }
    }
}
