//! `vecdream batch`: many runs of `generate` / `vectorize` / `generate3d` from a jobs file, resumable and
//! shardable across an existing scheduler (Slurm job arrays, Kubernetes Indexed Jobs) with no queue of
//! our own: the output folder is the only shared state (a status file and a lock per job).
//!
//! Parts: [`jobs`] (the jobs file, parsed by the real CLI definitions), [`shard`] (which jobs a worker
//! runs), [`lock`] (one flock per job), [`runner`] (running jobs in-process, status files),
//! [`report`] (summary.csv and the index.html contact sheet), [`slurm`] (sbatch scripts).

pub mod jobs;
pub mod lock;
pub mod report;
pub mod runner;
pub mod shard;
pub mod slurm;

use std::path::PathBuf;

use anyhow::bail;

use self::jobs::JobsFile;
use self::runner::JobState;
use self::shard::{Shard, ShardSource};

/// `vecdream batch …`
#[derive(Debug, clap::Subcommand)]
pub enum BatchCommand {
    /// Run the jobs of a jobs file (one shard of them with --shard or a scheduler's array index) into
    /// OUT/<id>/, skipping done jobs and resuming interrupted ones.
    Run(RunArgs),
    /// Print how many jobs are done / running / failed / pending.
    Status(StatusArgs),
    /// Write OUT/summary.csv and OUT/index.html (a contact sheet of every job's particles).
    Report(ReportArgs),
    /// Check a jobs file and submit it to a scheduler as an array of `batch run --shard` tasks.
    Submit(SubmitArgs),
}

/// `vecdream batch run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The jobs file: one JSON object per line ({"kind": "generate", "id": …, "steps": 300, …}).
    pub jobs: PathBuf,
    /// Output folder (one subfolder per job).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Run jobs that failed before again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Run only shard i of n: the jobs whose index ≡ i (mod n). Default: from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX, else every job.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Number of shards with JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's completions).
    #[arg(long)]
    pub shards: Option<usize>,
    /// libtorch threads (default: libtorch's choice; give the CPUs of the task on a shared node).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Check the jobs file and print what this shard would do; run nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `vecdream batch status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output folder of a batch.
    pub out: PathBuf,
    /// One JSON object per job on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `vecdream batch report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output folder of a batch.
    pub out: PathBuf,
}

/// `vecdream batch submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Submit to Slurm as a job array (the only scheduler submitted to directly; Kubernetes: see
    /// deploy/kubernetes/indexed-job.yaml).
    #[arg(long, required = true)]
    pub slurm: bool,
    /// The jobs file.
    pub jobs: PathBuf,
    /// Output folder (shared by all tasks; the sbatch script is written beside it as OUT.sbatch).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Array tasks (default: one per job, at most 1000).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// At most this many tasks at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Slurm partition.
    #[arg(long)]
    pub partition: Option<String>,
    /// GPUs per task.
    #[arg(long)]
    pub gpus_per_task: Option<u32>,
    /// CPUs per task (each task runs libtorch with this many threads).
    #[arg(long, default_value_t = 1)]
    pub cpus_per_task: u32,
    /// Time limit per task, HH:MM:SS.
    #[arg(long)]
    pub time: Option<String>,
    /// The tasks rerun failed jobs.
    #[arg(long)]
    pub retry_failed: bool,
    /// The vecdream binary the tasks run (default: this one; it must be reachable from the nodes).
    #[arg(long)]
    pub vecdream: Option<PathBuf>,
    /// Write and print the script; do not submit it.
    #[arg(long)]
    pub dry_run: bool,
}

impl BatchCommand {
    /// Runs the batch subcommand.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            BatchCommand::Run(a) => run(&a),
            BatchCommand::Status(a) => status(&a),
            BatchCommand::Report(a) => {
                let files = report::write_report(&a.out)?;
                println!(
                    "wrote {} and {} ({} jobs)",
                    files.csv.display(),
                    files.html.display(),
                    files.jobs
                );
                Ok(())
            }
            BatchCommand::Submit(a) => submit(&a),
        }
    }
}

