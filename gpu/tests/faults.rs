//! Out of memory during a run, through a real failed allocation (libtorch's CPU allocator asked for
//! 2⁵⁹ bytes inside a guidance step, which panics as a real OOM does deep inside a model): the
//! step returns an error that names the remedy, the particles keep their last values, and the
//! worker reports it and lives on.

use std::time::Duration;

use vecdream_gpu::distill::{
    Command, DistillConfig, DistillError, Distiller, Event, Guidance, GuidanceOutput, GuidanceSpec,
    StartRequest, StepCtx, Worker, apply_grad_loss, grid_document,
};
use vecdream_gpu::tch::{Device, Kind, Tensor};

/// Pulls every pixel toward black; from step `at` on it also allocates a working buffer of 2⁵⁸
/// bytes per particle with the panicking tch API, like a model layer that does not fit.
struct Hungry {
    at: usize,
}

impl Guidance for Hungry {
    fn name(&self) -> String {
        "hungry".into()
    }
    fn loss(&mut self, images: &Tensor, ctx: &mut StepCtx) -> Result<GuidanceOutput, DistillError> {
        if ctx.step >= self.at {
            let buffer = Tensor::zeros([images.size()[0], 1 << 58], (Kind::Uint8, images.device()));
            drop(buffer);
        }
        let (loss, value) = apply_grad_loss(images, &images.detach());
        Ok(GuidanceOutput {
            loss,
            value,
            terms: Vec::new(),
            guided: vec![0],
        })
    }
}

fn config(steps: usize) -> DistillConfig {
    DistillConfig {
        seed: 1,
        steps,
        particles: 2,
        render_size: 16,
        ..DistillConfig::default()
    }
}

fn assert_names_remedy(message: &str) {
    for part in [
        "out of memory",
        "fewer particles",
        "smaller render size",
        "fp16",
    ] {
        assert!(message.contains(part), "no `{part}` in: {message}");
    }
}

#[test]
fn a_failed_allocation_in_a_step_is_an_out_of_memory_error_naming_the_remedy() {
    let doc = grid_document(2, 16.0);
    let mut d = Distiller::new(&doc, config(10), Box::new(Hungry { at: 2 }), Device::Cpu).unwrap();
    d.step().unwrap();
    d.step().unwrap();
    let before: Vec<_> = (0..2).map(|i| d.particle_document(i).unwrap()).collect();
    let err = d.step().unwrap_err();
    assert!(matches!(err, DistillError::OutOfMemory { .. }), "{err:?}");
    assert_names_remedy(&err.to_string());
    // Nothing of the failed step reached the particles.
    assert_eq!(d.step_index(), 2);
    let after: Vec<_> = (0..2).map(|i| d.particle_document(i).unwrap()).collect();
    assert_eq!(before, after);
}

fn wait_for(worker: &Worker, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(e) = worker.recv_timeout(Duration::from_millis(100)) {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return seen;
            }
        }
    }
    panic!("timed out waiting for {what}; saw {} events", seen.len());
}

#[test]
fn the_worker_reports_out_of_memory_with_the_remedy_and_serves_the_next_run() {
    let worker = Worker::spawn();
    let start = |at: usize, steps: usize| {
        let guidance = GuidanceSpec::Custom(Box::new(move |_dev| {
            Ok(Box::new(Hungry { at }) as Box<dyn Guidance>)
        }));
        Command::Start(Box::new(StartRequest::new(
            grid_document(2, 16.0),
            config(steps),
            guidance,
            Device::Cpu,
        )))
    };
    worker.send(start(3, 50));
    let seen = wait_for(&worker, "error", |e| matches!(e, Event::Error { .. }));
    let Some(Event::Error { message }) = seen.last() else {
        unreachable!()
    };
    assert_names_remedy(message);
    assert!(!message.contains("panicked"), "{message}");
    assert!(
        !message.contains("frame #"),
        "libtorch's backtrace in: {message}"
    );
    // The worker lives on: a run that fits finishes.
    worker.send(start(usize::MAX, 3));
    wait_for(&worker, "finished", |e| matches!(e, Event::Finished { .. }));
}
