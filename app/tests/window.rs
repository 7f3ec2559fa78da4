//! End-to-end: the release-style binary opens a real window under Xvfb that is not blank, and
//! `vecdream doctor` succeeds.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vecdream");

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

fn runtime_dir() -> PathBuf {
    let dir = scratch_dir("xdg-runtime");
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
            "1280x800x24",
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
    (Guard(child), display)
}

fn window_exists(display: &str) -> bool {
    Command::new("xdotool")
        .args(["search", "--name", "^vecdream$"])
        .env("DISPLAY", display)
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false)
}

/// Standard deviation of the screenshot's gray levels and its number of distinct colours.
fn image_stats(png: &Path) -> (f64, usize) {
    let pixmap = tiny_skia::Pixmap::load_png(png).expect("screenshot is a PNG");
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
    let config = scratch_dir("window-config");
    let app = Command::new(BIN)
        .env("DISPLAY", &display)
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_RUNTIME_DIR", runtime_dir())
        .env("VECDREAM_CONFIG_DIR", &config)
        .env("VECDREAM_DEVICE", "cpu")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut app = Guard(app);
    let start = Instant::now();
    while !window_exists(&display) {
        if let Ok(Some(status)) = app.0.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(app.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("vecdream exited with {status} before opening a window:\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no vecdream window after 120 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Give the first frames time to render (software Vulkan).
    std::thread::sleep(Duration::from_secs(4));
    let shot = scratch_dir("window-shot").join("screenshot.png");
    let status = Command::new("import")
        .args(["-window", "root"])
        .arg(&shot)
        .env("DISPLAY", &display)
        .status()
        .expect("imagemagick's import must be installed");
    assert!(status.success(), "import failed: {status}");
    if let Some(copy) = std::env::var_os("VECDREAM_SCREENSHOT") {
        std::fs::copy(&shot, copy).unwrap();
    }
    let (std_dev, colours) = image_stats(&shot);
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

#[test]
fn doctor_reports_libtorch_and_exits_zero() {
    let out = Command::new(BIN)
        .arg("doctor")
        .env("VECDREAM_CONFIG_DIR", scratch_dir("doctor-config"))
        .env("XDG_RUNTIME_DIR", runtime_dir())
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
    assert!(stdout.contains("libtorch check: ok"), "{stdout}");
    assert!(stdout.contains("CPU threads: "), "{stdout}");
    assert!(stdout.contains("wgpu adapter: "), "{stdout}");
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
