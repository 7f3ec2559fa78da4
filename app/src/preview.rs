//! Crisp previews while a run streams: the working document drawn as vectors by resvg at the
//! viewport's size, on a background thread (the worker renders at the guidance's small size, which
//! would look blurry when enlarged). One render is in flight at a time; older results are dropped.

use std::sync::mpsc::{Receiver, Sender, channel};

use vecdream_core::Document;

/// A rendered preview: the step it shows and straight RGBA8 pixels.
pub type PreviewImage = (usize, u32, u32, Vec<u8>);

/// The background renderer.
#[derive(Debug)]
pub struct PreviewRenderer {
    tx: Sender<(usize, Document, u32)>,
    rx: Receiver<Result<PreviewImage, String>>,
    in_flight: bool,
    /// The newest step shown crisply.
    pub shown_step: Option<usize>,
}

impl Default for PreviewRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl PreviewRenderer {
    /// Starts the thread.
    pub fn new() -> Self {
        let (tx, jobs) = channel::<(usize, Document, u32)>();
        let (done, rx) = channel();
        std::thread::Builder::new()
            .name("vecdream-preview".into())
            .spawn(move || {
                while let Ok((step, doc, side)) = jobs.recv() {
                    let (w, h) = crate::io::preview_size(&doc, side);
                    let r = crate::io::render_rgba(&doc, w, h)
                        .map(|px| (step, w, h, px))
                        .map_err(|e| e.to_string());
                    if done.send(r).is_err() {
                        return;
                    }
                }
            })
            .ok();
        Self {
            tx,
            rx,
            in_flight: false,
            shown_step: None,
        }
    }

    /// Asks for a preview of `doc` at `step` (longer side `side` px) unless one is being drawn.
    pub fn request(&mut self, step: usize, doc: &Document, side: u32) {
        if self.in_flight {
            return;
        }
        if self.tx.send((step, doc.clone(), side)).is_ok() {
            self.in_flight = true;
        }
    }

    /// A finished preview newer than what is shown, if any.
    pub fn poll(&mut self) -> Option<Result<PreviewImage, String>> {
        let r = self.rx.try_recv().ok()?;
        self.in_flight = false;
        match r {
            Ok(img) if self.shown_step.is_some_and(|s| s > img.0) => None,
            Ok(img) => {
                self.shown_step = Some(img.0);
                Some(Ok(img))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Forgets what was shown (a new run or document).
    pub fn reset(&mut self) {
        self.shown_step = None;
    }
}
