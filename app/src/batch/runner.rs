//! Running a batch: each job of the shard in this process, with the same code as its CLI subcommand,
//! into `OUT/<id>/`, under the job's lock; `status.json` written last and atomically.
//!
//! Per job folder:
//! - `lock` — the job's lock ([`super::lock`]);
//! - `job.json` — the job's resolved settings when it last started (a checkpoint is resumed only if
//!   they are unchanged);
//! - `runs.log` — one JSON line per start and end of an attempt (who, when, resumed from which step);
//! - `status.json` — `done` or `failed` (with the error), seconds, device, vecdream version, the resolved
//!   settings; absent while the job is pending or running;
//! - the subcommand's own files (SVG/PNG per particle, `loss.csv`, `checkpoint.safetensors` …).
//!
//! `OUT/batch.json` lists the batch's jobs so `batch status` and `batch report` know what is pending.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::jobs::{Job, JobsFile};
use super::lock::{self, Acquire, LockState, Owner};
use super::shard::Shard;

/// The end state a job's `status.json` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndState {
    /// Finished; its outputs are complete.
    Done,
    /// Stopped with an error (`error` says which).
    Failed,
}

/// `OUT/<id>/status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job's id (its folder name).
    pub id: String,
    /// Its kind (subcommand).
    pub kind: String,
    /// Its line in the jobs file.
    pub line: usize,
    /// `done` or `failed`.
    pub state: EndState,
    /// The error, for a failed job.
    pub error: Option<String>,
    /// Wall seconds of the attempt that ended.
    pub seconds: f64,
    /// Device the job ran on (`cpu`, `cuda:0` …).
    pub device: String,
    /// vecdream version that ran it.
    pub vecdream_version: String,
    /// The checkpoint step the attempt resumed from (`None`: it started from scratch).
    pub resumed_from_step: Option<u64>,
    /// Who ran it.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Slurm task or Kubernetes pod, if any.
    pub scheduler_task: Option<String>,
    /// The shard that ran it (`i/n`).
    pub shard: String,
    /// When it ended (seconds since 1970).
    pub finished_unix: u64,
    /// The resolved settings (every flag of the subcommand).
    pub config: Map<String, Value>,
}

/// One job in `OUT/batch.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestJob {
    /// Job id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Line in the jobs file.
    pub line: usize,
}

/// `OUT/batch.json`: the batch's jobs, written by `batch run` and `batch submit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The jobs file (absolute).
    pub jobs_file: PathBuf,
    /// vecdream version that wrote it.
    pub vecdream_version: String,
    /// The jobs in file order.
    pub jobs: Vec<ManifestJob>,
}

/// Options of `batch run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Run failed jobs again.
    pub retry_failed: bool,
    /// Which jobs this worker runs.
    pub shard: Shard,
    /// libtorch intra-op threads (None: libtorch's default).
    pub threads: Option<i32>,
}

/// What a worker did with one job.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Ran to the end now.
    Done,
    /// Ran now and failed.
    Failed(String),
    /// Already done before.
    AlreadyDone,
    /// Failed before and not retried.
    AlreadyFailed,
    /// Another worker holds its lock.
    RunningElsewhere(Option<Owner>),
}

/// Where a job stands, as `batch status` sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Finished.
    Done(Box<JobStatus>),
    /// Failed.
    Failed(Box<JobStatus>),
    /// A worker holds its lock.
    Running {
        /// The worker.
        owner: Option<Owner>,
        /// Last checkpoint step.
        checkpoint_step: Option<u64>,
    },
    /// Not started, or interrupted (then `interrupted_by` is the dead worker).
    Pending {
        /// Last checkpoint step, if it was interrupted after one.
        checkpoint_step: Option<u64>,
        /// The worker that died holding it.
        interrupted_by: Option<Owner>,
    },
}

impl JobState {
    /// `done`, `failed`, `running` or `pending`.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Done(_) => "done",
            JobState::Failed(_) => "failed",
            JobState::Running { .. } => "running",
            JobState::Pending { .. } => "pending",
        }
    }
}

/// The path of the manifest.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.join("batch.json")
}

/// Writes `OUT/batch.json` for `jobs`.
pub fn write_manifest(out: &Path, jobs: &JobsFile) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let m = Manifest {
        jobs_file: jobs.path.clone(),
        vecdream_version: crate::VERSION.into(),
        jobs: jobs
            .jobs
            .iter()
            .map(|j| ManifestJob {
                id: j.id.clone(),
                kind: j.kind.name.into(),
                line: j.line,
            })
            .collect(),
    };
    write_json(&manifest_path(out), &m)
}

