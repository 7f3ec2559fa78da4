//! The jobs file: one JSON object per line, each a run of a vecdream subcommand.
//!
//! A job names its `kind` (the subcommand: `generate`, `vectorize`, `generate3d`) and an optional `id`;
//! every other field is one of that subcommand's command-line flags, mapped generically and parsed by the
//! real clap definitions ([`crate::cli::Cli`]), so a flag added to the CLI works in jobs unchanged:
//! `"steps": 300` → `--steps=300`, `"flat": true` → `--flat`, `"reference": ["a.png", "b.png"]` →
//! `--reference=a.png --reference=b.png`, a positional argument by its name (`"input": "x.png"`),
//! `null` → the flag's default. Field names may use `_` or `-`. Relative paths are resolved against the
//! jobs file's folder and must exist. The output flag (`-o`) and `--resume` belong to the runner.
//!
//! [`JobsFile::load`] checks every line before anything runs and reports every bad line with its number
//! and field. Blank lines and lines starting with `#` are skipped.

use std::any::TypeId;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue};
use clap::{ArgAction, CommandFactory as _};
use serde_json::{Map, Value};

use crate::cli::{Cli, Command};

/// How a kind's subcommand takes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    /// `-o` names a folder: the job's folder itself.
    Folder,
    /// `-o` names a file, written inside the job's folder under this name.
    File(&'static str),
}

/// A kind of job: which subcommand runs it and how it writes its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindSpec {
    /// The `kind` field and the subcommand's name.
    pub name: &'static str,
    /// How `-o` is filled in.
    pub output: OutputSpec,
}

/// The kinds a jobs file may name.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        name: "generate",
        output: OutputSpec::Folder,
    },
    KindSpec {
        name: "vectorize",
        output: OutputSpec::File("vectorized.svg"),
    },
    KindSpec {
        name: "generate3d",
        output: OutputSpec::Folder,
    },
];

/// One valid line of a jobs file.
#[derive(Clone, Debug)]
pub struct Job {
    /// 1-based line number in the jobs file.
    pub line: usize,
    /// 0-based position among the file's jobs (what sharding counts).
    pub index: usize,
    /// The job's folder name under OUT: the `id` field, else `<kind>-<hash of the fields>`.
    pub id: String,
    /// Its kind.
    pub kind: KindSpec,
    /// Every flag of the subcommand with the value this job runs with (defaults filled in, paths
    /// absolute), without the output and `--resume`. Written to `job.json` and `status.json`.
    pub config: Map<String, Value>,
    /// The subcommand's flags from the job's fields (`--name=value`, before `--`).
    flags: Vec<OsString>,
    /// Its positional arguments (after `--`).
    positionals: Vec<OsString>,
    /// Long name of the output flag.
    output_flag: String,
    /// Whether the subcommand has a `--resume` flag.
    resumable: bool,
}

/// A jobs file, every line checked.
#[derive(Clone, Debug)]
pub struct JobsFile {
    /// The file (absolute).
    pub path: PathBuf,
    /// Its jobs in file order.
    pub jobs: Vec<Job>,
}

/// The lines of a jobs file that cannot run, each with its number and reason.
#[derive(Debug)]
pub struct JobsFileError {
    /// The file.
    pub path: PathBuf,
    /// `(line, message)`; line 0 is the file as a whole.
    pub errors: Vec<(usize, String)>,
}

