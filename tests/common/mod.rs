//! Shared helpers of the whole-app tests: the real app in a kittest harness with scripted dialogs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use vecdream::app::VecdreamApp;
use vecdream::app::app::AppOptions;
use vecdream::app::dialogs::ScriptedDialogs;

/// The real app (wgpu renderer) at 1280×800, answering file dialogs with `answers` in order. Device and
/// libtorch labels are fixed and timings (it/s, ETA, UI frame time) hidden so snapshots are identical
/// on every machine; nothing is persisted and the demo does not start by itself.
pub fn harness(answers: Vec<PathBuf>) -> Harness<'static, VecdreamApp> {
    harness_stepping(answers, 0.25)
}

/// [`harness`] whose every step advances egui's clock by `step_dt` seconds (kittest's default is
/// 0.25 s; a double click needs its two clicks within 0.3 s, so its test steps faster).
#[allow(dead_code)] // not every test file uses it
pub fn harness_stepping(answers: Vec<PathBuf>, step_dt: f32) -> Harness<'static, VecdreamApp> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .with_step_dt(step_dt)
        .wgpu()
        .build_eframe(move |cc| {
            VecdreamApp::new(
                cc,
                AppOptions {
                    dialogs: Box::new(ScriptedDialogs {
                        answers: answers.into(),
                        ..Default::default()
                    }),
                    device_label: "CPU, test".into(),
                    torch_version: "2.11.0".into(),
                    persist: false,
                    sessions: None,
                    autostart_demo: false,
                    hide_timings: true,
                    device: Some(vecdream_gpu::tch::Device::Cpu),
                    model_env: false,
                },
            )
        })
}

/// Opens `svg` through File → Open SVG… (the harness must have been built with `svg` as its first answer).
pub fn open_through_menu(h: &mut Harness<'static, VecdreamApp>) {
    use egui_kittest::kittest::Queryable as _;
    h.run();
    h.get_by_label("File").click();
    h.run();
    h.get_by_label("Open SVG…").click();
    h.run();
}

/// Steps the UI until `cond` holds (the worker runs on its own thread), failing after 180 s.
pub fn wait_until(
    h: &mut Harness<'_, VecdreamApp>,
    what: &str,
    cond: impl Fn(&VecdreamApp) -> bool,
) {
    let start = Instant::now();
    while !cond(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "timed out waiting for {what}; status: {:?}",
            h.state().status_message()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A file dropped on the window (what `dropped_files` holds).
#[allow(dead_code)] // not every test file drops files
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}