/// Reads `OUT/batch.json`.
pub fn read_manifest(out: &Path) -> anyhow::Result<Manifest> {
    let p = manifest_path(out);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (is {} a batch output folder? `vecdream batch run` or `batch submit` writes it)",
            p.display(),
            out.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a batch manifest", p.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    vecdream_core::atomic::write_atomic(path, text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Reads `dir/status.json`; `None` if absent, an error if unreadable.
pub fn read_status(dir: &Path) -> anyhow::Result<Option<JobStatus>> {
    let p = dir.join("status.json");
    match std::fs::read_to_string(&p) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{}: not a job status", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// The step of the checkpoint in `dir` (`checkpoint.json`'s `step`), if there is one.
pub fn checkpoint_step(dir: &Path) -> Option<u64> {
    if !dir.join("checkpoint.safetensors").is_file() {
        return None;
    }
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["step"].as_u64()
}

/// Where job `id` stands in `out`.
pub fn job_state(out: &Path, id: &str) -> anyhow::Result<JobState> {
    let dir = out.join(id);
    if let Some(s) = read_status(&dir)? {
        return Ok(match s.state {
            EndState::Done => JobState::Done(Box::new(s)),
            EndState::Failed => JobState::Failed(Box::new(s)),
        });
    }
    let checkpoint_step = checkpoint_step(&dir);
    Ok(match lock::probe(&dir.join("lock"))? {
        LockState::Held(owner) => JobState::Running {
            owner,
            checkpoint_step,
        },
        LockState::Free(interrupted_by) => JobState::Pending {
            checkpoint_step,
            interrupted_by,
        },
    })
}

fn device_name() -> String {
    match vecdream_gpu::device::best_device() {
        vecdream_gpu::tch::Device::Cpu => "cpu".into(),
        vecdream_gpu::tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn append_log(dir: &Path, event: Value) {
    let line = format!("{event}\n");
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("runs.log"))
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = r {
        eprintln!("warning: {}: {e}", dir.join("runs.log").display());
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

/// Runs `job` into `out/<id>` unless it is done, failed (without `retry_failed`) or locked.
pub fn run_job(job: &Job, out: &Path, shard: Shard, retry_failed: bool) -> anyhow::Result<Outcome> {
    let dir = out.join(&job.id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let settled = |s: &Option<JobStatus>| match s {
        Some(s) if s.state == EndState::Done => Some(Outcome::AlreadyDone),
        Some(_) if !retry_failed => Some(Outcome::AlreadyFailed),
        _ => None,
    };
    if let Some(o) = settled(&read_status(&dir)?) {
        return Ok(o);
    }
    let (lock, previous) = match lock::try_acquire(&dir.join("lock"))? {
        Acquire::Busy(owner) => return Ok(Outcome::RunningElsewhere(owner)),
        Acquire::Acquired { lock, previous } => (lock, previous),
    };
    // Another worker may have finished it between the first look and the lock.
    let status = read_status(&dir)?;
    if let Some(o) = settled(&status) {
        lock.release();
        return Ok(o);
    }
    if let Some(p) = &previous {
        eprintln!(
            "{}: took over the lock of {p}, which is gone (killed or cancelled)",
            job.id
        );
    }
    let job_json = dir.join("job.json");
    let prior: Option<Value> = std::fs::read_to_string(&job_json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let same_settings = prior
        .as_ref()
        .and_then(|p| p.get("config"))
        .is_some_and(|c| *c == Value::Object(job.config.clone()));
    let step = checkpoint_step(&dir);
    let resume = job.resumable() && step.is_some() && same_settings;
    if step.is_some() && !resume && job.resumable() {
        eprintln!(
            "{}: its settings changed since its checkpoint: starting over",
            job.id
        );
    }
    let resumed_from_step = if resume { step } else { None };
    write_json(
        &job_json,
        &json!({"id": job.id, "kind": job.kind.name, "line": job.line, "config": job.config}),
    )?;
    if status.is_some() {
        std::fs::remove_file(dir.join("status.json"))
            .with_context(|| format!("removing the old {}", dir.join("status.json").display()))?;
    }
    let me = Owner::current();
    append_log(
        &dir,
        json!({"event": "start", "unix": lock::unix_now(), "host": me.host, "pid": me.pid,
               "scheduler_task": me.scheduler_task, "shard": shard.to_string(),
               "resumed_from_step": resumed_from_step, "took_over_from": previous}),
    );
    match resumed_from_step {
        Some(s) => eprintln!("{}: resuming from its checkpoint at step {s}", job.id),
        None => eprintln!("{}: starting ({} line {})", job.id, job.kind.name, job.line),
    }
    let t0 = Instant::now();
    let result = job.command(&dir, resume).and_then(|cmd| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd.run()))
            .unwrap_or_else(|p| Err(anyhow::anyhow!("panicked: {}", panic_message(&*p))))
    });
    let seconds = t0.elapsed().as_secs_f64();
    let (state, error) = match &result {
        Ok(()) => (EndState::Done, None),
        Err(e) => (EndState::Failed, Some(format!("{e:#}"))),
    };
    let status = JobStatus {
        id: job.id.clone(),
        kind: job.kind.name.into(),
        line: job.line,
        state,
        error: error.clone(),
        seconds,
        device: device_name(),
        vecdream_version: crate::VERSION.into(),
        resumed_from_step,
        host: me.host.clone(),
        pid: me.pid,
        scheduler_task: me.scheduler_task.clone(),
        shard: shard.to_string(),
        finished_unix: lock::unix_now(),
        config: job.config.clone(),
    };
    write_json(&dir.join("status.json"), &status)?;
    append_log(
        &dir,
        json!({"event": if error.is_none() { "done" } else { "failed" }, "unix": lock::unix_now(),
               "pid": me.pid, "seconds": seconds, "error": error}),
    );
    lock.release();
    Ok(match error {
        None => Outcome::Done,
        Some(e) => Outcome::Failed(e),
    })
}

/// What one `batch run` did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Jobs in this shard.
    pub in_shard: usize,
    /// Ran to the end now.
    pub done: Vec<String>,
    /// Ran now and failed (id, error).
    pub failed: Vec<(String, String)>,
    /// Done before.
    pub already_done: usize,
    /// Failed before, not retried.
    pub already_failed: Vec<String>,
    /// Held by another worker.
    pub elsewhere: Vec<String>,
}

/// Runs the shard's jobs of `jobs` into `out`. A failed job does not stop the others.
pub fn run_batch(jobs: &JobsFile, out: &Path, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    if let Some(t) = opts.threads {
        vecdream_gpu::tch::set_num_threads(t);
    }
    write_manifest(out, jobs)?;
    let mine: Vec<&Job> = jobs
        .jobs
        .iter()
        .filter(|j| opts.shard.contains(j.index))
        .collect();
    let mut summary = RunSummary {
        in_shard: mine.len(),
        ..RunSummary::default()
    };
    eprintln!(
        "batch: shard {} runs {} of {} jobs into {}",
        opts.shard,
        mine.len(),
        jobs.jobs.len(),
        out.display()
    );
    for (k, job) in mine.iter().enumerate() {
        let tag = format!("[{}/{}] {}", k + 1, mine.len(), job.id);
        match run_job(job, out, opts.shard, opts.retry_failed) {
            Ok(Outcome::Done) => {
                let secs = read_status(&out.join(&job.id))
                    .ok()
                    .flatten()
                    .map_or(0.0, |s| s.seconds);
                println!("{tag}: done in {secs:.1} s");
                summary.done.push(job.id.clone());
            }
            Ok(Outcome::Failed(e)) => {
                println!("{tag}: FAILED: {e}");
                summary.failed.push((job.id.clone(), e));
            }
            Ok(Outcome::AlreadyDone) => {
                let changed = read_status(&out.join(&job.id))
                    .ok()
                    .flatten()
                    .is_some_and(|s| s.config != job.config);
                if changed {
                    println!(
                        "{tag}: already done, with other settings than line {} has now (delete {} to \
                         run it again, or give the job another id)",
                        job.line,
                        out.join(&job.id).display()
                    );
                } else {
                    println!("{tag}: already done");
                }
                summary.already_done += 1;
            }
            Ok(Outcome::AlreadyFailed) => {
                println!("{tag}: failed before (rerun it with --retry-failed)");
                summary.already_failed.push(job.id.clone());
            }
            Ok(Outcome::RunningElsewhere(owner)) => {
                let who = owner.map_or("another worker".into(), |o| o.to_string());
                println!("{tag}: running elsewhere ({who})");
                summary.elsewhere.push(job.id.clone());
            }
            Err(e) => {
                let msg = format!("{e:#}");
                println!("{tag}: FAILED: {msg}");
                summary.failed.push((job.id.clone(), msg));
            }
        }
    }
    println!(
        "batch: shard {}: {} done now, {} already done, {} failed, {} failed before, {} running elsewhere",
        opts.shard,
        summary.done.len(),
        summary.already_done,
        summary.failed.len(),
        summary.already_failed.len(),
        summary.elsewhere.len()
    );
    Ok(summary)
}

/// `batch status`: every job of the manifest with where it stands (plus job folders not in it).
pub fn batch_states(out: &Path) -> anyhow::Result<(Manifest, Vec<(ManifestJob, JobState)>)> {
    let manifest = read_manifest(out)?;
    let mut rows = Vec::new();
    for j in &manifest.jobs {
        rows.push((j.clone(), job_state(out, &j.id)?));
    }
    Ok((manifest, rows))
}