impl fmt::Display for JobsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bad = self.errors.len();
        write!(
            f,
            "{}: {bad} bad line{}, nothing was run",
            self.path.display(),
            if bad == 1 { "" } else { "s" }
        )?;
        for (line, msg) in &self.errors {
            if *line == 0 {
                write!(f, "\n  {msg}")?;
            } else {
                write!(f, "\n  {}:{line}: {msg}", self.path.display())?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for JobsFileError {}

impl JobsFile {
    /// Reads and checks every line of `path`; any bad line fails the whole file.
    pub fn load(path: &Path) -> Result<JobsFile, JobsFileError> {
        let whole = |msg: String| JobsFileError {
            path: path.to_path_buf(),
            errors: vec![(0, msg)],
        };
        let abs = std::path::absolute(path).map_err(|e| whole(e.to_string()))?;
        let text = std::fs::read_to_string(&abs)
            .map_err(|e| whole(format!("cannot read the jobs file: {e}")))?;
        let base = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut cli = Cli::command();
        cli.build();
        let mut jobs = Vec::new();
        let mut errors = Vec::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(&cli, trimmed, line, jobs.len(), &base) {
                Ok(job) => {
                    if let Some(first) = ids.insert(job.id.clone(), line) {
                        errors.push((
                            line,
                            format!(
                                "id `{}` is already used on line {first} (same id, or the same fields \
                                 without an id): give one of them another `id`",
                                job.id
                            ),
                        ));
                    } else {
                        jobs.push(job);
                    }
                }
                Err(msg) => errors.push((line, msg)),
            }
        }
        if !errors.is_empty() {
            return Err(JobsFileError { path: abs, errors });
        }
        if jobs.is_empty() {
            return Err(JobsFileError {
                path: abs,
                errors: vec![(0, "no jobs in the file (one JSON object per line)".into())],
            });
        }
        Ok(JobsFile { path: abs, jobs })
    }
}

impl Job {
    /// The full command line (`vecdream <kind> …`) that runs this job into `dir`, resuming if asked.
    pub fn argv(&self, dir: &Path, resume: bool) -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["vecdream".into(), self.kind.name.into()];
        argv.extend(self.flags.iter().cloned());
        let out = match self.kind.output {
            OutputSpec::Folder => dir.to_path_buf(),
            OutputSpec::File(name) => dir.join(name),
        };
        let mut o = OsString::from(format!("--{}=", self.output_flag));
        o.push(out.as_os_str());
        argv.push(o);
        if resume && self.resumable {
            argv.push("--resume".into());
        }
        if !self.positionals.is_empty() {
            argv.push("--".into());
            argv.extend(self.positionals.iter().cloned());
        }
        argv
    }

    /// Whether this kind's subcommand can continue from a checkpoint (`--resume`).
    pub fn resumable(&self) -> bool {
        self.resumable
    }

    /// Parses [`Job::argv`] with the real CLI definitions into the subcommand to run.
    pub fn command(&self, dir: &Path, resume: bool) -> anyhow::Result<Command> {
        let cli = <Cli as clap::Parser>::try_parse_from(self.argv(dir, resume))?;
        cli.command
            .ok_or_else(|| anyhow::anyhow!("job {}: no subcommand", self.id))
    }
}

fn kind_names() -> String {
    let names: Vec<_> = KINDS.iter().map(|k| k.name).collect();
    names.join(", ")
}

fn is_runner_arg(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version" | "resume") || arg.get_short() == Some('o')
}

fn field_name(arg: &clap::Arg) -> String {
    arg.get_id().as_str().to_string()
}

fn takes_many(arg: &clap::Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|r| r.max_values() > 1)
}

