//! `vecdream batch` without a scheduler: the real binary on jobs files of tiny reference-teacher and
//! vectorize jobs (test images copied next to the jobs file, so the jobs use relative paths).

mod cli_common;

use std::process::Stdio;

use cli_common::*;

#[test]
fn a_bad_jobs_file_is_refused_with_line_numbers_and_nothing_runs() {
    let dir = scratch("batch", "bad-file");
    copy_test_images(&dir);
    let jobs = write_jobs(
        &dir,
        &[
            generate_job("fine", &["blue.svg"], 5, 1, ""),
            r#"{"kind":"generate","reference":["data/blue.svg"],"stepz":3}"#.into(),
            r#"{"kind":"generate", "steps": 5,"#.into(),
            r#"{"kind":"generate","reference":["data/blue.svg"],"steps":"many"}"#.into(),
            vectorize_job("v", "nope.png", ""),
        ],
    );
    let out = dir.join("out");
    let o = run(&["batch", "run", p(&jobs), "-o", p(&out)]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "4 bad lines, nothing was run",
        "jobs.jsonl:2: unknown field `stepz` for kind `generate`",
        "jobs.jsonl:3: not valid JSON",
        "jobs.jsonl:4: field `steps`: invalid value 'many'",
        "jobs.jsonl:5: field `input`: no such file or folder",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains("jobs.jsonl:1:"), "line 1 is fine:\n{err}");
    assert!(!out.exists(), "nothing may be started or written");
    // The scheduler front end checks the same way before writing a script.
    let o = run(&[
        "batch",
        "submit",
        "--slurm",
        "--dry-run",
        p(&jobs),
        "-o",
        p(&out),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("jobs.jsonl:2: unknown field"));
    assert!(!out.exists() && !dir.join("out.sbatch").exists());
}

#[test]
fn reruns_skip_done_jobs_and_only_retry_failed_ones_when_asked() {
    let dir = scratch("batch", "rerun");
    copy_test_images(&dir);
    // `b` starts from an SVG that exists but is broken: it passes the check and fails when run.
    std::fs::write(dir.join("data/start.svg"), "this is not an SVG").unwrap();
    let jobs = write_jobs(
        &dir,
        &[
            generate_job("a", &["blue.svg"], 12, 1, ""),
            generate_job("b", &["yellow.svg"], 12, 2, r#","init":"data/start.svg""#),
            vectorize_job("c", "horse.png", ""),
        ],
    );
    let out = dir.join("out");
    let args = ["batch", "run", p(&jobs), "-o", p(&out), "--threads", "1"];
    let o = run(&args);
    assert!(
        !o.status.success(),
        "a failed job makes the exit non-zero:\n{}",
        text(&o)
    );
    let st = |id: &str| json(&out.join(id).join("status.json"));
    assert_eq!(st("a")["state"], "done");
    assert_eq!(
        st("c")["state"],
        "done",
        "the failed job did not stop the batch"
    );
    let b = st("b");
    assert_eq!(b["state"], "failed");
    assert!(b["error"].as_str().unwrap().contains("start.svg"), "{b}");
    for id in ["a", "b", "c"] {
        let s = st(id);
        assert_eq!(s["vecdream_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(s["device"], "cpu");
        assert!(s["seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(s["id"], id);
    }
    assert_eq!(st("a")["config"]["steps"], 12);
    assert_eq!(st("a")["config"]["particles"], 2);
    assert_eq!(
        st("c")["config"]["style"],
        "iconography",
        "defaults are resolved"
    );
    assert!(out.join("a/particle_1.svg").is_file() && out.join("c/vectorized.svg").is_file());

    // A rerun touches nothing: done jobs are skipped, the failed one is not retried.
    let before = snapshot(&out, |_| true);
    let o = run(&args);
    assert!(!o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("a: already done") && stdout.contains("c: already done"),
        "{stdout}"
    );
    assert!(
        stdout.contains("b: failed before (rerun it with --retry-failed)"),
        "{stdout}"
    );
    let after = snapshot(&out, |_| true);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, v) in &before {
        assert!(after[k] == *v, "{k} changed on a rerun");
    }
    let o = ok(&["batch", "status", p(&out)]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("done 2, running 0, failed 1, pending 0"), "{s}");
    assert!(s.contains("failed   b (line 2)"), "{s}");

    // Fixed input + --retry-failed: only `b` runs again, and now succeeds.
    std::fs::copy(dir.join("data/yellow.svg"), dir.join("data/start.svg")).unwrap();
    let mut retry = args.to_vec();
    retry.push("--retry-failed");
    ok(&retry);
    assert_eq!(st("b")["state"], "done");
    assert_eq!(starts(&out.join("b")).len(), 2);
    for id in ["a", "c"] {
        assert_eq!(starts(&out.join(id)).len(), 1, "{id} ran again");
        let k = format!("{id}/status.json");
        assert!(snapshot(&out, |_| true)[&k] == before[&k], "{k} changed");
    }

    // The report: one CSV row per job and a contact sheet of every particle image.
    ok(&["batch", "report", p(&out)]);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(
        rows[0].starts_with("id,kind,line,state,seconds,device"),
        "{csv}"
    );
    assert!(rows[0].contains("config.steps"), "{csv}");
    assert!(rows[1].starts_with("a,generate,1,done,"), "{csv}");
    assert!(rows[3].starts_with("c,vectorize,3,done,"), "{csv}");
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for src in [
        "src=\"a/particle_0.png\"",
        "src=\"a/particle_1.png\"",
        "src=\"b/particle_1.png\"",
        "href=\"a/particle_0.svg\"",
        "src=\"c/vectorized.svg\"",
    ] {
        assert!(html.contains(src), "missing {src} in index.html");
    }
    assert_eq!(html.matches("<article").count(), 3);

    // A done job whose line changed under the same id is not redone silently: the rerun says so.
    let edited =
        std::fs::read_to_string(&jobs)
            .unwrap()
            .replacen("\"steps\":12", "\"steps\":13", 1);
    std::fs::write(&jobs, edited).unwrap();
    let o = ok(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("a: already done, with other settings than line 1 has now"),
        "{stdout}"
    );
    assert!(stdout.contains("c: already done\n"), "{stdout}");
}

#[test]
fn two_workers_on_one_folder_run_each_job_once() {
    let dir = scratch("batch", "two-workers");
    copy_test_images(&dir);
    let lines: Vec<String> = (0..6)
        .map(|i| {
            let r = if i % 2 == 0 { "blue.svg" } else { "yellow.svg" };
            generate_job(&format!("j{i}"), &[r], 40, i as u32, "")
        })
        .collect();
    let jobs = write_jobs(&dir, &lines);
    let out = dir.join("out");
    let spawn = || {
        vecdream()
            .args(["batch", "run", p(&jobs), "-o", p(&out), "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (w1, w2) = (spawn(), spawn());
    let (o1, o2) = (
        w1.wait_with_output().unwrap(),
        w2.wait_with_output().unwrap(),
    );
    assert!(o1.status.success(), "{}", text(&o1));
    assert!(o2.status.success(), "{}", text(&o2));
    let both = format!(
        "{}{}",
        String::from_utf8_lossy(&o1.stdout),
        String::from_utf8_lossy(&o2.stdout)
    );
    for i in 0..6 {
        let id = format!("j{i}");
        let ran = both
            .lines()
            .filter(|l| l.contains(&format!("] {id}: done in")))
            .count();
        assert_eq!(ran, 1, "{id} was run by {ran} workers:\n{both}");
        assert_eq!(starts(&out.join(&id)).len(), 1, "{id}");
        assert_eq!(json(&out.join(&id).join("status.json"))["state"], "done");
    }
    eprintln!(
        "jobs seen running in the other worker: {}",
        both.matches("running elsewhere").count()
    );
}

#[test]
fn a_killed_workers_lock_is_taken_over_and_its_job_resumes_from_the_checkpoint() {
    let dir = scratch("batch", "stale-lock");
    copy_test_images(&dir);
    let long = generate_job_sized(
        "long",
        &["blue.svg", "yellow.svg"],
        // 400 steps: far more than the 30 it runs before it is frozen.
        2,
        64,
        400,
        9,
        r#","checkpoint_every":10"#,
    );
    let jobs = write_jobs(&dir, &[long]);
    let out = dir.join("out");
    let job = out.join("long");
    let args = ["batch", "run", p(&jobs), "-o", p(&out), "--threads", "1"];
    let mut first = vecdream()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(120, "the first worker's checkpoint at step 30", || {
        checkpoint_step(&job).is_some_and(|s| s >= 30)
    });
    // Freeze it mid-run (SIGSTOP: alive, lock held) so that how fast the steps are cannot let
    // it finish while the checks below run.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success(), "kill -STOP failed");
    // While it lives, a second worker leaves the job alone.
    let o = ok(&args);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains(&format!("long: running elsewhere (pid {} on", first.id())),
        "{s}"
    );
    let st = String::from_utf8_lossy(&ok(&["batch", "status", p(&out)]).stdout).into_owned();
    assert!(
        st.contains("running 1") && st.contains(&format!("pid {}", first.id())),
        "{st}"
    );
    // Kill it hard: no status is written, the kernel drops its lock, its record stays in the file.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!job.join("status.json").exists(), "it was killed mid-run");
    let at = checkpoint_step(&job).unwrap();
    assert!(at < 400, "killed before the end (checkpoint at {at})");
    let st = String::from_utf8_lossy(&ok(&["batch", "status", p(&out)]).stdout).into_owned();
    assert!(st.contains("pending 1"), "{st}");
    assert!(st.contains(&format!("resumes from step {at}")), "{st}");
    assert!(
        st.contains(&format!("pid {} on", first.id())) && st.contains("is gone"),
        "{st}"
    );

    let o = ok(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("took over the lock of pid {} on", first.id())),
        "{err}"
    );
    assert!(
        err.contains(&format!("resuming from its checkpoint at step {at}")),
        "{err}"
    );
    let status = json(&job.join("status.json"));
    assert_eq!(status["state"], "done");
    assert_eq!(status["resumed_from_step"], at);
    let s = starts(&job);
    assert_eq!(s.len(), 2);
    assert_eq!(s[1]["resumed_from_step"], at);
    assert_eq!(s[1]["took_over_from"]["pid"], first.id());
    // One loss row per step, no step logged twice.
    let loss = std::fs::read_to_string(job.join("loss.csv")).unwrap();
    let steps: Vec<u64> = loss
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=400).collect::<Vec<_>>());
    // The resumed job ends exactly where an uninterrupted run of it ends.
    let straight = dir.join("straight");
    ok(&[
        "batch",
        "run",
        p(&jobs),
        "-o",
        p(&straight),
        "--threads",
        "1",
    ]);
    assert_same_results(&out, &straight);
}

#[test]
fn shards_cover_every_job_exactly_once() {
    let dir = scratch("batch", "shards");
    copy_test_images(&dir);
    let images = ["horse.png", "logo.png"];
    let lines: Vec<String> = (0..7)
        .map(|i| {
            format!(
                r#"{{"kind":"vectorize","id":"v{i}","input":"data/{}","size":24,"steps":0,"paths":6,"seed":{i}}}"#,
                images[i % 2]
            )
        })
        .collect();
    let jobs = write_jobs(&dir, &lines);
    let out = dir.join("out");
    let base = ["batch", "run", p(&jobs), "-o", p(&out), "--threads", "1"];
    let shard_run = |args: &[&str], env: &[(&str, &str)], dry: bool| {
        let mut c = vecdream();
        c.args(base).args(args);
        if dry {
            c.arg("--dry-run");
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?} {env:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Three ways to say "shard i of 3": the flag, a Slurm array task, a Kubernetes Indexed Job pod.
    type Way<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let ways: [Way; 3] = [
        (vec!["--shard", "0/3"], vec![]),
        (
            vec![],
            vec![
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
        (vec!["--shards", "3"], vec![("JOB_COMPLETION_INDEX", "2")]),
    ];
    let mut planned = Vec::new();
    for (i, (args, env)) in ways.iter().enumerate() {
        let listed = shard_run(args, env, true);
        let ids: Vec<String> = listed
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..7)
            .filter(|j| j % 3 == i)
            .map(|j| format!("v{j}"))
            .collect();
        assert_eq!(ids, want, "shard {i} plans");
        planned.extend(ids);
    }
    assert!(!out.join("v0").exists(), "a dry run runs nothing");
    planned.sort();
    assert_eq!(planned, (0..7).map(|j| format!("v{j}")).collect::<Vec<_>>());
    for (args, env) in &ways {
        shard_run(args, env, false);
    }
    for j in 0..7 {
        let d = out.join(format!("v{j}"));
        assert_eq!(starts(&d).len(), 1, "v{j} ran once");
        let s = json(&d.join("status.json"));
        assert_eq!(s["state"], "done");
        assert_eq!(s["shard"], format!("{}/3", j % 3), "v{j}");
    }
    let kube = json(&out.join("v2/status.json"));
    assert!(
        kube["scheduler_task"]
            .as_str()
            .unwrap()
            .starts_with("kubernetes index 2"),
        "{kube}"
    );
    // Shards that disagree with the environment are refused.
    let o = vecdream()
        .args(base)
        .args(["--shards", "4"])
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disagrees"),
        "{}",
        text(&o)
    );
}
