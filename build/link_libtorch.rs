//! Build script shared by the packages that link libtorch (root, gpu, app; each names this file as
//! `build` in its Cargo.toml): an rpath to libtorch for every binary, test and example, so nothing needs
//! LD_LIBRARY_PATH, and, when libtorch has CUDA, a forced link to `torch_cuda` (the linker's `--as-needed`
//! would otherwise drop it, since no symbol of it is referenced directly, and CUDA would be unavailable).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(libtorch) = std::env::var("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-L{}", lib.display());
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