fn is_path(arg: &clap::Arg) -> bool {
    arg.get_value_parser().type_id() == TypeId::of::<PathBuf>()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Canonical text of a JSON value (object keys sorted at every level), for stable ids.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// 64-bit FNV-1a: a small, stable, dependency-free hash for job ids.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_line(
    cli: &clap::Command,
    text: &str,
    line: usize,
    index: usize,
    base: &Path,
) -> Result<Job, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(mut fields) = value else {
        return Err(format!(
            "expected a JSON object {{\"kind\": …, …}}, found {}",
            describe(&value)
        ));
    };
    let kind_name = match fields.remove("kind") {
        Some(Value::String(k)) => k,
        Some(other) => {
            return Err(format!(
                "field `kind`: expected a string ({}), found {}",
                kind_names(),
                describe(&other)
            ));
        }
        None => return Err(format!("missing field `kind` ({})", kind_names())),
    };
    let Some(kind) = KINDS.iter().find(|k| k.name == kind_name).copied() else {
        return Err(format!(
            "field `kind`: unknown kind `{kind_name}` (expected {})",
            kind_names()
        ));
    };
    let Some(sub) = cli.find_subcommand(kind.name) else {
        return Err(format!(
            "kind `{}`: this vecdream ({}) has no `{}` subcommand yet",
            kind.name,
            crate::VERSION,
            kind.name
        ));
    };
    let explicit_id = match fields.remove("id") {
        Some(Value::String(id)) => {
            if !valid_id(&id) {
                return Err(format!(
                    "field `id`: `{id}` is not a folder-safe name (letters, digits, `-`, `_`, `.`, \
                     starting with a letter or digit, at most 128 characters)"
                ));
            }
            Some(id)
        }
        Some(Value::Null) | None => None,
        Some(other) => {
            return Err(format!(
                "field `id`: expected a string, found {}",
                describe(&other)
            ));
        }
    };
    let id = explicit_id.unwrap_or_else(|| {
        let mut hashed = fields.clone();
        hashed.insert("kind".into(), Value::String(kind.name.into()));
        format!(
            "{}-{:016x}",
            kind.name,
            fnv1a(canonical(&Value::Object(hashed)).as_bytes())
        )
    });
    let output = sub
        .get_arguments()
        .find(|a| a.get_short() == Some('o'))
        .ok_or_else(|| format!("kind `{}`: the subcommand has no -o output flag", kind.name))?;
    let output_flag = output
        .get_long()
        .unwrap_or(output.get_id().as_str())
        .to_string();
    let resumable = sub.get_arguments().any(|a| a.get_id() == "resume");
    let expected = || {
        let mut names: Vec<String> = sub
            .get_arguments()
            .filter(|a| !is_runner_arg(a))
            .map(field_name)
            .collect();
        names.sort();
        names.join(", ")
    };

    let mut flags = Vec::new();
    let mut positionals: Vec<(usize, Vec<OsString>)> = Vec::new();
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    for key in keys {
        let value = &fields[key];
        let norm = key.replace('-', "_");
        let Some(arg) = sub.get_arguments().find(|a| {
            a.get_id().as_str() == norm || a.get_long().is_some_and(|l| l.replace('-', "_") == norm)
        }) else {
            return Err(format!(
                "unknown field `{key}` for kind `{}` (expected id, kind, {})",
                kind.name,
                expected()
            ));
        };
        if is_runner_arg(arg) {
            return Err(format!(
                "field `{key}` is set by `vecdream batch` (each job writes to OUT/<id>/ and resumes by \
                 itself); remove it"
            ));
        }
        if value.is_null() {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => String::new(),
        };
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => match value {
                Value::Bool(true) => flags.push(OsString::from(&flag)),
                Value::Bool(false) => {}
                other => {
                    return Err(format!(
                        "field `{key}`: expected true or false, found {}",
                        describe(other)
                    ));
                }
            },
            ArgAction::Count => match value.as_u64() {
                Some(n) => flags.extend((0..n).map(|_| OsString::from(&flag))),
                None => {
                    return Err(format!(
                        "field `{key}`: expected a count (0, 1, 2 …), found {value}"
                    ));
                }
            },
            _ => {
                let items: Vec<&Value> = match value {
                    Value::Array(items) => {
                        if !takes_many(arg) {
                            return Err(format!(
                                "field `{key}`: takes one value, found an array of {}",
                                items.len()
                            ));
                        }
                        items.iter().collect()
                    }
                    other => vec![other],
                };
                let mut values = Vec::new();
                for item in items {
                    let Some(s) = scalar(item) else {
                        return Err(format!(
                            "field `{key}`: expected a string, number or boolean{}, found {}",
                            if takes_many(arg) {
                                " (or an array of them)"
                            } else {
                                ""
                            },
                            describe(item)
                        ));
                    };
                    let s = if is_path(arg) {
                        let p = base.join(&s);
                        if !p.exists() {
                            return Err(format!(
                                "field `{key}`: no such file or folder: {} (relative paths are read \
                                 from the jobs file's folder)",
                                p.display()
                            ));
                        }
                        p.into_os_string()
                    } else {
                        OsString::from(s)
                    };
                    values.push(s);
                }
                if arg.is_positional() {
                    positionals.push((arg.get_index().unwrap_or(usize::MAX), values));
                } else {
                    for v in values {
                        let mut f = OsString::from(format!("{flag}="));
                        f.push(v);
                        flags.push(f);
                    }
                }
            }
        }
    }
    positionals.sort_by_key(|(i, _)| *i);
    let positionals: Vec<OsString> = positionals.into_iter().flat_map(|(_, v)| v).collect();
    let mut job = Job {
        line,
        index,
        id,
        kind,
        config: Map::new(),
        flags,
        positionals,
        output_flag,
        resumable,
    };
    // Parse with the real CLI (placeholder output folder) to check values and fill in defaults.
    let argv = job.argv(Path::new("OUT").join(&job.id).as_path(), false);
    let matches = cli
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| explain_clap_error(&e, sub))?;
    let sub_matches = matches
        .subcommand_matches(kind.name)
        .ok_or_else(|| format!("kind `{}`: the command line did not parse", kind.name))?;
    job.config = resolved_config(sub, sub_matches);
    Ok(job)
}

