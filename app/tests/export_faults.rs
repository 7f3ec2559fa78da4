//! Exports that cannot be written: a full disk (a file-size limit, which stops root as well as
//! anyone), a target inside a regular file, a target that is a folder. Each gives an error naming
//! the file, leaves the previous file as it was and no temporary file behind. `chmod 0o555` is not
//! used: tests run as root in CI, and root writes into read-only folders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_vecdream");

fn shared(rel: &str) -> PathBuf {
    vecdream_core::testing::test_data_dir().join(rel)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("export-faults")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with a file-size limit of `blocks` × 512 bytes (`ulimit -f`) and SIGXFSZ
/// ignored, so a write past the limit fails with EFBIG as on a full disk.
fn run_with_file_limit(blocks: u32, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(BIN)
        .args(args)
        .env("VECDREAM_DEVICE", "cpu")
        .output()
        .unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn a_full_disk_keeps_the_previous_svg_and_png_and_leaves_no_temporary_file() {
    let dir = scratch("full");
    let input = shared("svg/twemoji/1f989.svg");
    let svg = dir.join("owl.svg");
    let png = dir.join("owl.png");
    let previous = b"previous contents".to_vec();
    std::fs::write(&svg, &previous).unwrap();
    std::fs::write(&png, &previous).unwrap();
    for (args, target) in [
        (
            vec![
                "convert",
                input.to_str().unwrap(),
                "-o",
                svg.to_str().unwrap(),
            ],
            &svg,
        ),
        (
            vec![
                "render",
                input.to_str().unwrap(),
                "--size",
                "256",
                "-o",
                png.to_str().unwrap(),
            ],
            &png,
        ),
    ] {
        // 1 KiB: both outputs are larger (checked below without the limit).
        let out = run_with_file_limit(2, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&target.display().to_string()) && err.contains("cannot write"),
            "{err}"
        );
        assert_eq!(std::fs::read(target).unwrap(), previous, "{args:?}");
        assert_eq!(names_in(&dir), ["owl.png", "owl.svg"], "{args:?}");
        // Without the limit the same command writes it: the limit was what stopped it.
        let out = run_with_file_limit(1 << 20, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata(target).unwrap().len() > 1024);
        std::fs::write(target, &previous).unwrap();
    }
}

#[test]
fn exporting_inside_a_file_or_onto_a_folder_is_a_clear_error() {
    let dir = scratch("notdir");
    let doc = vecdream_core::svg_import::import_svg(&shared("svg/twemoji/1f989.svg"))
        .unwrap()
        .document;
    let file = dir.join("plain.txt");
    std::fs::write(&file, b"a file, not a folder").unwrap();
    let folder = dir.join("folder.svg");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("keep.txt"), b"kept").unwrap();
    for target in [
        file.join("out.svg"),
        file.join("out.png"),
        folder.clone(),
        dir.join("folder.png"),
    ] {
        if target.extension().is_some_and(|e| e == "png") && target.parent() == Some(&dir) {
            std::fs::create_dir_all(&target).unwrap();
        }
        // The app's File → Export… path.
        let err = vecdream_app::io::export(&doc, &target).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&target.display().to_string()), "{msg}");
        assert!(msg.contains("cannot write"), "{msg}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"a file, not a folder");
    assert_eq!(std::fs::read(folder.join("keep.txt")).unwrap(), b"kept");
    assert_eq!(
        names_in(&dir),
        ["folder.png", "folder.svg", "plain.txt"],
        "a temporary file was left behind"
    );
}
