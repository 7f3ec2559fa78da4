//! One lock per job: `OUT/<id>/lock`, held with an exclusive `flock` for as long as a worker runs the
//! job, and holding its owner (host, PID, the process's start time, Slurm task) while it does.
//!
//! The kernel drops the lock the moment its owner process dies, however it dies (scancel, SIGKILL,
//! OOM), so a killed worker's lock is taken over by the next worker at once; the dead owner's record is
//! still in the file, so the taker can say whose lock it took. A worker that finishes empties the file
//! before it unlocks. Lock files are never deleted (deleting a locked file lets two workers lock two
//! different files of the same name). On network file systems this needs working `flock` (NFSv4,
//! Lustre mounted with `-o flock`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Who holds (or last held) a job's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Host name of the worker.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its process start time in clock ticks since boot (`/proc/PID/stat` field 22): with `pid`
    /// and `boot_id` it names the process even after the PID is reused.
    pub pid_start_ticks: u64,
    /// The host's boot id.
    pub boot_id: String,
    /// When it took the lock (seconds since 1970).
    pub since_unix: u64,
    /// `SLURM_ARRAY_JOB_ID_SLURM_ARRAY_TASK_ID` (or `SLURM_JOB_ID`), or the Kubernetes pod name.
    pub scheduler_task: Option<String>,
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            host: host_name(),
            pid,
            pid_start_ticks: process_start_ticks(pid).unwrap_or(0),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
            since_unix: unix_now(),
            scheduler_task: scheduler_task(),
        }
    }

    /// Whether this owner is known to be alive: `Some(true/false)` on its own host (same boot),
    /// `None` for another host.
    pub fn is_alive(&self) -> Option<bool> {
        let boot = read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        if self.host != host_name() || self.boot_id != boot {
            return None;
        }
        Some(process_start_ticks(self.pid) == Some(self.pid_start_ticks))
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)?;
        if let Some(t) = &self.scheduler_task {
            write!(f, " ({t})")?;
        }
        Ok(())
    }
}

/// A held job lock; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct JobLock {
    file: File,
    path: PathBuf,
}

/// The outcome of [`try_acquire`].
#[derive(Debug)]
pub enum Acquire {
    /// The lock is ours. `previous` is the record of an owner that died holding it (a stale lock
    /// we took over), if any.
    Acquired {
        /// The lock.
        lock: JobLock,
        /// The dead owner's record.
        previous: Option<Owner>,
    },
    /// Another live worker holds it.
    Busy(Option<Owner>),
}

/// What [`probe`] sees.
#[derive(Debug, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds it; `Some` is the record of an owner that died holding it.
    Free(Option<Owner>),
    /// A live worker holds it.
    Held(Option<Owner>),
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.trim()).ok()
}

fn read_owner_path(path: &Path) -> Option<Owner> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// Takes the lock at `path` (created if missing) without waiting for a live holder. A lock held for an
/// instant by [`probe`] is retried for up to ≈0.2 s.
pub fn try_acquire(path: &Path) -> std::io::Result<Acquire> {
    let mut file = open(path)?;
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => return Ok(Acquire::Busy(read_owner_path(path))),
            Err(TryLockError::Error(e)) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot lock {} (does this file system support flock?): {e}",
                        path.display()
                    ),
                ));
            }
        }
    }
    let previous = read_owner(&mut file);
    let me = Owner::current();
    let json = serde_json::to_string(&me).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(json.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_data()?;
    Ok(Acquire::Acquired {
        lock: JobLock {
            file,
            path: path.to_path_buf(),
        },
        previous,
    })
}

/// Looks at the lock at `path` without taking it (a shared lock for an instant).
pub fn probe(path: &Path) -> std::io::Result<LockState> {
    if !path.exists() {
        return Ok(LockState::Free(None));
    }
    let file = File::open(path)?;
    let owner = read_owner_path(path);
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(LockState::Free(owner))
        }
        Err(TryLockError::WouldBlock) => Ok(LockState::Held(owner)),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl JobLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties the record and unlocks: the job ended normally.
    pub fn release(self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The host's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
pub fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks since boot.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Seconds since 1970.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The scheduler's name for this task, if any.
pub fn scheduler_task() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("SLURM_ARRAY_JOB_ID"),
        var("SLURM_ARRAY_TASK_ID"),
        var("SLURM_JOB_ID"),
    ) {
        (Some(a), Some(t), _) => Some(format!("slurm {a}_{t}")),
        (_, _, Some(j)) => Some(format!("slurm {j}")),
        _ => var("JOB_COMPLETION_INDEX").map(|i| {
            format!(
                "kubernetes index {i}{}",
                var("HOSTNAME")
                    .map(|h| format!(" pod {h}"))
                    .unwrap_or_default()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_busy_and_a_released_one_is_free() {
        let dir = std::env::temp_dir().join(format!("vecdream-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let Acquire::Acquired { lock, previous } = try_acquire(&path).unwrap() else {
            panic!("a fresh lock is free");
        };
        assert_eq!(previous, None);
        // flock locks belong to the open file: a second open in this process conflicts like another
        // process would.
        match try_acquire(&path).unwrap() {
            Acquire::Busy(Some(o)) => assert_eq!(o.pid, std::process::id()),
            other => panic!("expected busy, got {other:?}"),
        }
        match probe(&path).unwrap() {
            LockState::Held(Some(o)) => {
                assert_eq!(o.is_alive(), Some(true));
                assert!(o.pid_start_ticks > 0);
            }
            other => panic!("expected held, got {other:?}"),
        }
        lock.release();
        assert_eq!(probe(&path).unwrap(), LockState::Free(None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dead_owner_is_recognised() {
        let mut o = Owner::current();
        assert_eq!(o.is_alive(), Some(true));
        o.pid_start_ticks += 1; // the same PID, another process
        assert_eq!(o.is_alive(), Some(false));
        o.host = "elsewhere".into();
        assert_eq!(o.is_alive(), None);
    }
}