/// The job's effective settings: every flag of the subcommand (defaults included), typed as JSON.
fn resolved_config(sub: &clap::Command, m: &clap::ArgMatches) -> Map<String, Value> {
    let mut out = Map::new();
    for arg in sub.get_arguments().filter(|a| !is_runner_arg(a)) {
        let id = arg.get_id().as_str();
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|vals| vals.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let ty = arg.get_value_parser().type_id();
        let typed = |s: &str| -> Value {
            let numeric = [
                TypeId::of::<u8>(),
                TypeId::of::<u16>(),
                TypeId::of::<u32>(),
                TypeId::of::<u64>(),
                TypeId::of::<usize>(),
                TypeId::of::<i8>(),
                TypeId::of::<i16>(),
                TypeId::of::<i32>(),
                TypeId::of::<i64>(),
                TypeId::of::<isize>(),
                TypeId::of::<f32>(),
                TypeId::of::<f64>(),
            ];
            if ty == TypeId::of::<bool>()
                && let Ok(b) = s.parse::<bool>()
            {
                return Value::Bool(b);
            }
            if numeric.iter().any(|t| ty == *t)
                && let Ok(v) = serde_json::from_str::<Value>(s)
                && v.is_number()
            {
                return v;
            }
            Value::String(s.to_string())
        };
        let value = if takes_many(arg) {
            Value::Array(raw.iter().map(|s| typed(s)).collect())
        } else {
            raw.first().map_or(Value::Null, |s| typed(s))
        };
        out.insert(id.to_string(), value);
    }
    out
}

