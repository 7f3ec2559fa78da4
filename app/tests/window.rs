//! End-to-end: the binary opens a real window under Xvfb that is not blank, xdotool clicks on its
//! controls do what they say (pause the demo, lock a shape, resume), and `vecdream doctor` succeeds.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use egui::{Pos2, Rect};
use egui_kittest::kittest::Queryable as _;
use tiny_skia::Pixmap;

const BIN: &str = env!("CARGO_BIN_EXE_vecdream");
/// The Xvfb screen, and the window's size (`run_window` asks for 1280×800).
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;

/// Kills the child when dropped, so a failing assertion leaves no stray process.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime_dir(name: &str) -> PathBuf {
    let dir = scratch_dir(&format!("{name}-xdg-runtime"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

/// Starts Xvfb on a free display (it writes the display number to the pipe given by -displayfd).
fn start_xvfb() -> (Guard, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            &format!("{WIDTH}x{HEIGHT}x24"),
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb must be installed (scripts/setup installs it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let display = format!(":{}", line.trim());
    assert!(
        line.trim().parse::<u32>().is_ok(),
        "Xvfb gave no display: {line:?}"
    );
    let mut xvfb = Guard(child);
    // The display number is written once the server listens, but make sure it answers (and
    // has not died) before a client is started on it: tests start servers in parallel.
    let start = Instant::now();
    loop {
        let answers = Command::new("xdotool")
            .arg("getdisplaygeometry")
            .env("DISPLAY", &display)
            .output()
            .is_ok_and(|o| o.status.success());
        if answers {
            break;
        }
        if let Ok(Some(status)) = xvfb.0.try_wait() {
            panic!("Xvfb on {display} exited with {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Xvfb on {display} does not answer after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (xvfb, display)
}

fn window_exists(display: &str) -> bool {
    Command::new("xdotool")
        .args(["search", "--name", "^vecdream$"])
        .env("DISPLAY", display)
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false)
}

/// Runs `cmd`, killing it after `limit` (so a wedged X client cannot hang the test).
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `xdotool ARGS` on `display`; panics when it fails or takes more than 20 s.
fn xdotool(display: &str, args: &[&str]) -> String {
    let out = run_with_timeout(
        Command::new("xdotool").args(args).env("DISPLAY", display),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "xdotool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Launches the binary on `display` with scratch config and data folders (no settings, no saved
/// window state, no model folder: the demo starts by itself) at a scale factor of 1.
fn launch(display: &str, name: &str) -> Guard {
    launch_in(display, name, &scratch_dir(&format!("{name}-config")), &[])
}

/// [`launch`] with the config folder `config` (kept between launches) and extra environment.
fn launch_in(display: &str, name: &str, config: &Path, env: &[(&str, &str)]) -> Guard {
    let app = Command::new(BIN)
        .envs(env.iter().copied())
        .env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("VECDREAM_MODEL")
        .env("XDG_RUNTIME_DIR", runtime_dir(name))
        .env("XDG_DATA_HOME", scratch_dir(&format!("{name}-data")))
        .env("VECDREAM_CONFIG_DIR", config)
        .env("VECDREAM_DEVICE", "cpu")
        .env("WINIT_X11_SCALE_FACTOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(app)
}

/// Waits (up to 120 s) for the vecdream window; fails early if the app exits.
fn wait_for_window(display: &str, app: &mut Guard) {
    let start = Instant::now();
    while !window_exists(display) {
        if let Ok(Some(status)) = app.0.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(app.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!(
                "vecdream exited with {status} before opening a window on {display} (X server \
                 answering: {}):\n{err}",
                Command::new("xdotool")
                    .arg("getdisplaygeometry")
                    .env("DISPLAY", display)
                    .output()
                    .is_ok_and(|o| o.status.success())
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no vecdream window after 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Screenshot of the whole screen.
fn screenshot(display: &str, path: &Path) -> Pixmap {
    let out = run_with_timeout(
        Command::new("import")
            .args(["-window", "root"])
            .arg(path)
            .env("DISPLAY", display),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "import failed (imagemagick must be installed): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Pixmap::load_png(path).expect("screenshot is a PNG")
}

/// Standard deviation of the screenshot's gray levels and its number of distinct colours.
fn image_stats(pixmap: &Pixmap) -> (f64, usize) {
    let px = pixmap.pixels();
    let grays: Vec<f64> = px
        .iter()
        .map(|p| (p.red() as f64 + p.green() as f64 + p.blue() as f64) / 3.0)
        .collect();
    let mean = grays.iter().sum::<f64>() / grays.len() as f64;
    let var = grays.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / grays.len() as f64;
    let colours: std::collections::HashSet<(u8, u8, u8)> =
        px.iter().map(|p| (p.red(), p.green(), p.blue())).collect();
    (var.sqrt(), colours.len())
}

#[test]
fn window_opens_under_xvfb_and_is_not_blank() {
    let (_xvfb, display) = start_xvfb();
    let mut app = launch(&display, "window");
    wait_for_window(&display, &mut app);
    // Wait for what the screen shows, not a fixed time: software Vulkan takes a while for the first
    // frames. A blank (all-black) root window has std-dev 0 and one colour.
    let shot = scratch_dir("window-shot").join("screenshot.png");
    let start = Instant::now();
    let (std_dev, colours) = loop {
        let stats = image_stats(&screenshot(&display, &shot));
        if (stats.0 > 10.0 && stats.1 > 50) || start.elapsed() > Duration::from_secs(60) {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if let Some(copy) = std::env::var_os("VECDREAM_SCREENSHOT") {
        std::fs::copy(&shot, copy).unwrap();
    }
    // A blank (all-black) root window has std-dev 0 and one colour; the editor draws panels, text and
    // a checkerboard canvas.
    assert!(
        std_dev > 10.0 && colours > 50,
        "screenshot looks blank: gray std-dev {std_dev:.1}, {colours} colours"
    );
    assert!(
        app.0.try_wait().unwrap().is_none(),
        "vecdream died while rendering"
    );
}

/// Where the script clicks and looks, in window coordinates: the same app laid out offscreen
/// (egui_kittest, no renderer) at the window's size, with the demo running as on first launch.
#[derive(Debug)]
struct Layout {
    pause: Rect,
    resume: Rect,
    /// The 🔒 toggle of the front-most component in the tree.
    lock: Rect,
    /// The run buttons' row.
    buttons: Rect,
    /// The progress bar with its "step N/M" text.
    progress: Rect,
    /// The particle strip and the large picture.
    viewport: Rect,
    /// A spot where the pointer hovers nothing.
    idle: Pos2,
}

fn layout() -> Layout {
    use vecdream_app::app::{AppOptions, VecdreamApp};
    let mut h = egui_kittest::Harness::builder()
        .with_size([WIDTH as f32, HEIGHT as f32])
        .build_eframe(|cc| {
            VecdreamApp::new(
                cc,
                AppOptions {
                    dialogs: Box::new(vecdream_app::dialogs::ScriptedDialogs::default()),
                    persist: false,
                    device: Some(vecdream_gpu::tch::Device::Cpu),
                    model_env: false,
                    ..AppOptions::default()
                },
            )
        });
    // The demo vectorises its samples first: wait for the first particle's document.
    let start = Instant::now();
    let component = loop {
        h.step();
        let front = h
            .state()
            .document()
            .and_then(|d| d.objects.last())
            .and_then(|o| {
                o.children.iter().rev().find_map(|c| match c {
                    vecdream_core::ObjectChild::Component(c) => Some(c.meta.name.clone()),
                    vecdream_core::ObjectChild::Shape(_) => None,
                })
            });
        if let Some(name) = front {
            break name;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the offscreen demo made no document"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    for _ in 0..3 {
        h.step();
    }
    let rect =
        |h: &egui_kittest::Harness<'_, VecdreamApp>, label: &str| h.get_by_label(label).rect();
    let (restart, pause, stop) = (rect(&h, "Restart"), rect(&h, "Pause"), rect(&h, "Stop"));
    // The front-most component of the front-most object: the first row with its label.
    let lock = h
        .get_all_by_label(&format!("Lock {component}"))
        .next()
        .expect("a lock toggle")
        .rect();
    let progress = h
        .get_by_role(egui::accesskit::Role::ProgressIndicator)
        .rect();
    let objects = rect(&h, "Objects");
    let device = h.get_by_label_contains("Device: ").rect();
    h.get_by_label("Pause").click();
    let start = Instant::now();
    while !h.state().run_status().paused {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the offscreen app did not pause"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    let resume = rect(&h, "Resume");
    let buttons = restart.union(stop).union(resume).union(rect(&h, "Step"));
    Layout {
        pause,
        resume,
        lock,
        buttons,
        progress,
        // Between the left panel (as wide as its progress bar) and the tree, under the menu bar.
        viewport: Rect::from_min_max(
            egui::pos2(progress.right() + 12.0, objects.top()),
            egui::pos2(objects.left() - 12.0, device.top() - 8.0),
        ),
        idle: egui::pos2(pause.center().x, device.top() - 30.0),
    }
}

/// Number of pixels that differ between `a` and `b` inside `r`.
fn changed_pixels(a: &Pixmap, b: &Pixmap, r: Rect) -> usize {
    let (x0, y0) = (r.left().max(0.0) as u32, r.top().max(0.0) as u32);
    let x1 = (r.right().ceil() as u32).min(a.width());
    let y1 = (r.bottom().ceil() as u32).min(a.height());
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            if a.pixel(x, y) != b.pixel(x, y) {
                n += 1;
            }
        }
    }
    n
}

/// Screenshots numbered in order into one folder, kept for a look after a failure.
struct Shots {
    display: String,
    dir: PathBuf,
    n: usize,
}

impl Shots {
    fn take(&mut self) -> Pixmap {
        self.n += 1;
        screenshot(&self.display, &self.dir.join(format!("{:02}.png", self.n)))
    }

    /// Takes screenshots (about one a second) until `done(previous, latest)`, failing after `limit`.
    fn until(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&Pixmap, &Pixmap) -> bool,
    ) -> Pixmap {
        let start = Instant::now();
        let mut prev = self.take();
        loop {
            std::thread::sleep(Duration::from_millis(800));
            let shot = self.take();
            if done(&prev, &shot) {
                return shot;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; screenshots in {}",
                self.dir.display()
            );
            prev = shot;
        }
    }
}

/// Moves the pointer to `at`, lets the app see the hover, clicks, then moves the pointer to `idle` so
/// that hover effects and tooltips do not show in later screenshots.
fn click(display: &str, at: Pos2, idle: Pos2) {
    let (x, y) = (at.x.round().to_string(), at.y.round().to_string());
    xdotool(display, &["mousemove", "--sync", &x, &y]);
    std::thread::sleep(Duration::from_millis(500));
    xdotool(display, &["click", "1"]);
    std::thread::sleep(Duration::from_millis(500));
    let (x, y) = (idle.x.round().to_string(), idle.y.round().to_string());
    xdotool(display, &["mousemove", "--sync", &x, &y]);
}

#[test]
fn xdotool_clicks_pause_the_demo_lock_a_shape_and_resume() {
    let l = layout();
    let (_xvfb, display) = start_xvfb();
    let mut app = launch(&display, "clicks");
    wait_for_window(&display, &mut app);
    let geometry = xdotool(
        &display,
        &[
            "search",
            "--name",
            "^vecdream$",
            "getwindowgeometry",
            "--shell",
        ],
    );
    assert!(
        geometry.contains("X=0\n")
            && geometry.contains("Y=0\n")
            && geometry.contains(&format!("WIDTH={WIDTH}\n"))
            && geometry.contains(&format!("HEIGHT={HEIGHT}\n")),
        "the window should fill the {WIDTH}x{HEIGHT} screen at 0,0 (the layout assumes it): {geometry}"
    );
    let mut shots = Shots {
        display: display.clone(),
        dir: scratch_dir("window-clicks"),
        n: 0,
    };
    let limit = Duration::from_secs(180);
    let changed = |a: &Pixmap, b: &Pixmap, r: Rect| changed_pixels(a, b, r) > 0;

    // The demo runs by itself: the picture and the step counter change between screenshots.
    let running = shots.until("the demo to run", limit, |a, b| {
        changed(a, b, l.viewport) && changed(a, b, l.progress)
    });

    // Pause: the buttons change (Resume, Step) and the picture and counter stand still.
    click(&display, l.pause.center(), l.idle);
    let paused = shots.until("the pause", limit, |a, b| {
        changed(&running, b, l.buttons) && !changed(a, b, l.viewport) && !changed(a, b, l.progress)
    });

    // Lock the front-most shape in the tree: its toggle turns on; the run stays paused.
    click(&display, l.lock.center(), l.idle);
    let locked = shots.until("the lock toggle to turn on", limit, |_, b| {
        changed(&paused, b, l.lock)
    });
    assert!(
        !changed(&paused, &locked, l.progress),
        "locking while paused must not step the run"
    );

    // Resume: the counter moves again, and the lock survives the worker's next documents.
    click(&display, l.resume.center(), l.idle);
    let resumed = shots.until("the run to resume", limit, |a, b| {
        changed(&locked, b, l.progress) && changed(a, b, l.viewport)
    });
    assert_eq!(
        changed_pixels(&locked, &resumed, l.lock),
        0,
        "the lock toggle changed after resuming: {:?}",
        l.lock
    );
    assert!(
        app.0.try_wait().unwrap().is_none(),
        "vecdream died during the script"
    );
}

#[test]
fn doctor_reports_libtorch_and_exits_zero() {
    let out = Command::new(BIN)
        .arg("doctor")
        .env("VECDREAM_CONFIG_DIR", scratch_dir("doctor-config"))
        .env("XDG_RUNTIME_DIR", runtime_dir("doctor"))
        .env("VECDREAM_MODEL", "/models/sd21-base")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "doctor failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("libtorch: 2.11.0"), "{stdout}");
    // The version and path are those of the library the binary really loaded (its rpath points at the
    // project's .libtorch), not a constant.
    let expected = std::fs::canonicalize(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.libtorch/lib/libtorch_cpu.so"),
    )
    .unwrap();
    let reported = stdout
        .lines()
        .find_map(|l| l.strip_prefix("libtorch library: "))
        .unwrap_or_else(|| panic!("no library line: {stdout}"));
    assert_eq!(
        std::fs::canonicalize(reported).unwrap(),
        expected,
        "{stdout}"
    );
    assert!(stdout.contains("libtorch check: ok"), "{stdout}");
    assert!(stdout.contains("CPU threads: "), "{stdout}");
    // Set-up installs lavapipe, so an adapter must be found.
    assert!(stdout.contains("wgpu adapter: "), "{stdout}");
    assert!(!stdout.contains("wgpu adapter: none found"), "{stdout}");
    assert!(
        stdout.contains("model folder: /models/sd21-base"),
        "{stdout}"
    );
}

#[test]
fn version_flag_prints_the_package_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("vecdream {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The step in a session folder's run checkpoint, if it has one.
fn checkpoint_step(session: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(session.join("checkpoint.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("step")?.as_u64()
}

/// Where the restore dialog's "Restore" button is, from the same app laid out offscreen with a copy
/// of the crashed session.
fn restore_button(crashed: &Path) -> Pos2 {
    use vecdream_app::app::{AppOptions, VecdreamApp};
    let root = scratch_dir("crash-layout-sessions");
    let copy = root.join(crashed.file_name().unwrap());
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(crashed).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let mut h = egui_kittest::Harness::builder()
        .with_size([WIDTH as f32, HEIGHT as f32])
        .build_eframe(|cc| {
            VecdreamApp::new(
                cc,
                AppOptions {
                    dialogs: Box::new(vecdream_app::dialogs::ScriptedDialogs::default()),
                    persist: false,
                    sessions: Some(root.clone()),
                    autostart_demo: false,
                    device: Some(vecdream_gpu::tch::Device::Cpu),
                    model_env: false,
                    ..AppOptions::default()
                },
            )
        });
    h.run();
    h.get_by_role_and_label(egui::accesskit::Role::Button, "Restore")
        .rect()
        .center()
}

#[test]
fn a_run_killed_with_sigkill_is_restored_and_resumed_at_its_checkpoint() {
    let (_xvfb, display) = start_xvfb();
    let config = scratch_dir("crash-config");
    let fast = [
        ("VECDREAM_AUTOSAVE_SECS", "2"),
        ("RUST_LOG", "warn,vecdream=info"),
    ];
    let mut app = launch_in(&display, "crash", &config, &fast);
    wait_for_window(&display, &mut app);
    // The demo runs; its session folder gets a checkpoint every 2 s. Wait for one past step 3.
    let session = config.join("sessions").join(app.0.id().to_string());
    let start = Instant::now();
    let step = loop {
        if let Some(s) = checkpoint_step(&session).filter(|s| *s >= 3) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "no checkpoint past step 3 in {}",
            session.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // kill -9: no exit handler runs.
    app.0.kill().unwrap();
    app.0.wait().unwrap();
    let step = checkpoint_step(&session).unwrap_or(step);
    assert!(session.join("autosave.svg").is_file());
    let at = restore_button(&session);

    // The next launch offers "Restore the document and resume the run at step S" instead of
    // starting the demo; clicking Restore resumes the run from that checkpoint.
    let mut again = launch_in(&display, "crash2", &config, &fast);
    wait_for_window(&display, &mut again);
    let session2 = config.join("sessions").join(again.0.id().to_string());
    let start = Instant::now();
    while !session2.join("running").is_file() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no session folder"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (x, y) = (at.x.round().to_string(), at.y.round().to_string());
    let start = Instant::now();
    // Click until the crashed folder is taken (the first frames may not be drawn yet).
    while session.exists() {
        xdotool(&display, &["mousemove", "--sync", &x, &y]);
        std::thread::sleep(Duration::from_millis(300));
        xdotool(&display, &["click", "1"]);
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the Restore button at {at:?} did nothing"
        );
    }
    // The resumed run checkpoints again past the step it was killed at.
    let start = Instant::now();
    let resumed = loop {
        if let Some(s) = checkpoint_step(&session2).filter(|s| *s > step) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the resumed run made no checkpoint past step {step}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = again.0.kill();
    let _ = again.0.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(again.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    // The worker started at the checkpoint's step, not at 0.
    assert!(
        err.contains(&format!("run started at step {step} of")),
        "killed at step {step}, resumed to {resumed}; log:\n{err}"
    );
    assert!(!err.contains("run started at step 0 of"), "{err}");
    eprintln!("killed at step {step}; resumed and checkpointed step {resumed}");
}
