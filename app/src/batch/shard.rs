//! Sharding: which jobs one worker runs. Shard `i/n` runs the jobs whose index ≡ i (mod n), so the n
//! shards of a batch together hold every job exactly once.
//!
//! Without `--shard`, the shard comes from the scheduler's own environment: a Slurm array task
//! (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, or `SLURM_ARRAY_TASK_MIN`/`MAX`, and
//! `SLURM_ARRAY_TASK_STEP`), or a Kubernetes Indexed Job pod (`JOB_COMPLETION_INDEX` with
//! `--shards n`, n = the Job's completions).

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard number, `< count`.
    pub index: usize,
    /// Number of shards, `≥ 1`.
    pub count: usize,
}

impl Shard {
    /// The whole batch in one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the job at position `job_index` (0-based, file order) belongs to this shard.
    pub fn contains(&self, job_index: usize) -> bool {
        job_index % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    /// `i/n` with `0 ≤ i < n`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: expected i/n with 0 ≤ i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Where the shard came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardSource {
    /// `--shard i/n`.
    Flag,
    /// A Slurm array task.
    Slurm,
    /// A Kubernetes Indexed Job pod.
    Kubernetes,
    /// No shard given: every job.
    Whole,
}

/// The shard to run: `--shard` if given, else from the scheduler's environment (`env` reads a
/// variable), else the whole batch. `--shards n` sets the shard count for `JOB_COMPLETION_INDEX` (and
/// must agree with a Slurm array's size).
pub fn resolve(
    flag: Option<Shard>,
    shards: Option<usize>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Shard, ShardSource), String> {
    if shards == Some(0) {
        return Err("--shards must be at least 1".into());
    }
    if let Some(s) = flag {
        if let Some(n) = shards.filter(|n| *n != s.count) {
            return Err(format!("--shard {s} and --shards {n} disagree"));
        }
        return Ok((s, ShardSource::Flag));
    }
    let num = |name: &str| -> Result<Option<usize>, String> {
        match env(name) {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| format!("{name}={v} is not a number")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = match (num("SLURM_ARRAY_TASK_COUNT")?, num("SLURM_ARRAY_TASK_MAX")?) {
            (Some(c), _) => c,
            (None, Some(max)) if max >= min => (max - min) / step + 1,
            _ => shards.ok_or(
                "SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_COUNT or _MAX: give --shard i/n",
            )?,
        };
        if id < min || (id - min) % step != 0 || (id - min) / step >= count {
            return Err(format!(
                "SLURM_ARRAY_TASK_ID={id} is not one of {count} evenly spaced array tasks from {min} \
                 (step {step}): submit a contiguous array (e.g. --array=0-{}) or give --shard i/n",
                count.saturating_sub(1)
            ));
        }
        if let Some(n) = shards.filter(|n| *n != count) {
            return Err(format!(
                "--shards {n} disagrees with the Slurm array of {count} tasks"
            ));
        }
        return Ok((
            Shard {
                index: (id - min) / step,
                count,
            },
            ShardSource::Slurm,
        ));
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = shards.ok_or(format!(
            "JOB_COMPLETION_INDEX={index} is set: give --shards N (the Indexed Job's completions)"
        ))?;
        if index >= count {
            return Err(format!(
                "JOB_COMPLETION_INDEX={index} is not below --shards {count}"
            ));
        }
        return Ok((Shard { index, count }, ShardSource::Kubernetes));
    }
    if let Some(n) = shards.filter(|n| *n > 1) {
        return Err(format!(
            "--shards {n} needs JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID (or give --shard i/{n})"
        ));
    }
    Ok((Shard::ALL, ShardSource::Whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn shards_partition_every_job_exactly_once() {
        for count in 1..=7 {
            for jobs in 0..=20 {
                for j in 0..jobs {
                    let owners = (0..count)
                        .filter(|&i| Shard { index: i, count }.contains(j))
                        .count();
                    assert_eq!(owners, 1, "job {j} of {jobs}, {count} shards");
                }
            }
        }
    }

    #[test]
    fn parses_i_over_n() {
        assert_eq!("2/5".parse::<Shard>(), Ok(Shard { index: 2, count: 5 }));
        assert_eq!("2/5".parse::<Shard>().unwrap().to_string(), "2/5");
        for bad in ["5/5", "1/0", "a/3", "3", "-1/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn comes_from_slurm_arrays() {
        let r = resolve(
            None,
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]),
        );
        assert_eq!(r, Ok((Shard { index: 2, count: 3 }, ShardSource::Slurm)));
        // An array 1-4 (MIN/MAX only).
        let r = resolve(
            None,
            None,
            env(&[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "4"),
            ]),
        );
        assert_eq!(r, Ok((Shard { index: 0, count: 4 }, ShardSource::Slurm)));
        // An array 10-20:5 = tasks 10, 15, 20.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "15"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_MAX", "20"),
            ("SLURM_ARRAY_TASK_STEP", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            resolve(None, None, &e),
            Ok((Shard { index: 1, count: 3 }, ShardSource::Slurm))
        );
        // A sparse array (1,5,7) cannot be mapped.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(resolve(None, None, e).unwrap_err().contains("--shard"));
        // --shard wins over the environment; --shards must agree.
        let e = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            resolve(Some(Shard { index: 0, count: 2 }), None, &e),
            Ok((Shard { index: 0, count: 2 }, ShardSource::Flag))
        );
        assert!(resolve(None, Some(4), &e).is_err());
    }

    #[test]
    fn comes_from_kubernetes_indexed_jobs() {
        let e = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            resolve(None, Some(4), &e),
            Ok((Shard { index: 3, count: 4 }, ShardSource::Kubernetes))
        );
        assert!(resolve(None, None, &e).unwrap_err().contains("--shards"));
        assert!(resolve(None, Some(3), &e).is_err());
        assert!(resolve(None, Some(0), &e).is_err());
    }

    #[test]
    fn without_a_scheduler_runs_everything() {
        assert_eq!(
            resolve(None, None, env(&[])),
            Ok((Shard::ALL, ShardSource::Whole))
        );
        assert_eq!(
            resolve(None, Some(1), env(&[])),
            Ok((Shard::ALL, ShardSource::Whole))
        );
        assert!(resolve(None, Some(3), env(&[])).is_err());
        assert!(
            resolve(None, None, env(&[("SLURM_ARRAY_TASK_ID", "x")]))
                .unwrap_err()
                .contains("not a number")
        );
    }
}