/// Turns clap's error about the generated command line back into the job's terms (field names).
fn explain_clap_error(e: &clap::Error, sub: &clap::Command) -> String {
    let rendered = e.to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string();
    let to_field = |shown: &str| -> Option<String> {
        let token = shown.split_whitespace().next()?;
        sub.get_arguments()
            .find(|a| {
                if let Some(l) = token.strip_prefix("--") {
                    a.get_long() == Some(l)
                } else if let Some(s) = token.strip_prefix('-') {
                    a.get_short().is_some_and(|c| s == c.to_string())
                } else {
                    let name = token.trim_matches(|c| c == '<' || c == '>' || c == '.');
                    a.is_positional()
                        && (a.get_id().as_str().eq_ignore_ascii_case(name)
                            || a.get_value_names().is_some_and(|v| {
                                v.iter().any(|n| n.as_str().eq_ignore_ascii_case(name))
                            }))
                }
            })
            .map(field_name)
    };
    let fields: Vec<String> = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => to_field(s).into_iter().collect(),
        Some(ContextValue::Strings(v)) => v.iter().filter_map(|s| to_field(s)).collect(),
        _ => Vec::new(),
    };
    match (e.kind(), fields.as_slice()) {
        (clap::error::ErrorKind::MissingRequiredArgument, [_, ..]) => format!(
            "missing field{} {} ({first})",
            if fields.len() == 1 { "" } else { "s" },
            fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (_, [f, ..]) => format!("field `{f}`: {first}"),
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<JobsFile, JobsFileError> {
        let dir = std::env::temp_dir().join(format!(
            "vecdream-jobs-{}-{}",
            std::process::id(),
            fnv1a(text.as_bytes())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("in.png"), b"not read at load time").unwrap();
        let path = dir.join("jobs.jsonl");
        std::fs::write(&path, text).unwrap();
        let r = JobsFile::load(&path);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn argv_strings(job: &Job) -> Vec<String> {
        job.argv(Path::new("/o/x"), false)
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn fields_map_to_the_subcommand_flags() {
        let f = load(
            r#"{"kind":"generate","id":"a","reference":["in.png","in.png"],"steps":7,"t-schedule":"max_0.5_3","resume":null}
{"kind":"vectorize","input":"in.png","flat":true,"paths":12,"style":"low-poly"}"#,
        );
        // `resume` is the runner's even as null.
        let err = f.unwrap_err();
        assert_eq!(err.errors.len(), 1, "{err}");
        assert!(err.errors[0].1.contains("`resume` is set by"), "{err}");
        let f = load(
            r#"{"kind":"generate","id":"a","reference":["in.png","in.png"],"steps":7,"t-schedule":"max_0.5_3"}
# a comment line

{"kind":"vectorize","input":"in.png","flat":true,"paths":12,"style":"low-poly"}"#,
        )
        .unwrap();
        assert_eq!(f.jobs.len(), 2);
        let g = &f.jobs[0];
        assert_eq!((g.line, g.index, g.id.as_str()), (1, 0, "a"));
        let a = argv_strings(g);
        assert_eq!(&a[..2], ["vecdream", "generate"]);
        assert_eq!(
            a.iter().filter(|s| s.starts_with("--reference=/")).count(),
            2
        );
        assert!(a.contains(&"--steps=7".to_string()), "{a:?}");
        assert!(a.contains(&"--t-schedule=max_0.5_3".to_string()), "{a:?}");
        assert!(a.contains(&"--out=/o/x".to_string()), "{a:?}");
        assert_eq!(g.config["steps"], Value::from(7));
        assert_eq!(
            g.config["particles"],
            Value::from(4),
            "defaults are resolved"
        );
        assert_eq!(g.config["seed"], Value::from(0));
        assert!(
            g.config["reference"].as_array().unwrap()[0]
                .as_str()
                .unwrap()
                .ends_with("/in.png")
        );
        assert!(!g.config.contains_key("out") && !g.config.contains_key("resume"));
        assert!(g.resumable());
        assert!(g.argv(Path::new("/o/x"), true).contains(&"--resume".into()));
        let v = &f.jobs[1];
        assert_eq!((v.line, v.index), (4, 1));
        assert!(v.id.starts_with("vectorize-"), "{}", v.id);
        let a = argv_strings(v);
        assert!(a.contains(&"--flat".to_string()), "{a:?}");
        assert!(
            a.contains(&"--output=/o/x/vectorized.svg".to_string()),
            "{a:?}"
        );
        assert_eq!(a[a.len() - 2], "--");
        assert!(a.last().unwrap().ends_with("/in.png"));
        assert_eq!(v.config["style"], Value::from("low-poly"));
        assert_eq!(v.config["flat"], Value::from(true));
        assert!(!v.resumable());
    }

    #[test]
    fn ids_are_stable_hashes_of_the_fields() {
        let a = load(r#"{"kind":"generate","reference":"in.png","steps":3,"seed":1}"#).unwrap();
        let b = load(r#"{ "seed": 1, "steps": 3,  "reference": "in.png", "kind": "generate" }"#)
            .unwrap();
        let c = load(r#"{"kind":"generate","reference":"in.png","steps":3,"seed":2}"#).unwrap();
        assert_eq!(
            a.jobs[0].id, b.jobs[0].id,
            "key order and spaces do not matter"
        );
        assert_ne!(a.jobs[0].id, c.jobs[0].id);
        let dup = load(
            "{\"kind\":\"generate\",\"reference\":\"in.png\"}\n{\"reference\":\"in.png\",\"kind\":\"generate\"}",
        )
        .unwrap_err();
        assert_eq!(dup.errors[0].0, 2);
        assert!(dup.errors[0].1.contains("line 1"), "{dup}");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number_and_field() {
        let err = load(
            r#"{"kind":"generate","reference":"in.png"}
{"kind":"generate", "steps": }
{"kind":"generate","reference":"in.png","stepz":3}
{"kind":"generate","reference":"in.png","steps":"many"}
{"kind":"paint"}
{"kind":"vectorize","input":"in.png","segments":4,"paths":3}
{"kind":"vectorize","flat":"yes","input":"in.png"}
{"kind":"vectorize"}
{"kind":"generate","reference":"missing.png"}
{"kind":"generate","seed":[1,2]}
{"kind":"generate","id":"../up"}
[1,2]"#,
        )
        .unwrap_err();
        let lines: Vec<usize> = err.errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, (2..=12).collect::<Vec<_>>(), "{err}");
        let msg = |l: usize| &err.errors.iter().find(|(n, _)| *n == l).unwrap().1;
        assert!(msg(2).contains("not valid JSON"), "{}", msg(2));
        assert!(
            msg(3).contains("unknown field `stepz`") && msg(3).contains("steps"),
            "{}",
            msg(3)
        );
        assert!(
            msg(4).starts_with("field `steps`:") && msg(4).contains("many"),
            "{}",
            msg(4)
        );
        assert!(msg(5).contains("unknown kind `paint`"), "{}", msg(5));
        assert!(
            msg(6).starts_with("field `paths`: the argument '--paths <PATHS>' cannot be used with"),
            "{}",
            msg(6)
        );
        assert!(
            msg(7).contains("field `flat`: expected true or false"),
            "{}",
            msg(7)
        );
        assert!(msg(8).contains("missing field `input`"), "{}", msg(8));
        assert!(msg(9).contains("missing.png"), "{}", msg(9));
        assert!(
            msg(10).contains("field `seed`: takes one value"),
            "{}",
            msg(10)
        );
        assert!(msg(11).contains("field `id`"), "{}", msg(11));
        assert!(msg(12).contains("expected a JSON object"), "{}", msg(12));
        let shown = err.to_string();
        assert!(shown.contains("11 bad lines, nothing was run"), "{shown}");
        assert!(shown.contains("jobs.jsonl:4: field `steps`"), "{shown}");
    }

    #[test]
    fn a_kind_without_its_subcommand_is_named() {
        let has_3d = {
            let mut c = Cli::command();
            c.build();
            c.find_subcommand("generate3d").is_some()
        };
        let r = load(r#"{"kind":"generate3d"}"#);
        if has_3d {
            // The subcommand exists: whatever it says, it is not the missing-subcommand error.
            if let Err(e) = r {
                assert!(
                    !e.to_string().contains("has no `generate3d` subcommand"),
                    "{e}"
                );
            }
        } else {
            let e = r.unwrap_err();
            assert!(
                e.to_string().contains("has no `generate3d` subcommand yet"),
                "{e}"
            );
        }
    }
}
