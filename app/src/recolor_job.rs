//! Recolouring from the app (*Edit → Recolour…*): the current document or the selected shapes
//! take the palette's colours, or colours fitted to an image, on a background thread; the result
//! comes back as one undoable edit that changes colours only.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, channel};

use vecdream_core::{Document, Palette, ShapeId};
use vecdream_gpu::generate::recolor::{RecolorSettings, recolor};
use vecdream_gpu::generate::target::{FitGuidance, over_white};

/// Where the new colours come from.
#[derive(Clone, Debug, PartialEq)]
pub enum RecolorSource {
    /// Nearest colours of this palette.
    Palette(Palette),
    /// Colours fitted to this image (optionally limited to a palette).
    Image(PathBuf, Option<Palette>),
}

/// A recolouring running on its own thread.
#[derive(Debug)]
pub struct RecolorJob {
    rx: Receiver<Result<Document, String>>,
}

impl RecolorJob {
    /// Starts recolouring `doc` (only the shapes of `only`, when given).
    pub fn start(doc: Document, source: RecolorSource, only: Option<Vec<ShapeId>>) -> Self {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let device = vecdream_gpu::device::best_device();
            let result = (|| -> Result<Document, String> {
                let (guidance, palette): (Option<Box<dyn vecdream_gpu::distill::Guidance>>, _) =
                    match source {
                        RecolorSource::Palette(p) => (None, Some(p)),
                        RecolorSource::Image(path, p) => {
                            let img = vecdream_gpu::vectorize::load_image(&path, 128)
                                .map_err(|e| e.to_string())?
                                .image;
                            let t = over_white(&img).to_tensor(device);
                            (Some(Box::new(FitGuidance::new(t))), p)
                        }
                    };
                let settings = RecolorSettings {
                    steps: 80,
                    size: 128,
                    palette,
                    only,
                    seed: 0,
                };
                recolor(&doc, guidance, &settings, device, &mut |_, _| {})
                    .map_err(|e| e.to_string())
            })();
            let _ = tx.send(result);
        });
        Self { rx }
    }

    /// The result, once it is there.
    pub fn poll(&self) -> Option<Result<Document, String>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err("the recolouring thread died".into())),
        }
    }
}
