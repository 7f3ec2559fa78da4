//! The background worker: a [`Distiller`] on its own thread, driven by [`Command`]s and
//! reporting [`Event`]s over `std::sync::mpsc` channels. UI-agnostic: a UI polls
//! [`Worker::try_recv`] each frame (and may pass a waker that requests a repaint).
//!
//! Commands are handled between steps, all pending ones before the next step, so pause and stop
//! take effect within one step. A panic inside a step or a command becomes an [`Event::Error`];
//! the run is dropped and the thread keeps serving commands.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Device;
use vecdream_core::{Document, ShapeId};

use super::DistillError;
use super::engine::{DistillConfig, Distiller, Frame};
use super::guidance::Guidance;
use super::reference::{ReferenceConfig, ReferenceGuidance, ReferenceTeacher};
use super::reward::Reward;
use super::sd_guidance::{SdGuidance, SdGuidanceConfig};

/// Builds a guidance on the worker thread.
pub type GuidanceFactory =
    Box<dyn FnOnce(Device) -> Result<Box<dyn Guidance>, DistillError> + Send>;

/// Builds a reward on the worker thread.
pub type RewardFactory = Box<dyn FnOnce(Device) -> Result<Box<dyn Reward>, DistillError> + Send>;

/// Which guidance a run uses (built on the worker thread, where loading weights can take time).
pub enum GuidanceSpec {
    /// The reference-image teacher over straight-alpha RGBA8 images `(width, height, pixels)`.
    Reference {
        /// The images.
        images: Vec<(u32, u32, Vec<u8>)>,
        /// Settings.
        config: ReferenceConfig,
    },
    /// Stable Diffusion (SDS, VPSD, ESD, CSD, DDS).
    StableDiffusion(Box<SdGuidanceConfig>),
    /// Anything else (tests, plug-ins).
    Custom(GuidanceFactory),
}

impl std::fmt::Debug for GuidanceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reference { images, config } => f
                .debug_struct("Reference")
                .field("images", &images.len())
                .field("config", config)
                .finish(),
            Self::StableDiffusion(c) => f.debug_tuple("StableDiffusion").field(c).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl GuidanceSpec {
    /// Builds the guidance on `device`.
    pub fn build(self, device: Device) -> Result<Box<dyn Guidance>, DistillError> {
        match self {
            Self::Reference { images, config } => {
                let teacher = ReferenceTeacher::from_rgba8(&images, config.resolution, device)?;
                Ok(Box::new(ReferenceGuidance::new(teacher, config)))
            }
            Self::StableDiffusion(c) => Ok(Box::new(SdGuidance::load(&c, device)?)),
            Self::Custom(f) => f(device),
        }
    }
}

/// Everything a run needs.
pub struct StartRequest {
    /// The document; its parameter view seeds every particle unless `starts` is given.
    pub document: Document,
    /// Where the particles start: `document` (default), given documents, or each its own sample
    /// of the guidance's model vectorised in a style (made on the worker thread, reported by
    /// [`Event::Preparing`]).
    pub starts: crate::generate::StartsFrom,
    /// Run settings.
    pub config: DistillConfig,
    /// The guidance.
    pub guidance: GuidanceSpec,
    /// Optional reward (used when `config.reward` is set).
    pub reward: Option<Box<dyn Reward>>,
    /// A reward built on the worker thread (loading weights), used when `reward` is `None`.
    pub reward_factory: Option<RewardFactory>,
    /// A CLIP folder and the prompt: each particle's CLIP score is reported every
    /// `score_every` steps ([`Event::Scores`], with the rewards).
    pub clip_score: Option<(PathBuf, String)>,
    /// Steps between CLIP scores (the reward's `every` when there is one).
    pub score_every: usize,
    /// Where to compute.
    pub device: Device,
    /// Continue from this checkpoint instead of starting fresh.
    pub resume_from: Option<PathBuf>,
    /// Start paused (then `Step(n)` or `Resume`).
    pub start_paused: bool,
    /// Send frames every this many steps (0: never).
    pub frame_every: usize,
    /// Send document snapshots every this many steps (0: only at the end).
    pub snapshot_every: usize,
}

impl std::fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartRequest")
            .field("config", &self.config)
            .field("guidance", &self.guidance)
            .field("device", &self.device)
            .field("resume_from", &self.resume_from)
            .finish_non_exhaustive()
    }
}

