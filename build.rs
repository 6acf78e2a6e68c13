//! With the `tch` feature (burn's LibTorch backend): let our binaries, tests and benches find
//! libtorch at run time without `LD_LIBRARY_PATH`. torch-sys learns where the PyTorch wheel keeps
//! `libtorch*.so` and passes it on as `DEP_TCH_LIBTORCH_LIB`; link arguments from its own build
//! script reach only its own targets, so the rpath is set here. `--no-as-needed -ltorch` keeps
//! `libtorch_cuda.so` linked even though no symbol of ours names it, so CUDA devices are seen.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.to_string_lossy());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
