//! `batch submit --slurm`: an sbatch script for a job array of N tasks, task i running
//! `vecdream batch run JOBS -o OUT --shard i/N`, written next to OUT (`OUT.sbatch`) and submitted with
//! `sbatch` (or only printed with `--dry-run`). The jobs file is checked first: a bad line is refused
//! before anything reaches the scheduler. Task logs go to `OUT/slurm/<array job>_<task>.out`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::jobs::JobsFile;

/// The settings of one array submission.
#[derive(Clone, Debug)]
pub struct SlurmPlan {
    /// The checked jobs file.
    pub jobs_file: PathBuf,
    /// Number of jobs in it.
    pub jobs: usize,
    /// Output folder (absolute).
    pub out: PathBuf,
    /// Array tasks (shards).
    pub tasks: usize,
    /// At most this many tasks at once (`%M`).
    pub max_parallel: Option<usize>,
    /// Partition.
    pub partition: Option<String>,
    /// GPUs per task.
    pub gpus_per_task: Option<u32>,
    /// CPUs per task (also the libtorch threads of each task).
    pub cpus_per_task: u32,
    /// Time limit per task (`[D-]HH:MM:SS`).
    pub time: Option<String>,
    /// Pass `--retry-failed` to the tasks.
    pub retry_failed: bool,
    /// The vecdream binary the tasks run (absolute; must be reachable from the compute nodes).
    pub vecdream: PathBuf,
}

/// Checks a Slurm time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
pub fn check_time(t: &str) -> Result<(), String> {
    let bad = || format!("--time {t}: expected HH:MM:SS (or MM, MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)");
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    // Minutes and seconds fields below 60 (the first field may be larger: `90` minutes).
    for p in parts.iter().skip(1) {
        if p.parse::<u32>().map_or(true, |v| v >= 60) {
            return Err(bad());
        }
    }
    if days.is_some() && parts[0].parse::<u32>().map_or(true, |h| h >= 24) {
        return Err(bad());
    }
    Ok(())
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Where `OUT`'s sbatch script goes: beside it, `OUT.sbatch`.
pub fn script_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    out.with_file_name(format!("{name}.sbatch"))
}

/// The sbatch script of `plan`.
pub fn script(plan: &SlurmPlan) -> String {
    let out = plan.out.display().to_string();
    let name = plan
        .out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!(
        "# vecdream batch: {} jobs from {} in a Slurm array of {} tasks; task i runs shard i/{}.\n\
         # Written by `vecdream batch submit --slurm` (vecdream {}). Resubmitting is safe: done jobs are\n\
         # skipped and interrupted ones resume from their checkpoints. Progress: vecdream batch status {}\n",
        plan.jobs,
        plan.jobs_file.display(),
        plan.tasks,
        plan.tasks,
        crate::VERSION,
        quote(&out),
    ));
    let array = match plan.max_parallel {
        Some(m) => format!("0-{}%{m}", plan.tasks - 1),
        None => format!("0-{}", plan.tasks - 1),
    };
    let mut directive = |k: &str, v: &str| s.push_str(&format!("#SBATCH --{k}={v}\n"));
    directive("job-name", &quote(&format!("vecdream-{name}")));
    directive("array", &array);
    directive("ntasks", "1");
    directive("cpus-per-task", &plan.cpus_per_task.to_string());
    directive("output", &quote(&format!("{out}/slurm/%A_%a.out")));
    if let Some(p) = &plan.partition {
        directive("partition", &quote(p));
    }
    if let Some(g) = plan.gpus_per_task {
        directive("gpus-per-task", &g.to_string());
    }
    if let Some(t) = &plan.time {
        directive("time", t);
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!(
        "exec {} batch run {} -o {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" --threads {}{}\n",
        quote(&plan.vecdream.display().to_string()),
        quote(&plan.jobs_file.display().to_string()),
        quote(&out),
        plan.tasks,
        plan.cpus_per_task,
        if plan.retry_failed {
            " --retry-failed"
        } else {
            ""
        },
    ));
    s
}