impl StartRequest {
    /// A request with frames every step, snapshots every 50 steps, not paused.
    pub fn new(
        document: Document,
        config: DistillConfig,
        guidance: GuidanceSpec,
        device: Device,
    ) -> Self {
        Self {
            document,
            starts: crate::generate::StartsFrom::Document,
            config,
            guidance,
            reward: None,
            reward_factory: None,
            clip_score: None,
            score_every: 10,
            device,
            resume_from: None,
            start_paused: false,
            frame_every: 1,
            snapshot_every: 50,
        }
    }
}

/// What the worker is told.
#[derive(Debug)]
pub enum Command {
    /// Starts a run (replacing any current one).
    Start(Box<StartRequest>),
    /// Stops stepping after the current step.
    Pause,
    /// Steps continuously again.
    Resume,
    /// While paused: runs exactly this many more steps, then reports [`Event::Paused`].
    Step(usize),
    /// Ends the run (reports [`Event::Stopped`] with the final documents).
    Stop,
    /// Changes a setting (see [`Distiller::set_param`]).
    SetParameter {
        /// Setting name.
        name: String,
        /// New value.
        value: f64,
    },
    /// Locks or unlocks shapes.
    SetLocks(Vec<(ShapeId, bool)>),
    /// The user edited the document: take its state (see [`Distiller::replace_document`]).
    ReplaceDocument(Box<Document>),
    /// Writes a checkpoint (`.safetensors` + `.json`).
    SaveCheckpoint(PathBuf),
    /// Panics inside the worker (to test that a panic becomes an [`Event::Error`]).
    DebugPanic,
    /// Ends the thread.
    Shutdown,
}

/// What the worker reports.
#[derive(Clone, Debug)]
pub enum Event {
    /// Start documents are being made (samples vectorised): `done` of `total`.
    Preparing {
        /// Particles ready.
        done: usize,
        /// Particles in all.
        total: usize,
    },
    /// A run started.
    Started {
        /// Guidance name.
        guidance: String,
        /// Number of particles.
        particles: usize,
        /// Steps already done (non-zero when resumed).
        step: usize,
        /// Planned steps.
        total_steps: usize,
        /// Render size in pixels.
        size: (usize, usize),
    },
    /// A particle's current picture.
    Frame {
        /// Steps completed.
        step: usize,
        /// The picture.
        frame: Frame,
    },
    /// Losses of a step.
    Losses {
        /// Steps completed.
        step: usize,
        /// Guidance loss.
        loss: f64,
        /// Extra named numbers.
        terms: Vec<(String, f64)>,
    },
    /// Each particle's latest reward and / or CLIP score (after the steps that computed them).
    Scores(crate::clip::ParticleScores),
    /// Progress after a step.
    Progress {
        /// Steps completed.
        step: usize,
        /// Planned steps.
        total: usize,
        /// Iterations per second (running average).
        it_per_s: f64,
        /// Estimated seconds to the end.
        eta_secs: f64,
    },
    /// A step's update was skipped (non-finite numbers); the parameters kept their last good values.
    StepSkipped {
        /// Steps completed.
        step: usize,
        /// Why.
        reason: String,
    },
    /// One document per particle.
    Snapshot {
        /// Steps completed.
        step: usize,
        /// The particles written into copies of the run's document.
        documents: Vec<Document>,
    },
    /// Stepping stopped (after `Pause`, or when a `Step(n)` batch is done).
    Paused {
        /// Steps completed.
        step: usize,
    },
    /// Stepping continues.
    Resumed {
        /// Steps completed.
        step: usize,
    },
    /// The planned steps are done (the run stays loaded: `Step(n)` continues it).
    Finished {
        /// Steps completed.
        step: usize,
        /// One document per particle.
        documents: Vec<Document>,
    },
    /// The run was stopped and dropped.
    Stopped {
        /// Steps completed.
        step: usize,
        /// One document per particle.
        documents: Vec<Document>,
    },
    /// A checkpoint was written.
    CheckpointSaved {
        /// Its safetensors file.
        path: PathBuf,
    },
    /// Something the run survived (e.g. a snapshot that could not be written).
    Warning {
        /// What happened.
        message: String,
    },
    /// The run failed (error or panic) and was dropped; the worker lives on.
    Error {
        /// What happened.
        message: String,
    },
}

/// Handle of the worker thread. Dropping it shuts the thread down.
pub struct Worker {
    commands: Sender<Command>,
    events: Receiver<Event>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts the thread (idle until [`Command::Start`]).
    pub fn spawn() -> Self {
        Self::spawn_with_waker(None)
    }