fn run(a: &RunArgs) -> anyhow::Result<()> {
    let jobs = JobsFile::load(&a.jobs)?;
    let (shard, source) = shard::resolve(a.shard, a.shards, |k| std::env::var(k).ok())
        .map_err(|e| anyhow::anyhow!(e))?;
    if source == ShardSource::Slurm || source == ShardSource::Kubernetes {
        eprintln!("batch: shard {shard} from the {source:?} environment");
    }
    let out = std::path::absolute(&a.out)?;
    if a.dry_run {
        for job in jobs.jobs.iter().filter(|j| shard.contains(j.index)) {
            let state = runner::job_state(&out, &job.id)
                .map(|s| s.name())
                .unwrap_or("pending");
            println!("{}\t{}\tline {}\t{state}", job.id, job.kind.name, job.line);
        }
        return Ok(());
    }
    let summary = runner::run_batch(
        &jobs,
        &out,
        &runner::RunOptions {
            retry_failed: a.retry_failed,
            shard,
            threads: a.threads,
        },
    )?;
    let failed: Vec<&str> = summary
        .failed
        .iter()
        .map(|(id, _)| id.as_str())
        .chain(summary.already_failed.iter().map(String::as_str))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} jobs of shard {shard} failed: {} (errors in OUT/<id>/status.json; rerun with \
             --retry-failed)",
            failed.len(),
            summary.in_shard,
            failed.join(", ")
        );
    }
    Ok(())
}

fn status(a: &StatusArgs) -> anyhow::Result<()> {
    let (manifest, rows) = runner::batch_states(&a.out)?;
    if a.json {
        for (job, state) in &rows {
            let mut v = serde_json::json!({"id": job.id, "kind": job.kind, "line": job.line,
                                           "state": state.name()});
            match state {
                JobState::Done(s) | JobState::Failed(s) => {
                    v["seconds"] = s.seconds.into();
                    v["error"] = s.error.clone().into();
                }
                JobState::Running {
                    owner,
                    checkpoint_step,
                } => {
                    v["owner"] = serde_json::to_value(owner)?;
                    v["checkpoint_step"] = (*checkpoint_step).into();
                }
                JobState::Pending {
                    checkpoint_step,
                    interrupted_by,
                } => {
                    v["checkpoint_step"] = (*checkpoint_step).into();
                    v["interrupted_by"] = serde_json::to_value(interrupted_by)?;
                }
            }
            println!("{v}");
        }
        return Ok(());
    }
    let count = |n: &str| rows.iter().filter(|(_, s)| s.name() == n).count();
    println!(
        "{}: {} jobs from {}",
        a.out.display(),
        rows.len(),
        manifest.jobs_file.display()
    );
    println!(
        "done {}, running {}, failed {}, pending {}",
        count("done"),
        count("running"),
        count("failed"),
        count("pending")
    );
    for (job, state) in &rows {
        match state {
            JobState::Done(_) => {}
            JobState::Failed(s) => println!(
                "  failed   {} (line {}): {}",
                job.id,
                job.line,
                s.error.as_deref().unwrap_or("")
            ),
            JobState::Running {
                owner,
                checkpoint_step,
            } => println!(
                "  running  {} (line {}){}{}",
                job.id,
                job.line,
                owner.as_ref().map_or(String::new(), |o| format!(
                    ": {o}, for {} s",
                    lock::unix_now().saturating_sub(o.since_unix)
                )),
                checkpoint_step.map_or(String::new(), |s| format!(", checkpoint at step {s}"))
            ),
            JobState::Pending {
                checkpoint_step,
                interrupted_by,
            } => {
                if checkpoint_step.is_some() || interrupted_by.is_some() {
                    println!(
                        "  pending  {} (line {}): interrupted{}{}",
                        job.id,
                        job.line,
                        interrupted_by
                            .as_ref()
                            .map_or(String::new(), |o| format!(" ({o} is gone)")),
                        checkpoint_step
                            .map_or(String::new(), |s| format!(", resumes from step {s}"))
                    );
                }
            }
        }
    }
    Ok(())
}

fn submit(a: &SubmitArgs) -> anyhow::Result<()> {
    if !a.slurm {
        bail!("choose a scheduler: --slurm (Kubernetes: deploy/kubernetes/indexed-job.yaml)");
    }
    // The jobs file is checked before anything is written or submitted.
    let jobs = JobsFile::load(&a.jobs)?;
    let plan = slurm::plan(
        &jobs,
        &a.out,
        a.tasks,
        a.max_parallel,
        a.partition.clone(),
        a.gpus_per_task,
        a.cpus_per_task,
        a.time.clone(),
        a.retry_failed,
        a.vecdream.clone(),
    )?;
    let (path, id) = slurm::submit(&plan, &jobs, a.dry_run)?;
    match id {
        None => {
            print!("{}", slurm::script(&plan));
            eprintln!(
                "wrote {} (not submitted: --dry-run); submit it with: sbatch {}",
                path.display(),
                path.display()
            );
        }
        Some(id) => {
            println!("{id}");
            eprintln!(
                "submitted array job {id}: {} tasks for {} jobs ({}); logs in {}/slurm/; progress: \
                 vecdream batch status {}",
                plan.tasks,
                plan.jobs,
                path.display(),
                plan.out.display(),
                plan.out.display()
            );
        }
    }
    Ok(())
}
