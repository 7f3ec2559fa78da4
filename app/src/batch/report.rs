//! `batch report`: `OUT/summary.csv` (one row per job: state, time, device, final loss, every setting)
//! and `OUT/index.html`, a self-contained contact sheet of every job's particle images (relative links,
//! so the folder can be copied or served as it is), filterable by state and text (`index.html#failed`
//! opens with only the failed jobs shown).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::runner::{JobState, ManifestJob, batch_states};

/// One job's line in the report.
#[derive(Clone, Debug)]
pub struct ReportRow {
    /// Manifest entry.
    pub job: ManifestJob,
    /// Where it stands.
    pub state: JobState,
    /// Its settings (from `status.json`, else `job.json`).
    pub config: Map<String, Value>,
    /// Images to show, relative to OUT (PNG files, else SVG files), in natural order.
    pub images: Vec<String>,
    /// The last loss in `loss.csv`, if any.
    pub final_loss: Option<f64>,
}

/// Paths the report wrote.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    /// `OUT/summary.csv`.
    pub csv: PathBuf,
    /// `OUT/index.html`.
    pub html: PathBuf,
    /// Jobs in the report.
    pub jobs: usize,
}

/// Orders `particle_2.png` before `particle_10.png`.
fn natural_key(name: &str) -> (String, u64, String) {
    let stem_end = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let digits: String = name[stem_end..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let rest = name[stem_end + digits.len()..].to_string();
    (
        name[..stem_end].to_string(),
        digits.parse().unwrap_or(0),
        rest,
    )
}

fn images_of(out: &Path, id: &str) -> Vec<String> {
    let dir = out.join(id);
    let by_ext = |ext: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.') && n.to_ascii_lowercase().ends_with(ext))
            .collect();
        names.sort_by_key(|n| natural_key(n));
        names.into_iter().map(|n| format!("{id}/{n}")).collect()
    };
    let png = by_ext(".png");
    if png.is_empty() { by_ext(".svg") } else { png }
}

fn final_loss(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("loss.csv")).ok()?;
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    last.split(',').nth(1)?.trim().parse().ok()
}