    /// Starts the thread; `waker` is called after events are sent (e.g. `ctx.request_repaint()`).
    pub fn spawn_with_waker(waker: Option<Box<dyn Fn() + Send>>) -> Self {
        let (ctx, crx) = channel();
        let (etx, erx) = channel();
        let handle = std::thread::Builder::new()
            .name("vecdream-distill".into())
            .spawn(move || run(crx, etx, waker))
            .ok();
        Self {
            commands: ctx,
            events: erx,
            handle,
        }
    }

    /// Sends a command; `false` if the thread is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Every event waiting now.
    pub fn drain(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Session {
    d: Distiller,
    running: bool,
    pending: usize,
    frame_every: usize,
    snapshot_every: usize,
    /// Exponential moving average of seconds per step.
    rate: vecdream_core::rate::RateMeter,
    clock: Instant,
    scorer: crate::clip::ParticleScorer,
}

impl Session {
    fn documents(&self, events: &Sender<Event>) -> Vec<Document> {
        (0..self.d.config().particles)
            .filter_map(|i| match self.d.particle_document(i) {
                Ok(doc) => Some(doc),
                Err(e) => {
                    let _ = events.send(Event::Warning {
                        message: format!("particle {i} not written: {e}"),
                    });
                    None
                }
            })
            .collect()
    }

    fn active(&self) -> bool {
        self.running || self.pending > 0
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

fn run(commands: Receiver<Command>, events: Sender<Event>, waker: Option<Box<dyn Fn() + Send>>) {
    let wake = || {
        if let Some(w) = &waker {
            w();
        }
    };
    let mut session: Option<Session> = None;
    loop {
        let active = session.as_ref().is_some_and(Session::active);
        let command = if active {
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => return,
            }
        } else {
            match commands.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        };
        if let Some(command) = command {
            if matches!(command, Command::Shutdown) {
                return;
            }
            let result = catch_unwind(AssertUnwindSafe(|| handle(command, &mut session, &events)));
            report_failure(result, &mut session, &events);
            wake();
            continue;
        }
        let Some(s) = session.as_mut() else { continue };
        let result = catch_unwind(AssertUnwindSafe(|| step_once(s, &events)));
        report_failure(result, &mut session, &events);
        wake();
    }
}

/// An error or a panic of a command or a step ends the session and becomes an error event;
/// the worker thread itself lives on.
fn report_failure<S>(
    result: std::thread::Result<Result<(), DistillError>>,
    session: &mut Option<S>,
    events: &Sender<Event>,
) {
    let message = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(p) => format!("worker panicked: {}", panic_message(p.as_ref())),
    };
    *session = None;
    let _ = events.send(Event::Error { message });
}

fn handle(
    command: Command,
    session: &mut Option<Session>,
    events: &Sender<Event>,
) -> Result<(), DistillError> {
    match command {
        Command::Start(req) => {
            *session = None;
            let mut req = *req;
            // The scoring models load first: a bad CLIP folder fails before any sampling.
            let reward = match (req.reward.take(), req.reward_factory.take()) {
                (Some(r), _) => Some(r),
                (None, Some(f)) => Some(f(req.device)?),
                (None, None) => None,
            };
            let (reward, tap) = match reward {
                Some(r) => {
                    let (r, tap) = crate::clip::TappedReward::new(r);
                    (Some(Box::new(r) as Box<dyn Reward>), Some(tap))
                }
                None => (None, None),
            };
            let scorer = crate::clip::ParticleScorer::load(
                tap,
                req.clip_score.as_ref().map(|(d, _)| d.as_path()),
                req.clip_score.as_ref().map_or("", |(_, p)| p.as_str()),
                req.config
                    .reward
                    .as_ref()
                    .map_or(req.score_every, |r| r.every),
                req.device,
            )?;
            let starts = if req.resume_from.is_some() {
                crate::generate::StartsFrom::Document
            } else {
                req.starts
            };
            let (guidance, docs) = crate::generate::build_with_starts(
                req.guidance,
                &starts,
                req.device,
                &mut |done, total| {
                    let _ = events.send(Event::Preparing { done, total });
                },
            )
            .map_err(|e| match e {
                crate::generate::GenerateError::Distill(d) => d,
                other => DistillError::Config {
                    field: "starts".into(),
                    message: other.to_string(),
                },
            })?;
            let mut d = match (&req.resume_from, docs) {
                (Some(path), _) => Distiller::resume(path, guidance, req.device)?,
                (None, Some(docs)) => {
                    Distiller::from_starts(docs, req.config, guidance, req.device)?
                }
                (None, None) => Distiller::new(&req.document, req.config, guidance, req.device)?,
            };
            if let Some(r) = reward {
                d = d.with_reward(r);
            }
            let _ = events.send(Event::Started {
                guidance: d.guidance().name(),
                particles: d.config().particles,
                step: d.step_index(),
                total_steps: d.config().steps,
                size: d.render_size(),
            });
            let s = Session {
                d,
                running: !req.start_paused,
                pending: 0,
                frame_every: req.frame_every,
                snapshot_every: req.snapshot_every,
                rate: vecdream_core::rate::RateMeter::default(),
                clock: Instant::now(),
                scorer,
            };
            // The start itself (e.g. the vectorised samples) is on screen before the first step.
            let step = s.d.step_index();
            if s.frame_every > 0 {
                for frame in s.d.render_frames()? {
                    let _ = events.send(Event::Frame { step, frame });
                }
            }
            let documents = s.documents(events);
            let _ = events.send(Event::Snapshot { step, documents });
            if req.start_paused {
                let _ = events.send(Event::Paused { step });
            }
            *session = Some(s);
        }
        Command::Pause => {
            if let Some(s) = session.as_mut() {
                s.running = false;
                s.pending = 0;
                s.rate.pause();
                let _ = events.send(Event::Paused {
                    step: s.d.step_index(),
                });
            }
        }
        Command::Resume => {
            if let Some(s) = session.as_mut() {
                s.running = true;
                let _ = events.send(Event::Resumed {
                    step: s.d.step_index(),
                });
            }
        }
        Command::Step(n) => {
            if let Some(s) = session.as_mut()
                && !s.running
            {
                s.pending += n;
            }
        }
        Command::Stop => {
            if let Some(s) = session.take() {
                let documents = s.documents(events);
                let _ = events.send(Event::Stopped {
                    step: s.d.step_index(),
                    documents,
                });
            }
        }
        Command::SetParameter { name, value } => {
            if let Some(s) = session.as_mut()
                && !s.d.set_param(&name, value)?
            {
                let _ = events.send(Event::Warning {
                    message: format!("unknown parameter `{name}`"),
                });
            }
        }
        Command::SetLocks(locks) => {
            if let Some(s) = session.as_mut() {
                s.d.set_locks(&locks)?;
            }
        }
        Command::ReplaceDocument(doc) => {
            if let Some(s) = session.as_mut() {
                s.d.replace_document(&doc)?;
            }
        }
        Command::SaveCheckpoint(path) => {
            if let Some(s) = session.as_ref() {
                s.d.save_checkpoint(&path)?;
                let _ = events.send(Event::CheckpointSaved { path });
            }
        }
        Command::DebugPanic => panic!("forced panic (Command::DebugPanic)"),
        Command::Shutdown => {}
    }
    Ok(())
}

fn step_once(s: &mut Session, events: &Sender<Event>) -> Result<(), DistillError> {
    if s.rate.steps_per_sec().is_none() {
        // The window starts at the first step of a (resumed) stretch of running.
        s.rate
            .record(s.clock.elapsed().as_secs_f64(), s.d.step_index());
    }
    let report = s.d.step()?;
    let step = report.step;
    let total = s.d.config().steps;
    if let Some(reason) = report.skipped {
        let _ = events.send(Event::StepSkipped { step, reason });
    }
    let _ = events.send(Event::Losses {
        step,
        loss: report.loss,
        terms: report.terms,
    });
    if let Some(scores) = s.scorer.after_step(step, &mut s.d)? {
        let _ = events.send(Event::Scores(scores));
    }
    // Wall time between steps, frames and snapshots included: what the user waits for.
    s.rate.record(s.clock.elapsed().as_secs_f64(), step);
    let _ = events.send(Event::Progress {
        step,
        total,
        it_per_s: s.rate.steps_per_sec().unwrap_or(0.0),
        eta_secs: s.rate.eta_secs(total).unwrap_or(f64::NAN),
    });
    if s.frame_every > 0 && step.is_multiple_of(s.frame_every) {
        for frame in s.d.frames()? {
            let _ = events.send(Event::Frame { step, frame });
        }
    }
    if s.snapshot_every > 0 && step.is_multiple_of(s.snapshot_every) {
        let documents = s.documents(events);
        let _ = events.send(Event::Snapshot { step, documents });
    }
    if s.pending > 0 {
        s.pending -= 1;
        if s.pending == 0 && !s.running {
            let _ = events.send(Event::Paused { step });
        }
    }
    if s.running && s.d.is_finished() {
        s.running = false;
        let documents = s.documents(events);
        let _ = events.send(Event::Finished { step, documents });
    }
    Ok(())
}