/// Checks the jobs file and plans the array: `tasks` defaults to one per job (at most 1000, Slurm's
/// default array limit) and is capped at the number of jobs.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    jobs: &JobsFile,
    out: &Path,
    tasks: Option<usize>,
    max_parallel: Option<usize>,
    partition: Option<String>,
    gpus_per_task: Option<u32>,
    cpus_per_task: u32,
    time: Option<String>,
    retry_failed: bool,
    vecdream: Option<PathBuf>,
) -> anyhow::Result<SlurmPlan> {
    if tasks == Some(0) {
        bail!("--tasks must be at least 1");
    }
    if max_parallel == Some(0) {
        bail!("--max-parallel must be at least 1");
    }
    if cpus_per_task == 0 {
        bail!("--cpus-per-task must be at least 1");
    }
    if let Some(t) = &time {
        check_time(t).map_err(|e| anyhow::anyhow!(e))?;
    }
    let n = jobs.jobs.len();
    let tasks = tasks.unwrap_or(n.min(1000));
    if tasks > n {
        eprintln!("batch submit: {tasks} tasks for {n} jobs: using {n} tasks");
    }
    let vecdream = match vecdream {
        Some(v) => std::path::absolute(&v)?,
        None => std::env::current_exe().context("finding the vecdream binary")?,
    };
    Ok(SlurmPlan {
        jobs_file: jobs.path.clone(),
        jobs: n,
        out: std::path::absolute(out)?,
        tasks: tasks.min(n),
        max_parallel,
        partition,
        gpus_per_task,
        cpus_per_task,
        time,
        retry_failed,
        vecdream,
    })
}

/// Writes the script (and OUT with its manifest and log folder); submits it unless `dry_run`.
/// Returns the script's path and the array job id (None on a dry run).
pub fn submit(
    plan: &SlurmPlan,
    jobs: &JobsFile,
    dry_run: bool,
) -> anyhow::Result<(PathBuf, Option<String>)> {
    let text = script(plan);
    super::runner::write_manifest(&plan.out, jobs)?;
    let logs = plan.out.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let path = script_path(&plan.out);
    vecdream_core::atomic::write_atomic(&path, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if dry_run {
        return Ok((path, None));
    }
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .context("running sbatch (is Slurm's client installed and SLURM_CONF set?)")?;
    if !output.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = stdout.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("sbatch printed no job id: {stdout:?}");
    }
    Ok((path, Some(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits() {
        for ok in ["30", "90:00", "01:30:00", "2-12", "2-12:30", "1-00:00:00"] {
            assert!(check_time(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1:2:3:4",
            "01:60:00",
            "abc",
            "1-",
            "-1",
            "3-24:00:00",
            "1h",
        ] {
            assert!(check_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn script_has_the_array_and_options() {
        let plan = SlurmPlan {
            jobs_file: "/data/my jobs.jsonl".into(),
            jobs: 10,
            out: "/data/out".into(),
            tasks: 4,
            max_parallel: Some(2),
            partition: Some("gpu".into()),
            gpus_per_task: Some(1),
            cpus_per_task: 2,
            time: Some("01:00:00".into()),
            retry_failed: true,
            vecdream: "/opt/vecdream".into(),
        };
        let s = script(&plan);
        for line in [
            "#SBATCH --array=0-3%2\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gpus-per-task=1\n",
            "#SBATCH --cpus-per-task=2\n",
            "#SBATCH --time=01:00:00\n",
            "#SBATCH --output=/data/out/slurm/%A_%a.out\n",
            "exec /opt/vecdream batch run '/data/my jobs.jsonl' -o /data/out --shard \"${SLURM_ARRAY_TASK_ID}/4\" --threads 2 --retry-failed\n",
        ] {
            assert!(s.contains(line), "missing {line:?} in\n{s}");
        }
        assert_eq!(
            script_path(Path::new("/data/out")),
            Path::new("/data/out.sbatch")
        );
    }
}
