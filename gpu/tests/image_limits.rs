//! Decompression bombs: a valid PNG that declares 30000×30000 pixels (900 megapixels of zeros in a
//! 5.7 MB deflate stream) is refused by the one image loader with an error naming the file and
//! the dimensions, and the process's peak resident memory stays under 1 GB (decoding it would
//! take 0.9 GB for the grey pixels and 3.6 GB more as RGBA). The peak is read from
//! `/proc/self/status` (VmHWM) in a child process of this test binary, so no other test's memory
//! counts.

use std::path::{Path, PathBuf};
use std::process::Command;

use vecdream_gpu::vectorize::{load_image, read_image};

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// LSB-first bit writer for deflate.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code: written most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(rev, len);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block of a literal 0 and back-references of
/// length 258 at distance 1 (13 bits per 258 bytes).
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut b = Bits::default();
    b.put(1, 1); // BFINAL
    b.put(1, 2); // BTYPE = fixed Huffman
    let literal_zero = |b: &mut Bits| b.code(0x30, 8);
    literal_zero(&mut b);
    let mut left = n - 1;
    while left >= 258 {
        b.code(0xc5, 8); // length code 285: 258 bytes
        b.code(0, 5); // distance code 0: distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal_zero(&mut b);
    }
    b.code(0, 7); // end of block (256)
    let mut out = vec![0x78, 0x01];
    out.extend(b.finish());
    let adler = (n % 65521) << 16 | 1; // a = 1, b = n for all-zero data
    out.extend((adler as u32).to_be_bytes());
    out
}

/// A valid 8-bit greyscale PNG of `w`×`h` black pixels.
fn black_png(w: u32, h: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, filter 0, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // Every row: filter byte 0, then w zero samples.
    chunk(
        &mut png,
        b"IDAT",
        &zlib_zeros(u64::from(h) * (u64::from(w) + 1)),
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vecdream-bomb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn the_generator_makes_png_files_the_loader_reads() {
    let dir = scratch("small");
    let path = dir.join("black.png");
    std::fs::write(&path, black_png(300, 200)).unwrap();
    let img = read_image(&path).unwrap();
    assert_eq!((img.width(), img.height()), (300, 200));
    assert!(img.to_luma8().pixels().all(|p| p.0[0] == 0));
    let _ = std::fs::remove_dir_all(&dir);
}

const CHILD_VAR: &str = "VECDREAM_BOMB_CHILD";

#[test]
fn a_30000_by_30000_png_is_refused_naming_file_and_size_with_peak_memory_under_1_gb() {
    let Ok(path) = std::env::var(CHILD_VAR) else {
        let dir = scratch("bomb");
        let path = dir.join("bomb.png");
        let png = black_png(30000, 30000);
        eprintln!("bomb.png: {} bytes, declares 30000x30000", png.len());
        std::fs::write(&path, png).unwrap();
        // The check runs in a fresh process, whose peak memory is only the attempt's.
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_30000_by_30000_png_is_refused_naming_file_and_size_with_peak_memory_under_1_gb",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, &path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        let hwm: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("peak resident KiB: "))
            .unwrap_or_else(|| panic!("no peak reported:\n{text}"))
            .trim()
            .parse()
            .unwrap();
        eprintln!("peak resident memory while refusing it: {hwm} KiB");
        assert!(hwm < 1 << 20, "peak {hwm} KiB ≥ 1 GiB");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let path = Path::new(&path);
    // Both entry points: the loader of references and Open image…, and the vectoriser's.
    let err = read_image(path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("30000x30000"), "{err}");
    let err = load_image(path, 256).unwrap_err().to_string();
    assert!(err.contains("30000x30000"), "{err}");
    println!("error: {err}");
    println!("peak resident KiB: {}", vm_hwm_kib());
}