fn config_of(out: &Path, id: &str, state: &JobState) -> Map<String, Value> {
    match state {
        JobState::Done(s) | JobState::Failed(s) => s.config.clone(),
        _ => std::fs::read_to_string(out.join(id).join("job.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("config").and_then(|c| c.as_object().cloned()))
            .unwrap_or_default(),
    }
}

/// Gathers the rows of a report of `out`.
pub fn rows(out: &Path) -> anyhow::Result<Vec<ReportRow>> {
    let (_, states) = batch_states(out)?;
    Ok(states
        .into_iter()
        .map(|(job, state)| ReportRow {
            config: config_of(out, &job.id, &state),
            images: images_of(out, &job.id),
            final_loss: final_loss(&out.join(&job.id)),
            job,
            state,
        })
        .collect())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// The CSV text of `rows`.
pub fn summary_csv(rows: &[ReportRow]) -> String {
    let mut keys: Vec<String> = rows.iter().flat_map(|r| r.config.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from(
        "id,kind,line,state,seconds,device,vecdream_version,resumed_from_step,final_loss,images,error",
    );
    for k in &keys {
        out.push(',');
        out.push_str(&csv_field(&format!("config.{k}")));
    }
    out.push('\n');
    for r in rows {
        let status = match &r.state {
            JobState::Done(s) | JobState::Failed(s) => Some(s),
            _ => None,
        };
        let mut cells = vec![
            r.job.id.clone(),
            r.job.kind.clone(),
            r.job.line.to_string(),
            r.state.name().to_string(),
            status.map_or(String::new(), |s| format!("{:.3}", s.seconds)),
            status.map_or(String::new(), |s| s.device.clone()),
            status.map_or(String::new(), |s| s.vecdream_version.clone()),
            status
                .and_then(|s| s.resumed_from_step)
                .map_or(String::new(), |s| s.to_string()),
            r.final_loss.map_or(String::new(), |l| format!("{l}")),
            r.images.len().to_string(),
            status
                .and_then(|s| s.error.clone())
                .unwrap_or_default()
                .replace('\n', " "),
        ];
        for k in &keys {
            cells.push(r.config.get(k).map(value_text).unwrap_or_default());
        }
        let line: Vec<String> = cells.iter().map(|c| csv_field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Percent-encodes what a relative URL path must not hold raw (ids and file names are plain, but a
/// `#`, `?` or space would break the link).
fn url_path(p: &str) -> String {
    let mut o = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-_./~".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

/// Width of a PNG from its header (for crisp upscaling of tiny renders).
fn png_width(path: &Path) -> Option<u32> {
    use std::io::Read as _;
    let mut head = [0u8; 24];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (head[..8] == *b"\x89PNG\r\n\x1a\n")
        .then(|| u32::from_be_bytes([head[16], head[17], head[18], head[19]]))
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

fn file_name(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.to_string())
}

/// A short description of what the job makes: its prompt, reference or input images.
fn subject(r: &ReportRow) -> String {
    let c = &r.config;
    if let Some(p) = c.get("prompt").and_then(Value::as_str) {
        return format!("“{p}”");
    }
    let names = |v: &Value| -> Vec<String> {
        match v {
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(file_name).collect(),
            Value::String(s) => vec![file_name(s)],
            _ => Vec::new(),
        }
    };
    for key in ["reference", "input"] {
        let n = c.get(key).map(names).unwrap_or_default();
        if !n.is_empty() {
            let label = if key == "reference" {
                "references"
            } else {
                "image"
            };
            return format!("{label}: {}", n.join(", "));
        }
    }
    String::new()
}

const SETTINGS_SHOWN: &[&str] = &[
    "method",
    "style",
    "particles",
    "steps",
    "size",
    "paths",
    "segments",
    "seed",
];

const STYLE: &str = r#"
:root{--bg:#f4f5f7;--card:#fff;--ink:#1d2330;--muted:#6b7385;--line:#e3e6ec;--done:#1f9d55;--failed:#d64545;--running:#2f6fdf;--pending:#8a8f9c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{position:sticky;top:0;z-index:2;background:rgba(255,255,255,.94);backdrop-filter:blur(6px);border-bottom:1px solid var(--line);padding:14px 28px}
h1{font-size:19px;margin:0 0 2px;font-weight:650}
h1 small{font-weight:400;color:var(--muted);font-size:14px;margin-left:6px}
.meta{color:var(--muted);font-size:12.5px}
.bar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin-top:10px}
.chip{border:1px solid var(--line);background:#fff;border-radius:999px;padding:4px 12px;font-size:13px;cursor:pointer;color:var(--ink)}
.chip b{font-variant-numeric:tabular-nums}
.chip.on{border-color:var(--ink);box-shadow:inset 0 0 0 1px var(--ink)}
.chip .dot{display:inline-block;width:8px;height:8px;border-radius:50%;margin-right:6px;vertical-align:1px}
.progress{flex:1;min-width:160px;height:8px;border-radius:4px;background:var(--line);overflow:hidden;display:flex}
.progress span{display:block;height:100%}
input[type=search]{border:1px solid var(--line);border-radius:8px;padding:6px 10px;font:inherit;min-width:220px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:18px;padding:22px 28px 40px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;overflow:hidden;display:flex;flex-direction:column;box-shadow:0 1px 2px rgba(20,30,50,.04)}
.card.failed{border-color:#f0c4c4}
.card.failed .empty{aspect-ratio:8}
.head{display:flex;justify-content:space-between;align-items:baseline;gap:8px;padding:11px 14px 2px}
.id{font:600 13px ui-monospace,SFMono-Regular,Menlo,monospace;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.badge{font-size:11px;font-weight:650;text-transform:uppercase;letter-spacing:.04em;padding:2px 8px;border-radius:999px;color:#fff;flex:none}
.badge.done{background:var(--done)}.badge.failed{background:var(--failed)}.badge.running{background:var(--running)}.badge.pending{background:var(--pending)}
.subject{padding:0 14px 8px;color:var(--muted);font-size:12.5px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.subject .kind{color:var(--ink);font-weight:600;margin-right:4px}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(96px,1fr));gap:6px;padding:0 14px}
.thumbs a{display:block;aspect-ratio:1;border-radius:6px;overflow:hidden;border:1px solid var(--line);background:repeating-conic-gradient(#eef0f3 0 25%,#fff 0 50%) 0 0/16px 16px}
.thumbs img{width:100%;height:100%;object-fit:contain;display:block}
.thumbs img.px{image-rendering:pixelated}
.thumbs.one{grid-template-columns:minmax(0,196px)}
.empty{margin:0 14px;aspect-ratio:4;border:1px dashed var(--line);border-radius:8px;display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:12.5px}
.error{margin:8px 14px 0;padding:8px 10px;border-radius:8px;background:#fdf0f0;color:#8f2525;font:12px ui-monospace,Menlo,monospace;white-space:pre-wrap;word-break:break-word;max-height:96px;overflow:auto}
dl{display:flex;flex-wrap:wrap;gap:4px 14px;margin:10px 14px 12px;font-size:12px;color:var(--muted)}
dl div{display:flex;gap:4px}dt{margin:0}dd{margin:0;color:var(--ink);font-variant-numeric:tabular-nums}
.hidden{display:none}
footer{color:var(--muted);font-size:12px;padding:0 28px 28px}
"#;

const SCRIPT: &str = r#"
(function(){
  var state='all', q='';
  var cards=[].slice.call(document.querySelectorAll('.card'));
  function apply(){cards.forEach(function(c){
    var ok=(state==='all'||c.dataset.state===state)&&(!q||c.dataset.text.indexOf(q)>=0);
    c.classList.toggle('hidden',!ok);});}
  var chips=[].slice.call(document.querySelectorAll('.chip[data-filter]'));
  function pick(s){state=s;chips.forEach(function(o){o.classList.toggle('on',o.dataset.filter===s);});
    if(history.replaceState)history.replaceState(null,'',s==='all'?location.pathname:'#'+s);apply();}
  chips.forEach(function(b){b.addEventListener('click',function(){pick(b.dataset.filter);});});
  document.getElementById('q').addEventListener('input',function(e){q=e.target.value.toLowerCase();apply();});
  var h=location.hash.slice(1);
  if(chips.some(function(c){return c.dataset.filter===h;}))pick(h);
})();
"#;

/// The contact sheet of `rows` for the batch in `out`.
pub fn index_html(out: &Path, rows: &[ReportRow], now_unix: u64) -> String {
    let count = |n: &str| rows.iter().filter(|r| r.state.name() == n).count();
    let (done, running, failed, pending) = (
        count("done"),
        count("running"),
        count("failed"),
        count("pending"),
    );
    let total = rows.len().max(1);
    let statuses: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.state {
            JobState::Done(s) | JobState::Failed(s) => Some(s),
            _ => None,
        })
        .collect();
    let compute: f64 = statuses.iter().map(|s| s.seconds).sum();
    let mut devices: Vec<&str> = statuses.iter().map(|s| s.device.as_str()).collect();
    devices.sort();
    devices.dedup();
    let mut versions: Vec<&str> = statuses
        .iter()
        .map(|s| s.vecdream_version.as_str())
        .collect();
    versions.sort();
    versions.dedup();
    let images: usize = rows.iter().map(|r| r.images.len()).sum();
    let name = out
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| out.display().to_string());

    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>vecdream batch — {}</title><style>{STYLE}</style></head><body>\n<header>\
         <h1>vecdream batch<small>{}</small></h1>\
         <div class=\"meta\">{} jobs · {} images · {:.1} s of compute · device {} · vecdream {} · report of {}</div>\
         <div class=\"bar\">",
        esc(&name),
        esc(&out.display().to_string()),
        rows.len(),
        images,
        compute,
        esc(&if devices.is_empty() {
            "–".into()
        } else {
            devices.join(", ")
        }),
        esc(&if versions.is_empty() {
            crate::VERSION.to_string()
        } else {
            versions.join(", ")
        }),
        utc(now_unix),
    );
    let _ = write!(
        h,
        "<button class=\"chip on\" data-filter=\"all\">all <b>{}</b></button>",
        rows.len()
    );
    for (state, n, colour) in [
        ("done", done, "var(--done)"),
        ("running", running, "var(--running)"),
        ("failed", failed, "var(--failed)"),
        ("pending", pending, "var(--pending)"),
    ] {
        let _ = write!(
            h,
            "<button class=\"chip\" data-filter=\"{state}\"><span class=\"dot\" style=\"background:{colour}\"></span>{state} <b>{n}</b></button>"
        );
    }
    let _ = write!(
        h,
        "<div class=\"progress\" title=\"{done} of {} done\">",
        rows.len()
    );
    for (n, colour) in [
        (done, "var(--done)"),
        (running, "var(--running)"),
        (failed, "var(--failed)"),
    ] {
        let _ = write!(
            h,
            "<span style=\"width:{:.2}%;background:{colour}\"></span>",
            100.0 * n as f64 / total as f64
        );
    }
    h.push_str(
        "</div><input id=\"q\" type=\"search\" placeholder=\"Filter by id, prompt, image…\" aria-label=\"filter\"></div></header>\n<main>\n",
    );
    for r in rows {
        let state = r.state.name();
        let subj = subject(r);
        let text = format!("{} {} {}", r.job.id, r.job.kind, subj).to_lowercase();
        let _ = write!(
            h,
            "<article class=\"card {state}\" data-state=\"{state}\" data-text=\"{}\">\
             <div class=\"head\"><span class=\"id\" title=\"{id}\">{id}</span><span class=\"badge {state}\">{state}</span></div>\
             <div class=\"subject\" title=\"{s}\"><span class=\"kind\">{}</span>{s}</div>",
            esc(&text),
            esc(&r.job.kind),
            id = esc(&r.job.id),
            s = esc(&subj),
        );
        if r.images.is_empty() {
            let what = match &r.state {
                JobState::Running {
                    checkpoint_step: Some(s),
                    ..
                } => format!("running — checkpoint at step {s}"),
                JobState::Running { .. } => "running".into(),
                JobState::Pending {
                    checkpoint_step: Some(s),
                    ..
                } => format!("interrupted at step {s} — will resume"),
                JobState::Pending { .. } => "not started".into(),
                _ => "no images".into(),
            };
            let _ = write!(h, "<div class=\"empty\">{}</div>", esc(&what));
        } else {
            h.push_str(if r.images.len() == 1 {
                "<div class=\"thumbs one\">"
            } else {
                "<div class=\"thumbs\">"
            });
            for img in &r.images {
                // Link a particle's PNG to its SVG when there is one.
                let svg = img
                    .strip_suffix(".png")
                    .map(|s| format!("{s}.svg"))
                    .filter(|s| out.join(s).is_file())
                    .unwrap_or_else(|| img.clone());
                let small = png_width(&out.join(img)).is_some_and(|w| w < 96);
                let _ = write!(
                    h,
                    "<a href=\"{}\" title=\"{}\"><img loading=\"lazy\" src=\"{}\" alt=\"{}\"{}></a>",
                    esc(&url_path(&svg)),
                    esc(&file_name(&svg)),
                    esc(&url_path(img)),
                    esc(&file_name(img)),
                    if small { " class=\"px\"" } else { "" }
                );
            }
            h.push_str("</div>");
        }
        if let JobState::Failed(s) = &r.state {
            let _ = write!(
                h,
                "<div class=\"error\">{}</div>",
                esc(s.error.as_deref().unwrap_or("failed"))
            );
        }
        h.push_str("<dl>");
        let mut item = |k: &str, v: String| {
            let _ = write!(h, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(&v));
        };
        for k in SETTINGS_SHOWN {
            if let Some(v) = r.config.get(*k).filter(|v| !v.is_null()) {
                item(k, value_text(v));
            }
        }
        if let JobState::Done(s) | JobState::Failed(s) = &r.state {
            item("time", format!("{:.1} s", s.seconds));
            if let Some(step) = s.resumed_from_step {
                item("resumed", format!("step {step}"));
            }
        }
        if let Some(l) = r.final_loss {
            item("loss", format!("{l:.4}"));
        }
        item("line", r.job.line.to_string());
        h.push_str("</dl></article>\n");
    }
    let _ = writeln!(
        h,
        "</main><footer>summary.csv beside this page has every job's settings. Click a particle for its SVG.</footer>\
         <script>{SCRIPT}</script></body></html>"
    );
    h
}

/// Writes `summary.csv` and `index.html` into `out`.
pub fn write_report(out: &Path) -> anyhow::Result<ReportFiles> {
    let rows = rows(out)?;
    let csv = out.join("summary.csv");
    let html = out.join("index.html");
    vecdream_core::atomic::write_atomic(&csv, summary_csv(&rows).as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", csv.display()))?;
    let page = index_html(out, &rows, super::lock::unix_now());
    vecdream_core::atomic::write_atomic(&html, page.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("writing {}", html.display()))?;
    Ok(ReportFiles {
        csv,
        html,
        jobs: rows.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let mut names = vec!["particle_10.png", "particle_2.png", "particle_0.png"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(
            names,
            ["particle_0.png", "particle_2.png", "particle_10.png"]
        );
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(url_path("a b/c#d.png"), "a%20b/c%23d.png");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_764_633_600 + 3_660), "2025-12-02 01:01 UTC");
    }
}
