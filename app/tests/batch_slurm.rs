//! `vecdream batch` on a real Slurm: a single-node cluster (munged, slurmctld, slurmd from Debian's
//! packages, `scripts/slurm-cluster`) started once for this test binary and brought down by a watchdog
//! when the binary exits. Nothing is skipped: if the cluster cannot start, the tests fail with the
//! daemons' logs. The tests share the cluster one at a time.

mod cli_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use cli_common::*;

struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/slurm-cluster")
}

/// The cluster (started on first use) and the right to use it alone.
fn cluster() -> (&'static Cluster, MutexGuard<'static, ()>) {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let c = CLUSTER.get_or_init(|| {
        // Under /tmp: munged (as the munge user) must reach its socket folder, which a target dir
        // under a mode-700 home would forbid.
        let dir = std::env::temp_dir().join(format!("vecdream-slurm-{}", std::process::id()));
        let o = Command::new(script())
            .arg("up")
            .arg(&dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
        if !o.status.success() {
            return Err(format!(
                "the Slurm cluster did not start (scripts/setup installs slurmctld slurmd \
                 slurm-client munge):\n{}",
                text(&o)
            ));
        }
        Ok(Cluster {
            conf: dir.join("slurm.conf"),
            dir,
        })
    });
    match c {
        Ok(c) => (c, turn),
        Err(e) => panic!("{e}"),
    }
}

impl Cluster {
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn out(&self, program: &str, args: &[&str]) -> String {
        let o = self.cmd(program).args(args).output().unwrap();
        assert!(o.status.success(), "{program} {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `vecdream batch submit --slurm …`, returning the array job id.
    fn submit(&self, jobs: &Path, out: &Path, extra: &[&str]) -> String {
        let o = vecdream()
            .env("SLURM_CONF", &self.conf)
            .args(["batch", "submit", "--slurm", p(jobs), "-o", p(out)])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "submit: {}", text(&o));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert!(id.parse::<u64>().is_ok(), "job id {id:?}: {}", text(&o));
        id
    }

    /// The daemons' logs and the tasks' outputs, for failure messages.
    fn logs(&self, out: &Path) -> String {
        let mut s = String::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.extend(
            std::fs::read_dir(out.join("slurm"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
        for f in files {
            let t = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(30).collect();
            s.push_str(&format!("\n----- {}\n", f.display()));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// Waits until array job `id` has left the queue; returns each task's (state, exit code).
    fn wait(&self, id: &str, out: &Path) -> Vec<(u32, String, String)> {
        let t0 = std::time::Instant::now();
        loop {
            let q = self
                .cmd("squeue")
                .args(["-h", "-j", id, "-o", "%i %T"])
                .output()
                .unwrap();
            let listed = String::from_utf8_lossy(&q.stdout).trim().to_string();
            if q.status.success() && listed.is_empty() {
                break;
            }
            assert!(
                t0.elapsed().as_secs() < 240,
                "array job {id} still queued after 240 s: {listed}\n{}",
                self.logs(out)
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.tasks(id)
    }

    /// `(array task, state, exit code)` of every task of array job `id` (`scontrol show job`).
    fn tasks(&self, id: &str) -> Vec<(u32, String, String)> {
        let text = self.out("scontrol", &["-o", "show", "job", id]);
        let mut tasks: Vec<(u32, String, String)> = text
            .lines()
            .filter_map(|l| {
                let field = |k: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{k}=")))
                        .map(str::to_string)
                };
                Some((
                    field("ArrayTaskId")?.parse().ok()?,
                    field("JobState")?,
                    field("ExitCode")?,
                ))
            })
            .collect();
        tasks.sort();
        tasks
    }

    fn next_job_id(&self) -> String {
        self.out("scontrol", &["show", "config"])
            .lines()
            .find(|l| l.starts_with("NEXT_JOB_ID"))
            .map(|l| l.split('=').nth(1).unwrap_or("").trim().to_string())
            .expect("NEXT_JOB_ID in scontrol show config")
    }
}

/// The 6 jobs both array tests run; job 1 (`long`, in array task 1) is long enough to cancel mid-run.
fn six_jobs(dir: &Path) -> PathBuf {
    copy_test_images(dir);
    write_jobs(
        dir,
        &[
            generate_job("icon-blue", &["blue.svg"], 30, 1, ""),
            generate_job_sized(
                "long",
                &["blue.svg", "yellow.svg"],
                1,
                24,
                300,
                7,
                r#","checkpoint_every":10"#,
            ),
            vectorize_job("horse", "horse.png", r#","seed":3"#),
            generate_job(
                "icon-yellow-sds",
                &["yellow.svg"],
                30,
                2,
                r#","method":"sds""#,
            ),
            vectorize_job("logo-low-poly", "logo.png", r#","style":"low-poly""#),
            generate_job("icon-both", &["blue.svg", "yellow.svg"], 25, 5, ""),
        ],
    )
}

/// A single-process `batch run` of the six jobs (1 libtorch thread, as each array task), once.
fn reference_output() -> &'static Path {
    static REF: OnceLock<PathBuf> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = scratch("batch-slurm", "reference");
        let jobs = six_jobs(&dir);
        let out = dir.join("out");
        ok(&["batch", "run", p(&jobs), "-o", p(&out), "--threads", "1"]);
        out
    })
}

const IDS: [&str; 6] = [
    "icon-blue",
    "long",
    "horse",
    "icon-yellow-sds",
    "logo-low-poly",
    "icon-both",
];

#[test]
fn an_array_of_3_tasks_runs_each_of_6_jobs_once_with_single_process_results() {
    let reference = reference_output();
    let (c, _turn) = cluster();
    let dir = scratch("batch-slurm", "array");
    let jobs = six_jobs(&dir);
    let out = dir.join("out");
    let id = c.submit(&jobs, &out, &["--tasks", "3", "--cpus-per-task", "1"]);
    let script = std::fs::read_to_string(dir.join("out.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-2\n"), "{script}");
    let tasks = c.wait(&id, &out);
    let want: Vec<(u32, String, String)> = (0..3)
        .map(|t| (t, "COMPLETED".to_string(), "0:0".to_string()))
        .collect();
    assert_eq!(tasks, want, "{}", c.logs(&out));
    for (i, job) in IDS.iter().enumerate() {
        let d = out.join(job);
        let s = json(&d.join("status.json"));
        assert_eq!(s["state"], "done", "{job}: {s}");
        assert_eq!(starts(&d).len(), 1, "{job} ran once");
        assert_eq!(s["shard"], format!("{}/3", i % 3));
        assert_eq!(
            s["scheduler_task"],
            format!("slurm {id}_{}", i % 3),
            "{job} ran in its array task"
        );
    }
    assert_same_results(&out, reference);
    let st = String::from_utf8_lossy(&ok(&["batch", "status", p(&out)]).stdout).into_owned();
    assert!(
        st.contains("done 6, running 0, failed 0, pending 0"),
        "{st}"
    );
}

#[test]
fn a_cancelled_task_resumes_from_its_checkpoint_when_resubmitted() {
    let reference = reference_output();
    let (c, _turn) = cluster();
    let dir = scratch("batch-slurm", "cancel");
    let jobs = six_jobs(&dir);
    let out = dir.join("out");
    let long = out.join("long");
    let args = ["--tasks", "3", "--cpus-per-task", "1"];
    let id = c.submit(&jobs, &out, &args);
    wait_for(120, "the long job's checkpoint at step 20", || {
        checkpoint_step(&long).is_some_and(|s| s >= 20)
    });
    c.out("scancel", &[&format!("{id}_1")]);
    let tasks = c.wait(&id, &out);
    assert_eq!(tasks[1].1, "CANCELLED", "{tasks:?}\n{}", c.logs(&out));
    assert!(
        !long.join("status.json").exists(),
        "the long job was cancelled mid-run"
    );
    let at = checkpoint_step(&long).unwrap();
    assert!(at < 300, "cancelled before its end (checkpoint at {at})");
    // Task 1's second job never started; tasks 0 and 2 finished theirs.
    assert!(!out.join("logo-low-poly/status.json").exists());
    let st = String::from_utf8_lossy(&ok(&["batch", "status", p(&out)]).stdout).into_owned();
    assert!(
        st.contains("done 4, running 0, failed 0, pending 2"),
        "{st}"
    );
    assert!(st.contains(&format!("resumes from step {at}")), "{st}");
    let done_before = snapshot(&out, |n| n == "status.json" || is_result(n));

    let id2 = c.submit(&jobs, &out, &args);
    assert_ne!(id, id2);
    let tasks = c.wait(&id2, &out);
    assert!(
        tasks.iter().all(|(_, s, e)| s == "COMPLETED" && e == "0:0"),
        "{tasks:?}\n{}",
        c.logs(&out)
    );
    // No done job was redone: its status and result files are untouched (bytes and mtime).
    let after = snapshot(&out, |n| n == "status.json" || is_result(n));
    for (k, v) in &done_before {
        if !k.starts_with("long/") {
            assert!(after[k] == *v, "{k} changed on the resubmit");
        }
    }
    for job in IDS {
        let n = starts(&out.join(job)).len();
        assert_eq!(n, if job == "long" { 2 } else { 1 }, "{job} starts");
    }
    let s = json(&long.join("status.json"));
    assert_eq!(s["state"], "done");
    assert_eq!(s["resumed_from_step"], at, "{s}");
    assert_eq!(s["scheduler_task"], format!("slurm {id2}_1"));
    assert_eq!(starts(&long)[1]["resumed_from_step"], at);
    // Interrupted and resumed, the batch still equals the single-process run.
    assert_same_results(&out, reference);
}

#[test]
fn a_bad_jobs_file_is_refused_before_any_task_is_submitted() {
    let (c, _turn) = cluster();
    let dir = scratch("batch-slurm", "refused");
    copy_test_images(&dir);
    let jobs = write_jobs(
        &dir,
        &[
            generate_job("fine", &["blue.svg"], 5, 1, ""),
            r#"{"kind":"generate","reference":["data/blue.svg"],"particles":"two"}"#.into(),
        ],
    );
    let out = dir.join("out");
    let next = c.next_job_id();
    let o = vecdream()
        .env("SLURM_CONF", &c.conf)
        .args(["batch", "submit", "--slurm", p(&jobs), "-o", p(&out)])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("jobs.jsonl:2: field `particles`"), "{err}");
    assert_eq!(c.next_job_id(), next, "nothing reached slurmctld");
    assert!(c.out("squeue", &["-h"]).trim().is_empty());
    assert!(!out.exists() && !dir.join("out.sbatch").exists());
}
