//! A gzip bomb in an SVGZ file: 256 MiB of zeros in a ≈250 KB file. Import reads at most one byte
//! past the 64 MiB limit of decompressed SVG, then refuses the file naming it.

use std::io::Write as _;

use vecdream_core::Document;
use vecdream_core::error::Error;
use vecdream_core::svg_import::MAX_SVG_BYTES;

#[test]
fn an_svgz_that_inflates_past_the_limit_is_refused_after_reading_only_the_limit() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"<svg xmlns=\"http://www.w3.org/2000/svg\"><!--")
        .unwrap();
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..256 {
        gz.write_all(&zeros).unwrap();
    }
    gz.write_all(b"--></svg>").unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let err = Document::from_svg_bytes(&bomb, "bomb.svgz").unwrap_err();
    match &err {
        Error::TooLarge { path, size, limit } => {
            assert_eq!(path.to_str(), Some("bomb.svgz"));
            assert_eq!(*limit, MAX_SVG_BYTES);
            // It stopped reading right past the limit instead of inflating all 256 MiB.
            assert_eq!(*size, MAX_SVG_BYTES + 1, "{err}");
        }
        other => panic!("{other}"),
    }
}
